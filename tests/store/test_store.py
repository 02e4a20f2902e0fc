"""The device store's API: settings, transactions, alerts, the outbox, account data, schema."""

from __future__ import annotations

import json
import math
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from avsclient.auth.store import default_token_path
from avsclient.exceptions import DeviceStoreCorrupt, DeviceStoreError
from avsclient.store import (
    SCHEMA_VERSION,
    Alert,
    DeviceStore,
    StoreConfig,
    default_store_path,
)


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def alert(token: str, at: float, state: str = "SET") -> Alert:
    return Alert(
        token=token,
        type="ALARM",
        scheduled_at=at,
        payload={"token": token, "type": "ALARM", "scheduledTime": "2027-01-15T07:00:00+0000"},
        state=state,
    )


def test_default_path_is_next_to_the_token_file() -> None:
    """Without a path the store lives in the token file's directory."""
    assert default_store_path().parent == default_token_path().parent
    assert default_store_path().name == "device.sqlite3"


def test_settings_round_trip_and_survive_reopening(tmp_path: Path) -> None:
    """JSON values of every kind come back unchanged, also after a restart."""
    path = tmp_path / "device.sqlite3"
    values = {
        "locales": ["en-US", "es-US"],
        "timeZone": "Europe/Berlin",
        "wakeWords": ["ALEXA"],
        "wakeWordConfirmation": "TONE",
        "speechConfirmation": "NONE",
        "endOfSpeechOffset": 160,
        "ratio": 0.5,
        "enabled": True,
        "nothing": None,
        "nested": {"a": [1, {"b": "c"}]},
    }
    with DeviceStore.open(path) as store:
        for key, value in values.items():
            store.set("Settings", key, value)
        assert store.get("Settings", "missing") is None
        assert store.get("Settings", "missing", "dflt") == "dflt"
    with DeviceStore.open(path) as store:
        assert store.settings("Settings") == values
        assert store.get("Settings", "locales") == ["en-US", "es-US"]
        assert store.settings("Other") == {}


def test_set_replaces_and_delete_reports(tmp_path: Path) -> None:
    """set replaces a value; delete says whether there was one."""
    with DeviceStore.open(tmp_path / "s.db") as store:
        store.set("Alerts", "indicator", {"on": True})
        store.set("Alerts", "indicator", {"on": False})
        assert store.get("Alerts", "indicator") == {"on": False}
        assert store.delete("Alerts", "indicator") is True
        assert store.delete("Alerts", "indicator") is False
        assert store.get("Alerts", "indicator") is None


@pytest.mark.parametrize("bad", [math.nan, math.inf, object(), {1: float("-inf")}])
def test_value_that_is_not_json_is_refused_and_changes_nothing(tmp_path: Path, bad: object) -> None:
    """NaN, infinities and non-JSON objects raise ValueError; the old value stays."""
    with DeviceStore.open(tmp_path / "s.db") as store:
        store.set("N", "k", 1)
        with pytest.raises(ValueError, match="JSON"):
            store.set("N", "k", bad)  # type: ignore[arg-type]
        assert store.get("N", "k") == 1


def test_transaction_commits_together_or_not_at_all(tmp_path: Path) -> None:
    """Writes in one transaction all land, or none does when the block raises."""
    path = tmp_path / "s.db"
    with DeviceStore.open(path) as store:
        with store.transaction():
            store.set("Capabilities", "reportHash", "abc")
            store.set("Capabilities", "reportAccepted", False)
            with store.transaction():  # nested blocks join the outer one
                store.upsert_alert(alert("t1", 10.0))
        with pytest.raises(RuntimeError), store.transaction():
            store.set("Capabilities", "reportHash", "def")
            store.delete_alert("t1")
            store.outbox_append("m1", {"event": {}})
            raise RuntimeError("boom")
    with DeviceStore.open(path) as store:
        assert store.get("Capabilities", "reportHash") == "abc"
        assert [a.token for a in store.alerts()] == ["t1"]
        assert store.outbox_pending() == []


def test_alerts_upsert_delete_and_list_in_time_order(tmp_path: Path) -> None:
    """Alerts are keyed by token, replaced by upsert, listed soonest first."""
    path = tmp_path / "s.db"
    with DeviceStore.open(path) as store:
        store.upsert_alert(alert("late", 300.0))
        store.upsert_alert(alert("early", 100.0))
        store.upsert_alert(alert("mid", 200.0))
        store.upsert_alert(alert("early", 100.0, state="ACTIVE"))
        assert store.delete_alert("mid") is True
        assert store.delete_alert("mid") is False
        with pytest.raises(ValueError, match="finite"):
            store.upsert_alert(alert("nan", math.nan))
    with DeviceStore.open(path) as store:
        assert store.alerts() == [alert("early", 100.0, state="ACTIVE"), alert("late", 300.0)]


