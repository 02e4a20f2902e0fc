"""The `avsclient` command: one subcommand per module, loaded only when it runs.

The applications of the package live here, above everything else: `talk` (a push-to-talk
voice loop), `doctor` (checks of this machine and the endpoint), `login` (code-based linking
with Login with Amazon), `logout` (deregistration) and `simulate` (the local AVS simulator).
Each subcommand module provides `add_arguments(parser)` and `run(args) -> int`, so importing
this package (or running `avsclient --help`) never imports audio, network or server code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

__all__ = ["main"]

# name -> (module, one-line help). Modules are imported lazily.
_COMMANDS: dict[str, tuple[str, str]] = {}


def _register(name: str, module: str, help_text: str) -> None:
    _COMMANDS[name] = (module, help_text)


_register("simulate", "avsclient.cli.simulate", "run the local AVS simulator")
_register("login", "avsclient.cli.login", "link this device with Login with Amazon")
_register("logout", "avsclient.cli.logout", "deregister this device and delete its tokens")
_register("talk", "avsclient.cli.talk", "talk to Alexa: a push-to-talk voice loop")
_register("doctor", "avsclient.cli.doctor", "check Python, h2, PortAudio, tokens and the endpoint")


class _MissingDependency(Exception):
    """A subcommand needs a third-party package that is not installed."""


def _load(name: str) -> ModuleType:
    """Import the module of command `name`; a missing third-party package is a plain error."""
    try:
        return importlib.import_module(_COMMANDS[name][0])
    except ImportError as exc:
        if exc.name is None or exc.name.split(".")[0] == "avsclient":
            raise  # a bug in the package, not a missing dependency: keep the traceback
        raise _MissingDependency(f"avsclient {name}: {exc}") from exc


def _build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    from avsclient import __version__

    parser = argparse.ArgumentParser(prog="avsclient", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--version",
        action="version",
        version=f"avsclient {__version__} (Python {sys.version.split()[0]})",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (_, help_text) in _COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text)
        if name == chosen:
            _load(name).add_arguments(cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `avsclient` command line and return its exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _build_parser(args_list).parse_args(args_list)
        module = _load(args.command)
    except SystemExit as exc:  # argparse: --help, --version, or a bad argument (status 2)
        return exc.code if isinstance(exc.code, int) else 2
    except _MissingDependency as exc:
        print(exc, file=sys.stderr)
        return 1
    result: int = module.run(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
