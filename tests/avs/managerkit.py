"""What the connection-manager tests share: a recording sink, event builders, a manager
running against the simulator with a real LWA token provider, and the ledger check."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from avsclient._retry import NO_JITTER
from avsclient.auth import LWAConfig, LWAHttpClient, RefreshingTokenProvider
from avsclient.auth.lwa import LWA_RETRY
from avsclient.avs.manager import (
    ChangedReason,
    ConnectionManager,
    ConnectionStatus,
    EventOutcome,
    EventResult,
    ResponseSource,
)
from avsclient.config import ClientConfig
from avsclient.multipart import Headers
from avsclient.simulator import DEFAULT_CLIENT_ID, Simulator

__all__ = [
    "FAST_BACKOFF",
    "RecordingSink",
    "Running",
    "audio_frames",
    "check_ledger",
    "make_event",
    "running_manager",
    "sim_config",
]

#: Back-off in milliseconds: the schedule's shape without the wait.
FAST_BACKOFF = (0.005, 0.01, 0.02, 0.04, 0.08, 0.1)

_LWA_NO_JITTER = replace(LWA_RETRY, jitter=NO_JITTER)


@dataclass
class RecordingSink:
    """A `ResponseSink` that keeps every call, with JSON parts joined per source."""

    calls: list[tuple[str, ResponseSource]] = field(default_factory=list)
    parts: dict[ResponseSource, list[bytes]] = field(default_factory=dict)
    ended: dict[ResponseSource, BaseException | None] = field(default_factory=dict)
    _current: dict[ResponseSource, bytearray] = field(default_factory=dict)
    directive_arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def part_started(self, source: ResponseSource, headers: Headers) -> None:
        self.calls.append(("part_started", source))
        self._current[source] = bytearray()

    async def part_data(self, source: ResponseSource, data: memoryview) -> None:
        self.calls.append(("part_data", source))
        self._current[source] += data

    async def part_ended(self, source: ResponseSource) -> None:
        self.calls.append(("part_ended", source))
        self.parts.setdefault(source, []).append(bytes(self._current.pop(source)))
        self.directive_arrived.set()

    async def response_ended(self, source: ResponseSource, error: BaseException | None) -> None:
        self.calls.append(("response_ended", source))
        self._current.pop(source, None)
        self.ended[source] = error

    def parts_of(self, kind: str) -> list[bytes]:
        return [p for source, parts in self.parts.items() if source.kind == kind for p in parts]


def make_event(
    name: str = "Ping", namespace: str = "Test", *, context: list[Any] | None = None
) -> dict[str, Any]:
    """An event document with a fresh messageId."""
    return {
        "context": context or [],
        "event": {
            "header": {"namespace": namespace, "name": name, "messageId": str(uuid.uuid4())},
            "payload": {},
        },
    }


def recognize_event(profile: str = "CLOSE_TALK") -> dict[str, Any]:
    """A SpeechRecognizer.Recognize event with a fresh messageId and dialogRequestId."""
    event = make_event("Recognize", "SpeechRecognizer")
    event["event"]["header"]["dialogRequestId"] = str(uuid.uuid4())
    event["event"]["payload"] = {
        "profile": profile,
        "format": "AUDIO_L16_RATE_16000_CHANNELS_1",
    }
    return event


async def audio_frames(count: int, *, pause: float = 0.0, size: int = 320) -> AsyncIterator[bytes]:
    """`count` frames of PCM silence, `pause` seconds apart."""
    for index in range(count):
        yield bytes([index % 256]) * size
        if pause:
            await asyncio.sleep(pause)


def sim_config(sim: Simulator, **overrides: Any) -> ClientConfig:
    """A client config for the simulator, with millisecond back-off and short timeouts; AVS
    may move it to the simulator's host (System.SetEndpoint) and nowhere else."""
    values: dict[str, Any] = {
        "endpoint": sim.url,
        "endpoint_hosts": (sim.host,),
        "ca_file": str(sim.ca_file) if sim.ca_file is not None else None,
        "backoff": FAST_BACKOFF,
        "event_timeout": 2.0,
        "ping_timeout": 1.0,
        "connect_timeout": 5.0,
        "queue_timeout": 10.0,
    }
    values.update(overrides)
    return ClientConfig(**values)


@dataclass
class Running:
    """A started manager and what it reported."""

    manager: ConnectionManager
    sink: RecordingSink
    statuses: list[tuple[ConnectionStatus, ChangedReason]]
    results: list[EventResult]
    tokens: RefreshingTokenProvider

    async def send(self, event: dict[str, Any], **kw: Any) -> EventResult:
        result = await self.manager.send_event(event, **kw)
        self.results.append(result)
        return result

    async def wait_status(
        self, predicate: Callable[[ConnectionStatus, ChangedReason], bool], timeout: float = 20.0
    ) -> None:
        async with asyncio.timeout(timeout):
            while not any(predicate(s, r) for s, r in self.statuses):
                await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def running_manager(
    sim: Simulator,
    *,
    context: Callable[[], Any] | None = None,
    start: bool = True,
    **overrides: Any,
) -> AsyncIterator[Running]:
    """A ConnectionManager on `sim` with a real LWA refresh-token provider (started)."""
    http = LWAHttpClient(sim.url, ca_file=sim.ca_file if sim.ca_file else None)
    tokens = RefreshingTokenProvider(
        LWAConfig(client_id=DEFAULT_CLIENT_ID, url=sim.url, retry=_LWA_NO_JITTER),
        refresh_token=sim.lwa.issue_refresh_token(),
        http=http,
    )
    sink = RecordingSink()
    statuses: list[tuple[ConnectionStatus, ChangedReason]] = []
    extra = {k: overrides.pop(k) for k in ("random", "endpoint_store") if k in overrides}
    manager = ConnectionManager(
        sim_config(sim, **overrides),
        tokens,
        sink,
        context=context or (lambda: [{"header": {"namespace": "T", "name": "S"}, "payload": {}}]),
        on_status=lambda status, reason: statuses.append((status, reason)),
        **extra,
    )
    try:
        if start:
            await manager.start()
        yield Running(manager, sink, statuses, [], tokens)
    finally:
        await manager.aclose()
        await tokens.aclose()
        await http.aclose()


def delivered(sim: Simulator) -> dict[str, int]:
    """How many times the simulator accepted (2xx) each messageId."""
    counts: dict[str, int] = {}
    for event in sim.events:
        if 200 <= event.status < 300:
            counts[event.message_id] = counts.get(event.message_id, 0) + 1
    return counts


def check_ledger(sim: Simulator, results: list[EventResult], sent: list[str]) -> None:
    """Each event the caller sent: delivered exactly once (and reported so), or reported failed
    and delivered at most once; never delivered twice, and one result per send."""
    counts = delivered(sim)
    assert len(results) == len(sent), "every send_event returns exactly one result"
    by_id = {r.message_id: r for r in results}
    assert set(by_id) == set(sent), "results match the events sent"
    for message_id in sent:
        result = by_id[message_id]
        times = counts.get(message_id, 0)
        assert times <= 1, f"{message_id} was delivered {times} times"
        if result.outcome in (EventOutcome.SUCCESS, EventOutcome.SUCCESS_NO_CONTENT):
            assert times == 1, f"{message_id} reported {result.outcome.name} but not delivered"
        else:
            assert result.error is not None or result.status is not None, result
