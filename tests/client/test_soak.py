"""A time-compressed soak: a fault every few simulated seconds for a simulated hour.

Time is compressed through the configuration, not by mocking the network: every duration of
the manager (back-off table, ping interval) is scaled by `SCALE` real seconds per simulated
second, and the test waits `FAULT_EVERY * SCALE` between faults. Each fault that costs the link
must be followed by a reconnect (a new accepted SynchronizeState); every event is accounted
for in the ledger; traced memory after the hour is within 1 MiB of what it was after warm-up.

Memory is sampled after each ledger batch, once the records are dropped, so every sample sees
the same state. The largest single step between two samples is left out of the growth: the
interpreter grows some tables once, in one jump, at a moment that depends on what the test
session imported before (its interned-string table doubled by ~1.8 MiB when a module was first
imported during the hour), whereas a leak grows a little with every fault, in every step.

By default (CI) the hour runs over h2c with one simulated second = 2 ms, well under a minute.
`AVS_SOAK=long` runs it over TLS with one simulated second = 10 ms (a few minutes).
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import os
import tracemalloc

from avsclient.avs import ConnectionStatus, EventResult
from avsclient.config import DEFAULT_BACKOFF
from avsclient.simulator import Simulator
from tests.avs.managerkit import (
    audio_frames,
    check_ledger,
    make_event,
    recognize_event,
    running_manager,
)

LONG = os.environ.get("AVS_SOAK", "") == "long"
SCALE = 0.01 if LONG else 0.002  # real seconds per simulated second
SIMULATED_HOUR = 3600.0
FAULT_EVERY = 5.0  # simulated seconds between faults
LEDGER_BATCH = 60  # faults between ledger checks (the records are then dropped)
WARM_UP = LEDGER_BATCH  # faults before the memory baseline is taken

# (name, costs the link)
FAULT_CYCLE = [
    ("drop_connections", True),
    ("goaway", True),
    ("reset_downchannel", True),
    ("fail_503", False),
    ("goaway_close", True),
    ("fail_403", False),
]


def inject(sim: Simulator, name: str) -> None:
    faults = sim.faults
    if name == "drop_connections":
        faults.drop_connections()
    elif name == "goaway":
        faults.goaway()
    elif name == "goaway_close":
        faults.goaway(close_after=0.0)
    elif name == "reset_downchannel":
        faults.reset_downchannel()
    elif name == "fail_503":
        faults.fail_next_events(1, status=503)
    elif name == "fail_403":
        faults.fail_next_events(1, status=403)
    else:  # pragma: no cover - a typo in FAULT_CYCLE
        raise AssertionError(name)


def accepted_syncs(sim: Simulator) -> int:
    return sum(1 for e in sim.events if e.name == "SynchronizeState" and e.status < 300)


async def test_an_hour_of_faults_reconnects_every_time_with_flat_memory() -> None:
    """720 faults in a simulated hour: always connected again, ledger clean, memory flat."""
    faults_total = int(SIMULATED_HOUR / FAULT_EVERY)
    quiet = logging.getLogger("avsclient")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # warnings per fault would pile up in pytest's log capture
    tracemalloc.start()
    try:
        async with (
            Simulator(tls=LONG) as sim,
            running_manager(
                sim,
                backoff=tuple(d * SCALE for d in DEFAULT_BACKOFF),
                ping_interval=300 * SCALE,
                ping_timeout=max(30 * SCALE, 0.5),
                event_timeout=max(30 * SCALE, 2.0),
            ) as run,
        ):
            sim.script.recognize(stop_capture_after=None)
            await run.manager.wait_connected(10)
            samples: list[int] = []
            sent: list[str] = []
            reconnects = 0
            for index in range(faults_total):
                name, costs_link = FAULT_CYCLE[index % len(FAULT_CYCLE)]
                syncs_before = accepted_syncs(sim)
                inject(sim, name)
                events = [make_event(f"Soak{index % 7}")]
                if index % 10 == 0:
                    events.append(recognize_event())
                results: list[EventResult] = await asyncio.gather(
                    *(
                        run.send(
                            e,
                            audio=audio_frames(5)
                            if e["event"]["header"]["name"] == "Recognize"
                            else None,
                        )
                        for e in events
                    )
                )
                sent += [e["event"]["header"]["messageId"] for e in events]
                assert len(results) == len(events)
                if costs_link:
                    async with asyncio.timeout(10):
                        while accepted_syncs(sim) <= syncs_before:
                            await asyncio.sleep(0.001)
                    reconnects += 1
                await run.manager.wait_connected(10)
                assert run.manager.status is ConnectionStatus.CONNECTED
                await asyncio.sleep(FAULT_EVERY * SCALE)
                if (index + 1) % LEDGER_BATCH == 0:
                    check_ledger(sim, run.results, sent)
                    sim.events.clear()
                    sim.lwa.requests.clear()
                    run.results.clear()
                    run.sink.calls.clear()
                    run.sink.parts.clear()
                    run.sink.ended.clear()
                    run.statuses.clear()
                    sent = []
                    if index + 1 >= WARM_UP:
                        gc.collect()
                        samples.append(tracemalloc.get_traced_memory()[0])
            check_ledger(sim, run.results, sent)
            expected = sum(1 for i in range(faults_total) if FAULT_CYCLE[i % 6][1])
            assert reconnects == expected
            steps = [after - before for before, after in itertools.pairwise(samples)]
            assert len(steps) == (faults_total - WARM_UP) // LEDGER_BATCH
            growth = samples[-1] - samples[0] - max(0, *steps)
            assert growth < 1024 * 1024, f"traced memory grew by {growth} bytes (steps {steps})"
    finally:
        tracemalloc.stop()
        quiet.setLevel(level)
