"""The token file: a small JSON document, written atomically with mode 0600 from creation.

A save writes a new file next to the old one (created with `os.open(..., 0o600)`, so it is
never readable by others, not even for an instant), fsyncs it, renames it over the old one
and fsyncs the directory. A crash or a full disk therefore leaves either the old file or the
new one, never a mixture. A corrupt or partial file is reported with `TokenStoreError` and
left in place for inspection; the store never deletes or overwrites it by itself except
through a complete, successful save.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from avsclient.auth.lwa import TokenSet
from avsclient.config import DeviceInfo
from avsclient.exceptions import TokenStoreError

__all__ = ["FILE_FORMAT_VERSION", "StoredTokens", "TokenStore", "default_token_path"]

logger = logging.getLogger("avsclient.auth")

FILE_FORMAT_VERSION = 1
# A token file holds two tokens of at most 2 KiB each; anything much larger is not ours.
MAX_FILE_BYTES = 64 * 1024
_FILE_MODE = 0o600
_DIR_MODE = 0o700


def default_token_path() -> Path:
    """The default token file: `tokens.json` in the user's config directory for avsclient."""
    return platformdirs.user_config_path("avsclient") / "tokens.json"


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredTokens:
    """What the token file holds: the LWA client the tokens belong to, and the tokens.

    Attributes:
        client_id: the LWA client id the tokens were issued to.
        tokens: the tokens; `expires_at` is wall-clock time (seconds since the epoch).
        product_id: the AVS product id the device was linked as (`avsclient login` records
            it), or None in files written before it did.
        device_serial_number: the device serial number (DSN) it was linked with, or None.
    """

    client_id: str
    tokens: TokenSet
    product_id: str | None = None
    device_serial_number: str | None = None

    def device(self, *, product_id: str | None = None, serial: str | None = None) -> DeviceInfo:
        """Who the linked device is (Discovery's endpoint `clientId::productId::DSN`): this
        file's client id, with the product id and serial it recorded unless given here.

        Raises:
            ValueError: the product id or serial is unknown (a file written before `avsclient
                login` recorded them, and none given), or not a valid part of an endpoint id.
        """
        product_id = product_id or self.product_id
        serial = serial or self.device_serial_number
        if not product_id or not serial:
            missing = " and ".join(
                name
                for name, value in (("product id", product_id), ("serial number", serial))
                if not value
            )
            raise ValueError(
                f"the device's {missing} is unknown: the token file predates their recording; "
                "run `avsclient login` again, or give them (--product-id/--serial, "
                "$AVSCLIENT_PRODUCT_ID/$AVSCLIENT_SERIAL)"
            )
        return DeviceInfo(
            client_id=self.client_id, product_id=product_id, device_serial_number=serial
        )


def _encode(record: StoredTokens) -> bytes:
    t = record.tokens
    doc = {
        "version": FILE_FORMAT_VERSION,
        "client_id": record.client_id,
        "access_token": t.access_token,
        "refresh_token": t.refresh_token,
        "token_type": t.token_type,
        "expires_at": t.expires_at,
        "scope": t.scope,
    }
    # Optional keys of format 1: readers that predate them ignore them.
    if record.product_id is not None:
        doc["product_id"] = record.product_id
    if record.device_serial_number is not None:
        doc["device_serial_number"] = record.device_serial_number
    return json.dumps(doc, indent=2).encode("utf-8") + b"\n"


