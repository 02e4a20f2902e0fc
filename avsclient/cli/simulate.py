"""`avsclient simulate`: run the local AVS simulator until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

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


async def _serve(args: argparse.Namespace) -> None:
    async with Simulator(tls=not args.h2c, host=args.host, port=args.port) as sim:
        for token in args.token:
            sim.add_token(token)
        refresh = sim.lwa.issue_refresh_token()
        lines = [
            f"AVS simulator listening on {sim.url}",
            f"CA file: {sim.ca_path if sim.ca_path is not None else '(none: h2c)'}",
            f"LWA client id: {DEFAULT_CLIENT_ID}  secret: {DEFAULT_CLIENT_SECRET}",
            f"LWA refresh token: {refresh}",
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
    try:
        asyncio.run(_serve(args))
    except OSError as exc:
        print(f"avsclient simulate: {exc}", file=sys.stderr)
        return 1
    with contextlib.suppress(BrokenPipeError):
        print("AVS simulator stopped.", flush=True)
    return 0
