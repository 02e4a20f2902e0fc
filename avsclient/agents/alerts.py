"""The Alerts interface (avs-protocol 16): timers, alarms and reminders that ring from a local
schedule, online or not, and survive a restart.

`AlertSchedule` (alert_schedule.py) decides; this module is its asyncio shell:

- Persistence. Every change is written to the device store before it is acted on, in one
  transaction with the events that report it (`EventOutbox.put`): SetAlert stores the alert
  and SetAlertSucceeded together; a start marks it ACTIVE with AlertStarted; a stop removes it
  with AlertStopped. A crash (SIGKILL, power cut) keeps both or neither, so nothing
  scheduled is lost and no event is sent twice. An alert that was sounding when the process
  died sounds again at start-up (within 30 min of its time) without a second AlertStarted.
- Timing. One driver task sleeps until the schedule's next wakeup (an alert's time or the
  ring limit), never polling. The wall clock is watched for steps (NTP, a manual change) by
  comparing it with the monotonic clock at each wakeup and at least every
  `clock_check_interval`; `clock_changed()` lets the application report one at once.
- Sound. An alert takes the Alert focus channel and plays on the mixer's Alert channel: the
  directive's assets (fetched with httpx when it arrives, decoded and kept in memory) in
  `assetPlayOrder`, `loopCount` times with `loopPauseInMilliSeconds` between loops, else the
  built-in sound of its type (`avsclient.audio.alert_tones`). Under a dialog it goes to the
  background: ducked, playing the short background sound (or `backgroundAlertAsset`) with
  10 s pauses, AlertEnteredBackground; back to the foreground after, AlertEnteredForeground.
  The ring writes at most `RING_LEAD` ahead of real time, so it follows the clock even into
  a sink that does not pace itself. Loudness: the alert volume (Alerts.SetVolume), raised to
  at least the volume of an active Content or Communications channel while one is active
  (16.5); with Alerts 1.4 and the ASCENDING alarm volume ramp an alarm starts quieter and
  rises to that level.
- Events. All of them go through the persisted outbox, in order (the SDK drops Entered*
  while offline; here they wait like the others, so their order is kept). When the client
  reports the connection CONNECTED again (`observe()`), the outbox tries at once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import shutil
import ssl
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from avsclient._httpx import refuse_cleartext
from avsclient._tasks import TaskSet
from avsclient.agents import payload as fields
from avsclient.agents.alert_schedule import (
    ACTIVE,
    ALERT_TYPES,
    AlertSchedule,
    AlertsLimits,
    Rejected,
    Start,
    Step,
    Stop,
    StopReason,
    format_time,
    parse_scheduled_time,
)
from avsclient.agents.base import (
    AgentServices,
    Capability,
    CapabilityAgent,
    DirectiveHandler,
    stop_sound,
)
from avsclient.agents.events import AlertStateChanged, ClientEvent, ConnectionStatusChanged
from avsclient.audio import decode_mp3
from avsclient.audio.alert_tones import alert_tone
from avsclient.avs.policy import ConnectionStatus
from avsclient.exceptions import AudioError, DeviceStoreError, DirectiveError, StateError
from avsclient.focus import FocusState
from avsclient.messages import ContextState, Directive, Event
from avsclient.outbox import EventOutbox
from avsclient.store import Alert, DeviceStore

if TYPE_CHECKING:
    from avsclient.audio import MixerChannel

__all__ = [
    "AlertsAgent",
    "DEFAULT_ALERT_VOLUME",
]

_log = logging.getLogger("avsclient.agents")

#: The alert volume of a new device (0..100), separate from the speaker's (avs-protocol 18).
DEFAULT_ALERT_VOLUME = 50
#: Seconds between two looks at the wall clock while alerts are set (clock steps).
DEFAULT_CLOCK_CHECK_INTERVAL = 60.0
#: A wall-clock step larger than this (seconds) counts as a clock change.
CLOCK_STEP_TOLERANCE = 2.0
#: Pause between background sounds (the SDK's 10 s, avs-protocol 16.5).
BACKGROUND_PAUSE = 10.0
#: Audio the ring writes ahead of real time (seconds), in chunks of `RING_CHUNK`: enough to
#: ride out a busy event loop, little enough that a sink which does not pace itself (a WAV
#: file) receives an alert at the rate it plays instead of an hour of sound at once.
RING_LEAD = 0.5
RING_CHUNK = 0.1
#: Focus channels whose volume an alert plays at least at while they are active (the SDK
#: raises the alert volume to the content volume, avs-protocol 16.5); their mixer channels
#: carry the same names.
LOUDNESS_FLOOR_CHANNELS = ("Content", "Communications")
#: Values of the alarm volume ramp setting (Alerts 1.4, avs-protocol 16.3).
ALARM_VOLUME_RAMPS = ("NONE", "ASCENDING")
#: An ASCENDING alarm starts at this fraction of its volume and reaches it after this many
#: seconds (the reference does not give the SDK's curve: a linear ramp, configurable).
DEFAULT_ASCENDING_RAMP = (0.1, 30.0)
#: Bytes of one asset at most (an alert sound is seconds of MP3, not minutes).
MAX_ASSET_BYTES = 2 * 1024 * 1024
#: Assets per alert at most; alerts whose decoded assets are kept in memory at most.
MAX_ASSETS = 16
MAX_CACHED_ALERTS = 8
#: Seconds to wait for an asset server (connect, and each read).
ASSET_TIMEOUT = 10.0

_NAMESPACE = "Alerts"


class AlertsAgent(CapabilityAgent):
    """Timers, alarms and reminders (see the module docstring).

    Application API: `stop()` silences the sounding alert (AlertStopped), `alerts()` and
    `active` show the schedule, `set_volume()` / `adjust_volume()` change the alert volume
    locally (VolumeChanged), `clock_changed()` reports a wall-clock step.
    """

    namespace = _NAMESPACE
    #: The focus channel alerts sound on (avs-protocol 13.1).
    channel = "Alert"

    def __init__(
        self,
        output: MixerChannel,
        *,
        store: DeviceStore | None = None,
        outbox: EventOutbox | None = None,
        limits: AlertsLimits | None = None,
        version: str = "1.3",
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        clock_check_interval: float | None = DEFAULT_CLOCK_CHECK_INTERVAL,
        http: httpx.AsyncClient | None = None,
        verify: ssl.SSLContext | bool = True,
        ascending_ramp: tuple[float, float] = DEFAULT_ASCENDING_RAMP,
    ) -> None:
        """Create the agent.

        Args:
            output: the mixer channel alerts play on (ducked there in the background).
            store: the device store holding alerts and the alert volume. Without one, the
                agent keeps them in a temporary store of its own, removed when it closes:
                alerts then do not survive a restart.
            outbox: the persisted outbox to send events through (share one between agents
                of one store); by default the client's (`AgentServices.outbox`) when the
                agent joins a client over the same store, else one of its own over `store`.
            limits: counts and timing rules.
            version: the Alerts version declared (avs-protocol 9.8 recommends 1.3; from 1.5
                AlertStarted/AlertStopped carry `scheduledTime` and `eventTime`, 16.1).
            clock: wall-clock seconds since the epoch (UTC); injected in tests.
            monotonic: a clock that never steps, to notice steps of `clock`.
            clock_check_interval: seconds between wall-clock checks while alerts are set
                (None: only when the schedule wakes up or `clock_changed()` is called).
            http: the client fetching assets (default: one of its own).
            verify: certificate verification of that own client.
            ascending_ramp: (starting fraction of the volume, seconds to full volume) of an
                alarm under the ASCENDING alarm volume ramp (Alerts 1.4).
        """
        super().__init__()
        self.version = version
        Capability(_NAMESPACE, version)  # a bad version fails here
        if outbox is not None and store is not None and outbox.store is not store:
            raise ValueError("the outbox must be over the same store")
        if clock_check_interval is not None and not clock_check_interval > 0:
            raise ValueError("clock_check_interval must be positive or None")
        ramp_start, ramp_seconds = ascending_ramp
        if not (0.0 <= ramp_start <= 1.0 and math.isfinite(ramp_seconds) and ramp_seconds > 0):
            raise ValueError("ascending_ramp must be (0..1, positive seconds)")
        self.output = output
        self.schedule = AlertSchedule(limits)
        self._store = store if store is not None else (outbox.store if outbox else None)
        self._outbox = outbox
        self._own_outbox = outbox is None
        self._tmpdir: Path | None = None
        self._clock = clock
        self._monotonic = monotonic
        self._check_interval = clock_check_interval
        self._offset: float | None = None  # wall - monotonic at the last look
        self._lock = asyncio.Lock()
        self._kick: asyncio.Event | None = None
        self._driver: asyncio.Task[None] | None = None
        self._player: asyncio.Task[None] | None = None
        self._tasks = TaskSet(_log, "alerts")
        self._background = False
        self._focus = FocusState.NONE
        self._own_http = http is None
        self._http = http
        self._verify = verify
        self._assets: OrderedDict[str, dict[str, bytes]] = OrderedDict()
        self.volume = DEFAULT_ALERT_VOLUME
        #: The alarm volume ramp setting (Alerts 1.4): NONE or ASCENDING.
        self.alarm_volume_ramp = "NONE"
        self._ramp = (ramp_start, ramp_seconds)
        self._rang_from: tuple[str, float] | None = None  # (token, loop time) of the ramp
        #: When the sound of the latest started alerts was first written to the mixer
        #: (monotonic), the last `MAX_CACHED_ALERTS` kept.
        self.sound_started: collections.OrderedDict[str, float] = collections.OrderedDict()

    # -- wiring ------------------------------------------------------------------------------

    @property
    def store(self) -> DeviceStore:
        """The device store holding the alerts (a temporary one of the agent's own when
        none was given)."""
        if self._store is None:
            self._open_private_store()
        assert self._store is not None
        return self._store

    @property
    def outbox(self) -> EventOutbox:
        """The persisted outbox the agent's events go through."""
        if self._outbox is None:
            self._outbox = EventOutbox(self.store)
        return self._outbox

    def _open_private_store(self) -> None:
        self._tmpdir = Path(tempfile.mkdtemp(prefix="avsclient-alerts-"))
        self._store = DeviceStore.open(self._tmpdir / "alerts.sqlite3")
        _log.info("Alerts: no device store given; alerts will not survive a restart")

    def attach(self, services: AgentServices) -> None:
        shared = services.outbox
        if shared is not None and shared.store is self.store:
            # One outbox per store and process (two senders over one table send twice).
            if self._outbox is not None and self._outbox is not shared:
                raise ValueError(
                    "the client already sends this store's outbox: give the agent no outbox "
                    "(it uses the client's) or another store"
                )
            self._outbox, self._own_outbox = shared, False
        super().attach(services)
        volume = self.store.get(_NAMESPACE, "volume", DEFAULT_ALERT_VOLUME)
        if isinstance(volume, int) and 0 <= volume <= 100:
            self.volume = volume
        ramp = self.store.get(_NAMESPACE, "alarmVolumeRamp", "NONE")
        if ramp in ALARM_VOLUME_RAMPS:
            self.alarm_volume_ramp = str(ramp)
        self.output.mixer.set_gain(self.output.name, self.volume / 100)

    def capability(self) -> Capability:
        return Capability(_NAMESPACE, self.version, self.schedule.limits.configuration())

    def handlers(self) -> dict[str, DirectiveHandler]:
        return {
            "SetAlert": self._on_set_alert,
            "DeleteAlert": self._on_delete_alert,
            "DeleteAlerts": self._on_delete_alerts,
            "SetVolume": self._on_set_volume,
            "AdjustVolume": self._on_adjust_volume,
            **(
                {"SetAlarmVolumeRamp": self._on_set_alarm_volume_ramp}
                if _version_at_least(self.version, (1, 4))
                else {}
            ),
        }

    def context_states(self) -> list[ContextState]:
        active = self.schedule.active
        return [
            ContextState(
                namespace=_NAMESPACE,
                name="AlertsState",
                payload={
                    "allAlerts": [_brief(a) for a in self.schedule.alerts()],
                    "activeAlerts": [] if active is None else [_brief(active)],
                },
            )
        ]

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Load the stored alerts (dropping those past due), start the outbox and the timer."""
        if self._driver is not None:
            return
        self._kick = asyncio.Event()
        self.outbox.start(self.messenger.sender)
        self._driver = asyncio.get_running_loop().create_task(self._drive(), name="alerts")

    def observe(self, event: ClientEvent) -> None:
        """The connection is back: the outbox tries at once instead of finishing a back-off
        (which grows to a minute during a long outage). The client wakes the outbox it shares
        with the agents itself; this is for an outbox the agent was given or made."""
        if (
            isinstance(event, ConnectionStatusChanged)
            and event.status is ConnectionStatus.CONNECTED
            and self._outbox is not None
            and self._outbox is not self.services.outbox
        ):
            self._outbox.wake()

    async def aclose(self) -> None:
        """Stop the timer, the sound and the outbox (stored alerts and events stay)."""
        tasks = [t for t in (self._driver, self._player, *self._tasks) if t is not None]
        self._driver = self._player = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(AudioError):
            await self.output.stop()
        if self._own_outbox and self._outbox is not None:
            await self._outbox.aclose()
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._tmpdir is not None:
            if self._store is not None:
                self._store.close()
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    # -- the driver --------------------------------------------------------------------------

    async def _drive(self) -> None:
        assert self._kick is not None
        async with self._lock:
            try:
                stored = self.store.alerts()
            except DeviceStoreError as exc:
                _log.error("Alerts: cannot read the stored alerts: %s", exc)
                stored = []
            now = self._clock()
            self._offset = now - self._monotonic()
            await self._carry_out(self.schedule.load(stored, now))
            for alert in self.schedule.alerts():
                self._prefetch(alert)
        while True:
            delay = self._sleep_for()
            self._kick.clear()
            if delay is None:
                await self._kick.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._kick.wait()
            async with self._lock:
                now = self._clock()
                if self._clock_stepped(now):
                    _log.info("Alerts: the wall clock moved; checking the schedule")
                    await self._carry_out(self.schedule.clock_changed(now))
                await self._carry_out(self.schedule.advance(now))

    def _sleep_for(self) -> float | None:
        wakeup = self.schedule.next_wakeup()
        delay = None if wakeup is None else max(0.0, wakeup - self._clock())
        if self._check_interval is not None and len(self.schedule):
            delay = self._check_interval if delay is None else min(delay, self._check_interval)
        return delay

    def _clock_stepped(self, now: float) -> bool:
        offset = now - self._monotonic()
        stepped = self._offset is not None and abs(offset - self._offset) > CLOCK_STEP_TOLERANCE
        self._offset = offset
        return stepped

    def _wake(self) -> None:
        if self._kick is not None:
            self._kick.set()

    def clock_changed(self) -> None:
        """The wall clock was set (NTP sync, a manual change): check the schedule now, dropping
        alerts now more than 30 minutes past due (avs-protocol 16.5)."""
        self._offset = math.inf  # the next look counts as a step
        self._wake()

    # -- carrying out the schedule's steps (under the lock) ---------------------------------

    async def _carry_out(self, steps: list[Step]) -> None:
        for step in steps:
            if isinstance(step, Start):
                await self._start(step.alert, resumed=step.resumed)
            else:
                await self._stop(step)

    async def _start(self, alert: Alert, *, resumed: bool) -> None:
        _log.info("alert %r (%s) starts%s", alert.token, alert.type, " again" if resumed else "")
        if not resumed:
            try:
                with self.store.transaction():
                    self.store.upsert_alert(replace(alert, state=ACTIVE))
                    self._put(self._lifecycle("AlertStarted", alert))
            except DeviceStoreError as exc:  # it still sounds: the user must hear it
                _log.error("Alerts: cannot record the start of %r: %s", alert.token, exc)
        self.messenger.notify(AlertStateChanged(token=alert.token, state="STARTED"))
        self._background = False
        self._focus = FocusState.NONE
        await self.services.focus.acquire(self.channel, self)

    async def _stop(self, step: Stop) -> None:
        alert, reason = step.alert, step.reason
        _log.info("alert %r stops (%s)", alert.token, reason.name)
        if reason is not StopReason.PAST_DUE:  # it was sounding
            await self._silence()
            self._focus = FocusState.NONE
            await self.services.focus.release(self.channel, self)
        try:
            with self.store.transaction():
                if reason is not StopReason.SNOOZED:
                    self.store.delete_alert(alert.token)
                self._put(self._lifecycle("AlertStopped", alert))
        except DeviceStoreError as exc:
            _log.error("Alerts: cannot record the stop of %r: %s", alert.token, exc)
        if reason is not StopReason.SNOOZED:
            self._assets.pop(alert.token, None)
        self.messenger.notify(AlertStateChanged(token=alert.token, state=reason.name))

    async def _silence(self) -> None:
        player, self._player = self._player, None
        if not await stop_sound(player, self.output.stop):
            with contextlib.suppress(AudioError):
                await self.output.stop()  # nothing was playing: stop the output all the same
        self.output.mixer.duck(self.output.name, False)
        self.output.mixer.set_gain(self.output.name, self.volume / 100)

    # -- events ------------------------------------------------------------------------------

    def _lifecycle(self, name: str, alert: Alert) -> Event:
        body: dict[str, Any] = {"token": alert.token}
        if _version_at_least(self.version, (1, 5)):
            body["scheduledTime"] = alert.payload.get("scheduledTime")
            body["eventTime"] = format_time(self._clock())
        return Event.build(_NAMESPACE, name, body)

    def _put(self, event: Event) -> None:
        self.outbox.put(event.to_json())

    def _send(self, name: str, body: dict[str, Any]) -> None:
        """Store a reply event; if even that fails, the store is broken: log it loudly."""
        try:
            self._put(Event.build(_NAMESPACE, name, body))
        except DeviceStoreError as exc:
            _log.error("Alerts: cannot store %s %s: %s", name, body, exc)

    # -- directives --------------------------------------------------------------------------

    async def _on_set_alert(self, directive: Directive) -> None:
        body = directive.payload
        token = fields.text(body, "token", max_length=1024)
        async with self._lock:
            now = self._clock()
            try:
                kind = body.get("type")
                if kind not in ALERT_TYPES:
                    raise Rejected(f"unknown alert type {kind!r:.40}")
                scheduled_at = parse_scheduled_time(body.get("scheduledTime"))
                self.schedule.check(token, kind, scheduled_at, now)
            except Rejected as exc:
                _log.warning("SetAlert %r refused: %s", token, exc)
                self._send("SetAlertFailed", {"token": token})
                return
            alert = Alert(
                token=token, type=kind, scheduled_at=scheduled_at, payload=body, state="SET"
            )
            try:
                with self.store.transaction():
                    self.store.upsert_alert(alert)
                    self._put(Event.build(_NAMESPACE, "SetAlertSucceeded", {"token": token}))
            except (DeviceStoreError, ValueError) as exc:
                _log.error("SetAlert %r not stored: %s", token, exc)
                self._send("SetAlertFailed", {"token": token})
                return
            self._assets.pop(token, None)
            await self._carry_out(self.schedule.set(alert, now))
            self._prefetch(alert)
        self._wake()

    async def _on_delete_alert(self, directive: Directive) -> None:
        token = fields.text(directive.payload, "token", max_length=1024)
        async with self._lock:
            # An unknown token is answered Succeeded, as the SDK does (16.3).
            await self._carry_out(self.schedule.remove(token, StopReason.DELETED, self._clock()))
            try:
                with self.store.transaction():
                    self.store.delete_alert(token)
                    self._put(Event.build(_NAMESPACE, "DeleteAlertSucceeded", {"token": token}))
            except DeviceStoreError as exc:
                _log.error("DeleteAlert %r failed: %s", token, exc)
                self._send("DeleteAlertFailed", {"token": token})
        self._wake()

    async def _on_delete_alerts(self, directive: Directive) -> None:
        tokens = fields.seq(directive.payload, "tokens", max_items=10_000)
        if not all(isinstance(t, str) and t for t in tokens):
            raise DirectiveError("tokens must be non-empty strings")
        async with self._lock:
            present = [t for t in tokens if t in self.schedule]
            try:  # all or nothing: a failure rolls every deletion back (16.3)
                with self.store.transaction():  # the deletions and their report, or neither
                    for token in present:
                        self.store.delete_alert(token)
                    self._put(Event.build(_NAMESPACE, "DeleteAlertsSucceeded", {"tokens": tokens}))
            except DeviceStoreError as exc:
                _log.error("DeleteAlerts failed, nothing deleted: %s", exc)
                self._send("DeleteAlertsFailed", {"tokens": tokens})
                return
            now = self._clock()
            for token in present:
                await self._carry_out(self.schedule.remove(token, StopReason.DELETED, now))
        self._wake()

    async def _on_set_volume(self, directive: Directive) -> None:
        await self._change_volume(fields.integer(directive.payload, "volume", low=0, high=100))

    async def _on_adjust_volume(self, directive: Directive) -> None:
        delta = fields.integer(directive.payload, "volume", low=-100, high=100)
        await self._change_volume(max(0, min(100, self.volume + delta)))

    async def _change_volume(self, volume: int) -> None:
        try:
            with self.store.transaction():
                self.store.set(_NAMESPACE, "volume", volume)
                self._put(Event.build(_NAMESPACE, "VolumeChanged", {"volume": volume}))
        except DeviceStoreError as exc:
            raise DirectiveError(
                f"alert volume not stored: {exc}", error_type="INTERNAL_ERROR"
            ) from exc
        self.volume = volume
        if self.schedule.active is None:
            self.output.mixer.set_gain(self.output.name, volume / 100)
        # else: the ring applies it (with the loudness floor and the ramp) from its next chunk

    async def _on_set_alarm_volume_ramp(self, directive: Directive) -> None:
        ramp = directive.payload.get("alarmVolumeRamp")
        if ramp not in ALARM_VOLUME_RAMPS:  # the SDK ignores other values (16.3)
            _log.warning("SetAlarmVolumeRamp %r ignored", ramp)
            return
        await self._change_ramp(str(ramp), "AlarmVolumeRampReport")

    async def _change_ramp(self, ramp: str, event_name: str) -> None:
        try:
            with self.store.transaction():
                self.store.set(_NAMESPACE, "alarmVolumeRamp", ramp)
                self._put(Event.build(_NAMESPACE, event_name, {"alarmVolumeRamp": ramp}))
        except DeviceStoreError as exc:
            raise DirectiveError(
                f"alarm volume ramp not stored: {exc}", error_type="INTERNAL_ERROR"
            ) from exc
        self.alarm_volume_ramp = ramp

    # -- the application's API ---------------------------------------------------------------

    @property
    def active(self) -> Alert | None:
        """The alert sounding now, or None."""
        return self.schedule.active

    def alerts(self) -> list[Alert]:
        """Every alert, soonest first."""
        return self.schedule.alerts()

    async def stop(self) -> bool:
        """Stop the sounding alert (the user pressed stop); sends AlertStopped.

        Returns:
            True if an alert was sounding.
        """
        async with self._lock:
            steps = self.schedule.stop_active(StopReason.LOCAL_STOP, self._clock())
            await self._carry_out(steps)
        self._wake()
        return bool(steps)

    async def set_volume(self, volume: int) -> None:
        """Set the alert volume locally and tell AVS (VolumeChanged).

        Raises:
            ValueError: `volume` is outside 0..100.
        """
        if not 0 <= volume <= 100:
            raise ValueError("volume must be within 0..100")
        await self._change_volume(volume)

    async def set_alarm_volume_ramp(self, ramp: str) -> None:
        """Set the alarm volume ramp locally (`NONE` or `ASCENDING`) and tell AVS
        (AlarmVolumeRampChanged; Alerts 1.4).

        Raises:
            ValueError: an unknown value.
            StateError: the agent declares a version before 1.4.
        """
        if ramp not in ALARM_VOLUME_RAMPS:
            raise ValueError(f"the alarm volume ramp is one of {ALARM_VOLUME_RAMPS}")
        if not _version_at_least(self.version, (1, 4)):
            raise StateError(f"the alarm volume ramp needs Alerts 1.4 (declared {self.version})")
        await self._change_ramp(ramp, "AlarmVolumeRampChanged")

    async def adjust_volume(self, delta: int) -> None:
        """Change the alert volume by `delta` (clamped to 0..100) and tell AVS."""
        if not -100 <= delta <= 100:
            raise ValueError("delta must be within -100..100")
        await self._change_volume(max(0, min(100, self.volume + delta)))

    # -- focus and sound ---------------------------------------------------------------------

    async def focus_changed(self, channel: str, state: FocusState) -> None:
        """Foreground: the full sound; background (a dialog): ducked, the short sound with
        pauses; NONE (another alert activity took the channel): stop."""
        alert = self.schedule.active
        previous, self._focus = self._focus, state
        if alert is None or state is previous:
            return
        if state is FocusState.NONE:
            self._tasks.spawn(self.stop())
            return
        background = state is FocusState.BACKGROUND
        if previous is not FocusState.NONE or background:
            name = "AlertEnteredBackground" if background else "AlertEnteredForeground"
            self._send(name, {"token": alert.token})
        self._background = background
        self.output.mixer.duck(self.output.name, background)
        player, self._player = self._player, None
        await stop_sound(player, self.output.stop)
        self._player = asyncio.get_running_loop().create_task(self._ring(alert, background))

    def _sound_of(self, alert: Alert, background: bool) -> tuple[list[bytes], int | None, float]:
        """The PCM of one loop (in order), the loop count (None: until stopped) and the pause."""
        fmt = self.output.format
        assets = self._assets.get(alert.token, {})
        plan = _asset_plan(alert.payload)
        if background:
            chosen = plan.background if plan is not None else None
            if chosen is not None and chosen in assets:
                return [assets[chosen]], None, BACKGROUND_PAUSE
            return [alert_tone("BACKGROUND", fmt)], None, BACKGROUND_PAUSE
        loops, pause = _loops(alert.payload)
        if plan is not None and all(a in assets for a in plan.order):
            return [assets[a] for a in plan.order], loops, pause
        return [alert_tone(alert.type, fmt)], loops, pause

    async def _ring(self, alert: Alert, background: bool) -> None:
        pcm, loops, pause = self._sound_of(alert, background)
        fmt = self.output.format
        if not any(pcm):  # an asset that decoded to nothing
            pcm = [alert_tone("BACKGROUND" if background else alert.type, fmt)]
        deadline = self.schedule.ring_deadline()
        budget = (deadline - self._clock()) if deadline is not None else 0.0
        loop = asyncio.get_running_loop()
        if self._rang_from is None or self._rang_from[0] != alert.token:
            self._rang_from = (alert.token, loop.time())
        writer = _PacedWriter(
            self.output,
            max(0, int(budget * fmt.rate)) * fmt.frame_size,
            lambda first: self._apply_gain(alert, background, loop.time(), first),
        )
        pause_bytes = int(pause * fmt.rate) * fmt.frame_size
        played = 0
        try:
            while (loops is None or played < loops) and not writer.spent:
                for chunk in pcm:
                    if chunk and not writer.spent and alert.token not in self.sound_started:
                        self.sound_started[alert.token] = self._monotonic()
                        while len(self.sound_started) > MAX_CACHED_ALERTS:
                            self.sound_started.popitem(last=False)
                    await writer.write(chunk)
                played += 1
                if pause_bytes and (loops is None or played < loops):
                    await writer.silence(pause_bytes)
            await self.output.drain()
        except AudioError as exc:
            _log.error("alert %r: the output failed: %s", alert.token, exc)
        if background:
            return  # the foreground sound takes over after the dialog
        self._tasks.spawn(self._completed(alert.token, loops is not None and played >= loops))

    def ring_gain(self, alert: Alert, *, background: bool = False, elapsed: float = 0.0) -> float:
        """The gain `alert` sounds at (before ducking), `elapsed` seconds after it began: the
        alert volume, at least the volume of an active Content or Communications channel
        (16.5), times the ascending ramp for an ALARM in the foreground (Alerts 1.4)."""
        mixer, focus = self.output.mixer, self.services.focus
        gain = self.volume / 100
        for channel in LOUDNESS_FLOOR_CHANNELS:
            if focus.holder(channel) is not None:
                gain = max(gain, mixer.volume(channel))
        if self.alarm_volume_ramp == "ASCENDING" and alert.type == "ALARM" and not background:
            start, seconds = self._ramp
            gain *= start + (1.0 - start) * min(1.0, max(0.0, elapsed) / seconds)
        return gain

    def _apply_gain(self, alert: Alert, background: bool, now: float, first: bool) -> None:
        began = self._rang_from[1] if self._rang_from is not None else now
        gain = self.ring_gain(alert, background=background, elapsed=now - began)
        # The first chunk starts on a silent channel: its gain applies at once, not as a
        # ramp from whatever the channel had last.
        self.output.mixer.set_gain(self.output.name, gain, ramp=not first)

    async def _completed(self, token: str, all_loops: bool) -> None:
        async with self._lock:
            active = self.schedule.active
            player = self._player
            if active is None or active.token != token or player is None or not player.done():
                return  # stopped, replaced or restarted meanwhile
            self._player = None
            reason = StopReason.COMPLETED if all_loops else StopReason.TIMED_OUT
            await self._carry_out(self.schedule.stop_active(reason, self._clock()))
        self._wake()

    # -- assets ------------------------------------------------------------------------------

    def _prefetch(self, alert: Alert) -> None:
        plan = _asset_plan(alert.payload)
        if plan is not None and alert.token not in self._assets:
            self._tasks.spawn(self._fetch_assets(alert.token, plan))

    async def _fetch_assets(self, token: str, plan: _AssetPlan) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=ASSET_TIMEOUT,
                follow_redirects=True,
                max_redirects=5,
                verify=self._verify,
                event_hooks={"request": [refuse_cleartext]},
            )
        fmt = self.output.format
        decoded: dict[str, bytes] = {}
        for asset_id, url in plan.urls.items():
            try:
                data = await self._download(url)
                decoded[asset_id] = await asyncio.to_thread(decode_mp3, data, fmt)
            except (httpx.HTTPError, AudioError, ValueError) as exc:
                _log.warning("alert %r: asset %r unusable (%s); built-in sound", token, url, exc)
                return
        if token in self.schedule:
            self._assets[token] = decoded
            while len(self._assets) > MAX_CACHED_ALERTS:
                self._assets.popitem(last=False)

    async def _download(self, url: str) -> bytes:
        if not url.lower().startswith("https://"):
            raise ValueError("not an https URL")
        assert self._http is not None
        body = bytearray()
        async with self._http.stream("GET", url) as response:
            response.raise_for_status()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_ASSET_BYTES:
                    raise ValueError(f"larger than {MAX_ASSET_BYTES} bytes")
        return bytes(body)


class _PacedWriter:
    """Writes a ring's PCM in chunks of `RING_CHUNK`, each no earlier than `RING_LEAD` before
    real time reaches it, within a budget of bytes (the ring limit); calls `before_chunk`
    ahead of each chunk, with True for the first (the gain follows the loudness floor and
    the ramp)."""

    def __init__(
        self, output: MixerChannel, budget: int, before_chunk: Callable[[bool], None]
    ) -> None:
        self.output = output
        self.format = output.format
        self.budget = budget
        self.before_chunk = before_chunk
        self.chunk = self.format.bytes_for_ms(int(RING_CHUNK * 1000))
        self.written = 0
        self._loop = asyncio.get_running_loop()
        self._start: float | None = None

    @property
    def spent(self) -> bool:
        """True once the budget is written."""
        return self.written >= self.budget

    async def write(self, data: bytes) -> None:
        """Write `data` (cut at the budget)."""
        for pos in range(0, len(data), self.chunk):
            if self.spent:
                return
            await self._put(data[pos : pos + min(self.chunk, self.budget - self.written)])

    async def silence(self, nbytes: int) -> None:
        """Write `nbytes` of silence (cut at the budget)."""
        while nbytes > 0 and not self.spent:
            size = min(self.chunk, nbytes, self.budget - self.written)
            await self._put(bytes(size))
            nbytes -= size

    async def _put(self, piece: bytes) -> None:
        now = self._loop.time()
        if self._start is None:
            self._start = now
        ahead = self.format.duration_of(self.written) - (now - self._start) - RING_LEAD
        if ahead > 0:
            await asyncio.sleep(ahead)
        self.before_chunk(self.written == 0)
        await self.output.write(piece)
        self.written += len(piece)


class _AssetPlan:
    """The usable assets of a SetAlert (avs-protocol 16.2)."""

    __slots__ = ("background", "order", "urls")

    def __init__(self, urls: dict[str, str], order: list[str], background: str | None) -> None:
        self.urls, self.order, self.background = urls, order, background


def _asset_plan(body: dict[str, Any]) -> _AssetPlan | None:
    """The assets when they count (both lists, non-empty unique ids and urls, an order of
    known ids), else None: the built-in sound, without failing (16.2)."""
    try:
        assets = fields.seq(body, "assets", default=None, max_items=MAX_ASSETS)
        order = fields.seq(body, "assetPlayOrder", default=None, max_items=64)
        if not assets or not order:
            return None
        urls: dict[str, str] = {}
        for item in assets:
            asset_id = fields.text(item, "assetId", max_length=256)
            url = fields.text(item, "url", max_length=4096)
            if asset_id in urls or url in urls.values():
                return None
            urls[asset_id] = url
        if not all(isinstance(a, str) and a in urls for a in order):
            return None
        background = body.get("backgroundAlertAsset")
        return _AssetPlan(urls, list(order), background if background in urls else None)
    except DirectiveError:
        return None


def _loops(body: dict[str, Any]) -> tuple[int | None, float]:
    """`loopCount` (None: until stopped or the ring limit) and the pause in seconds; malformed
    values are ignored, as the SDK does."""
    try:
        loops = fields.integer(body, "loopCount", low=1, high=10_000, default=None)
    except DirectiveError:
        loops = None
    try:
        pause_ms = fields.integer(body, "loopPauseInMilliSeconds", low=0, high=3_600_000, default=0)
    except DirectiveError:
        pause_ms = 0
    return loops, pause_ms / 1000


def _brief(alert: Alert) -> dict[str, Any]:
    return {
        "token": alert.token,
        "type": alert.type,
        "scheduledTime": alert.payload.get("scheduledTime"),
    }


def _version_at_least(version: str, wanted: tuple[int, ...]) -> bool:
    return tuple(int(p) for p in version.split(".")) >= wanted
