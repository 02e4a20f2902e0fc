"""The `avsclient` command: one subcommand per module, loaded only when it runs.

Each subcommand module provides `add_arguments(parser)` and `run(args) -> int`, so importing
this module (or running `avsclient --help`) never imports audio, network or server code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main"]

# name -> (module, one-line help). Modules are imported lazily.
_COMMANDS: dict[str, tuple[str, str]] = {}


def _register(name: str, module: str, help_text: str) -> None:
    _COMMANDS[name] = (module, help_text)


_register("simulate", "avsclient.simulator.cli", "run the local AVS simulator")
_register("login", "avsclient.auth.cli", "link this device with Login with Amazon")
_register("talk", "avsclient.talk", "talk to Alexa: a push-to-talk voice loop")
_register("doctor", "avsclient.doctor", "check Python, h2, PortAudio, tokens and the endpoint")


def _build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avsclient", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in _COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text)
        if name == chosen:
            importlib.import_module(module).add_arguments(cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `avsclient` command line and return its exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = _build_parser(args_list).parse_args(args_list)
    module = importlib.import_module(_COMMANDS[args.command][0])
    result: int = module.run(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
