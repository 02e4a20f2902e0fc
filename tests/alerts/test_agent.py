"""The Alerts agent driven with directives and an injected clock, over a real store file and
real focus and mixer: every directive and event, AlertsState, persistence, the past-due and
clock-step rules, background/foreground under a dialog, and bad input."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from avsclient.audio import alert_tone
from avsclient.exceptions import DirectiveError
from avsclient.focus import FocusManager, FocusState
from avsclient.store import Alert, DeviceStore

from .kit import (
    FMT,
    Clock,
    PacedSink,
    RecordingSender,
    directive,
    iso,
    make_agent,
    played_like,
    set_alert,
    settle,
)


async def test_set_alert_is_stored_reported_and_rings_on_time(tmp_path: Path) -> None:
    """SetAlert -> stored, SetAlertSucceeded, in AlertsState; nothing before its time; at
    its time AlertStarted and sound; after loopCount loops AlertStopped and it is gone."""
    clock, sender = Clock(), RecordingSender()
    sink = PacedSink(speed=20.0)
    agent, store, mixer = make_agent(tmp_path / "d.sqlite3", clock, sender, sink=sink)
    agent.start()
    await agent.handlers()["SetAlert"](set_alert("t1", clock.now + 600, loopCount=2))
    await sender.wait_for("SetAlertSucceeded")
    assert [a.token for a in store.alerts()] == ["t1"]
    (state,) = agent.context_states()
    assert state.payload == {
        "allAlerts": [{"token": "t1", "type": "TIMER", "scheduledTime": iso(clock.now + 600)}],
        "activeAlerts": [],
    }
    clock.advance(599)
    await settle(agent)
    assert agent.active is None and "AlertStarted" not in sender.names()
    clock.advance(1)
    await settle(agent)
    assert agent.active is not None
    await sender.wait_for("AlertStopped")
    assert sender.names() == ["SetAlertSucceeded", "AlertStarted", "AlertStopped"]
    assert store.alerts() == [] and agent.context_states()[0].payload["allAlerts"] == []
    tone = alert_tone("TIMER", FMT)
    assert played_like(sink.data, tone, agent.volume / 100)  # the built-in timer sound, twice
    assert len(sink.data) >= 2 * len(tone)
    await agent.aclose()
    await mixer.aclose()
    store.close()


async def test_stop_silences_the_alert_and_sends_alert_stopped(tmp_path: Path) -> None:
    """The application's stop(): AlertStopped, the alert is removed, focus is released."""
    clock, sender = Clock(), RecordingSender()
    focus = FocusManager()
    agent, store, mixer = make_agent(tmp_path / "d.sqlite3", clock, sender, focus=focus)
    agent.start()
    await agent.handlers()["SetAlert"](set_alert("a", clock.now, "ALARM"))
    await sender.wait_for("AlertStarted")
    assert focus.state("Alert") is FocusState.FOREGROUND
    assert agent.context_states()[0].payload["activeAlerts"][0]["token"] == "a"
    assert await agent.stop()
    assert not await agent.stop()
    await sender.wait_for("AlertStopped")
    assert focus.state("Alert") is FocusState.NONE and store.alerts() == []
    await agent.aclose()
    await mixer.aclose()
    store.close()


async def test_alerts_more_than_30_minutes_late_at_start_up_are_dropped(tmp_path: Path) -> None:
    """At start-up an alert 31 min late is dropped with AlertStopped (never AlertStarted);
    one 29 min late rings at once."""
    clock = Clock()
    path = tmp_path / "d.sqlite3"
    with DeviceStore.open(path) as store:
        for token, late in (("old", 31 * 60), ("recent", 29 * 60)):
            when = clock.now - late
            payload = {"token": token, "type": "ALARM", "scheduledTime": iso(when)}
            store.upsert_alert(
                Alert(token=token, type="ALARM", scheduled_at=when, payload=payload, state="SET")
            )
    sender = RecordingSender()
    agent, store, mixer = make_agent(path, clock, sender)
    agent.start()
    await sender.wait_for("AlertStarted")
    tokens = [
        (e["event"]["header"]["name"], e["event"]["payload"]["token"]) for e in sender.accepted
    ]
    assert tokens == [("AlertStopped", "old"), ("AlertStarted", "recent")]
    assert [a.token for a in store.alerts()] == ["recent"]
    await agent.aclose()
    await mixer.aclose()
    store.close()


