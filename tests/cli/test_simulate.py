"""`avsclient simulate` and `python -m avsclient.simulator`: URL and CA printed, signals stop it."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

import httpx
import pytest

COMMANDS = {
    "module": [sys.executable, "-m", "avsclient.simulator"],
    "subcommand": [sys.executable, "-m", "avsclient", "simulate"],
}


async def start(argv: list[str]) -> tuple[asyncio.subprocess.Process, list[str]]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    lines = []
    async with asyncio.timeout(30):
        while not lines or not lines[-1].startswith("Press Ctrl-C"):
            line = await proc.stdout.readline()
            assert line, (await proc.stderr.read()).decode() if proc.stderr else "no output"
            lines.append(line.decode().strip())
    return proc, lines


@pytest.mark.parametrize("how", sorted(COMMANDS))
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_tls_simulator_prints_url_and_ca_and_stops_on_signal(
    how: str, stop: signal.Signals
) -> None:
    """The TLS simulator prints a working https URL and CA file, and exits 0 on a signal."""
    proc, lines = await start([*COMMANDS[how], "--port", "0", "--token", "cli-token"])
    try:
        url = re.fullmatch(r"AVS simulator listening on (https://127\.0\.0\.1:\d+)", lines[0])
        assert url is not None, lines
        ca = re.fullmatch(r"CA file: (.+)", lines[1])
        assert ca is not None, lines
        ca_file = Path(ca.group(1))
        assert ca_file.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
        assert lines[3].startswith("LWA refresh token: Atzr|")
        async with httpx.AsyncClient(http1=False, http2=True, verify=_ctx(ca_file)) as client:
            ping = await client.get(
                url.group(1) + "/ping", headers={"authorization": "Bearer cli-token"}
            )
            assert ping.status_code == 204
    finally:
        proc.send_signal(stop)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert b"AVS simulator stopped." in out
    assert not ca_file.exists()


async def test_h2c_simulator_on_a_given_port() -> None:
    """--h2c --port N serves cleartext HTTP/2 on that port and prints no CA."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc, lines = await start([*COMMANDS["subcommand"], "--h2c", "--port", str(port)])
    try:
        assert lines[0] == f"AVS simulator listening on http://127.0.0.1:{port}"
        assert lines[1] == "CA file: (none: h2c)"
        async with httpx.AsyncClient(http1=False, http2=True) as client:
            ping = await client.get(f"http://127.0.0.1:{port}/ping")
            assert ping.status_code == 403
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0


