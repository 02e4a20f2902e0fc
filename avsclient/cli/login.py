"""`avsclient login`: link this device with code-based linking and store the tokens.

The device identity comes from flags or from a JSON config file. The file may be flat or use
the AVS Device SDK's `deviceInfo` section, so an existing `AlexaClientSDKConfig.json` works:

    {"deviceInfo": {"clientId": "amzn1.application-oa2-client.…",
                    "productId": "my_device", "deviceSerialNumber": "123456"},
     "lwaUrl": "https://api.amazon.com"}

Flags win over the file, and the file over `$AVSCLIENT_PRODUCT_ID` and `$AVSCLIENT_SERIAL`. The
tokens go to `--token-file` (default: `tokens.json` in the user's config directory for
avsclient), written atomically with mode 0600, together with the client id, product id and
serial number, so that `avsclient talk` and `AVSClient.from_login()` describe the device in its
Discovery report (endpoint `clientId::productId::serial`) without being told again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from avsclient.auth.http import LWAHttpClient
from avsclient.auth.linking import link_device
from avsclient.auth.lwa import DEFAULT_LWA_URL, CodePair
from avsclient.auth.store import StoredTokens, TokenStore, default_token_path
from avsclient.cli import _args
from avsclient.config import DeviceInfo
from avsclient.environment import read_environment
from avsclient.exceptions import AuthError, TransportError

__all__ = ["add_arguments", "run"]

# Exit statuses: 0 linked; 1 linking failed; 2 bad arguments or config file (argparse's own).
EXIT_FAILED = 1
EXIT_USAGE = 2

# config-file key -> argument name; "deviceInfo" keys follow AlexaClientSDKConfig.json.
_CONFIG_KEYS = {
    "clientId": "client_id",
    "productId": "product_id",
    "deviceSerialNumber": "serial",
    "lwaUrl": "lwa_url",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `login` options to `parser`."""
    parser.description = "Link this device with Login with Amazon (code-based linking)."
    parser.add_argument("--config", type=Path, help="JSON file with clientId, productId, ...")
    parser.add_argument("--client-id", help="LWA client id of the device's security profile")
    parser.add_argument("--product-id", help="AVS product id ($AVSCLIENT_PRODUCT_ID)")
    parser.add_argument(
        "--serial", help="device serial number, deviceSerialNumber ($AVSCLIENT_SERIAL)"
    )
    parser.add_argument(
        "--lwa-url",
        "--endpoint",
        dest="lwa_url",
        help=f"LWA base URL (default {DEFAULT_LWA_URL}; the simulator's URL for tests)",
    )
    parser.add_argument("--ca-file", help="PEM file of CAs to trust (the simulator's CA)")
    parser.add_argument(
        "--token-file",
        type=Path,
        help=f"where to store the tokens (default {default_token_path()})",
    )
    parser.add_argument(
        "--no-restart",
        dest="restart",
        action="store_false",
        help="fail when the code expires instead of showing a new one",
    )
    parser.add_argument(
        "--max-codes", type=int, default=5, help="give up after this many codes (default 5)"
    )
    parser.add_argument(
        "--timeout",
        type=_args.positive_seconds,
        default=10.0,
        help="seconds to wait for Login with Amazon to answer, retries included (10)",
    )