def _decode(data: bytes, path: Path) -> StoredTokens:
    try:
        doc: Any = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise TokenStoreError(
            f"token file {path} is corrupt or partial (not JSON); it was left in place: "
            f"run `avsclient login` to link again"
        ) from exc
    if not isinstance(doc, dict):
        raise TokenStoreError(f"token file {path} is corrupt: not a JSON object")
    if doc.get("version") != FILE_FORMAT_VERSION:
        raise TokenStoreError(
            f"token file {path} has unknown format version {doc.get('version')!r}"
        )

    def text(name: str) -> str:
        value = doc.get(name)
        if not isinstance(value, str) or not value:
            raise TokenStoreError(f"token file {path} is corrupt: bad or missing {name!r}")
        return value

    def optional_text(name: str) -> str | None:
        return None if doc.get(name) is None else text(name)

    expires_at = doc.get("expires_at")
    if isinstance(expires_at, bool) or not isinstance(expires_at, int | float):
        raise TokenStoreError(f"token file {path} is corrupt: bad or missing 'expires_at'")
    if not math.isfinite(expires_at):
        raise TokenStoreError(f"token file {path} is corrupt: bad 'expires_at'")
    return StoredTokens(
        client_id=text("client_id"),
        tokens=TokenSet(
            access_token=text("access_token"),
            refresh_token=optional_text("refresh_token"),
            expires_at=float(expires_at),
            token_type=text("token_type"),
            scope=optional_text("scope"),
        ),
        product_id=optional_text("product_id"),
        device_serial_number=optional_text("device_serial_number"),
    )


def _fsync_dir(directory: Path) -> None:
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(directory, flags)
    except OSError:  # pragma: no cover - platforms that cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on directories
        pass
    finally:
        os.close(fd)


class TokenStore:
    """Reads and writes one token file.

    Args:
        path: the file; defaults to `default_token_path()`. Its directory is created with
            mode 0700 when missing.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self._path = Path(path) if path is not None else default_token_path()

    def __repr__(self) -> str:
        return f"TokenStore({str(self._path)!r})"

    @property
    def path(self) -> Path:
        """The token file's path."""
        return self._path

    def load(self) -> StoredTokens | None:
        """Read the token file.

        Returns:
            The stored tokens, or None when the file does not exist.

        Raises:
            TokenStoreError: the file cannot be read, or is corrupt, partial or too large.
                The file is left untouched.
        """
        try:
            fd = os.open(self._path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TokenStoreError(f"cannot read token file {self._path}: {exc.strerror}") from exc
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise TokenStoreError(f"token file {self._path} is not a regular file")
            if info.st_mode & 0o077:
                logger.warning(
                    "token file %s is readable by other users (mode %o); run chmod 600 on it",
                    self._path,
                    stat.S_IMODE(info.st_mode),
                )
            with os.fdopen(fd, "rb", closefd=False) as f:
                data = f.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise TokenStoreError(f"cannot read token file {self._path}: {exc.strerror}") from exc
        finally:
            os.close(fd)
        if len(data) > MAX_FILE_BYTES:
            raise TokenStoreError(f"token file {self._path} is larger than {MAX_FILE_BYTES} bytes")
        return _decode(data, self._path)

    def save(self, record: StoredTokens) -> None:
        """Replace the token file atomically (temp file, fsync, rename, fsync directory).

        Raises:
            TokenStoreError: the directory or file cannot be written. The previous file, if
                any, is left exactly as it was and no temporary file remains.
        """
        data = _encode(record)
        directory = self._path.parent
        try:
            directory.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
        except OSError as exc:
            raise TokenStoreError(
                f"cannot create the token directory {directory}: {exc.strerror or exc}"
            ) from exc
        tmp = directory / f".{self._path.name}.{secrets.token_hex(8)}.tmp"
        try:
            # O_EXCL: a fresh inode every time, created 0600 (the umask can only remove bits).
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
        except OSError as exc:
            raise TokenStoreError(
                f"cannot write the token file in {directory}: {exc.strerror or exc}"
            ) from exc
        try:
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self._path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise TokenStoreError(
                f"cannot write the token file {self._path}: {exc.strerror or exc}; "
                "the previous file was kept"
            ) from exc
        _fsync_dir(directory)
        logger.debug("saved tokens to %s", self._path)

    def delete(self) -> bool:
        """Remove the token file.

        Returns:
            True if a file was removed, False if there was none.

        Raises:
            TokenStoreError: the file exists but cannot be removed.
        """
        try:
            os.unlink(self._path)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise TokenStoreError(f"cannot remove token file {self._path}: {exc.strerror}") from exc
        _fsync_dir(self._path.parent)
        return True
