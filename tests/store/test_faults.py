"""The device store under faults, on real files: truncation at every kind of offset, SIGKILL of
a writer, a read-only directory, a lock held by another process, file modes."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from avsclient.exceptions import DeviceStoreCorrupt, DeviceStoreError, DeviceStoreLocked
from avsclient.store import Alert, DeviceStore, StoreConfig
from tests.helpers import require_executable

PAGE = 4096  # SQLite's default page size, which the store keeps
WAL_HEADER = 32
WAL_FRAME = 24 + PAGE


def fill(store: DeviceStore, rows: int) -> None:
    with store.transaction():
        for n in range(rows):
            store.set("Settings", f"k{n:03d}", {"n": n, "pad": "x" * 150})
            store.upsert_alert(
                Alert(
                    token=f"t{n}",
                    type="TIMER",
                    scheduled_at=float(n),
                    payload={"n": n},
                    state="SET",
                )
            )
            store.outbox_append(f"m{n}", {"event": {"n": n}})


def snapshot(store: DeviceStore) -> tuple[Any, ...]:
    return (
        store.settings("Settings"),
        store.settings("Wal"),
        store.alerts(),
        [(e.message_id, e.event) for e in store.outbox_pending()],
    )


def offsets(size: int, unit: int, first: int = 0) -> list[int]:
    """Cuts inside the header, at and around every unit boundary, and inside every unit."""
    cuts = {0, 1, 16, 31, 32, 50, 99, 100, 101, 200, 511, 512}
    for start in range(first, size, unit):
        cuts.update({start - 1, start, start + 1, start + 24, start + unit // 2})
    return sorted(c for c in cuts if 0 <= c < size)


def test_every_truncation_of_the_database_is_an_error_or_the_full_state(tmp_path: Path) -> None:
    """A cut database never opens with rows missing: it raises DeviceStoreCorrupt (and with
    on_corrupt="reset" is moved aside intact, a fresh store taking its place) or holds every
    committed row."""
    good = tmp_path / "good.sqlite3"
    with DeviceStore.open(good) as store:
        fill(store, 60)
        expected = snapshot(store)
    data = good.read_bytes()
    assert len(data) >= 8 * PAGE
    cuts = offsets(len(data), PAGE)
    outcomes = {"error": 0, "intact": 0}
    for cut in cuts:
        case = tmp_path / f"cut{cut}"
        case.mkdir()
        path = case / "device.sqlite3"
        path.write_bytes(data[:cut])
        error: DeviceStoreCorrupt | None = None
        try:
            with DeviceStore.open(path) as store:
                state = snapshot(store)
        except DeviceStoreCorrupt as exc:
            error = exc
        if error is None:
            assert state == expected, f"cut at {cut} lost rows silently"
            outcomes["intact"] += 1
        else:
            assert str(path) in str(error)
            assert path.read_bytes() == data[:cut], "a corrupt file was modified"
            outcomes["error"] += 1
            with DeviceStore.open(path, on_corrupt="reset") as fresh:
                aside = fresh.moved_aside
                assert aside is not None and aside.parent == case
                assert aside.name.startswith("device.sqlite3.corrupt-")
                assert aside.read_bytes() == data[:cut], "the corrupt file was not kept"
                assert snapshot(fresh) == ({}, {}, [], [])
                fresh.set("Settings", "after", 1)
            with DeviceStore.open(path) as reopened:
                assert reopened.get("Settings", "after") == 1
        shutil.rmtree(case)
    print(f"{len(cuts)} cuts of a {len(data)}-byte file: {outcomes}")
    assert outcomes["error"] > len(cuts) // 2, outcomes


def test_every_truncation_of_the_wal_gives_a_committed_state(tmp_path: Path) -> None:
    """A cut WAL loses only whole transactions from its end: the store opens with the state
    after some earlier commit (never half a transaction), and the whole WAL gives every one."""
    base = tmp_path / "device.sqlite3"
    with DeviceStore.open(base) as store:
        fill(store, 10)
    commits = 15
    store = DeviceStore.open(base)
    try:
        for n in range(commits):
            with store.transaction():
                store.set("Wal", f"w{n:02d}", {"n": n, "pad": "y" * 300})
                store.outbox_append(f"wal{n}", {"n": n})
        wal = Path(f"{base}-wal").read_bytes()
        db = base.read_bytes()
    finally:
        store.close()
    assert len(wal) > WAL_HEADER + commits * WAL_FRAME
    last = -1
    for cut in [*offsets(len(wal), WAL_FRAME, WAL_HEADER), len(wal)]:
        case = tmp_path / f"cut{cut}"
        case.mkdir()
        path = case / "device.sqlite3"
        path.write_bytes(db)
        path.chmod(0o600)
        Path(f"{path}-wal").write_bytes(wal[:cut])
        with DeviceStore.open(path) as reopened:
            wal_rows = reopened.settings("Wal")
            k = len(wal_rows)
            assert wal_rows == {f"w{n:02d}": {"n": n, "pad": "y" * 300} for n in range(k)}
            outbox = [e.message_id for e in reopened.outbox_pending()]
            assert outbox == [f"m{n}" for n in range(10)] + [f"wal{n}" for n in range(k)]
            assert len(reopened.settings("Settings")) == 10
        assert k >= last, f"cutting less of the WAL at {cut} lost more commits"
        last = k
        shutil.rmtree(case)
    assert last == commits


WRITER = textwrap.dedent(
    """
    import sys
    from avsclient.store import DeviceStore, StoreConfig
    store = DeviceStore.open(sys.argv[1], config=StoreConfig(outbox_max_events=10**9))
    print("open", flush=True)
    n = int(sys.argv[2])
    while True:
        with store.transaction():
            store.set("kill", f"n{n:06d}", n)
            store.outbox_append(f"m{n}", {"n": n})
        print(n, flush=True)
        n += 1
    """
)


def test_sigkill_of_a_writer_loses_at_most_the_write_in_flight(tmp_path: Path) -> None:
    """Killed at random points (while starting, opening or committing), the writer leaves a
    store that opens and holds every row whose commit returned, plus at most the one after."""
    path = tmp_path / "device.sqlite3"
    rng = random.Random(20261205)
    stored: set[int] = set()
    kills = 20
    for round_ in range(kills):
        out = tmp_path / f"out{round_}.txt"
        start = max(stored, default=-1) + 1
        with out.open("wb") as sink:
            child = subprocess.Popen(
                [sys.executable, "-c", WRITER, str(path), str(start)], stdout=sink
            )
            try:
                if round_ % 4 == 3:
                    time.sleep(rng.uniform(0.0, 0.8))  # anywhere, start-up and open included
                else:
                    deadline = time.monotonic() + 60
                    while b"open" not in out.read_bytes():
                        assert child.poll() is None, "the writer died by itself"
                        assert time.monotonic() < deadline, "the writer never opened the store"
                        time.sleep(0.01)
                    time.sleep(rng.uniform(0.0, 0.25))
            finally:
                child.send_signal(signal.SIGKILL)
                child.wait(timeout=60)
        assert child.returncode == -signal.SIGKILL
        printed = {int(line) for line in out.read_text().split() if line.isdigit()}
        if not path.exists():
            assert not printed
            continue
        with DeviceStore.open(path) as store:
            now = {int(v) for v in store.settings("kill").values()}  # type: ignore[arg-type]
            outbox = {e.message_id for e in store.outbox_pending()}
        assert stored | printed <= now, "a row whose commit returned was lost"
        extra = now - stored - printed
        assert extra <= {max(printed | stored, default=-1) + 1}, extra
        assert outbox == {f"m{n}" for n in now}, "a transaction was half applied"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        stored = now
    assert len(stored) > kills, "the writer hardly ever committed: the test proved little"


READ_ONLY_CHILD = textwrap.dedent(
    """
    import sys
    from avsclient.exceptions import DeviceStoreError
    from avsclient.store import DeviceStore
    for target in sys.argv[1:]:
        try:
            with DeviceStore.open(target) as store:
                store.set("N", "k", 2)
            print("opened", target)
        except DeviceStoreError as exc:
            print(type(exc).__name__, str(exc).replace(chr(10), " "))
    """
)


def test_read_only_directory_is_a_clear_error(tmp_path: Path) -> None:
    """In a read-only directory neither a new store nor an existing one (which needs its WAL)
    can be opened: DeviceStoreError, and the existing file is unchanged.

    Root ignores permission bits, so as root the check runs in a child process without
    CAP_DAC_OVERRIDE (util-linux `setpriv`), as the token file's test does.
    """
    directory = tmp_path / "config"
    directory.mkdir()
    existing = directory / "device.sqlite3"
    with DeviceStore.open(existing) as store:
        store.set("N", "k", 1)
    before = existing.read_bytes()
    directory.chmod(0o555)
    try:
        targets = [str(existing), str(directory / "new.sqlite3"), str(directory / "sub" / "x.db")]
        command = [sys.executable, "-c", READ_ONLY_CHILD, *targets]
        if os.geteuid() == 0:
            setpriv = require_executable("setpriv")
            command = [setpriv, "--bounding-set=-dac_override,-dac_read_search", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    finally:
        directory.chmod(0o700)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3, done.stdout
    for line, target in zip(lines, targets, strict=True):
        assert line.startswith("DeviceStoreError "), line
        assert target in line
    assert existing.read_bytes() == before
    assert sorted(p.name for p in directory.iterdir()) == ["device.sqlite3"]
    with DeviceStore.open(existing) as store:
        assert store.get("N", "k") == 1


HOLDER = textwrap.dedent(
    """
    import sqlite3, sys, time
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    if sys.argv[2] == "exclusive":
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        conn.execute("BEGIN EXCLUSIVE")
        conn.execute("INSERT INTO settings VALUES ('held', 'k', '1', 0)")
        conn.execute("COMMIT")  # the exclusive lock stays with the connection
    else:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO settings VALUES ('held', 'k', '1', 0)")
    print("locked", flush=True)
    time.sleep(120)
    """
)


@contextlib.contextmanager
def holding_lock(path: Path, mode: str) -> Any:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), mode], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "locked"
        yield
    finally:
        child.kill()
        child.wait(timeout=60)
        if child.stdout is not None:
            child.stdout.close()


def test_write_while_another_process_holds_the_write_lock_fails_within_the_deadline(
    tmp_path: Path,
) -> None:
    """A writer in another process makes a write raise DeviceStoreLocked after the busy
    timeout, not hang; reads go on (WAL); once the lock goes, writes work again."""
    path = tmp_path / "device.sqlite3"
    config = StoreConfig(busy_timeout=0.5)
    with DeviceStore.open(path, config=config) as store:
        store.set("N", "k", 1)
        with holding_lock(path, "immediate"):
            started = time.monotonic()
            with pytest.raises(DeviceStoreLocked, match="locked"):
                store.set("N", "k", 2)
            elapsed = time.monotonic() - started
            assert 0.4 <= elapsed < 5.0, elapsed
            assert store.get("N", "k") == 1
        store.set("N", "k", 3)
        assert store.get("N", "k") == 3
        assert store.get("held", "k") is None  # the holder never committed


def test_open_while_another_process_holds_the_file_exclusively_fails_within_the_deadline(
    tmp_path: Path,
) -> None:
    """An exclusive lock held by another process makes open raise DeviceStoreLocked, in time."""
    path = tmp_path / "device.sqlite3"
    DeviceStore.open(path).close()
    with holding_lock(path, "exclusive"):
        started = time.monotonic()
        with pytest.raises(DeviceStoreLocked):
            DeviceStore.open(path, config=StoreConfig(busy_timeout=0.5), on_corrupt="reset")
        assert time.monotonic() - started < 5.0
    assert not list(tmp_path.glob("*.corrupt-*")), "a locked file is not a corrupt one"
    with DeviceStore.open(path) as store:
        assert store.get("held", "k") == 1


def test_files_are_0600_and_directory_0700_whatever_the_umask(tmp_path: Path) -> None:
    """The database, its -wal and -shm are 0600 and the directory 0700, even under umask 0."""
    old = os.umask(0)
    try:
        path = tmp_path / "new" / "dir" / "device.sqlite3"
        with DeviceStore.open(path) as store:
            store.set("N", "k", 1)
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.parent.iterdir()}
    finally:
        os.umask(old)
    assert modes == {
        "device.sqlite3": 0o600,
        "device.sqlite3-wal": 0o600,
        "device.sqlite3-shm": 0o600,
    }
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert sorted(p.name for p in path.parent.iterdir()) == ["device.sqlite3"]


def test_wider_mode_is_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Opening a store others can read logs a warning with the fix."""
    path = tmp_path / "device.sqlite3"
    DeviceStore.open(path).close()
    path.chmod(0o644)
    with caplog.at_level("WARNING", logger="avsclient.store"):
        DeviceStore.open(path).close()
    assert "chmod 600" in caplog.text


def test_path_that_is_a_directory_is_a_clear_error(tmp_path: Path) -> None:
    """A directory at the store's path gives DeviceStoreError, not a traceback."""
    (tmp_path / "device.sqlite3").mkdir()
    with pytest.raises(DeviceStoreError, match="not a regular file"):
        DeviceStore.open(tmp_path / "device.sqlite3")


def test_reset_moves_the_wal_aside_with_the_file(tmp_path: Path) -> None:
    """A damaged store with a WAL is moved aside whole: file and WAL under the new name."""
    path = tmp_path / "device.sqlite3"
    DeviceStore.open(path).close()
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)
    Path(f"{path}-wal").write_bytes(b"wal bytes")
    damaged = path.read_bytes()
    with pytest.raises(DeviceStoreCorrupt):
        DeviceStore.open(path)
    assert path.read_bytes() == damaged
    assert Path(f"{path}-wal").read_bytes() == b"wal bytes"
    with DeviceStore.open(path, on_corrupt="reset") as store:
        aside = store.moved_aside
    assert aside is not None
    assert Path(f"{aside}-wal").read_bytes() == b"wal bytes"
    assert aside.read_bytes().endswith(b"\xff" * 200)