async def test_wall_clock_steps_are_handled(tmp_path: Path) -> None:
    """A forward step an hour past an alert drops it (AlertStopped, PAST_DUE); a step just
    past another makes it ring at once; the monotonic clock did not move."""
    clock, sender = Clock(), RecordingSender()
    agent, store, mixer = make_agent(tmp_path / "d.sqlite3", clock, sender)
    agent.start()
    await agent.handlers()["SetAlert"](set_alert("soon", clock.now + 60))
    await agent.handlers()["SetAlert"](set_alert("later", clock.now + 5400))
    await sender.wait_for("SetAlertSucceeded", 2)
    clock.step(3600)  # NTP moved the clock an hour ahead
    await settle(agent)
    await sender.wait_for("AlertStopped")
    assert [a.token for a in agent.alerts()] == ["later"]
    assert "AlertStarted" not in sender.names()
    clock.step(1801)  # now 1 s past "later"
    agent.clock_changed()
    await sender.wait_for("AlertStarted")
    assert agent.active is not None and agent.active.token == "later"
    await agent.aclose()
    await mixer.aclose()
    store.close()


async def test_a_dialog_sends_the_alert_to_the_background_and_back(tmp_path: Path) -> None:
    """A Speak (Dialog focus) while the alert sounds: AlertEnteredBackground, the Alert
    channel ducks and plays the short sound; after it AlertEnteredForeground and full gain.
    Music under the alert is told to go to the background (duck)."""
    clock, sender = Clock(), RecordingSender()
    focus = FocusManager()
    seen: list[tuple[str, str, str]] = []

    class Activity:
        def __init__(self, name: str) -> None:
            self.name = name

        async def focus_changed(self, channel: str, state: FocusState) -> None:
            seen.append((self.name, state.name, focus.behavior(channel).name))

    music, speech = Activity("music"), Activity("speech")
    agent, store, mixer = make_agent(
        tmp_path / "d.sqlite3", clock, sender, focus=focus, sink=PacedSink(speed=5.0)
    )
    agent.start()
    await focus.acquire("Content", music)
    await agent.handlers()["SetAlert"](set_alert("a", clock.now, "ALARM"))
    await sender.wait_for("AlertStarted")
    assert ("music", "BACKGROUND", "MAY_DUCK") in seen
    await focus.acquire("Dialog", speech)
    await sender.wait_for("AlertEnteredBackground")
    assert focus.state("Alert") is FocusState.BACKGROUND
    await asyncio.sleep(0.1)
    assert mixer.core.gain("Alert") < 0.5 * agent.volume / 100 + 1e-6  # ducked
    await focus.release("Dialog", speech)
    await sender.wait_for("AlertEnteredForeground")
    await asyncio.sleep(0.1)
    assert mixer.core.gain("Alert") == pytest.approx(agent.volume / 100)
    assert sender.names() == [
        "SetAlertSucceeded",
        "AlertStarted",
        "AlertEnteredBackground",
        "AlertEnteredForeground",
    ]
    await agent.stop()
    await agent.aclose()
    await mixer.aclose()
    store.close()


async def test_delete_alert_stops_a_ringing_one_and_delete_alerts_skips_unknown(
    tmp_path: Path,
) -> None:
    """DeleteAlert of the sounding alert: AlertStopped then DeleteAlertSucceeded; an unknown
    token is Succeeded too; DeleteAlerts removes the known tokens and answers all."""
    clock, sender = Clock(), RecordingSender()
    agent, store, mixer = make_agent(tmp_path / "d.sqlite3", clock, sender)
    agent.start()
    h = agent.handlers()
    await h["SetAlert"](set_alert("ring", clock.now, "ALARM"))
    await h["SetAlert"](set_alert("x", clock.now + 100))
    await h["SetAlert"](set_alert("y", clock.now + 200, "REMINDER", label="Call mum"))
    await sender.wait_for("AlertStarted")
    await h["DeleteAlert"](directive("DeleteAlert", {"token": "ring"}))
    await h["DeleteAlert"](directive("DeleteAlert", {"token": "nope"}))
    await h["DeleteAlerts"](directive("DeleteAlerts", {"tokens": ["x", "y", "zzz"]}))
    await sender.wait_for("DeleteAlertsSucceeded")
    names = sender.names()
    assert names == [
        "SetAlertSucceeded",
        "AlertStarted",
        "SetAlertSucceeded",
        "SetAlertSucceeded",
        "AlertStopped",
        "DeleteAlertSucceeded",
        "DeleteAlertSucceeded",
        "DeleteAlertsSucceeded",
    ]
    assert sender.accepted[-1]["event"]["payload"] == {"tokens": ["x", "y", "zzz"]}
    assert store.alerts() == [] and agent.alerts() == []
    await agent.aclose()
    await mixer.aclose()
    store.close()


