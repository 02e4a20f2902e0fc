"""The alert schedule without I/O (avs-protocol 16.2, 16.5): due times, the 30-minute
past-due rule at start-up and after a clock change, the ring limit, alerts due together
queueing, snooze, and the SetAlert checks."""

from __future__ import annotations

import pytest

from avsclient.agents.alert_schedule import (
    AlertSchedule,
    AlertsLimits,
    Rejected,
    Start,
    Stop,
    StopReason,
    format_time,
    parse_scheduled_time,
)
from avsclient.store import Alert

T0 = 1_700_000_000.0


def alert(token: str, at: float, kind: str = "TIMER", state: str = "SET") -> Alert:
    return Alert(token=token, type=kind, scheduled_at=at, payload={}, state=state)


def kinds(steps: list[Start | Stop]) -> list[tuple[str, str, str]]:
    return [
        ("start", s.alert.token, "resumed" if s.resumed else "")
        if isinstance(s, Start)
        else ("stop", s.alert.token, s.reason.name)
        for s in steps
    ]


def test_an_alert_starts_at_its_time_and_not_before() -> None:
    """next_wakeup is the alert's time; advance before it does nothing, at it starts it."""
    s = AlertSchedule()
    assert s.set(alert("a", T0 + 600), T0) == []
    assert s.next_wakeup() == T0 + 600
    assert s.advance(T0 + 599.999) == []
    assert kinds(s.advance(T0 + 600)) == [("start", "a", "")]
    assert s.active is not None and s.active.state == "ACTIVE"


def test_alerts_due_together_ring_one_after_the_other_in_time_order() -> None:
    """Three alerts due at once: the earliest sounds, the others wait; each stop starts the
    next (ties broken by token)."""
    s = AlertSchedule()
    for token, at in (("c", T0 + 10), ("b", T0 + 5), ("a", T0 + 10)):
        s.set(alert(token, at), T0)
    assert kinds(s.advance(T0 + 20)) == [("start", "b", "")]
    assert [a.token for a in s.waiting(T0 + 20)] == ["a", "c"]
    assert kinds(s.stop_active(StopReason.LOCAL_STOP, T0 + 21)) == [
        ("stop", "b", "LOCAL_STOP"),
        ("start", "a", ""),
    ]
    assert kinds(s.remove("a", StopReason.DELETED, T0 + 22)) == [
        ("stop", "a", "DELETED"),
        ("start", "c", ""),
    ]


def test_the_ring_limit_stops_an_alert_an_hour_after_its_time() -> None:
    """Current SDK rule: sound ends at scheduledTime + 1 h; the next wakeup is that limit."""
    s = AlertSchedule()
    s.set(alert("a", T0), T0)
    s.advance(T0 + 60)
    assert s.next_wakeup() == T0 + 3600
    assert s.advance(T0 + 3599) == []
    assert kinds(s.advance(T0 + 3600)) == [("stop", "a", "TIMED_OUT")]
    assert len(s) == 0 and s.next_wakeup() is None


def test_the_ring_limit_can_count_from_activation() -> None:
    """Older SDK rule, configurable: one hour from when it started sounding."""
    s = AlertSchedule(AlertsLimits(ring_limit_from="activation", max_ring=60))
    s.set(alert("a", T0), T0 - 50)
    s.advance(T0 + 100)
    assert s.ring_deadline() == T0 + 160


def test_start_up_drops_alerts_more_than_30_minutes_late_and_rings_the_others() -> None:
    """At load: > 30 min late -> dropped (AlertStopped), newer late ones fire at once, an
    alert that was sounding before the restart resumes without a new AlertStarted."""
    s = AlertSchedule()
    steps = s.load(
        [
            alert("old", T0 - 1801),
            alert("late", T0 - 1799),
            alert("future", T0 + 60),
        ],
        T0,
    )
    assert kinds(steps) == [("stop", "old", "PAST_DUE"), ("start", "late", "")]
    assert "old" not in s and "future" in s

    s2 = AlertSchedule()
    steps = s2.load([alert("ringing", T0 - 60, state="ACTIVE"), alert("next", T0 - 30)], T0)
    assert kinds(steps) == [("start", "ringing", "resumed")]
    assert [a.token for a in s2.waiting(T0)] == ["next"]


