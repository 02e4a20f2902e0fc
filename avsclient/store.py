"""The device store: device state that must survive a restart, in one SQLite file.

What it holds (and nothing else; no tokens, which stay in the token file of `avsclient.auth`):

- settings: JSON values by namespace and key (locales, time zone, wake words, wake-word and
  speech confirmation, end-of-speech offset, indicator state, the AVS endpoint, the hash of
  the capability report last sent and whether AVS accepted it);
- alerts: one row per alert token (type, scheduled time, the SetAlert payload, state);
- the outbox: events that must reach AVS, stored before they are sent, read back in order and
  removed only once AVS answered 2xx; bounded in count and age, the oldest dropped and counted.

Durability. The database runs in WAL mode with `synchronous=FULL`: every commit fsyncs the
WAL before it returns, so a commit that returned survives a power cut, not only a crash of the
process. (`NORMAL` in WAL mode stays consistent but may lose the last commits on power loss,
which would break the outbox's promise that an event stored before sending is never lost.) The
price is one fsync per write transaction; `benchmarks/bench_store.py` measures it. Measured on
an ext4 virtual disk (SQLite 3.40): a settings write, alert upsert, outbox append or remove
takes 150-220 µs median with FULL (70-90 µs of it CPU, p99 under 1 ms, with fsync spikes of
5-8 ms when the disk is busy) and 10-20 µs with NORMAL. Under 1 ms, an asyncio caller may call
the store directly for a small write. On slow flash (SD cards, eMMC: fsync takes 1-20 ms)
batch writes in `transaction()` or call the store through `asyncio.to_thread`.

File care, as for the token file. The file is created 0600 (SQLite gives its `-wal` and `-shm`
files the mode of the database) in a 0700 directory, next to the token file by default. A new
database is built under a temporary name and linked into place (never over an existing file),
so a file at the path is always a complete store and an empty or cut file is reported, not
taken for a new one. Every open runs `PRAGMA quick_check` on a read-only connection first (a
read-write one would fold the WAL into the file when closed): a damaged file raises
`DeviceStoreCorrupt` and is left in place; with `on_corrupt="reset"` it is renamed aside
(`<name>.corrupt-<time>`, with its WAL) and a fresh store is created, never overwriting it.
A lock held past the busy timeout raises `DeviceStoreLocked` rather than hanging.

Schema versions (`PRAGMA user_version`), migrated forward in one transaction each:
1. `meta`, `settings`.
2. `alerts`, `outbox` (with a unique messageId), the outbox's dropped count in `meta`.

Account data and device data. `clear_account_data()` (on RevokeAuthorization or logout)
removes everything that belongs to the linked account: all alerts, the whole outbox (events
for an account that is gone must not be sent as another), and every setting not written with
`device_only=True`: locales, time zone, wake words, confirmations, indicator state, the
endpoint (a new account starts at the default endpoint) and the capability report state (a
new account must receive the report again). Settings written with `device_only=True`
survive, such as a microphone's end-of-speech offset; so does the schema version.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import secrets
import sqlite3
import stat
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, TypeAlias

from avsclient.auth.store import default_token_path
from avsclient.exceptions import DeviceStoreCorrupt, DeviceStoreError, DeviceStoreLocked

__all__ = [
    "SCHEMA_VERSION",
    "Alert",
    "DeviceStore",
    "JSONValue",
    "OutboxEvent",
    "StoreConfig",
    "default_store_path",
]

logger = logging.getLogger("avsclient.store")

JSONValue: TypeAlias = "bool | int | float | str | list[JSONValue] | dict[str, JSONValue] | None"

SCHEMA_VERSION = 2
# 'AVSD': marks the file as a device store, so another application's SQLite file is refused.
_APPLICATION_ID = 0x41565344
_FILE_MODE = 0o600
_DIR_MODE = 0o700
STORE_FILE_NAME = "device.sqlite3"

# Outbox bounds. AVS rejects events with stale context long before a week, and a device offline
# for longer has nothing useful to deliver; 1000 events is far more than a week of alerts and
# settings reports, while bounding the file to a few megabytes.
DEFAULT_OUTBOX_MAX_EVENTS = 1000
DEFAULT_OUTBOX_MAX_AGE = 7 * 24 * 3600.0
# A writer in another process (a CLI tool) holds the lock for milliseconds; 5 s is generous,
# and still a deadline.
DEFAULT_BUSY_TIMEOUT = 5.0

# Each entry moves the schema from version i to i + 1. Never edit a released entry: files
# written by it exist; add a new one instead.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
        "CREATE TABLE settings ("
        " namespace TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
        " device_only INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (namespace, key)) WITHOUT ROWID",
    ),
    (
        "CREATE TABLE alerts ("
        " token TEXT PRIMARY KEY, type TEXT NOT NULL, scheduled_at REAL NOT NULL,"
        " payload TEXT NOT NULL, state TEXT NOT NULL) WITHOUT ROWID",
        "CREATE INDEX alerts_by_time ON alerts (scheduled_at)",
        "CREATE TABLE outbox ("
        " seq INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL UNIQUE,"
        " created_at REAL NOT NULL, event TEXT NOT NULL)",
        "CREATE INDEX outbox_by_age ON outbox (created_at)",
        "INSERT INTO meta (key, value) VALUES ('outbox_dropped', '0')",
    ),
)
assert len(_MIGRATIONS) == SCHEMA_VERSION

# SQLite primary result codes (sqlite3.Error.sqlite_errorname) and what they mean here.
_CORRUPT = frozenset({"SQLITE_CORRUPT", "SQLITE_NOTADB"})
_LOCKED = frozenset({"SQLITE_BUSY", "SQLITE_LOCKED"})


def default_store_path() -> Path:
    """The default device store: `device.sqlite3` next to the default token file."""
    return default_token_path().parent / STORE_FILE_NAME


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreConfig:
    """Limits and timing of a `DeviceStore`.

    Attributes:
        outbox_max_events: events the outbox keeps; appending one more drops the oldest.
        outbox_max_age: seconds an event may wait; older events are dropped.
        busy_timeout: seconds to wait for another process's lock before `DeviceStoreLocked`.
        synchronous: `"FULL"` (the default: a returned commit survives a power cut) or
            `"NORMAL"` (a crash of the process loses nothing, a power cut may lose the last
            commits; for a device with a battery-backed or journalled disk that prefers speed).
    """

    outbox_max_events: int = DEFAULT_OUTBOX_MAX_EVENTS
    outbox_max_age: float = DEFAULT_OUTBOX_MAX_AGE
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT
    synchronous: Literal["FULL", "NORMAL"] = "FULL"

    def __post_init__(self) -> None:
        if self.outbox_max_events < 1:
            raise ValueError("outbox_max_events must be at least 1")
        if not (self.outbox_max_age > 0 and math.isfinite(self.outbox_max_age)):
            raise ValueError("outbox_max_age must be a positive number of seconds")
        if not (0 <= self.busy_timeout <= 600):
            raise ValueError("busy_timeout must be between 0 and 600 seconds")
        if self.synchronous not in ("FULL", "NORMAL"):
            raise ValueError("synchronous must be 'FULL' or 'NORMAL'")


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """One stored alert.

    Attributes:
        token: the alert's token (SetAlert `payload.token`), unique.
        type: `ALARM`, `TIMER` or `REMINDER`.
        scheduled_at: when it goes off, seconds since the epoch (parsed from `scheduledTime`).
        payload: the SetAlert payload as received (JSON object).
        state: the agent's state for it (`SET`, `ACTIVE`, `SNOOZED`, ...).
    """

    token: str
    type: str
    scheduled_at: float
    payload: dict[str, JSONValue]
    state: str


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxEvent:
    """One event waiting in the outbox.

    Attributes:
        seq: its position (increasing; the outbox is read in this order).
        message_id: the event's `header.messageId`, unique in the outbox.
        created_at: when it was stored, seconds since the epoch.
        event: the event as stored (a JSON object, usually `{"event": {...}}`).
    """

    seq: int
    message_id: str
    created_at: float
    event: dict[str, JSONValue]


def _dumps(value: object) -> str:
    # allow_nan=False: NaN and infinities are not JSON, and would not read back everywhere.
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"), sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not storable as JSON: {exc}") from exc


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class DeviceStore:
    """The device store. Open it with `DeviceStore.open()`; close it with `close()` or `with`.

    Methods are synchronous and thread-safe (one connection, one lock). Each write is its own
    transaction unless made inside `with store.transaction():`, which commits them together.
    Errors are `DeviceStoreError` subclasses; a value that is not JSON raises ValueError.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        config: StoreConfig,
        clock: Callable[[], float],
        moved_aside: Path | None,
    ) -> None:
        self._conn = conn
        self._path = path
        self._config = config
        self._clock = clock
        self._lock = threading.RLock()
        self._depth = 0
        self._closed = False
        self._moved_aside = moved_aside

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        on_corrupt: Literal["raise", "reset"] = "raise",
        config: StoreConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> DeviceStore:
        """Open the store, creating it (mode 0600) or migrating it to `SCHEMA_VERSION`.

        Args:
            path: the database file; defaults to `default_store_path()`.
            on_corrupt: `"raise"` (the default) raises `DeviceStoreCorrupt` and leaves the
                file alone; `"reset"` renames the damaged file (and its `-wal`) to
                `<name>.corrupt-<unix time>` and starts an empty store (`moved_aside` says
                where the old one went).
            config: limits and timing; defaults to `StoreConfig()`.
            clock: wall-clock time for the outbox's ages (seconds since the epoch).

        Raises:
            DeviceStoreCorrupt: the file is damaged, cut short or not a device store.
            DeviceStoreLocked: another process held the lock past `busy_timeout`.
            DeviceStoreError: the directory or file cannot be created, read or written, or
                the file was written by a newer schema version.
        """
        if on_corrupt not in ("raise", "reset"):
            raise ValueError("on_corrupt must be 'raise' or 'reset'")
        config = config or StoreConfig()
        target = Path(path) if path is not None else default_store_path()
        try:
            conn = _open_existing_or_new(target, config)
        except DeviceStoreCorrupt as exc:
            if on_corrupt == "raise":
                raise
            aside = _move_aside(target, clock())
            logger.warning("device store %s is damaged (%s); moved it to %s", target, exc, aside)
            conn = _open_existing_or_new(target, config)
            return cls(conn, target, config, clock, aside)
        return cls(conn, target, config, clock, None)

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @property
    def moved_aside(self) -> Path | None:
        """Where a damaged file was moved by `on_corrupt="reset"`, or None."""
        return self._moved_aside

    @property
    def schema_version(self) -> int:
        """The schema version of the open file (always `SCHEMA_VERSION` once open)."""
        with self._reading() as conn:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        """Close the database (checkpointing the WAL into it). Closing twice is harmless."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._conn.close()
            except sqlite3.Error as exc:  # pragma: no cover - close only fails on I/O errors
                raise _map(exc, self._path, "close") from exc

    def __enter__(self) -> DeviceStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DeviceStore({str(self._path)!r})"

    # -- transactions ----------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[DeviceStore]:
        """Group writes: every write inside commits together, or none does if it raises.

        Nested `transaction()` blocks join the outer one. Other threads wait for the block.
        """
        with self._writing():
            yield self

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._closed:
                raise DeviceStoreError("the device store is closed", path=str(self._path))
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise _map(exc, self._path, "read") from exc

    @contextlib.contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._closed:
                raise DeviceStoreError("the device store is closed", path=str(self._path))
            conn = self._conn
            if self._depth:
                self._depth += 1
                try:
                    yield conn
                finally:
                    self._depth -= 1
                return
            try:
                # IMMEDIATE: take the write lock now (waiting at most busy_timeout), so the
                # transaction never fails half-way on a lock upgrade.
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _map(exc, self._path, "write") from exc
            self._depth = 1
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise _map(exc, self._path, "write") from exc
                raise
            finally:
                self._depth = 0

    # -- settings --------------------------------------------------------------------------

    def get(self, namespace: str, key: str, default: JSONValue = None) -> JSONValue:
        """The setting's value, or `default` when it is not set.

        Raises:
            DeviceStoreCorrupt: the stored value is not JSON.
        """
        with self._reading() as conn:
            row = conn.execute(
                "SELECT value FROM settings WHERE namespace = ? AND key = ?", (namespace, key)
            ).fetchone()
        return default if row is None else self._loads(row[0], f"setting {namespace}/{key}")

    def set(self, namespace: str, key: str, value: JSONValue, *, device_only: bool = False) -> None:
        """Store a setting (a JSON value), replacing any earlier one.

        Args:
            namespace: the owner, usually the AVS interface (`"SpeechRecognizer"`, ...).
            key: the setting's name within the namespace.
            value: any JSON value (no NaN or infinities).
            device_only: True for a property of the device that survives
                `clear_account_data()` (a microphone calibration); False (the default) for
                account data.

        Raises:
            ValueError: the value is not JSON.
        """
        text = _dumps(value)
        with self._writing() as conn:
            conn.execute(
                "INSERT INTO settings (namespace, key, value, device_only) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value,"
                " device_only = excluded.device_only",
                (namespace, key, text, int(device_only)),
            )

    def delete(self, namespace: str, key: str) -> bool:
        """Remove a setting. Returns True if it existed."""
        with self._writing() as conn:
            cursor = conn.execute(
                "DELETE FROM settings WHERE namespace = ? AND key = ?", (namespace, key)
            )
            return cursor.rowcount > 0

    def settings(self, namespace: str) -> dict[str, JSONValue]:
        """Every setting of one namespace, by key."""
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT key, value FROM settings WHERE namespace = ? ORDER BY key", (namespace,)
            ).fetchall()
        return {key: self._loads(text, f"setting {namespace}/{key}") for key, text in rows}

    # -- alerts ----------------------------------------------------------------------------

    def upsert_alert(self, alert: Alert) -> None:
        """Store an alert, replacing the one with the same token.

        Raises:
            ValueError: the payload is not JSON or the time is not finite.
        """
        if not math.isfinite(alert.scheduled_at):
            raise ValueError("scheduled_at must be finite")
        payload = _dumps(alert.payload)
        with self._writing() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO alerts (token, type, scheduled_at, payload, state)"
                " VALUES (?, ?, ?, ?, ?)",
                (alert.token, alert.type, alert.scheduled_at, payload, alert.state),
            )

    def delete_alert(self, token: str) -> bool:
        """Remove an alert. Returns True if it existed."""
        with self._writing() as conn:
            return conn.execute("DELETE FROM alerts WHERE token = ?", (token,)).rowcount > 0

    def alerts(self) -> list[Alert]:
        """Every stored alert, soonest first."""
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT token, type, scheduled_at, payload, state FROM alerts"
                " ORDER BY scheduled_at, token"
            ).fetchall()
        return [
            Alert(
                token=token,
                type=kind,
                scheduled_at=float(at),
                payload=self._object(payload, f"alert {token}"),
                state=state,
            )
            for token, kind, at, payload, state in rows
        ]

    # -- outbox ----------------------------------------------------------------------------

    def outbox_append(self, message_id: str, event: Mapping[str, JSONValue]) -> bool:
        """Store an event before it is sent. Drops (and counts) the oldest beyond the limits.

        Args:
            message_id: the event's `header.messageId`.
            event: the event (a JSON object).

        Returns:
            True if stored, False if an event with this messageId is already waiting (it is
            kept as it was: one row per messageId).

        Raises:
            ValueError: the event is not JSON.
        """
        text = _dumps(dict(event))
        now = self._clock()
        with self._writing() as conn:
            cursor = conn.execute(
                "INSERT INTO outbox (message_id, created_at, event) VALUES (?, ?, ?)"
                " ON CONFLICT (message_id) DO NOTHING",
                (message_id, now, text),
            )
            self._trim(conn, now)
            return cursor.rowcount > 0

    def outbox_pending(self, limit: int | None = None) -> list[OutboxEvent]:
        """The events still waiting and not too old, oldest first.

        Args:
            limit: at most this many (all when None).
        """
        oldest = self._clock() - self._config.outbox_max_age
        with self._reading() as conn:
            rows = conn.execute(
                "SELECT seq, message_id, created_at, event FROM outbox WHERE created_at >= ?"
                " ORDER BY seq LIMIT ?",
                (oldest, -1 if limit is None else limit),
            ).fetchall()
        return [
            OutboxEvent(
                seq=seq,
                message_id=mid,
                created_at=float(at),
                event=self._object(text, f"outbox event {mid}"),
            )
            for seq, mid, at, text in rows
        ]

    def outbox_remove(self, message_id: str) -> bool:
        """Remove a delivered event (call only after AVS answered 2xx). True if it was there."""
        with self._writing() as conn:
            return (
                conn.execute("DELETE FROM outbox WHERE message_id = ?", (message_id,)).rowcount > 0
            )

    def outbox_trim(self) -> int:
        """Drop events past the age limit now (appending also does). Returns how many."""
        with self._writing() as conn:
            return self._trim(conn, self._clock())

    @property
    def outbox_dropped(self) -> int:
        """Events dropped for age or count since the store was created (or last cleared)."""
        with self._reading() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'outbox_dropped'").fetchone()
        return 0 if row is None else int(row[0])

    def _trim(self, conn: sqlite3.Connection, now: float) -> int:
        dropped = conn.execute(
            "DELETE FROM outbox WHERE created_at < ?", (now - self._config.outbox_max_age,)
        ).rowcount
        # count(*) walks the table's smallest b-tree (the messageId index): microseconds for
        # the few hundred events an outbox holds; the delete then takes the oldest by seq.
        excess = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
        excess -= self._config.outbox_max_events
        if excess > 0:
            dropped += conn.execute(
                "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox ORDER BY seq LIMIT ?)",
                (excess,),
            ).rowcount
        if dropped:
            conn.execute(
                "UPDATE meta SET value = CAST(value AS INTEGER) + ? WHERE key = 'outbox_dropped'",
                (dropped,),
            )
            logger.warning("device store outbox full or stale: dropped %d event(s)", dropped)
        return dropped

    # -- deregistration --------------------------------------------------------------------

    def clear_account_data(self) -> None:
        """Remove the account's data (on RevokeAuthorization or logout), in one transaction.

        Removes every alert, the whole outbox (and its dropped count) and every setting not
        written with `device_only=True`. Keeps device-only settings and the schema.
        """
        with self._writing() as conn:
            conn.execute("DELETE FROM settings WHERE device_only = 0")
            conn.execute("DELETE FROM alerts")
            conn.execute("DELETE FROM outbox")
            conn.execute("UPDATE meta SET value = '0' WHERE key = 'outbox_dropped'")
        logger.info("device store %s: account data cleared", self._path)

    # -- decoding --------------------------------------------------------------------------

    def _loads(self, text: str, what: str) -> JSONValue:
        try:
            value: JSONValue = json.loads(text)
        except (TypeError, ValueError, RecursionError) as exc:
            raise DeviceStoreCorrupt(
                f"device store {self._path} is corrupt: {what} is not JSON", path=str(self._path)
            ) from exc
        return value

    def _object(self, text: str, what: str) -> dict[str, JSONValue]:
        value = self._loads(text, what)
        if not isinstance(value, dict):
            raise DeviceStoreCorrupt(
                f"device store {self._path} is corrupt: {what} is not a JSON object",
                path=str(self._path),
            )
        return value


# -- opening, checking, creating, migrating ----------------------------------------------------


def _map(exc: sqlite3.Error, path: Path, doing: str) -> DeviceStoreError:
    """Turn a sqlite3 error into the store's error for it (the one place that does)."""
    # Extended codes (SQLITE_BUSY_SNAPSHOT, SQLITE_CORRUPT_INDEX) count as their primary code.
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    base = "_".join(name.split("_")[:2])
    message = f"cannot {doing} the device store {path}: {exc}"
    if base in _CORRUPT:
        return DeviceStoreCorrupt(message, path=str(path))
    if base in _LOCKED:
        return DeviceStoreLocked(
            f"{message} (another process holds the database locked)", path=str(path)
        )
    return DeviceStoreError(message, path=str(path))


