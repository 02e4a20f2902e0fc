"""`avsclient doctor`: checks this machine and the configured endpoint, one verdict a line.

Each check returns a `Check` with a verdict (OK, WARN or FAIL) and a sentence that says what
was found and, when something is wrong, what to do. Nothing here changes the machine: the
doctor only looks (it connects to the endpoint and pings it, but sends no event).

    $ avsclient doctor --endpoint https://127.0.0.1:8443 --ca-file /tmp/ca.pem
    OK    python      Python 3.11.7 (3.11 or newer required)
    OK    h2          h2 4.4.1 with the fast receive path
    WARN  portaudio   no input device: `avsclient talk --input FILE.wav` still works
    ...
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from avsclient.cli import _args
from avsclient.config import ClientConfig
from avsclient.exceptions import AVSError, TokenStoreError

__all__ = [
    "Check",
    "Verdict",
    "add_arguments",
    "check_devices",
    "check_h2",
    "check_portaudio",
    "check_python",
    "check_sound_server",
    "check_tokens",
    "probe_endpoint",
    "run",
    "run_checks",
]


class Verdict(enum.Enum):
    """How a check came out."""

    OK = "OK"
    WARN = "WARN"  # works, with a limitation the line explains
    FAIL = "FAIL"  # will not work until fixed


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """The outcome of one check.

    Attributes:
        name: a short name (`python`, `h2`, `portaudio`, `tokens`, `endpoint`).
        verdict: OK, WARN or FAIL.
        detail: one sentence: what was found, and what to do about a WARN or FAIL.
    """

    name: str
    verdict: Verdict
    detail: str

    def line(self) -> str:
        """The check as one printable line."""
        return f"{self.verdict.value:<5} {self.name:<10}  {self.detail}"


def check_python(version: tuple[int, int, int] | None = None) -> Check:
    """Python must be 3.11 or newer."""
    major, minor, micro = version or sys.version_info[:3]
    text = f"Python {major}.{minor}.{micro} ({platform.python_implementation()})"
    if (major, minor) >= (3, 11):
        return Check(name="python", verdict=Verdict.OK, detail=f"{text}, 3.11 or newer required")
    return Check(name="python", verdict=Verdict.FAIL, detail=f"{text}: avsclient needs 3.11+")


def check_h2() -> Check:
    """The installed h2, and whether the faster receive path applies to it."""
    import h2

    from avsclient.http2 import FAST_RECEIVE_ACTIVE, VERIFIED_H2_VERSIONS

    if FAST_RECEIVE_ACTIVE:
        return Check(
            name="h2", verdict=Verdict.OK, detail=f"h2 {h2.__version__} with the fast receive path"
        )
    verified = ", ".join(sorted(VERIFIED_H2_VERSIONS))
    return Check(
        name="h2",
        verdict=Verdict.WARN,
        detail=f"h2 {h2.__version__} works, but the fast receive path is verified only for "
        f"{verified}: downloads are slower (pip install 'h2=={max(VERIFIED_H2_VERSIONS)}')",
    )


def check_portaudio() -> Check:
    """PortAudio can be loaded and has a default input and output device."""
    try:
        import sounddevice
    except (OSError, ImportError) as exc:
        return Check(
            name="portaudio",
            verdict=Verdict.WARN,
            detail=f"PortAudio is not installed ({exc}): install libportaudio2 (Debian/Ubuntu) "
            "or portaudio (Homebrew); until then use --input FILE.wav and --output FILE.wav",
        )
    try:
        devices: Any = sounddevice.query_devices()
        default_in, default_out = sounddevice.default.device
    except Exception as exc:  # PortAudioError and driver errors alike
        return Check(
            name="portaudio",
            verdict=Verdict.WARN,
            detail=f"PortAudio {sounddevice.get_portaudio_version()[1]} failed to list devices "
            f"({exc}): check the sound server (PulseAudio, PipeWire) or ALSA configuration",
        )

    def name_of(index: int, kind: str) -> str | None:
        if index is None or index < 0 or index >= len(devices):
            return None
        device = devices[index]
        return str(device["name"]) if device[f"max_{kind}_channels"] > 0 else None

    inputs = name_of(default_in, "input")
    outputs = name_of(default_out, "output")
    found = f"{len(devices)} device(s); input: {inputs or 'none'}; output: {outputs or 'none'}"
    if inputs and outputs:
        return Check(name="portaudio", verdict=Verdict.OK, detail=found)
    missing = " and ".join(k for k, v in (("input", inputs), ("output", outputs)) if not v)
    return Check(
        name="portaudio",
        verdict=Verdict.WARN,
        detail=f"{found}: no default {missing} device; use --input FILE.wav / --output FILE.wav "
        "or configure a default device",
    )


def check_sound_server(environ: dict[str, str] | None = None) -> Check:
    """Whether PulseAudio runs for this user, when it is installed (PipeWire answers the same
    `pulseaudio --check` through pipewire-pulse only when pulseaudio is installed too)."""
    import shutil
    import subprocess

    exe = shutil.which("pulseaudio")
    if exe is None:
        return Check(
            name="sound",
            verdict=Verdict.OK,
            detail="no PulseAudio installed: PortAudio talks to ALSA (or the system's audio)",
        )
    try:
        running = (
            subprocess.run(
                [exe, "--check"], env=environ, capture_output=True, timeout=10, check=False
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        running = False
    if running:
        return Check(name="sound", verdict=Verdict.OK, detail="PulseAudio is running")
    return Check(
        name="sound",
        verdict=Verdict.WARN,
        detail="PulseAudio is installed but not running for this user: start it with "
        "`pulseaudio --start` (until then there may be no audio device)",
    )


def check_devices() -> Check:
    """The audio devices PortAudio sees, by index, as `--device` takes them."""
    try:
        import sounddevice

        devices: Any = sounddevice.query_devices()
    except Exception as exc:  # no PortAudio, or it cannot list: check_portaudio says why
        return Check(name="devices", verdict=Verdict.WARN, detail=f"none listed ({exc})")
    listed = []
    for index, device in enumerate(devices):
        ways = "/".join(
            way
            for way, key in (("in", "max_input_channels"), ("out", "max_output_channels"))
            if device[key] > 0
        )
        listed.append(f"{index} {device['name']!r} ({ways or 'no channels'})")
    if not listed:
        return Check(name="devices", verdict=Verdict.WARN, detail="PortAudio lists no device")
    return Check(
        name="devices",
        verdict=Verdict.OK,
        detail="for --device (an index or part of a name): " + "; ".join(listed),
    )


def check_tokens(path: Path | None = None, *, now: float | None = None) -> Check:
    """Tokens stored by `avsclient login`: present, readable, and when they expire."""
    from avsclient.auth import TokenStore

    store = TokenStore(path)
    try:
        stored = store.load()
    except TokenStoreError as exc:
        return Check(
            name="tokens", verdict=Verdict.FAIL, detail=f"{exc}; run `avsclient login` again"
        )
    if stored is None:
        return Check(
            name="tokens",
            verdict=Verdict.WARN,
            detail=f"no tokens at {store.path}: run `avsclient login` to link this device "
            "(not needed for --simulator)",
        )
    tokens = stored.tokens
    left = tokens.expires_at - (time.time() if now is None else now)
    if not tokens.refresh_token:
        return Check(
            name="tokens",
            verdict=Verdict.FAIL,
            detail=f"{store.path} has no refresh token: run `avsclient login` again",
        )
    when = (
        f"access token valid for {left / 60:.0f} more minutes"
        if left > 0
        else f"access token expired {-left / 60:.0f} minutes ago (refreshed on next use)"
    )
    return Check(
        name="tokens",
        verdict=Verdict.OK,
        detail=f"{store.path} for client {stored.client_id}: {when}",
    )


async def probe_endpoint(
    config: ClientConfig, *, token: str | None = None, timeout: float = 10.0
) -> Check:
    """Connect to the endpoint, confirm HTTP/2 was negotiated, PING it, and (with a token)
    `GET /ping`."""
    from avsclient.http2 import ConnectionConfig, HTTP2Connection

    url = config.url()
    transport = ConnectionConfig(
        connect_timeout=timeout, tls_handshake_timeout=timeout, response_timeout=timeout
    )
    connection = HTTP2Connection.from_url(
        url, ca_file=config.ca_file, ssl_context=config.ssl_context, config=transport
    )
    try:
        async with connection:
            rtt = await connection.ping(timeout=timeout)
            how = "TLS, ALPN h2" if url.startswith("https:") else "cleartext h2c"
            found = f"{url}: HTTP/2 negotiated ({how}), PING {rtt * 1000:.1f} ms"
            if token is None:
                return Check(name="endpoint", verdict=Verdict.OK, detail=found)
            stream, response = await connection.request(
                "GET", "/ping", headers=[("authorization", f"Bearer {token}")]
            )
            await stream.read()
            if response.status == 204:
                return Check(name="endpoint", verdict=Verdict.OK, detail=f"{found}, /ping 204")
            if response.status == 403:
                return Check(
                    name="endpoint",
                    verdict=Verdict.FAIL,
                    detail=f"{found}, but /ping answered 403: the access token was rejected; "
                    "run `avsclient login` again",
                )
            return Check(
                name="endpoint",
                verdict=Verdict.WARN,
                detail=f"{found}, but /ping answered {response.status} (204 expected)",
            )
    except AVSError as exc:
        return Check(
            name="endpoint",
            verdict=Verdict.FAIL,
            detail=f"{url} unreachable over HTTP/2: {exc}; check the network, the region or "
            "--endpoint, and --ca-file for a private CA",
        )


async def run_checks(
    config: ClientConfig, *, token_file: Path | None = None, use_token: bool = True
) -> list[Check]:
    """Run every check in order and return their outcomes."""
    checks = [
        check_python(),
        check_h2(),
        check_sound_server(),
        check_portaudio(),
        check_devices(),
        check_tokens(token_file),
    ]
    token = None
    if use_token:
        from avsclient.auth import TokenStore

        try:
            stored = TokenStore(token_file).load()
        except TokenStoreError:
            stored = None
        if stored is not None and stored.tokens.expires_at > time.time():
            token = stored.tokens.access_token
    checks.append(await probe_endpoint(config, token=token))
    return checks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `doctor` options to `parser`."""
    parser.description = "Check Python, h2, PortAudio, stored tokens and the AVS endpoint."
    parser.add_argument(
        "--region", type=_args.region, help="NA, EU or FE, any case (NA; $AVSCLIENT_REGION)"
    )
    parser.add_argument(
        "--endpoint", help="a custom base URL instead of the region's host ($AVSCLIENT_ENDPOINT)"
    )
    parser.add_argument("--ca-file", help="PEM file of CAs to trust ($AVSCLIENT_CA_FILE)")
    parser.add_argument(
        "--token-file", type=Path, help="token file (default: the login one; $AVSCLIENT_TOKEN_FILE)"
    )
    parser.add_argument(
        "--no-token", action="store_true", help="do not send the stored token to /ping"
    )


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run the doctor; exit status 1 when any check FAILs, else 0."""
    out = out or sys.stdout
    try:
        _args.fill_from_environment(args)
        config = ClientConfig(endpoint=args.endpoint, region=args.region, ca_file=args.ca_file)
    except ValueError as exc:
        print(f"avsclient doctor: {exc}", file=sys.stderr)
        return 2
    checks = asyncio.run(
        run_checks(config, token_file=args.token_file, use_token=not args.no_token)
    )
    for check in checks:
        print(check.line(), file=out)
    failed = [c.name for c in checks if c.verdict is Verdict.FAIL]
    print(f"verdict: {'FAIL (' + ', '.join(failed) + ')' if failed else 'OK'}", file=out)
    return 1 if failed else 0
