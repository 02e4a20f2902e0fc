"""The fault matrix: every fault the simulator injects, hit while events (plain and Recognize
with streamed audio) are in flight. After each the manager is connected again, and the ledger
(the simulator's record against the results the caller saw) shows every event delivered
exactly once or reported failed, and none delivered twice. TLS and h2c, real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from avsclient.avs import ChangedReason, ConnectionStatus, EventOutcome, EventResult
from avsclient.simulator import Simulator, directive
from tests.avs.managerkit import (
    Running,
    audio_frames,
    check_ledger,
    make_event,
    recognize_event,
    running_manager,
)


@dataclass(frozen=True)
class Fault:
    """How to inject one fault and, if it lingers, how to lift it."""

    name: str
    inject: Callable[[Simulator], Awaitable[object] | object]
    # A lasting fault is lifted once the manager reported this reason (not after a fixed
    # time: on a loaded machine the effect may come late, and must not miss the fault).
    lift_on: ChangedReason | None = None
    config: tuple[tuple[str, float], ...] = ()  # manager settings for this fault
    reconnects: bool = False  # the fault must cost the link (a new SynchronizeState)
    shows: EventOutcome | None = None  # an outcome the fault must produce


async def _push(sim: Simulator) -> None:
    await sim.push_directive(directive("Speaker", "SetVolume", {"volume": 5}), timeout=20)


async def _malformed_push(sim: Simulator) -> None:
    sim.faults.malformed_multipart_next()
    await _push(sim)


async def _bad_json_push(sim: Simulator) -> None:
    sim.faults.malformed_directive_json_next()
    await _push(sim)


async def _refused_downchannels(sim: Simulator) -> None:
    sim.faults.fail_next_downchannels(2, status=503)
    sim.faults.drop_connections()


FAULTS = [
    Fault("goaway", lambda sim: sim.faults.goaway(), reconnects=True),
    Fault("goaway_then_close", lambda sim: sim.faults.goaway(close_after=0.05), reconnects=True),
    Fault(
        "goaway_error_code",
        lambda sim: sim.faults.goaway(error_code=2, close_after=0.0),
        reconnects=True,
    ),
    Fault("reset_downchannel", lambda sim: sim.faults.reset_downchannel(), reconnects=True),
    Fault("drop_connections", lambda sim: sim.faults.drop_connections(), reconnects=True),
    Fault(
        "ignore_pings",
        lambda sim: sim.faults.ignore_pings(),
        lift_on=ChangedReason.PING_TIMEOUT,
        reconnects=True,
        config=(("ping_interval", 0.1),),
    ),
    Fault("fail_403", lambda sim: sim.faults.fail_next_events(1, status=403)),
    Fault(
        "fail_403_repeated",  # the same event is rejected again after the token refresh
        lambda sim: sim.faults.fail_next_events(10, status=403),
        reconnects=True,
        shows=EventOutcome.INVALID_AUTH,
    ),
    Fault(
        "fail_400",
        lambda sim: sim.faults.fail_next_events(2, status=400),
        shows=EventOutcome.BAD_REQUEST,
    ),
    Fault(
        "fail_429",
        lambda sim: sim.faults.fail_next_events(2, status=429),
        shows=EventOutcome.THROTTLED,
    ),
    Fault(
        "fail_500",
        lambda sim: sim.faults.fail_next_events(2, status=500),
        shows=EventOutcome.SERVER_ERROR,
    ),
    Fault(
        "fail_503",
        lambda sim: sim.faults.fail_next_events(2, status=503),
        shows=EventOutcome.REFUSED,
    ),
    Fault("refused_downchannels", _refused_downchannels, reconnects=True),
    Fault(
        "delay_responses",  # no answer while it lasts: longer than any timeout here
        lambda sim: sim.faults.delay_responses(60.0),
        lift_on=ChangedReason.PING_TIMEOUT,  # the stalled event pings at once; no answer
        reconnects=True,
        shows=EventOutcome.TIMEDOUT,
        config=(("event_timeout", 1.0),),
    ),
    Fault("malformed_multipart_downchannel", _malformed_push, reconnects=True),
    Fault(
        "malformed_multipart_response",
        lambda sim: sim.faults.malformed_multipart_next(),
        shows=EventOutcome.PROTOCOL_ERROR,
    ),
    Fault("malformed_json", _bad_json_push),
]


async def workload(run: Running, count: int) -> tuple[list[str], list[EventResult]]:
    """`count` events, every third a Recognize streaming audio, started 10 ms apart."""
    ids: list[str] = []
    tasks: list[asyncio.Task[EventResult]] = []
    for index in range(count):
        if index % 3 == 0:
            event = recognize_event()
            audio: AsyncIterator[bytes] | None = audio_frames(8, pause=0.002)
        else:
            event, audio = make_event(f"E{index}"), None
        ids.append(event["event"]["header"]["messageId"])
        tasks.append(asyncio.create_task(run.send(event, audio=audio)))
        await asyncio.sleep(0.01)
    return ids, list(await asyncio.gather(*tasks))


def accepted_syncs(sim: Simulator) -> list[int]:
    return [e.connection_id for e in sim.events if e.name == "SynchronizeState" and e.status < 300]


@pytest.fixture(params=["tls", "h2c"])
async def sim(request: pytest.FixtureRequest) -> AsyncIterator[Simulator]:
    async with Simulator(tls=request.param == "tls") as simulator:
        simulator.script.recognize(stop_capture_after=None)
        yield simulator


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
async def test_fault_leaves_a_connected_manager_and_a_clean_ledger(
    sim: Simulator, fault: Fault
) -> None:
    """Inject the fault between events; then connected again, every event accounted for."""
    # Timeouts only the lasting faults reach. They are short enough to keep the test quick,
    # and long enough that a healthy exchange on a loaded machine never reaches them.
    settings = {"ping_timeout": 1.0, **dict(fault.config)}
    async with running_manager(sim, **settings) as run:
        await run.manager.wait_connected(20)
        before = asyncio.create_task(workload(run, 3))
        await asyncio.sleep(0.015)
        seen = len(run.statuses)
        outcome = fault.inject(sim)
        if asyncio.iscoroutine(outcome):
            await outcome
        during = asyncio.create_task(workload(run, 4))
        if fault.lift_on is not None:
            reason = fault.lift_on
            async with asyncio.timeout(20):
                while not any(r is reason for _, r in run.statuses[seen:]):
                    await asyncio.sleep(0.005)
            sim.faults.clear()
        results = [await before, await during]
        if fault.reconnects:
            async with asyncio.timeout(20):
                while len(accepted_syncs(sim)) < 2:
                    await asyncio.sleep(0.005)
        await run.manager.wait_connected(20)
        assert run.manager.status is ConnectionStatus.CONNECTED
        ids, after = await workload(run, 3)
        assert all(r.ok for r in after), [r.outcome for r in after]
        sent = [*results[0][0], *results[1][0], *ids]
        check_ledger(sim, run.results, sent)
        assert (len(accepted_syncs(sim)) > 1) is fault.reconnects
        if fault.shows is not None:
            assert fault.shows in {r.outcome for r in run.results}
        # The downchannel is live again: a pushed directive arrives.
        pushed = len(run.sink.parts_of("downchannel"))
        await _push(sim)
        async with asyncio.timeout(20):
            while len(run.sink.parts_of("downchannel")) <= pushed:
                await asyncio.sleep(0.005)
