"""`avsclient simulate`: run the local AVS simulator until Ctrl-C or SIGTERM.

It prints its URL and CA file, writes a token file (`--token-file`, else one in a temporary
directory removed at exit), and prints `avsclient talk` and `avsclient login` command lines
that work against it as they stand. Its Login with Amazon approves every code pair by itself;
with `--manual-approve` a code waits for `GET <url>/code?code=USERCODE` (the verification
page `avsclient login` shows).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shlex
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from avsclient.exceptions import AVSError
from avsclient.simulator.lwa import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
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
    trust = [] if sim.ca_path is None else ["--ca-file", str(sim.ca_path)]
    talk = ["avsclient", "talk", "--endpoint", sim.url, "--lwa-url", sim.url, *trust]
    talk += ["--token-file", str(token_file)]
    login = ["avsclient", "login", "--lwa-url", sim.url, *trust, "--client-id", DEFAULT_CLIENT_ID]
    login += ["--product-id", "sim_device", "--serial", "0001", "--token-file", "tokens.json"]
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
            f"CA file: {sim.ca_path if sim.ca_path is not None else '(none: h2c)'}",
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
        try:
            await stop.wait()
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)


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
