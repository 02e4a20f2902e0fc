"""Shared parts of the Alerts tests: a recording event sender, a settable clock, a paced sink
and an agent wired to real services (focus, mixer, a real device store file)."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from avsclient.activity import UserActivity
from avsclient.agents import AgentServices, AlertsAgent, Messenger
from avsclient.attachments import AttachmentStore
from avsclient.audio import AudioFormat, AudioSink, Mixer
from avsclient.avs.manager import EventOutcome, EventResult
from avsclient.dialog import DialogManager
from avsclient.focus import FocusManager
from avsclient.messages import Directive
from avsclient.store import DeviceStore

FMT = AudioFormat(rate=8000)


class Clock:
    """Wall-clock seconds that move only when told (and a monotonic clock beside it)."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now
        self.mono = 1000.0

    def __call__(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.mono += seconds

    def step(self, seconds: float) -> None:
        """The wall clock jumps; the monotonic one does not."""
        self.now += seconds


class RecordingSender:
    """Accepts events (204) or fails them with `fail`; records what was accepted."""

    def __init__(self) -> None:
        self.accepted: list[dict[str, Any]] = []
        self.attempts: list[str] = []
        self.fail: EventOutcome | None = None
        self.changed = asyncio.Event()

    async def send_event(self, event: Mapping[str, Any], *, audio: Any = None) -> EventResult:
        mid = event["event"]["header"]["messageId"]
        self.attempts.append(mid)
        await asyncio.sleep(0)
        if self.fail is not None:
            return EventResult(outcome=self.fail, message_id=mid)
        self.accepted.append(dict(event))
        self.changed.set()
        return EventResult(outcome=EventOutcome.SUCCESS_NO_CONTENT, status=204, message_id=mid)

    def names(self) -> list[str]:
        return [e["event"]["header"]["name"] for e in self.accepted]

    async def wait_for(self, name: str, count: int = 1, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while self.names().count(name) < count:
                self.changed.clear()
                await self.changed.wait()


class PacedSink(AudioSink):
    """Plays like a device at `speed` x real time; keeps every sample written."""

    def __init__(self, fmt: AudioFormat = FMT, speed: float = 1.0) -> None:
        self._format, self.speed = fmt, speed
        self.data = bytearray()
        self.writes: list[tuple[float, int]] = []  # (loop time, bytes so far)

    @property
    def format(self) -> AudioFormat:
        return self._format

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append((asyncio.get_running_loop().time(), len(self.data)))
        self.data += data
        await asyncio.sleep(self._format.duration_of(len(data)) / self.speed)

    async def drain(self) -> None:
        return

    async def stop(self) -> None:
        return

    async def aclose(self) -> None:
        return


def iso(when: float) -> str:
    return datetime.datetime.fromtimestamp(when, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def set_alert(token: str, when: float, kind: str = "TIMER", **extra: Any) -> Directive:
    payload = {"token": token, "type": kind, "scheduledTime": iso(when), **extra}
    return directive("SetAlert", payload)


def directive(name: str, payload: dict[str, Any]) -> Directive:
    return Directive(
        namespace="Alerts",
        name=name,
        message_id=f"m-{name}-{id(payload)}",
        dialog_request_id=None,
        payload=payload,
    )


def make_agent(
    store_path: Path,
    clock: Clock,
    sender: RecordingSender,
    *,
    sink: AudioSink | None = None,
    focus: FocusManager | None = None,
    **options: Any,
) -> tuple[AlertsAgent, DeviceStore, Mixer]:
    """An Alerts agent over a real store file, attached to real services (not started)."""
    store = DeviceStore.open(store_path)
    mixer = Mixer(sink or PacedSink(speed=50.0))
    agent = AlertsAgent(
        mixer.channel("Alert"),
        store=store,
        clock=clock,
        monotonic=clock.monotonic,
        **options,
    )
    agent.attach(
        AgentServices(
            messenger=Messenger(sender, providers=[agent], notify=lambda e: None),
            dialogs=DialogManager(),
            focus=focus or FocusManager(),
            activity=UserActivity(),
            attachments=AttachmentStore(),
            set_endpoint=_no_endpoint,
        )
    )
    return agent, store, mixer


async def _no_endpoint(url: str) -> None:
    raise AssertionError("no endpoint change expected")


async def settle(agent: AlertsAgent) -> None:
    """Let the agent's driver run what is due now."""
    agent._wake()
    for _ in range(20):
        await asyncio.sleep(0)
    async with agent._lock:
        pass


def played_like(recorded: bytes | bytearray, tone: bytes, gain: float, skip_ms: int = 30) -> bool:
    """True when `recorded` starts with `tone` at `gain` (after the mixer's gain ramp)."""
    a = np.frombuffer(bytes(recorded[: len(tone)]), dtype=np.int16).astype(np.float64)
    b = np.frombuffer(tone, dtype=np.int16).astype(np.float64) * gain
    if len(a) < len(b):
        return False
    skip = FMT.rate * skip_ms // 1000
    return bool(np.max(np.abs(a[skip:] - b[skip:])) <= 2.0)