async def test_alert_volume_directives_and_local_changes(tmp_path: Path) -> None:
    """SetVolume / AdjustVolume (clamped) and local changes send Alerts.VolumeChanged, set
    the Alert channel's gain, and persist; out-of-range values are refused."""
    clock, sender = Clock(), RecordingSender()
    path = tmp_path / "d.sqlite3"
    agent, store, mixer = make_agent(path, clock, sender)
    agent.start()
    h = agent.handlers()
    await h["SetVolume"](directive("SetVolume", {"volume": 80}))
    await h["AdjustVolume"](directive("AdjustVolume", {"volume": 50}))
    await agent.adjust_volume(-30)
    with pytest.raises(DirectiveError):
        await h["SetVolume"](directive("SetVolume", {"volume": 101}))
    await sender.wait_for("VolumeChanged", 3)
    volumes = [e["event"]["payload"]["volume"] for e in sender.accepted]
    assert volumes == [80, 100, 70]
    assert sender.accepted[0]["event"]["header"]["namespace"] == "Alerts"
    assert mixer.core._lane("Alert").volume == pytest.approx(0.7)
    await agent.aclose()
    store.close()
    again, store2, _ = make_agent(path, clock, RecordingSender())
    assert again.volume == 70
    store2.close()


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        ({"type": "ALARM", "scheduledTime": "not a time"}, "unparsable time"),
        ({"type": "ALARM", "scheduledTime": "2001-01-01T00:00:00+0000"}, "in the past"),
        ({"type": "ALARM", "scheduledTime": "2123-01-01T00:00:00+0000"}, "100 years ahead"),
        ({"type": "WAKEUP", "scheduledTime": "2023-11-14T23:00:00+0000"}, "unknown type"),
    ],
)
async def test_bad_set_alerts_fail_and_keep_what_was_scheduled(
    tmp_path: Path, payload: dict[str, str], why: str
) -> None:
    """Each bad SetAlert gets SetAlertFailed; the alert already set stays."""
    clock, sender = Clock(), RecordingSender()
    agent, store, mixer = make_agent(tmp_path / "d.sqlite3", clock, sender)
    agent.start()
    await agent.handlers()["SetAlert"](set_alert("kept", clock.now + 60))
    await agent.handlers()["SetAlert"](directive("SetAlert", {"token": "bad", **payload}))
    await sender.wait_for("SetAlertFailed")
    assert sender.accepted[-1]["event"]["payload"] == {"token": "bad"}, why
    assert [a.token for a in store.alerts()] == ["kept"]
    with pytest.raises(DirectiveError):  # no token: nothing to answer with
        await agent.handlers()["SetAlert"](directive("SetAlert", {"type": "ALARM"}))
    await agent.aclose()
    await mixer.aclose()
    store.close()


async def test_ten_thousand_set_alerts_are_bounded(tmp_path: Path) -> None:
    """SetAlert past the documented limit (maximumAlerts, 100 by default) fails; the stored
    ones stay, and a token reused updates its alert instead of adding one."""
    clock, sender = Clock(), RecordingSender()
    agent, store, mixer = make_agent(tmp_path / "d.sqlite3", clock, sender)
    set_handler = agent.handlers()["SetAlert"]
    for n in range(10_000):
        kind = ("ALARM", "TIMER", "REMINDER")[n % 3]
        await set_handler(set_alert(f"t{n}", clock.now + 60 + n, kind))
    await set_handler(set_alert("t0", clock.now + 9999, "ALARM"))  # reused token: an update
    assert len(store.alerts()) == len(agent.alerts()) == 100
    assert agent.schedule.get("t0") is not None
    assert agent.schedule.get("t0").scheduled_at == clock.now + 9999  # type: ignore[union-attr]
    # Every answer was stored; the outbox keeps its newest 1000 and counts the rest dropped.
    pending = [e.event["event"]["header"]["name"] for e in store.outbox_pending()]
    assert len(pending) == 1000 and store.outbox_dropped == 10_001 - 1000
    assert pending[-1] == "SetAlertSucceeded" and pending[:-1] == ["SetAlertFailed"] * 999
    await agent.aclose()
    await mixer.aclose()
    store.close()


async def test_an_asset_that_cannot_be_fetched_falls_back_to_the_built_in_sound(
    tmp_path: Path,
) -> None:
    """Assets whose URL fails: the alert still rings, with the built-in alarm sound."""
    clock, sender = Clock(), RecordingSender()
    sink = PacedSink(speed=20.0)
    agent, store, mixer = make_agent(tmp_path / "d.sqlite3", clock, sender, sink=sink)
    agent.start()
    assets = [{"assetId": "a1", "url": "https://127.0.0.1:9/nothing.mp3"}]
    await agent.handlers()["SetAlert"](
        set_alert("a", clock.now, "ALARM", assets=assets, assetPlayOrder=["a1"], loopCount=1)
    )
    await sender.wait_for("AlertStopped")
    tone = alert_tone("ALARM", FMT)
    assert played_like(sink.data, tone, agent.volume / 100)
    assert np.abs(np.frombuffer(bytes(sink.data), dtype=np.int16)).max() > 5000
    await agent.aclose()
    await mixer.aclose()
    store.close()