def test_a_forward_clock_step_drops_long_past_alerts_and_fires_recent_ones() -> None:
    """After a clock change (16.5): SET alerts now > 30 min late are dropped, others fire."""
    s = AlertSchedule()
    s.set(alert("far", T0 + 60), T0)
    s.set(alert("near", T0 + 3000), T0)
    steps = s.clock_changed(T0 + 3600)  # the clock jumped an hour ahead
    assert kinds(steps) == [("stop", "far", "PAST_DUE"), ("start", "near", "")]


def test_a_backward_clock_step_keeps_alerts_waiting() -> None:
    """The clock went back: nothing is dropped, the alert waits for its (UTC) time."""
    s = AlertSchedule()
    s.set(alert("a", T0 + 60), T0)
    assert s.clock_changed(T0 - 3600) == []
    assert s.next_wakeup() == T0 + 60


def test_set_for_the_sounding_token_is_a_snooze() -> None:
    """SetAlert for the ringing token stops it (SNOOZED, kept) and schedules it again."""
    s = AlertSchedule()
    s.set(alert("a", T0), T0)
    s.advance(T0)
    steps = s.set(alert("a", T0 + 540), T0 + 1)
    assert kinds(steps) == [("stop", "a", "SNOOZED")]
    assert s.active is None and s.next_wakeup() == T0 + 540


@pytest.mark.parametrize(
    ("at", "match"),
    [
        (T0 - 1801, "in the past"),
        (T0 + 100 * 365 * 86400, "days ahead"),
    ],
)
def test_check_refuses_times_too_late_or_too_far(at: float, match: str) -> None:
    """More than 30 min in the past, or 100 years ahead: Rejected (SetAlertFailed)."""
    with pytest.raises(Rejected, match=match):
        AlertSchedule().check("a", "TIMER", at, T0)


def test_check_bounds_the_count_overall_and_per_type_but_not_updates() -> None:
    """Beyond maximumAlerts SetAlert is refused; replacing an existing token is not."""
    s = AlertSchedule(AlertsLimits(max_alerts=3, max_timers=2, max_alarms=3))
    s.set(alert("t1", T0 + 60), T0)
    s.set(alert("t2", T0 + 60), T0)
    with pytest.raises(Rejected, match="TIMER"):
        s.check("t3", "TIMER", T0 + 60, T0)
    s.check("t1", "TIMER", T0 + 90, T0)
    s.set(alert("r1", T0 + 60, "REMINDER"), T0)
    with pytest.raises(Rejected, match="3 alerts"):
        s.check("a1", "ALARM", T0 + 60, T0)
    assert AlertsLimits(max_alerts=3).configuration()["maximumAlerts"]["overall"] == 3


@pytest.mark.parametrize(
    "value", ["", "tomorrow", "2024-03-01T07:30:00", "2024-13-01T07:30:00+0000", 5, None]
)
def test_unparsable_scheduled_times_are_rejected(value: object) -> None:
    """Not ISO 8601, no offset, not a string: Rejected."""
    with pytest.raises(Rejected):
        parse_scheduled_time(value)


def test_scheduled_time_forms() -> None:
    """+0000, +00:00 and Z name the same instant; offsets are honoured."""
    base = parse_scheduled_time("2024-03-01T07:30:00+0000")
    assert parse_scheduled_time("2024-03-01T07:30:00Z") == base
    assert parse_scheduled_time("2024-03-01T08:30:00+01:00") == base
    assert format_time(base) == "2024-03-01T07:30:00Z"


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        AlertsLimits(max_alerts=0)
    with pytest.raises(ValueError, match="past_due"):
        AlertsLimits(past_due=float("nan"))
