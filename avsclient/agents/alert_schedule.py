"""The alert schedule: which alerts exist, which one rings, which wait their turn, and when
the next thing happens (avs-protocol 16.2, 16.5). No I/O, no clock: time comes in as `now`,
wall-clock seconds since the epoch (UTC), because `scheduledTime` names a UTC instant.

Theory of operation. Each alert is SET (waiting for its time) or ACTIVE (sounding); at most
one is ACTIVE, as in the SDK (16.6). `advance(now)` is called whenever the shell's one timer
fires (at `next_wakeup()`, never polled): it ends the ACTIVE alert once its ring limit has
passed, then starts the earliest due alert if none sounds, so alerts due together ring one
after the other in time order (token order on a tie). `load()` at start-up and
`clock_changed()` after the wall clock moved (an NTP step, a manual change) drop every SET
alert more than `past_due` late and leave the newer late ones to ring at once (16.5). A time
zone change moves nothing: stored times are UTC.

Every method returns the `Step`s for the shell to carry out, in order: a `Start` plays the
sound and reports AlertStarted, a `Stop` silences it and reports AlertStopped (then the alert
is gone, unless it was snoozed).
"""

from __future__ import annotations

import datetime
import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from avsclient.store import Alert

__all__ = [
    "ALERT_TYPES",
    "AlertSchedule",
    "AlertsLimits",
    "Rejected",
    "Start",
    "Step",
    "Stop",
    "StopReason",
    "format_time",
    "parse_scheduled_time",
]

#: The alert types of SetAlert (avs-protocol 16.2).
ALERT_TYPES = ("ALARM", "TIMER", "REMINDER")

#: State of an alert that waits for its time / that sounds (the store's `Alert.state`).
SET = "SET"
ACTIVE = "ACTIVE"