async def test_port_in_use_exits_1() -> None:
    """A port that cannot be bound gives exit status 1 and a message."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            *COMMANDS["module"],
            "--port",
            str(port),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 1
    assert b"avsclient simulate:" in err


def _ctx(ca_file: Path):  # type: ignore[no-untyped-def]
    import ssl

    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.set_alpn_protocols(["h2"])
    return ctx


ROOT = Path(__file__).resolve().parents[2]
UTTERANCE = ROOT / "avsclient" / "assets" / "utterance.wav"


def _printed(lines: list[str], heading: str) -> list[str]:
    """The command line printed under `heading`, as the shell would split it."""
    import shlex

    index = next(i for i, line in enumerate(lines) if line.startswith(heading))
    argv = shlex.split(lines[index + 1])
    assert argv[0] == "avsclient", argv
    return [sys.executable, "-m", "avsclient", *argv[1:]]


async def _run(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("tls", [True, False], ids=["tls", "h2c"])
async def test_printed_talk_and_login_lines_work_as_pasted(tmp_path: Path, tls: bool) -> None:
    """The `talk` line works with the token file simulate wrote; the `login` line links a
    device at once (the simulator approves the code itself) and its tokens then talk too."""
    proc, lines = await start([*COMMANDS["subcommand"], *([] if tls else ["--h2c"])])
    try:
        token_file = Path(re.fullmatch(r"Token file: (.+)", lines[4]).group(1))  # type: ignore[union-attr]
        assert token_file.stat().st_mode & 0o777 == 0o600
        talk = _printed(lines, "Talk to it:")
        once = ["--once", "--input", str(UTTERANCE), "--output", str(tmp_path / "reply.wav")]
        rc, out, err = await _run([*talk, *once], tmp_path)
        assert rc == 0, out + err
        assert "Speaking" in out

        login = _printed(lines, "Link a device against it")
        rc, out, err = await _run(login, tmp_path)
        assert rc == 0, out + err
        assert "/code" in out and "amazon.com" not in out
        linked = tmp_path / "tokens.json"
        assert linked.exists()
        talk[talk.index("--token-file") + 1] = str(linked)
        rc, out, err = await _run([*talk, *once], tmp_path)
        assert rc == 0, out + err
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    assert not token_file.exists()  # the default token file goes with the simulator


async def test_manual_approval_by_the_documented_request(tmp_path: Path) -> None:
    """With --manual-approve, login waits until GET /code?code=USERCODE approves its code."""
    proc, lines = await start([*COMMANDS["subcommand"], "--h2c", "--manual-approve"])
    url = re.fullmatch(r"AVS simulator listening on (\S+)", lines[0]).group(1)  # type: ignore[union-attr]
    login = await asyncio.create_subprocess_exec(
        *_printed(lines, "Link a device against it"),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert login.stdout is not None
        async with asyncio.timeout(30):
            shown = ""
            while "enter the code:" not in shown:
                shown = (await login.stdout.readline()).decode()
        code = shown.rsplit(":", 1)[1].strip()
        async with httpx.AsyncClient(http1=False, http2=True) as client:
            page = await client.get(f"{url}/code", params={"code": code})
        assert page.status_code == 200 and "approved" in page.text
        await asyncio.wait_for(login.wait(), 30)
        assert login.returncode == 0
        assert (tmp_path / "tokens.json").exists()
    finally:
        if login.returncode is None:
            login.kill()
            await login.wait()
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 30)


def test_command_lines_name_scripted_directives_or_carry_json() -> None:
    """`push NAME [JSON]` builds the scripted directive with those fields; a JSON line is
    taken as it is; anything else is a clear error."""
    from avsclient.cli.simulate import parse_command

    message = parse_command('push SetLocales {"locales": ["de-DE"]}')
    assert message is not None
    assert message["directive"]["header"]["name"] == "SetLocales"
    assert message["directive"]["payload"] == {"locales": ["de-DE"]}
    assert parse_command("push NewDialogRequest")["directive"]["payload"]["dialogRequestId"]  # type: ignore[index]
    raw = '{"directive": {"header": {"namespace": "A", "name": "B", "messageId": "m"}}}'
    assert parse_command(raw) == {
        "directive": {"header": {"namespace": "A", "name": "B", "messageId": "m"}}
    }
    assert parse_command("   ") is None
    cases = [
        ("pull SetLocales", "unknown command"),
        ("push Nope", "no scripted directive"),
        ("push SetLocales [1]", "JSON object"),
        ('push NewDialogRequest {"x": 1}', "unexpected keyword"),
        ('{"a": 1}', "directive"),
    ]
    for bad, words in cases:
        with pytest.raises(ValueError, match=words):
            parse_command(bad)


async def test_directives_pushed_from_stdin_reach_a_connected_client(tmp_path: Path) -> None:
    """A client connected to `avsclient simulate` receives a directive pushed by a stdin line."""
    from avsclient.auth import StaticTokenProvider
    from avsclient.client import AVSClient
    from avsclient.config import ClientConfig
    from avsclient.simulator import SCRIPTED

    proc = await asyncio.create_subprocess_exec(
        *COMMANDS["subcommand"], "--port", "0", "--token", "cli-token",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdin is not None
    lines: list[str] = []
    async with asyncio.timeout(30):
        while not lines or not lines[-1].startswith("Press Ctrl-C"):
            lines.append((await proc.stdout.readline()).decode().strip())
    url = lines[0].rsplit(" ", 1)[1]
    ca = lines[1].split(": ", 1)[1]
    try:
        config = ClientConfig(endpoint=url, ca_file=ca)
        async with AVSClient(
            config, StaticTokenProvider("cli-token"), store=tmp_path / "d.sqlite3"
        ) as client:
            await client.wait_connected(20)
            proc.stdin.write(b'push SetTimeZone {"timeZone": "Europe/Paris"}\npush Nope\n')
            await proc.stdin.drain()
            async with asyncio.timeout(10):
                answers = [(await proc.stdout.readline()).decode().strip() for _ in range(2)]
                while client.system.time_zone != "Europe/Paris":
                    await asyncio.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 30)
    assert sorted(answers) == [
        "error: no scripted directive 'Nope'; have " + str(sorted(SCRIPTED)),
        "pushed System.SetTimeZone on 1 downchannel(s)",
    ]
