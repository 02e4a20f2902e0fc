"""`avsclient simulate`: run the local AVS simulator until Ctrl-C or SIGTERM.

It prints its URL and CA file, writes a token file (`--token-file`, else one in a temporary
directory removed at exit), and prints `avsclient talk`, `avsclient login` and `avsclient
logout` command lines that work against it as they stand. Its Login with Amazon approves every
code pair by itself; with `--manual-approve` a code waits for `GET <url>/code?code=USERCODE`
(the verification page `avsclient login` shows).

While it runs, each line on standard input pushes a directive on every open downchannel:
`push NAME [JSON fields]` for a scripted one (`push SetLocales {"locales": ["de-DE"]}`,
`push NewDialogRequest`, `push SetIndicator {"url": "https://..."}`; `push list` names them),
or a whole `{"directive": ...}` JSON message. Each push prints one line saying what happened.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from avsclient.exceptions import AVSError
from avsclient.simulator.lwa import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from avsclient.simulator.scripted import SCRIPTED, scripted_directive
from avsclient.simulator.server import Simulator

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `simulate` options to `parser`."""
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        choices=["127.0.0.1", "::1", "localhost"],
        help="loopback address to listen on (default: 127.0.0.1)",
    )
    parser.add_argument(
        "--h2c", action="store_true", help="serve cleartext HTTP/2 (prior knowledge), not TLS"
    )
    parser.add_argument(
        "--token",
        action="append",
        default=[],
        metavar="TOKEN",
        help="accept this bearer token on the AVS endpoints (repeatable)",
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        help="write a token file for `avsclient talk --token-file` here and keep it "
        "(default: one in a temporary directory, removed at exit)",
    )
    parser.add_argument(
        "--manual-approve",
        action="store_true",
        help="code pairs wait for GET <url>/code?code=USERCODE instead of being approved at once",
    )


def _commands(sim: Simulator, token_file: Path) -> list[str]:
    """The ready-to-paste command lines for this simulator."""
    trust = [] if sim.ca_file is None else ["--ca-file", str(sim.ca_file)]
    talk = ["avsclient", "talk", "--endpoint", sim.url, "--lwa-url", sim.url, *trust]
    talk += ["--token-file", str(token_file)]
    login = ["avsclient", "login", "--lwa-url", sim.url, *trust, "--client-id", DEFAULT_CLIENT_ID]
    login += ["--product-id", "sim_device", "--serial", "0001", "--token-file", "tokens.json"]
    logout = ["avsclient", "logout", "--endpoint", sim.url, "--lwa-url", sim.url, *trust]
    logout += ["--token-file", str(token_file)]
    approval = (
        f"open {sim.url}/code?code=USERCODE to approve a code"
        if not sim.lwa.auto_approve
        else "codes are approved at once"
    )
    return [
        "Talk to it:",
        "  " + shlex.join(talk),
        f"Link a device against it ({approval}):",
        "  " + shlex.join(login),
        "Deregister it (DeleteReport, device store cleared, token file deleted):",
        "  " + shlex.join(logout),
    ]


async def _serve(args: argparse.Namespace, scratch: Path) -> None:
    async with Simulator(tls=not args.h2c, host=args.host, port=args.port) as sim:
        for token in args.token:
            sim.add_token(token)
        sim.lwa.auto_approve = not args.manual_approve
        sim.lwa.verification_uri = f"{sim.url}/code"
        sim.lwa.codepair_interval = 1  # a linked device is told within a second
        refresh = sim.lwa.issue_refresh_token()
        token_file = sim.write_token_file(args.token_file or scratch / "tokens.json")
        lines = [
            f"AVS simulator listening on {sim.url}",
            f"CA file: {sim.ca_file if sim.ca_file is not None else '(none: h2c)'}",
            f"LWA client id: {DEFAULT_CLIENT_ID}  secret: {DEFAULT_CLIENT_SECRET}",
            f"LWA refresh token: {refresh}",
            f"Token file: {token_file}",
            *_commands(sim, token_file),
            "Press Ctrl-C to stop.",
        ]
        print("\n".join(lines), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        commands = _Commands(sim)
        try:
            await stop.wait()
        finally:
            commands.close()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)


def parse_command(line: str) -> dict[str, Any] | None:
    """The directive message a command line asks for; None for an empty line.

    Raises:
        ValueError: not a command, bad JSON, or an unknown scripted directive.
    """
    line = line.strip()
    if not line:
        return None
    if line.startswith("{"):
        message = json.loads(line)
        if not isinstance(message, dict) or not isinstance(message.get("directive"), dict):
            raise ValueError('a JSON line must be {"directive": {...}}')
        return message
    word, _, rest = line.partition(" ")
    if word != "push":
        raise ValueError(f"unknown command {word!r} (push NAME [JSON], or a JSON directive)")
    name, _, fields_text = rest.strip().partition(" ")
    fields = json.loads(fields_text) if fields_text.strip() else {}
    if not isinstance(fields, dict):
        raise ValueError("the fields must be a JSON object")
    try:
        return scripted_directive(name, **fields)
    except (KeyError, TypeError) as exc:
        raise ValueError(str(exc).strip("'\"")) from exc


class _Commands:
    """Reads command lines from stdin (when there is one) and pushes their directives."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.loop = asyncio.get_running_loop()
        self.buffer = b""
        self.tasks: set[asyncio.Task[None]] = set()
        try:
            self.fd: int | None = sys.stdin.fileno()
            self.loop.add_reader(self.fd, self._readable)
        except (AttributeError, OSError, ValueError, PermissionError, NotImplementedError):
            self.fd = None  # no usable stdin (closed, or a file the loop cannot watch)

    def _readable(self) -> None:
        assert self.fd is not None
        chunk = os.read(self.fd, 4096)
        if not chunk:
            self.close()
            return
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            task = self.loop.create_task(self._run(line.decode(errors="replace")))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _run(self, line: str) -> None:
        if line.strip() == "push list":
            print("scripted directives: " + ", ".join(sorted(SCRIPTED)), flush=True)
            return
        try:
            message = parse_command(line)
        except ValueError as exc:
            print(f"error: {exc}", flush=True)
            return
        if message is None:
            return
        header = message["directive"].get("header", {})
        what = f"{header.get('namespace')}.{header.get('name')}"
        try:
            count = await self.sim.push_directive(message, timeout=5.0)
        except (TimeoutError, AVSError) as exc:
            print(f"error: {what} not pushed: {exc or 'no downchannel'}", flush=True)
            return
        print(f"pushed {what} on {count} downchannel(s)", flush=True)

    def close(self) -> None:
        if self.fd is not None:
            self.loop.remove_reader(self.fd)
            self.fd = None
        for task in self.tasks:
            task.cancel()


def run(args: argparse.Namespace) -> int:
    """Run the simulator until interrupted; returns the exit status."""
    scratch = Path(tempfile.mkdtemp(prefix="avs-simulate-"))
    try:
        asyncio.run(_serve(args, scratch))
    except (OSError, AVSError) as exc:
        print(f"avsclient simulate: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    with contextlib.suppress(BrokenPipeError):
        print("AVS simulator stopped.", flush=True)
    return 0
