"""`avsclient logout`: deregister the linked device.

It connects with the tokens `avsclient login` stored, tells AVS the device's endpoint is gone
(`Alexa.Discovery.DeleteReport` for `clientId::productId::serial`, through
`AVSClient.revoke()`), clears the account's data from the device store (settings, alerts,
events waiting to be sent; device-only settings stay) and deletes the token file. With
`--local-only`, or when AVS cannot be reached, only the local part happens; Amazon then keeps
the device until the user removes it in the Alexa app.

Exit statuses:

| status | meaning                                                                          |
|--------|----------------------------------------------------------------------------------|
| 0      | logged out: AVS accepted the DeleteReport (or `--local-only`), data and tokens gone |
| 1      | failed: the token file or device store could not be read or changed            |
| 2      | bad arguments or environment variables                                           |
| 3      | logged out locally, but AVS was not told (unreachable, refused, identity unknown) |
| 4      | not linked: no token file, nothing was changed                                   |
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from avsclient.cli import _args
from avsclient.exceptions import AVSError

if TYPE_CHECKING:
    from avsclient.client import AVSClient

__all__ = [
    "EXIT_FAILED",
    "EXIT_NOT_LINKED",
    "EXIT_NOT_TOLD",
    "EXIT_OK",
    "EXIT_USAGE",
    "add_arguments",
    "run",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_TOLD = 3
EXIT_NOT_LINKED = 4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `logout` options to `parser`."""
    parser.description = (
        "Deregister this device: DeleteReport to AVS, account data cleared from the device "
        "store, token file deleted."
    )
    parser.add_argument(
        "--token-file", type=Path, help="tokens from `avsclient login` ($AVSCLIENT_TOKEN_FILE)"
    )
    parser.add_argument(
        "--store",
        type=Path,
        help="the device store (default: device.sqlite3 next to the token file)",
    )
    parser.add_argument(
        "--endpoint", help="AVS base URL (default: the region's host; $AVSCLIENT_ENDPOINT)"
    )
    parser.add_argument(
        "--region", type=_args.region, help="NA, EU or FE, any case (default NA; $AVSCLIENT_REGION)"
    )
    parser.add_argument("--ca-file", help="PEM file of CAs to trust ($AVSCLIENT_CA_FILE)")
    parser.add_argument("--lwa-url", help="Login with Amazon base URL ($AVSCLIENT_LWA_URL)")
    _args.add_device_identity(parser)
    parser.add_argument(
        "--connect-timeout",
        type=_args.positive_seconds,
        default=15.0,
        help="seconds to wait for AVS (15)",
    )
    parser.add_argument(
        "--local-only",
        action="store_true",
        help="do not contact AVS: only clear the device store and delete the token file",
    )


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run `avsclient logout` and return its exit status (see the module's table)."""
    out = out or sys.stdout
    try:
        _args.fill_from_environment(args)
    except ValueError as exc:
        print(f"avsclient logout: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("avsclient").setLevel(logging.ERROR)
    try:
        return asyncio.run(_logout(args, out))
    except KeyboardInterrupt:
        print("avsclient logout: interrupted", file=sys.stderr)
        return 130


def _say(out: TextIO, text: str) -> None:
    out.write(text + "\n")
    out.flush()


async def _logout(args: argparse.Namespace, out: TextIO) -> int:
    from avsclient.auth import TokenStore
    from avsclient.client import AVSClient
    from avsclient.store import STORE_FILE_NAME

    tokens = TokenStore(args.token_file)
    try:
        stored = tokens.load()
    except AVSError as exc:
        print(f"avsclient logout: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if stored is None:
        _say(out, f"This device is not linked (no tokens at {tokens.path}); nothing to do.")
        return EXIT_NOT_LINKED
    store_path = args.store or tokens.path.parent / STORE_FILE_NAME
    try:
        client = AVSClient.from_login(
            token_file=tokens.path,
            region=args.region,
            endpoint=args.endpoint,
            ca_file=args.ca_file,
            lwa_url=args.lwa_url,
            product_id=args.product_id,
            serial=args.serial,
            store=store_path,
        )
    except ValueError as exc:
        print(f"avsclient logout: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except AVSError as exc:
        print(f"avsclient logout: {exc}", file=sys.stderr)
        return EXIT_FAILED
    device = client.device
    try:
        told, why = await _tell_avs(client, args, out)
        revoked = await client.revoke(delete_endpoint=told)
    except AVSError as exc:
        print(f"avsclient logout: {exc}; nothing else was changed", file=sys.stderr)
        return EXIT_FAILED
    finally:
        await client.aclose()
    if told and revoked.endpoint_deleted and device is not None:
        _say(out, f"AVS accepted the DeleteReport for {device.endpoint_id}.")
    elif told:
        why = "AVS did not accept the DeleteReport"
    _say(out, f"Account data cleared from the device store {client.store.path}.")
    if revoked.tokens_deleted:
        _say(out, f"Token file {tokens.path} deleted.")
    else:
        print(f"avsclient logout: the token file {tokens.path} was not deleted", file=sys.stderr)
        return EXIT_FAILED
    if args.local_only:
        _say(out, "Logged out on this device only (--local-only): AVS was not told.")
        return EXIT_OK
    if why is not None or not revoked.endpoint_deleted:
        _say(
            out,
            f"Logged out on this device, but AVS was not told ({why}): remove the device "
            "in the Alexa app. Link again with `avsclient login`.",
        )
        return EXIT_NOT_TOLD
    _say(out, "Logged out. Link this device again with `avsclient login`.")
    return EXIT_OK


async def _tell_avs(
    client: AVSClient, args: argparse.Namespace, out: TextIO
) -> tuple[bool, str | None]:
    """Connect, so that `revoke()` can send the DeleteReport. Returns (connected, why not)."""
    if args.local_only:
        return False, None
    device = client.device
    if device is None:
        return False, "the device's product id and serial number are unknown"
    url = client.config.url()
    _say(out, f"Deregistering {device.endpoint_id} from AVS at {url}...")
    await client.start()
    try:
        await client.wait_connected(args.connect_timeout)
    except AVSError as exc:
        return False, f"could not connect to {url}: {exc}"
    return True, None
