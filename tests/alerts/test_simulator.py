"""End to end against the simulator: a timer set by a directive rings while the network is
gone (heard in the recorded mix) and its AlertStarted / AlertStopped arrive after the
reconnection, in order, each messageId once, matching the schedule the simulator set."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from avsclient.agents import AlertStateChanged
from avsclient.auth import StaticTokenProvider
from avsclient.client import AVSClient, default_agents
from avsclient.config import ClientConfig
from avsclient.simulator import AlertLedger, Simulator
from avsclient.store import DeviceStore

from .kit import FMT, PacedSink


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(tls=True) as simulator:
        yield simulator


async def test_a_timer_rings_offline_and_its_events_arrive_after_reconnecting(
    sim: Simulator, tmp_path: Path
) -> None:
    """SetAlert from the simulator, the network goes, the timer rings on time offline, the
    network returns: AlertStarted then AlertStopped arrive, once each."""
    store = DeviceStore.open(tmp_path / "device.sqlite3")
    sink = PacedSink(FMT, speed=1.0)
    config = ClientConfig(endpoint=sim.url, ca_file=str(sim.ca_file))
    client = AVSClient(
        config,
        StaticTokenProvider(sim.add_token()),
        agents=default_agents(sink=sink, store=store),
    )
    states: list[AlertStateChanged] = []
    client.add_listener(lambda e: states.append(e) if isinstance(e, AlertStateChanged) else None)
    await client.start()
    await client.wait_connected(10)
    ledger = AlertLedger()
    message = ledger.set_timer(1.0, loop_count=1)
    token = message["directive"]["payload"]["token"]
    await sim.push_directive(message)
    await sim.wait_for_event("Alerts", "SetAlertSucceeded")
    due = ledger.scheduled[token][1]
    due_mono = time.monotonic() + (due - time.time())
    sim.faults.go_offline()

    async with asyncio.timeout(15):
        while not any(s.state == "COMPLETED" for s in states):
            await asyncio.sleep(0.05)
    assert [s.state for s in states] == ["STARTED", "COMPLETED"]
    assert not [e for e in sim.events if e.name in ("AlertStarted", "AlertStopped")]
    late = client.alerts.sound_started[token] - due_mono
    assert -0.05 < late < 0.5  # on time, with no network
    samples = np.frombuffer(bytes(sink.data), dtype=np.int16)
    assert np.abs(samples).max() > 3000  # the mix carried the timer's sound

    sim.faults.go_online()
    client.manager.wake()
    await sim.wait_for_event("Alerts", "AlertStopped", timeout=40)
    assert ledger.problems(sim.events) == []
    names = [e.name for e in sim.events if e.namespace == "Alerts"]
    assert names == ["SetAlertSucceeded", "AlertStarted", "AlertStopped"]
    await client.alerts.outbox.flush(5)  # removed once the 2xx was read
    assert store.outbox_pending() == [] and store.alerts() == []
    await client.aclose()
    store.close()


async def test_the_ledger_reports_what_is_missing_or_duplicated() -> None:
    """The ledger's check finds a missing AlertStarted and a messageId received twice."""
    from avsclient.simulator.scenarios import ReceivedEvent

    ledger = AlertLedger(clock=lambda: 1_700_000_000.0)
    token = ledger.set_timer(5)["directive"]["payload"]["token"]

    def event(name: str, mid: str) -> ReceivedEvent:
        return ReceivedEvent(
            namespace="Alerts",
            name=name,
            message_id=mid,
            dialog_request_id=None,
            header={},
            payload={"token": token},
            context=[],
            json={},
            audio=b"",
            stream_id=1,
        )

    events = [
        event("SetAlertSucceeded", "1"),
        event("AlertStopped", "2"),
        event("AlertStopped", "2"),
    ]
    found = ledger.problems(events)
    assert any("arrived twice" in line for line in found)
    assert any("expected" in line and token in line for line in found)
    assert ledger.problems(events[:1], rang=False) == []


async def test_the_ledger_checks_background_and_foreground_order() -> None:
    """Entered* events must sit between AlertStarted and AlertStopped, alternating from
    Background; a Foreground first or one after AlertStopped is reported."""
    from avsclient.simulator.scenarios import ReceivedEvent

    ledger = AlertLedger(clock=lambda: 1_700_000_000.0)
    token = ledger.set_timer(5)["directive"]["payload"]["token"]

    def events(*names: str) -> list[ReceivedEvent]:
        return [
            ReceivedEvent(
                namespace="Alerts",
                name=name,
                message_id=str(n),
                dialog_request_id=None,
                header={},
                payload={"token": token},
                context=[],
                json={},
                audio=b"",
                stream_id=1,
            )
            for n, name in enumerate(names)
        ]

    good = ("SetAlertSucceeded", "AlertStarted", "AlertEnteredBackground",
            "AlertEnteredForeground", "AlertStopped")  # fmt: skip
    assert ledger.problems(events(*good)) == []
    swapped = (*good[:2], good[3], good[2], good[4])
    assert any("out of order" in p for p in ledger.problems(events(*swapped)))
    late = (*good[:2], good[4], good[2])
    assert any("outside" in p for p in ledger.problems(events(*late)))
