"""Argument types and defaults shared by the subcommands: each checks its value when the
command line is parsed and says plainly what is wrong, before anything connects."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from avsclient.config import Region
from avsclient.environment import parse_device, read_environment

__all__ = [
    "add_device_identity",
    "device",
    "fill_from_environment",
    "positive_seconds",
    "region",
    "wav_input",
    "wav_output",
]


def positive_seconds(text: str) -> float:
    """A number of seconds > 0 (`--connect-timeout 2.5`)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


def region(text: str) -> Region:
    """A region name in any case (`eu`, `EU`)."""
    try:
        return Region.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def device(text: str) -> int | str:
    """A PortAudio device: its index or a part of its name (`avsclient doctor` lists them)."""
    try:
        return parse_device(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def wav_input(text: str) -> Path:
    """A WAV file that exists and can be read (integer PCM or float, any rate and channels)."""
    from avsclient.audio.wavfile import probe_wav
    from avsclient.exceptions import AudioError

    try:
        probe_wav(text)
    except AudioError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return Path(text)


def wav_output(text: str) -> Path:
    """A file that can be created or replaced: its directory exists and is writable."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: is a directory; give a file name")
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: {parent} is not a directory")
    if not parent.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise argparse.ArgumentTypeError(f"{text}: not writable (permission denied)")
    return path


def add_device_identity(parser: argparse.ArgumentParser) -> None:
    """--product-id and --serial, for the commands that use what `avsclient login` recorded
    (the Discovery endpoint `clientId::productId::serial`)."""
    parser.add_argument(
        "--product-id",
        help="AVS product id, if not the one `avsclient login` recorded ($AVSCLIENT_PRODUCT_ID)",
    )
    parser.add_argument(
        "--serial",
        help="device serial number, if not the one `avsclient login` recorded ($AVSCLIENT_SERIAL)",
    )


def fill_from_environment(args: argparse.Namespace) -> None:
    """Give the options the user left unset their `AVSCLIENT_*` values (where the command has
    them): endpoint, region, token file, CA file, LWA URL, product id, serial, devices.

    Raises:
        ValueError: a variable holds a bad value; the message names it.
    """
    env = read_environment()
    for name in ("endpoint", "region", "token_file", "ca_file", "lwa_url", "product_id", "serial"):
        if hasattr(args, name) and getattr(args, name) is None:
            setattr(args, name, getattr(env, name))
    if hasattr(args, "region"):
        if args.region is None:
            args.region = Region.NA
        elif isinstance(args.region, str):  # a Namespace built by a program, not the parser
            args.region = Region.parse(args.region)
    for name in ("input_device", "output_device"):
        if hasattr(args, name) and getattr(args, name) is None:
            setattr(args, name, getattr(env, name))