def test_outbox_keeps_order_and_one_row_per_message_id(tmp_path: Path) -> None:
    """Events come back in the order stored; a messageId is stored once."""
    clock = Clock()
    path = tmp_path / "s.db"
    with DeviceStore.open(path, clock=clock) as store:
        for n in range(5):
            clock.now += 1
            assert store.outbox_append(f"m{n}", {"event": {"n": n}}) is True
        assert store.outbox_append("m2", {"event": {"n": 99}}) is False
    with DeviceStore.open(path, clock=clock) as store:
        pending = store.outbox_pending()
        assert [e.message_id for e in pending] == ["m0", "m1", "m2", "m3", "m4"]
        assert pending[2].event == {"event": {"n": 2}}
        assert [e.seq for e in pending] == sorted(e.seq for e in pending)
        assert [e.message_id for e in store.outbox_pending(limit=2)] == ["m0", "m1"]
        # removed only when delivered (the caller saw a 2xx)
        assert store.outbox_remove("m0") is True
        assert store.outbox_remove("m0") is False
        assert store.outbox_pending()[0].message_id == "m1"
        # the unique constraint is in the schema, not only in the method
        with pytest.raises(sqlite3.IntegrityError):
            store._conn.execute(
                "INSERT INTO outbox (message_id, created_at, event) VALUES ('m1', 0, '{}')"
            )


def test_outbox_is_bounded_in_count_dropping_the_oldest(tmp_path: Path) -> None:
    """Past the count limit the oldest events go, and are counted."""
    config = StoreConfig(outbox_max_events=3)
    with DeviceStore.open(tmp_path / "s.db", config=config) as store:
        for n in range(7):
            store.outbox_append(f"m{n}", {"n": n})
        assert [e.message_id for e in store.outbox_pending()] == ["m4", "m5", "m6"]
        assert store.outbox_dropped == 4


def test_outbox_is_bounded_in_age(tmp_path: Path) -> None:
    """Events older than the age limit are not delivered, and are dropped and counted."""
    clock = Clock()
    config = StoreConfig(outbox_max_age=60.0)
    path = tmp_path / "s.db"
    with DeviceStore.open(path, config=config, clock=clock) as store:
        store.outbox_append("old", {"n": 1})
        clock.now += 30
        store.outbox_append("newer", {"n": 2})
        clock.now += 31
        assert [e.message_id for e in store.outbox_pending()] == ["newer"]
        assert store.outbox_trim() == 1
        assert store.outbox_trim() == 0
        clock.now += 30
        store.outbox_append("newest", {"n": 3})  # appending trims too
        assert [e.message_id for e in store.outbox_pending()] == ["newest"]
    with DeviceStore.open(path, config=config, clock=clock) as store:
        assert store.outbox_dropped == 2


def test_clear_account_data_keeps_device_only_settings(tmp_path: Path) -> None:
    """Deregistration removes alerts, the outbox and account settings; device settings stay."""
    path = tmp_path / "s.db"
    with DeviceStore.open(path, config=StoreConfig(outbox_max_events=1)) as store:
        store.set("SpeechRecognizer", "wakeWords", ["ALEXA"])
        store.set("System", "endpoint", "https://avs-alexa-eu.amazon.com")
        store.set("Capabilities", "reportHash", "abc")
        store.set("Audio", "endOfSpeechOffset", 160, device_only=True)
        store.upsert_alert(alert("t", 1.0))
        store.outbox_append("m1", {})
        store.outbox_append("m2", {})
        assert store.outbox_dropped == 1
        store.clear_account_data()
    with DeviceStore.open(path) as store:
        assert store.settings("SpeechRecognizer") == {}
        assert store.get("System", "endpoint") is None
        assert store.get("Capabilities", "reportHash") is None
        assert store.get("Audio", "endOfSpeechOffset") == 160
        assert store.alerts() == []
        assert store.outbox_pending() == []
        assert store.outbox_dropped == 0
        assert store.schema_version == SCHEMA_VERSION


def test_store_holds_no_tokens(tmp_path: Path) -> None:
    """The schema has no place for tokens: only settings, alerts, outbox and meta."""
    with DeviceStore.open(tmp_path / "s.db") as store:
        tables = {
            row[0]
            for row in store._conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        }
    assert tables == {"meta", "settings", "alerts", "outbox"}


# The version 1 schema exactly as version 1 wrote it (frozen here: files like this exist).
V1_SCHEMA = """
PRAGMA application_id = 1096176452;
PRAGMA journal_mode = WAL;
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE settings ( namespace TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
 device_only INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (namespace, key)) WITHOUT ROWID;
PRAGMA user_version = 1;
"""


