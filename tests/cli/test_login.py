"""`avsclient login` end to end: a real process polls the simulator while the test approves."""

from __future__ import annotations

import asyncio
import json
import os
import re
import stat
import sys
from pathlib import Path

import pytest

from avsclient.auth import LWAConfig, LWAHttpClient, RefreshingTokenProvider, TokenStore
from avsclient.simulator import DEFAULT_CLIENT_ID, Simulator


async def run_login(sim: Simulator, *args: str, approve: bool = True) -> tuple[int, str, str]:
    """Run `python -m avsclient login ...`; approve the code it prints."""
    assert sim.ca_file is not None
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "avsclient",
        "login",
        "--lwa-url",
        sim.url,
        "--ca-file",
        str(sim.ca_file),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    out = []
    try:
        async with asyncio.timeout(60):
            while line := (await proc.stdout.readline()).decode():
                out.append(line)
                match = re.search(r"enter the code: (\S+)", line)
                if match and approve:
                    sim.lwa.approve(match.group(1))
            err = (await proc.stderr.read()).decode()
            code = await proc.wait()
    finally:
        if proc.returncode is None:  # pragma: no cover - only on a hang
            proc.kill()
            await proc.wait()
    return code, "".join(out), err


async def test_login_links_and_stores_tokens(avs_simulator: Simulator, tmp_path: Path) -> None:
    """login shows the code and URL, waits for approval, stores 0600 tokens, says where."""
    avs_simulator.lwa.codepair_interval = 1
    token_file = tmp_path / "conf" / "tokens.json"
    code, out, err = await run_login(
        avs_simulator,
        "--client-id",
        DEFAULT_CLIENT_ID,
        "--product-id",
        "prod",
        "--serial",
        "SN-9",
        "--token-file",
        str(token_file),
    )
    assert code == 0, err
    assert avs_simulator.lwa.verification_uri in out
    assert f"Tokens saved to {token_file}" in out
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    pair = avs_simulator.lwa.codepairs[0]
    assert (pair.product_id, pair.serial) == ("prod", "SN-9")
    stored = TokenStore(token_file).load()
    assert stored is not None
    assert stored.tokens.refresh_token is not None
    assert stored.tokens.refresh_token not in out + err
    assert avs_simulator.lwa.access_token_valid(
        stored.tokens.access_token, avs_simulator.lwa.clock()
    )
    # The stored refresh token works: a provider starting from the file refreshes with it.
    assert avs_simulator.ca_file is not None
    async with (
        LWAHttpClient(avs_simulator.url, ca_file=avs_simulator.ca_file) as http,
        RefreshingTokenProvider(
            LWAConfig(client_id=DEFAULT_CLIENT_ID, url=avs_simulator.url),
            store=TokenStore(token_file),
            http=http,
            clock=lambda: stored.tokens.expires_at + 1,
        ) as provider,
    ):
        fresh = await provider.get_token()
    assert fresh != stored.tokens.access_token
    assert avs_simulator.lwa.access_token_valid(fresh, avs_simulator.lwa.clock())


async def test_login_reads_an_sdk_style_config_file(
    avs_simulator: Simulator, tmp_path: Path
) -> None:
    """The identity can come from an AlexaClientSDKConfig.json-style deviceInfo section."""
    avs_simulator.lwa.codepair_interval = 1
    cfg = tmp_path / "AlexaClientSDKConfig.json"
    cfg.write_text(
        json.dumps(
            {
                "deviceInfo": {
                    "clientId": DEFAULT_CLIENT_ID,
                    "productId": "cfgprod",
                    "deviceSerialNumber": "CFG-1",
                }
            }
        )
    )
    token_file = tmp_path / "t.json"
    code, _, err = await run_login(
        avs_simulator, "--config", str(cfg), "--token-file", str(token_file)
    )
    assert code == 0, err
    assert avs_simulator.lwa.codepairs[0].product_id == "cfgprod"
    assert token_file.exists()


async def test_login_with_unknown_client_fails_clearly(
    avs_simulator: Simulator, tmp_path: Path
) -> None:
    """An unknown client id exits 1 with the LWA error, and stores nothing."""
    token_file = tmp_path / "t.json"
    code, _, err = await run_login(
        avs_simulator,
        "--client-id",
        "nobody",
        "--product-id",
        "p",
        "--serial",
        "s",
        "--token-file",
        str(token_file),
        approve=False,
    )
    assert code == 1
    assert "invalid_client" in err
    assert not token_file.exists()


def test_login_without_identity_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Missing client id, product id or serial exits 2 naming the flags."""
    from avsclient.cli import main

    assert main(["login", "--token-file", str(tmp_path / "t.json")]) == 2
    err = capsys.readouterr().err
    assert "--client-id" in err
    assert "--serial" in err
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    assert main(["login", "--config", str(bad)]) == 2
    assert "not valid JSON" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--lwa-url", "ftp://example.com"], "https:// URL"),
        (["--lwa-url", "api.amazon.com"], "https:// URL"),
        (["--timeout", "0"], "--timeout"),
        (["--max-codes", "0"], "--max-codes"),
    ],
)
def test_login_with_bad_settings_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    """A malformed URL, timeout or code count exits 2 with a message, not a traceback."""
    from avsclient.cli import main

    identity = ["--client-id", "c", "--product-id", "p", "--serial", "s"]
    assert main(["login", *identity, "--token-file", str(tmp_path / "t.json"), *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "t.json").exists()


async def test_login_against_an_unreachable_server_is_bounded_and_names_it() -> None:
    """Nothing listens: the progress line comes at once, and --timeout 2 bounds the wait (the
    retries included); the error names the URL."""
    import socket
    import time

    with socket.socket() as s:  # a port that was free a moment ago: nothing answers there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "avsclient", "login", "--client-id", "c", "--product-id", "p",
        "--serial", "1", "--lwa-url", f"https://127.0.0.1:{port}", "--timeout", "2",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    first = await asyncio.wait_for(proc.stdout.readline(), 10)
    assert f"Login with Amazon at https://127.0.0.1:{port}" in first.decode()
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    elapsed = time.monotonic() - started
    assert proc.returncode == 1
    assert f"no answer from Login with Amazon at https://127.0.0.1:{port} within 2 s" in (
        err.decode()
    )
    assert elapsed < 15  # 2 s and a process start, not the 86 s of the retry schedule
