"""The `AVSCLIENT_*` environment variables: where this device's settings come from when no
argument gives them, for the command line and for `AVSClient.from_login()` alike.

| variable                  | meaning                                            |
|---------------------------|----------------------------------------------------|
| `AVSCLIENT_ENDPOINT`      | AVS base URL (default: the region's host)          |
| `AVSCLIENT_REGION`        | NA, EU or FE, in any case (default NA)             |
| `AVSCLIENT_TOKEN_FILE`    | the token file `avsclient login` wrote             |
| `AVSCLIENT_CA_FILE`       | PEM file of CAs to trust (AVS and LWA)             |
| `AVSCLIENT_LWA_URL`       | Login with Amazon base URL                         |
| `AVSCLIENT_PRODUCT_ID`    | AVS product id (default: the one `login` recorded) |
| `AVSCLIENT_SERIAL`        | device serial number (default: as recorded)        |
| `AVSCLIENT_DEVICE`        | audio device for both ways (index or name part)    |
| `AVSCLIENT_INPUT_DEVICE`  | the microphone, when it differs                    |
| `AVSCLIENT_OUTPUT_DEVICE` | the speaker, when it differs                       |

An empty variable counts as unset. Arguments always win over the environment.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from avsclient.config import Region, check_endpoint

__all__ = ["Environment", "VARIABLES", "parse_device", "read_environment"]

_T = TypeVar("_T")

#: Every variable read, and what it sets.
VARIABLES: dict[str, str] = {
    "AVSCLIENT_ENDPOINT": "AVS base URL",
    "AVSCLIENT_REGION": "AVS region (NA, EU, FE)",
    "AVSCLIENT_TOKEN_FILE": "token file written by `avsclient login`",
    "AVSCLIENT_CA_FILE": "PEM file of CAs to trust",
    "AVSCLIENT_LWA_URL": "Login with Amazon base URL",
    "AVSCLIENT_PRODUCT_ID": "AVS product id of the device",
    "AVSCLIENT_SERIAL": "device serial number (DSN)",
    "AVSCLIENT_DEVICE": "audio device for input and output",
    "AVSCLIENT_INPUT_DEVICE": "audio input device",
    "AVSCLIENT_OUTPUT_DEVICE": "audio output device",
}


def parse_device(text: str) -> int | str:
    """A PortAudio device as given by a user: an index (`"3"`) or a part of its name."""
    text = text.strip()
    if not text:
        raise ValueError("an audio device is an index or a part of its name, not empty")
    return int(text) if text.isdecimal() else text


@dataclass(frozen=True, slots=True, kw_only=True)
class Environment:
    """The settings the environment gives (None: not given)."""

    endpoint: str | None = None
    region: Region | None = None
    token_file: Path | None = None
    ca_file: str | None = None
    lwa_url: str | None = None
    product_id: str | None = None
    serial: str | None = None
    input_device: int | str | None = None
    output_device: int | str | None = None


def _value(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _parsed(env: Mapping[str, str], name: str, parse: Callable[[str], _T]) -> _T | None:
    value = _value(env, name)
    if value is None:
        return None
    try:
        return parse(value)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def read_environment(environ: Mapping[str, str] | None = None) -> Environment:
    """Read the `AVSCLIENT_*` variables of `environ` (default: `os.environ`).

    Raises:
        ValueError: a variable holds a bad value; the message names the variable.
    """
    env = os.environ if environ is None else environ
    device = _parsed(env, "AVSCLIENT_DEVICE", parse_device)
    input_device = _parsed(env, "AVSCLIENT_INPUT_DEVICE", parse_device)
    output_device = _parsed(env, "AVSCLIENT_OUTPUT_DEVICE", parse_device)
    token_file = _value(env, "AVSCLIENT_TOKEN_FILE")
    return Environment(
        endpoint=_parsed(env, "AVSCLIENT_ENDPOINT", check_endpoint),
        region=_parsed(env, "AVSCLIENT_REGION", Region.parse),
        token_file=None if token_file is None else Path(token_file).expanduser(),
        ca_file=_value(env, "AVSCLIENT_CA_FILE"),
        lwa_url=_value(env, "AVSCLIENT_LWA_URL"),
        product_id=_value(env, "AVSCLIENT_PRODUCT_ID"),
        serial=_value(env, "AVSCLIENT_SERIAL"),
        input_device=device if input_device is None else input_device,
        output_device=device if output_device is None else output_device,
    )