def write_v1_file(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(V1_SCHEMA)
    conn.execute(
        "INSERT INTO settings VALUES ('SpeechRecognizer', 'wakeWords', ?, 0)",
        (json.dumps(["ALEXA"]),),
    )
    conn.execute("INSERT INTO settings VALUES ('Audio', 'eos', '160', 1)")
    conn.close()
    path.chmod(0o600)


def test_migrates_a_real_version_1_file(tmp_path: Path) -> None:
    """A version 1 file opens as version 2: its settings kept, alerts and outbox usable."""
    path = tmp_path / "v1.sqlite3"
    write_v1_file(path)
    with DeviceStore.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION == 2
        assert store.get("SpeechRecognizer", "wakeWords") == ["ALEXA"]
        store.upsert_alert(alert("t", 5.0))
        assert store.outbox_append("m", {"event": {}}) is True
        assert store.outbox_dropped == 0
        store.clear_account_data()
        assert store.get("Audio", "eos") == 160
    with DeviceStore.open(path) as store:
        assert store.schema_version == 2
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_file_from_a_newer_version_is_refused_and_untouched(tmp_path: Path) -> None:
    """A schema newer than this code raises DeviceStoreError and is not modified."""
    path = tmp_path / "s.db"
    DeviceStore.open(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA user_version = 9")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(DeviceStoreError, match="newer") as info:
        DeviceStore.open(path, on_corrupt="reset")
    assert not isinstance(info.value, DeviceStoreCorrupt)
    assert path.read_bytes() == before


def test_another_applications_sqlite_file_is_not_taken(tmp_path: Path) -> None:
    """A SQLite file that is not a device store is reported as such, not migrated."""
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(DeviceStoreCorrupt, match="not a device store"):
        DeviceStore.open(path)
    assert path.read_bytes() == before


def test_a_corrupt_json_value_is_a_clear_error(tmp_path: Path) -> None:
    """A row whose JSON was damaged raises DeviceStoreCorrupt naming the setting."""
    path = tmp_path / "s.db"
    with DeviceStore.open(path) as store:
        store._conn.execute("INSERT INTO settings VALUES ('N', 'k', '{not json', 0)")
        store._conn.execute("INSERT INTO alerts VALUES ('t', 'ALARM', 1.0, '[1]', 'SET')")
        with pytest.raises(DeviceStoreCorrupt, match="N/k"):
            store.get("N", "k")
        with pytest.raises(DeviceStoreCorrupt, match="alert t"):
            store.alerts()


def test_closed_store_raises(tmp_path: Path) -> None:
    """Using a closed store raises DeviceStoreError; closing again is harmless."""
    store = DeviceStore.open(tmp_path / "s.db")
    store.close()
    store.close()
    with pytest.raises(DeviceStoreError, match="closed"):
        store.set("N", "k", 1)
    with pytest.raises(DeviceStoreError, match="closed"):
        store.get("N", "k")


def test_config_is_checked() -> None:
    """Limits out of range are refused when the config is made."""
    with pytest.raises(ValueError, match="outbox_max_events"):
        StoreConfig(outbox_max_events=0)
    with pytest.raises(ValueError, match="outbox_max_age"):
        StoreConfig(outbox_max_age=math.inf)
    with pytest.raises(ValueError, match="busy_timeout"):
        StoreConfig(busy_timeout=-1)
    with pytest.raises(ValueError, match="synchronous"):
        StoreConfig(synchronous="OFF")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_corrupt"):
        DeviceStore.open("x", on_corrupt="ignore")  # type: ignore[arg-type]


def test_wal_mode_and_full_sync_are_set(tmp_path: Path) -> None:
    """The connection runs in WAL mode with synchronous=FULL (2) by default."""
    with DeviceStore.open(tmp_path / "s.db") as store:
        assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    with DeviceStore.open(tmp_path / "s.db", config=StoreConfig(synchronous="NORMAL")) as store:
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 1


def test_threads_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    """Writes and transactions from several threads (asyncio.to_thread callers) all land."""
    path = tmp_path / "s.db"
    errors: list[BaseException] = []
    with DeviceStore.open(path, config=StoreConfig(outbox_max_events=10_000)) as store:

        def writer(k: int) -> None:
            try:
                for n in range(50):
                    with store.transaction():
                        store.set(f"T{k}", f"n{n}", n)
                        store.outbox_append(f"{k}-{n}", {"n": n})
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    with DeviceStore.open(path) as store:
        for k in range(4):
            assert store.settings(f"T{k}") == {f"n{n}": n for n in range(50)}
        assert len(store.outbox_pending()) == 200
