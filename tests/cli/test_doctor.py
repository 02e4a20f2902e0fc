"""`avsclient doctor`: each check's verdicts, and the command against a real simulator."""

from __future__ import annotations

import asyncio
import io
import os
import sys
import time
from pathlib import Path

import pytest

from avsclient.auth import StoredTokens, TokenSet, TokenStore
from avsclient.cli.doctor import (
    Verdict,
    check_h2,
    check_portaudio,
    check_python,
    check_tokens,
    probe_endpoint,
)
from avsclient.config import ClientConfig
from avsclient.simulator import Simulator


def _save_tokens(path: Path, *, expires_in: float, refresh: str | None = "Atzr|refresh") -> None:
    tokens = TokenSet(access_token="Atza|access", refresh_token=refresh,
                      expires_at=time.time() + expires_in)
    TokenStore(path).save(StoredTokens(client_id="my-client", tokens=tokens))


def test_python_version_verdicts() -> None:
    """3.11+ is OK; anything older FAILs and says what is needed."""
    assert check_python().verdict is Verdict.OK
    old = check_python((3, 10, 12))
    assert old.verdict is Verdict.FAIL
    assert "3.11+" in old.detail


def test_h2_check_names_the_version() -> None:
    """The installed h2 is named, with the fast path's status."""
    import h2

    check = check_h2()
    assert h2.__version__ in check.detail
    assert check.verdict in (Verdict.OK, Verdict.WARN)


def test_missing_portaudio_is_a_warning_that_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without PortAudio the doctor explains the fix and the file-based fallback."""
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    check = check_portaudio()
    assert check.verdict is Verdict.WARN
    assert "libportaudio2" in check.detail
    assert "--input FILE.wav" in check.detail


def test_portaudio_check_lists_devices() -> None:
    """With PortAudio installed the check reports devices (or their absence) without error."""
    check = check_portaudio()
    assert check.verdict in (Verdict.OK, Verdict.WARN)
    assert "device(s)" in check.detail or "failed to list devices" in check.detail


def test_token_verdicts(tmp_path: Path) -> None:
    """Missing tokens WARN, a corrupt file or no refresh token FAILs, valid ones are OK."""
    path = tmp_path / "tokens.json"
    missing = check_tokens(path)
    assert missing.verdict is Verdict.WARN
    assert "avsclient login" in missing.detail

    _save_tokens(path, expires_in=1800)
    fresh = check_tokens(path)
    assert fresh.verdict is Verdict.OK
    assert "valid for 30 more minutes" in fresh.detail
    assert "Atza|" not in fresh.detail

    _save_tokens(path, expires_in=-600)
    expired = check_tokens(path)
    assert expired.verdict is Verdict.OK
    assert "expired 10 minutes ago" in expired.detail

    _save_tokens(path, expires_in=600, refresh=None)
    assert check_tokens(path).verdict is Verdict.FAIL

    path.write_text("{not json")
    corrupt = check_tokens(path)
    assert corrupt.verdict is Verdict.FAIL
    assert "login" in corrupt.detail


@pytest.mark.parametrize("tls", [True, False], ids=["tls", "h2c"])
async def test_endpoint_check_against_the_simulator(tls: bool) -> None:
    """HTTP/2 negotiated and PINGed; /ping answers 204 with a good token, 403 with a bad one."""
    async with Simulator(tls=tls) as sim:
        ca_file = str(sim.ca_file) if sim.ca_file else None
        config = ClientConfig(endpoint=sim.url, ca_file=ca_file)
        plain = await probe_endpoint(config)
        assert plain.verdict is Verdict.OK
        assert "HTTP/2 negotiated" in plain.detail
        good = await probe_endpoint(config, token=sim.add_token())
        assert good.verdict is Verdict.OK
        assert good.detail.endswith("/ping 204")
        bad = await probe_endpoint(config, token="Atza|not-a-known-token")
        assert bad.verdict is Verdict.FAIL
        assert "403" in bad.detail


async def test_unreachable_endpoint_fails_with_advice() -> None:
    """A closed port is a FAIL that names the URL and what to check."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    check = await probe_endpoint(ClientConfig(endpoint=f"http://127.0.0.1:{port}"), timeout=2)
    assert check.verdict is Verdict.FAIL
    assert f"127.0.0.1:{port}" in check.detail