def _connect(path: Path, config: StoreConfig, *, read_only: bool = False) -> sqlite3.Connection:
    # isolation_level=None: the store issues BEGIN and COMMIT itself. check_same_thread=False:
    # the store's own lock serialises use, so asyncio.to_thread callers work.
    target = f"file:{urllib.parse.quote(os.fspath(path))}?mode={'ro' if read_only else 'rw'}"
    conn = sqlite3.connect(
        target,
        timeout=config.busy_timeout,
        isolation_level=None,
        check_same_thread=False,
        uri=True,
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(config.busy_timeout * 1000)}")
    except BaseException:
        conn.close()
        raise
    return conn


def _configure(conn: sqlite3.Connection, path: Path, config: StoreConfig) -> None:
    """WAL mode and the sync level: only once the file is known to be a device store."""
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise DeviceStoreError(
            f"the device store {path} cannot use WAL mode (journal_mode={mode})", path=str(path)
        )
    conn.execute(f"PRAGMA synchronous = {config.synchronous}")


def _check(conn: sqlite3.Connection, path: Path) -> None:
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    if app_id != _APPLICATION_ID:
        raise DeviceStoreCorrupt(
            f"{path} is not a device store (application_id {app_id:#x})", path=str(path)
        )
    problems = [row[0] for row in conn.execute("PRAGMA quick_check").fetchall()]
    if problems != ["ok"]:
        raise DeviceStoreCorrupt(
            f"device store {path} is damaged: {'; '.join(problems[:3])}", path=str(path)
        )