def _read_config(path: Path) -> dict[str, str]:
    try:
        doc: Any = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read config file {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise ValueError(f"config file {path} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ValueError(f"config file {path} must hold a JSON object")
    merged = dict(doc)
    if isinstance(doc.get("deviceInfo"), dict):
        merged.update(doc["deviceInfo"])
    values: dict[str, str] = {}
    for key, name in _CONFIG_KEYS.items():
        value = merged.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value:
            raise ValueError(f"config file {path}: {key} must be a non-empty string")
        values[name] = value
    return values


def _resolve(args: argparse.Namespace) -> dict[str, str]:
    values = _read_config(args.config) if args.config is not None else {}
    for name in _CONFIG_KEYS.values():
        flag = getattr(args, name, None)
        if flag:
            values[name] = flag
    env = read_environment()
    for name in ("product_id", "serial"):
        from_env = getattr(env, name)
        if from_env and name not in values:
            values[name] = from_env
    missing = [n for n in ("client_id", "product_id", "serial") if n not in values]
    if missing:
        flags = ", ".join("--" + n.replace("_", "-") for n in missing)
        raise ValueError(f"missing {flags} (give them as flags or in --config)")
    # The identity becomes the Discovery endpoint id: check it before anyone types a code.
    DeviceInfo(
        client_id=values["client_id"],
        product_id=values["product_id"],
        device_serial_number=values["serial"],
    )
    values.setdefault("lwa_url", env.lwa_url or DEFAULT_LWA_URL)
    if args.ca_file is None:
        args.ca_file = env.ca_file
    if args.token_file is None:
        args.token_file = env.token_file
    url = urlsplit(values["lwa_url"])
    if url.scheme not in ("https", "http") or not url.netloc:
        raise ValueError(f"the LWA URL must be an https:// URL, not {values['lwa_url']!r}")
    if args.max_codes < 1:
        raise ValueError("--max-codes must be at least 1")
    return values


def _show_code(out: TextIO, deadline: asyncio.Timeout) -> Any:
    def show(pair: CodePair) -> None:
        deadline.reschedule(None)  # LWA answered; the user now has until the code expires
        out.write(
            f"To link this device, open {pair.verification_uri}\n"
            f"and enter the code: {pair.user_code}\n"
            f"Waiting for you to finish…\n"
        )
        out.flush()

    return show


async def _login(args: argparse.Namespace, values: dict[str, str], out: TextIO) -> Path:
    store = TokenStore(args.token_file)
    url = values["lwa_url"]
    out.write(f"Asking Login with Amazon at {url} for a code...\n")
    out.flush()
    async with LWAHttpClient(url, ca_file=args.ca_file, timeout=args.timeout) as http:
        try:
            # --timeout bounds the wait for the first answer, retries included.
            async with asyncio.timeout(args.timeout) as deadline:
                tokens = await link_device(
                    http,
                    client_id=values["client_id"],
                    product_id=values["product_id"],
                    serial=values["serial"],
                    on_code=_show_code(out, deadline),
                    restart=args.restart,
                    max_pairs=args.max_codes,
                )
        except TimeoutError:
            raise TransportError(
                f"no answer from Login with Amazon at {url} within {args.timeout:g} s: check "
                "the URL (--lwa-url), the network and --ca-file"
            ) from None
        except TransportError as exc:
            raise TransportError(f"cannot reach Login with Amazon at {url}: {exc}") from exc
    store.save(
        StoredTokens(
            client_id=values["client_id"],
            tokens=tokens,
            product_id=values["product_id"],
            device_serial_number=values["serial"],
        )
    )
    return store.path


def run(args: argparse.Namespace) -> int:
    """Run `avsclient login` and return its exit status."""
    out, err = sys.stdout, sys.stderr
    try:
        values = _resolve(args)
    except ValueError as exc:
        err.write(f"avsclient login: {exc}\n")
        return EXIT_USAGE
    try:
        path = asyncio.run(_login(args, values, out))
    except (AuthError, TransportError) as exc:
        err.write(f"avsclient login: {exc}\n")
        return EXIT_FAILED
    except OSError as exc:  # e.g. an unreadable --ca-file
        err.write(f"avsclient login: {exc}\n")
        return EXIT_FAILED
    except KeyboardInterrupt:
        err.write("avsclient login: interrupted; nothing was stored\n")
        return 130
    out.write(f"Linked. Tokens saved to {path}\n")
    out.write(
        f"Device: product {values['product_id']}, serial {values['serial']} (recorded with "
        "the tokens for the device's Discovery report)\n"
    )
    return 0