# The SDK drops alerts more than 30 minutes late at start-up and refuses SetAlert that late
# (avs-protocol 16.5; SDK constant, unconfirmed in the docs, so configurable).
DEFAULT_PAST_DUE = 30 * 60.0
# At most one hour of sound (16.5).
DEFAULT_MAX_RING = 3600.0
# Alerts further ahead than this are refused: AVS sets alarms and reminders up to a year
# ahead; a time 100 years away is a broken clock or a broken directive.
DEFAULT_MAX_AHEAD = 400 * 24 * 3600.0
# Bound on stored alerts, declared to AVS as `maximumAlerts` (Alerts 1.1+, 16.1): each is a
# row in the store and an entry of every context; beyond it SetAlert fails.
DEFAULT_MAX_ALERTS = 100
DEFAULT_MAX_ALARMS = 50
DEFAULT_MAX_TIMERS = 50


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertsLimits:
    """Limits and timing rules of the alert schedule.

    Attributes:
        max_alerts: alerts stored at once; a SetAlert beyond it gets SetAlertFailed.
        max_alarms: of which alarms.
        max_timers: of which timers.
        past_due: seconds late beyond which an alert is dropped at start-up or after a clock
            change, and a SetAlert is refused (30 min, the SDK's constant).
        max_ring: seconds of sound at most (1 hour).
        ring_limit_from: `"scheduled"` (the current SDK: sound ends at scheduledTime +
            max_ring) or `"activation"` (older SDKs: max_ring from when it started).
        max_ahead: seconds into the future beyond which a SetAlert is refused.
    """

    max_alerts: int = DEFAULT_MAX_ALERTS
    max_alarms: int = DEFAULT_MAX_ALARMS
    max_timers: int = DEFAULT_MAX_TIMERS
    past_due: float = DEFAULT_PAST_DUE
    max_ring: float = DEFAULT_MAX_RING
    ring_limit_from: Literal["scheduled", "activation"] = "scheduled"
    max_ahead: float = DEFAULT_MAX_AHEAD

    def __post_init__(self) -> None:
        if min(self.max_alerts, self.max_alarms, self.max_timers) < 1:
            raise ValueError("alert counts must be at least 1")
        for name in ("past_due", "max_ring", "max_ahead"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds")
        if self.ring_limit_from not in ("scheduled", "activation"):
            raise ValueError("ring_limit_from must be 'scheduled' or 'activation'")

    def configuration(self) -> dict[str, Any]:
        """The `maximumAlerts` capability configuration (Alerts 1.1+, avs-protocol 16.1)."""
        return {
            "maximumAlerts": {
                "overall": self.max_alerts,
                "alarms": self.max_alarms,
                "timers": self.max_timers,
            }
        }


class StopReason(enum.Enum):
    """Why an alert stopped sounding (or was dropped without sounding)."""

    #: The application or the user stopped it (a button, `stop()`).
    LOCAL_STOP = "LOCAL_STOP"
    #: DeleteAlert / DeleteAlerts.
    DELETED = "DELETED"
    #: Its sound played `loopCount` times.
    COMPLETED = "COMPLETED"
    #: The ring limit (1 hour) passed.
    TIMED_OUT = "TIMED_OUT"
    #: More than `past_due` late at start-up or after a clock change: never sounded.
    PAST_DUE = "PAST_DUE"
    #: A SetAlert for the sounding token (snooze): it sounds again at the new time.
    SNOOZED = "SNOOZED"


@dataclass(frozen=True, slots=True)
class Start:
    """Start sounding `alert` (`resumed`: it was sounding before a restart)."""

    alert: Alert
    resumed: bool = False


@dataclass(frozen=True, slots=True)
class Stop:
    """`alert` stopped (or was dropped) for `reason`; it is removed unless SNOOZED."""

    alert: Alert
    reason: StopReason


Step = Start | Stop


class Rejected(Exception):
    """A SetAlert the schedule refuses (SetAlertFailed); the message says why."""


def parse_scheduled_time(value: object) -> float:
    """`scheduledTime` (ISO 8601 with an offset, e.g. `2024-03-01T07:30:00+0000`) as epoch seconds.

    Raises:
        Rejected: not a string, not ISO 8601, or without a time zone offset.
    """
    if not isinstance(value, str) or not value or len(value) > 64:
        raise Rejected(f"scheduledTime must be an ISO 8601 string, not {value!r:.70}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise Rejected(f"scheduledTime {value!r} is not ISO 8601") from None
    if parsed.tzinfo is None:
        raise Rejected(f"scheduledTime {value!r} has no time zone offset")
    return parsed.timestamp()


def format_time(when: float) -> str:
    """Epoch seconds as `YYYY-MM-DDTHH:MM:SSZ` (UTC), the SDK's `eventTime` form (16.1)."""
    moment = datetime.datetime.fromtimestamp(when, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class AlertSchedule:
    """The alerts of one device and the one that sounds (no I/O; see the module docstring)."""

    def __init__(self, limits: AlertsLimits | None = None) -> None:
        self.limits = limits or AlertsLimits()
        self._alerts: dict[str, Alert] = {}
        self._active: str | None = None
        self._started_at: float | None = None

    # -- reading -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._alerts)

    def __contains__(self, token: object) -> bool:
        return token in self._alerts

    def get(self, token: str) -> Alert | None:
        """The alert `token`, or None."""
        return self._alerts.get(token)

    def alerts(self) -> list[Alert]:
        """Every alert, soonest first."""
        return sorted(self._alerts.values(), key=lambda a: (a.scheduled_at, a.token))

    @property
    def active(self) -> Alert | None:
        """The alert sounding now, or None."""
        return None if self._active is None else self._alerts[self._active]

    def waiting(self, now: float) -> list[Alert]:
        """Alerts due but not sounding yet (queued behind the active one), soonest first."""
        return [a for a in self.alerts() if a.state == SET and a.scheduled_at <= now]

    def ring_deadline(self) -> float | None:
        """When the active alert must stop at the latest (None when none sounds)."""
        active = self.active
        if active is None:
            return None
        if self.limits.ring_limit_from == "activation" and self._started_at is not None:
            return self._started_at + self.limits.max_ring
        return active.scheduled_at + self.limits.max_ring

    def next_wakeup(self) -> float | None:
        """When `advance()` has something to do next: the ring limit of the active alert, or
        the time of the earliest SET alert (when none sounds); None: nothing is scheduled."""
        if self._active is not None:
            return self.ring_deadline()
        times = [a.scheduled_at for a in self._alerts.values() if a.state == SET]
        return min(times, default=None)

    # -- changes -----------------------------------------------------------------------------

    def load(self, alerts: Iterable[Alert], now: float) -> list[Step]:
        """Take the stored alerts at start-up: drop those more than `past_due` late, resume
        the one that was sounding (if not too late), then `advance(now)`."""
        steps: list[Step] = []
        for alert in sorted(alerts, key=lambda a: (a.scheduled_at, a.token)):
            if now - alert.scheduled_at > self.limits.past_due:
                steps.append(Stop(alert, StopReason.PAST_DUE))
                continue
            if alert.state == ACTIVE and self._active is None:
                self._alerts[alert.token] = alert
                self._active, self._started_at = alert.token, now
                steps.append(Start(alert, resumed=True))
                continue
            self._alerts[alert.token] = replace(alert, state=SET)
        return steps + self.advance(now)

    def check(self, token: str, kind: str, scheduled_at: float, now: float) -> None:
        """Whether a SetAlert may be accepted (without changing anything).

        Raises:
            Rejected: too late, too far ahead, or the limits are reached.
        """
        late = now - scheduled_at
        if late > self.limits.past_due:
            raise Rejected(f"scheduledTime is {late:.0f} s in the past")
        if -late > self.limits.max_ahead:
            raise Rejected(f"scheduledTime is {-late / 86400:.0f} days ahead")
        if token in self._alerts:
            return  # an update replaces an alert: counts do not grow
        if len(self._alerts) >= self.limits.max_alerts:
            raise Rejected(f"{self.limits.max_alerts} alerts are set already")
        per_type = {"ALARM": self.limits.max_alarms, "TIMER": self.limits.max_timers}
        limit = per_type.get(kind)
        if limit is not None and sum(a.type == kind for a in self._alerts.values()) >= limit:
            raise Rejected(f"{limit} alerts of type {kind} are set already")

    def set(self, alert: Alert, now: float) -> list[Step]:
        """Add or replace an alert (the caller stored it and ran `check`). A SetAlert for the
        sounding token is a snooze: it stops, to sound again at the new time."""
        steps: list[Step] = []
        if alert.token == self._active:
            steps.append(Stop(self._alerts[alert.token], StopReason.SNOOZED))
            self._active = self._started_at = None
        self._alerts[alert.token] = replace(alert, state=SET)
        return steps + self.advance(now)

    def remove(self, token: str, reason: StopReason, now: float) -> list[Step]:
        """Remove an alert; a sounding one stops first (`reason`) and the next due one starts."""
        alert = self._alerts.pop(token, None)
        if alert is None:
            return []
        steps: list[Step] = []
        if token == self._active:
            self._active = self._started_at = None
            steps.append(Stop(alert, reason))
        return steps + self.advance(now)

    def stop_active(self, reason: StopReason, now: float) -> list[Step]:
        """Stop the sounding alert (a user's stop, its sound completed); it is removed."""
        return [] if self._active is None else self.remove(self._active, reason, now)

    def advance(self, now: float) -> list[Step]:
        """Do what is due at `now`: end a sounding alert past its ring limit, start the
        earliest due alert when none sounds."""
        steps: list[Step] = []
        deadline = self.ring_deadline()
        if deadline is not None and now >= deadline:
            steps += self.stop_active(StopReason.TIMED_OUT, now)
        if self._active is None:
            due = self.waiting(now)
            if due:
                first = replace(due[0], state=ACTIVE)
                self._alerts[first.token] = first
                self._active, self._started_at = first.token, now
                steps.append(Start(first))
        return steps

    def clock_changed(self, now: float) -> list[Step]:
        """The wall clock moved (16.5, "after a clock sync"): drop the SET alerts more than
        `past_due` late, then `advance(now)`. A sounding alert keeps its ring limit."""
        steps: list[Step] = []
        for alert in self.alerts():
            if alert.state == SET and now - alert.scheduled_at > self.limits.past_due:
                del self._alerts[alert.token]
                steps.append(Stop(alert, StopReason.PAST_DUE))
        return steps + self.advance(now)

    def snapshot(self) -> Mapping[str, Alert]:
        """The alerts by token (read-only view for tests and the context)."""
        return dict(self._alerts)