def _migrate(conn: sqlite3.Connection, path: Path, target: int = SCHEMA_VERSION) -> None:
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise DeviceStoreError(
            f"device store {path} has schema version {version}, newer than this avsclient "
            f"({SCHEMA_VERSION}); it was left untouched",
            path=str(path),
        )
    if version < 1:
        raise DeviceStoreCorrupt(f"device store {path} has no schema", path=str(path))
    while version < target:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        version += 1
        logger.info("device store %s migrated to schema version %d", path, version)


def _create(path: Path, config: StoreConfig, version: int = SCHEMA_VERSION) -> None:
    """Build a new store under a temporary name (0600), then rename it into place."""
    directory = path.parent
    try:
        directory.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise DeviceStoreError(
            f"cannot create the directory {directory} for the device store {path}: "
            f"{exc.strerror or exc}",
            path=str(path),
        ) from exc
    tmp = directory / f".{path.name}.{secrets.token_hex(8)}.tmp"
    try:
        # O_EXCL: a fresh inode, created 0600 whatever the umask; SQLite fills it in.
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE))
    except OSError as exc:
        raise DeviceStoreError(
            f"cannot create the device store {path} in {directory}: {exc.strerror or exc}",
            path=str(path),
        ) from exc
    try:
        conn = _connect(tmp, config)
        try:
            _configure(conn, tmp, config)
            conn.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
            conn.execute("PRAGMA user_version = 0")
            conn.execute("BEGIN IMMEDIATE")
            for statement in _MIGRATIONS[0]:
                conn.execute(statement)
            conn.execute("PRAGMA user_version = 1")
            conn.execute("COMMIT")
            _migrate(conn, tmp, version)
        finally:
            conn.close()  # checkpoints the WAL into the file and removes it
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            # link, not rename: it never replaces a store another process created meanwhile.
            os.link(tmp, path)
        except FileExistsError:
            logger.debug("device store %s was created by another process", path)
    except sqlite3.Error as exc:
        raise _map(exc, path, "create") from exc
    except OSError as exc:
        raise DeviceStoreError(
            f"cannot create the device store {path}: {exc.strerror or exc}", path=str(path)
        ) from exc
    finally:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            with contextlib.suppress(OSError):
                leftover.unlink()
    _fsync_dir(directory)
    logger.info("created device store %s", path)