async def test_untrusted_certificate_fails() -> None:
    """Without the simulator's CA the TLS check fails instead of trusting blindly."""
    async with Simulator() as sim:
        check = await probe_endpoint(ClientConfig(endpoint=sim.url), timeout=5)
        assert check.verdict is Verdict.FAIL
        assert "--ca-file" in check.detail


async def test_doctor_command_end_to_end(tmp_path: Path) -> None:
    """`python -m avsclient doctor` prints one verdict per line and exits by the worst one."""
    async with Simulator() as sim:
        token_file = tmp_path / "tokens.json"
        TokenStore(token_file).save(StoredTokens(client_id="c", tokens=TokenSet(
            access_token=sim.add_token(), refresh_token="Atzr|r", expires_at=time.time() + 3600)))
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "avsclient", "doctor", "--endpoint", sim.url,
            "--ca-file", str(sim.ca_file), "--token-file", str(token_file),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONWARNINGS": "error"},
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
    lines = out.decode().splitlines()
    assert process.returncode == 0, (out, err)
    names = [line.split()[1] for line in lines[:-1]]
    assert names == ["python", "h2", "sound", "portaudio", "devices", "tokens", "endpoint"]
    assert lines[-1] == "verdict: OK"
    assert "/ping 204" in lines[6]


def test_doctor_exit_status_is_one_when_a_check_fails(tmp_path: Path) -> None:
    """A FAIL line makes the command exit 1 and names the failed checks."""
    import argparse

    from avsclient.cli import doctor

    (tmp_path / "tokens.json").write_text("garbage")
    out = io.StringIO()
    args = argparse.Namespace(region="NA", endpoint="http://127.0.0.1:9", ca_file=None,
                              token_file=tmp_path / "tokens.json", no_token=True)
    assert doctor.run(args, out) == 1
    assert out.getvalue().splitlines()[-1] == "verdict: FAIL (tokens, endpoint)"


def test_a_pulseaudio_installed_but_not_running_is_named(tmp_path: Path) -> None:
    """With PulseAudio installed, a user for whom it does not run gets a WARN saying how to
    start it; one for whom it runs (a daemon started here) gets OK."""
    import shutil
    import subprocess

    from avsclient.cli.doctor import Verdict, check_sound_server
    from tests.helpers import require_executable

    exe = require_executable("pulseaudio")
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(runtime)}
    check = check_sound_server(env)
    assert check.verdict is Verdict.WARN
    assert "installed but not running" in check.detail and "pulseaudio --start" in check.detail
    started = subprocess.run(
        [exe, "-D", "-n", "--exit-idle-time=-1", "--load=module-null-sink",
         "--load=module-native-protocol-unix"],
        env=env, capture_output=True, timeout=30, check=False,
    )
    try:
        assert started.returncode == 0, started.stderr
        assert check_sound_server(env).verdict is Verdict.OK
    finally:
        subprocess.run([exe, "--kill"], env=env, capture_output=True, timeout=10, check=False)
        shutil.rmtree(runtime, ignore_errors=True)


def test_version_devices_and_region_in_any_case() -> None:
    """`avsclient --version`; doctor lists the devices for --device and takes --region eu."""
    import subprocess

    import avsclient

    version = subprocess.run(
        [sys.executable, "-m", "avsclient", "--version"], capture_output=True, text=True,
        timeout=60, check=False,
    )
    assert version.returncode == 0
    assert version.stdout.startswith(f"avsclient {avsclient.__version__} (Python 3.")
    done = subprocess.run(
        [sys.executable, "-m", "avsclient", "doctor", "--region", "eu", "--no-token",
         "--endpoint", "https://127.0.0.1:9"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert "devices" in done.stdout and "sound" in done.stdout, done.stdout + done.stderr
    assert "error:" not in done.stderr
