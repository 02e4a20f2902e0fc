"""Scripted Alerts for the simulator (avs-protocol 16): "set a timer for N seconds", "wake me
at", reminders, delete and volume directives, and `AlertLedger`, which remembers what was
scheduled and checks the lifecycle events a device sent against it.

    ledger = AlertLedger()
    await sim.push_directive(ledger.set_timer(5))
    ...
    assert ledger.problems(sim.events) == []
"""

from __future__ import annotations

import datetime
import math
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from avsclient.simulator.scenarios import ReceivedEvent, directive

__all__ = ["AlertLedger"]

_LIFECYCLE = ("SetAlertSucceeded", "AlertStarted", "AlertStopped")


def _iso(when: float) -> str:
    moment = datetime.datetime.fromtimestamp(when, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S+0000")


class AlertLedger:
    """Builds Alerts directives and keeps the schedule they set, to check a device against.

    Args:
        clock: wall-clock seconds since the epoch (the device's clock in tests).
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        #: token -> (type, scheduled time in epoch seconds) of every alert set and not deleted.
        self.scheduled: dict[str, tuple[str, float]] = {}
        self.deleted: set[str] = set()

    def set_alert(
        self,
        kind: str,
        when: float,
        *,
        token: str | None = None,
        label: str | None = None,
        loop_count: int | None = None,
        loop_pause_ms: int | None = None,
        assets: Mapping[str, str] | None = None,
        background_asset: str | None = None,
    ) -> dict[str, Any]:
        """A SetAlert directive (`assets`: assetId -> url, played in that order)."""
        token = token or f"{kind.lower()}-{uuid.uuid4()}"
        when = float(math.ceil(when))  # scheduledTime carries whole seconds
        payload: dict[str, Any] = {"token": token, "type": kind, "scheduledTime": _iso(when)}
        if label is not None:
            payload["label"] = label
        if loop_count is not None:
            payload["loopCount"] = loop_count
        if loop_pause_ms is not None:
            payload["loopPauseInMilliSeconds"] = loop_pause_ms
        if assets:
            payload["assets"] = [{"assetId": k, "url": v} for k, v in assets.items()]
            payload["assetPlayOrder"] = list(assets)
            if background_asset is not None:
                payload["backgroundAlertAsset"] = background_asset
        self.scheduled[token] = (kind, when)
        return directive("Alerts", "SetAlert", payload)

    def set_timer(self, seconds: float, **options: Any) -> dict[str, Any]:
        """ "Set a timer for N seconds"."""
        return self.set_alert("TIMER", self.clock() + seconds, **options)

    def wake_me_at(self, when: datetime.datetime, **options: Any) -> dict[str, Any]:
        """ "Wake me at ..." (an aware datetime)."""
        if when.tzinfo is None:
            raise ValueError("wake_me_at needs an aware datetime")
        return self.set_alert("ALARM", when.timestamp(), **options)

    def remind_me(self, seconds: float, label: str, **options: Any) -> dict[str, Any]:
        """ "Remind me to <label> in N seconds"."""
        return self.set_alert("REMINDER", self.clock() + seconds, label=label, **options)

    def delete_alert(self, token: str) -> dict[str, Any]:
        """A DeleteAlert directive."""
        self.deleted.add(token)
        return directive("Alerts", "DeleteAlert", {"token": token})

    def delete_alerts(self, tokens: Iterable[str]) -> dict[str, Any]:
        """A DeleteAlerts directive."""
        tokens = list(tokens)
        self.deleted.update(tokens)
        return directive("Alerts", "DeleteAlerts", {"tokens": tokens})

    @staticmethod
    def set_volume(volume: int) -> dict[str, Any]:
        """An Alerts.SetVolume directive."""
        return directive("Alerts", "SetVolume", {"volume": volume})

    @staticmethod
    def adjust_volume(delta: int) -> dict[str, Any]:
        """An Alerts.AdjustVolume directive."""
        return directive("Alerts", "AdjustVolume", {"volume": delta})

    def problems(self, events: Iterable[ReceivedEvent], *, rang: bool = True) -> list[str]:
        """What is wrong with the Alerts events received, against the schedule.

        Every alert set must be answered SetAlertSucceeded once; when `rang`, every alert
        not deleted must also have sent AlertStarted and then AlertStopped once each, in that
        order; no messageId may arrive twice; no lifecycle event may name an unknown token.

        Returns:
            One line per problem (empty: all good).
        """
        found: list[str] = []
        seen_ids: set[str] = set()
        by_token: dict[str, list[str]] = {}
        for event in events:
            if event.namespace != "Alerts":
                continue
            if event.message_id in seen_ids:
                found.append(f"messageId {event.message_id} ({event.name}) arrived twice")
            seen_ids.add(event.message_id)
            token = event.payload.get("token")
            if event.name in _LIFECYCLE:
                if token not in self.scheduled:
                    found.append(f"{event.name} for an unknown token {token!r}")
                by_token.setdefault(str(token), []).append(event.name)
        for token in self.scheduled:
            names = by_token.get(token, [])
            expected = ["SetAlertSucceeded"]
            if rang and token not in self.deleted:
                expected += ["AlertStarted", "AlertStopped"]
            if [n for n in names if n in expected] != expected:
                found.append(f"{token}: expected {expected}, received {names}")
        return found