def _open_existing_or_new(path: Path, config: StoreConfig) -> sqlite3.Connection:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        _create(path, config)
        info = os.stat(path)
    except OSError as exc:
        raise DeviceStoreError(
            f"cannot read the device store {path}: {exc.strerror or exc}", path=str(path)
        ) from exc
    if not stat.S_ISREG(info.st_mode):
        raise DeviceStoreError(f"device store {path} is not a regular file", path=str(path))
    if info.st_size == 0:
        # A store is created complete and renamed into place: an empty file was cut short.
        raise DeviceStoreCorrupt(f"device store {path} is empty (truncated)", path=str(path))
    if info.st_mode & 0o077:
        logger.warning(
            "device store %s is readable by other users (mode %o); run chmod 600 on it",
            path,
            stat.S_IMODE(info.st_mode),
        )
    # The check runs on a read-only connection: closing a read-write one checkpoints the WAL
    # into the file and deletes it, which would change a damaged store before it is kept.
    try:
        checker = _connect(path, config, read_only=True)
        try:
            _check(checker, path)
        finally:
            checker.close()
        conn = _connect(path, config)
    except sqlite3.Error as exc:
        raise _map(exc, path, "open") from exc
    try:
        _configure(conn, path, config)
        _migrate(conn, path)
    except sqlite3.Error as exc:
        conn.close()
        raise _map(exc, path, "open") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _move_aside(path: Path, now: float) -> Path:
    """Rename a damaged store (and its WAL and shared memory) aside; returns the new name."""
    aside = path.with_name(f"{path.name}.corrupt-{int(now)}")
    n = 1
    while aside.exists():
        aside = path.with_name(f"{path.name}.corrupt-{int(now)}-{n}")
        n += 1
    try:
        for suffix in ("-wal", "-shm"):
            companion = Path(f"{path}{suffix}")
            if companion.exists():
                os.replace(companion, f"{aside}{suffix}")
        os.replace(path, aside)
    except OSError as exc:
        raise DeviceStoreError(
            f"cannot move the damaged device store {path} aside: {exc.strerror or exc}",
            path=str(path),
        ) from exc
    _fsync_dir(path.parent)
    return aside
