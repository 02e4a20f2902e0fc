"""Alerts survive a SIGKILL: a real subprocess stores a timer and is killed before it is due;
a new process started from the same store file rings it and sends each event once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from avsclient.store import DeviceStore

ROOT = Path(__file__).resolve().parents[2]


def spawn(mode: str, store: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.alerts.alert_process", mode, str(store)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def test_a_timer_set_before_sigkill_rings_after_the_restart(tmp_path: Path) -> None:
    """SetAlert, SIGKILL before the timer is due, restart: the timer rings, and the
    SetAlertSucceeded stored before the kill, AlertStarted and AlertStopped are each sent
    once, in that order."""
    store = tmp_path / "device.sqlite3"
    first = spawn("set", store)
    assert first.stdout is not None
    assert first.stdout.readline().strip() == "SET"
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    first.stdout.close()
    assert first.returncode == -signal.SIGKILL
    with DeviceStore.open(store) as opened:
        assert [a.token for a in opened.alerts()] == ["timer-1"]
        names = [e.event["event"]["header"]["name"] for e in opened.outbox_pending()]
        assert names == ["SetAlertSucceeded"]
    second = spawn("run", store)
    out, _ = second.communicate(timeout=30)
    assert second.returncode == 0
    report = json.loads(out.strip().splitlines()[-1])
    assert report["sent"] == ["SetAlertSucceeded", "AlertStarted", "AlertStopped"]
    assert len(report["ids"]) == len(set(report["ids"])) == 3
    with DeviceStore.open(store) as opened:
        assert opened.alerts() == [] and opened.outbox_pending() == []
