"""A Hypothesis state machine of the connection manager's lifecycle against the hostile
server: random sequences of server behaviours (GOAWAY, connection errors, dropped
connections, stalled events, stream limits at connect and after it) and events, checking
after every step that

- the reconnect rate stays within what the back-off allows (a link ending before it proved
  healthy counts as a failure, so only a healthy link restarts the delay table);
- every event ends with exactly one outcome within its queue and event timeouts;
- closing leaves no task behind.

Real sockets with short timeouts (tens of milliseconds) keep it to seconds; the examples and
steps are bounded.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from avsclient import AVSClient
from avsclient.auth import StaticTokenProvider

from .kit import TOKEN, event_document, hostile_config
from .server import HostileServer

BACKOFF = (0.02, 0.1, 0.4, 1.0)
HEALTHY_AFTER = 1.0
TIMEOUT = 0.5  # connect, event, queue and ping timeouts
#: Scheduling slack on top of an event's deadline (2 shared cores).
SLACK = 1.0
#: How long the client lives with each server behaviour before the next step.
STEP = 0.2


def max_connections(elapsed: float) -> float:
    """What the back-off allows in `elapsed` seconds: the first connection; one per entry of
    the delay table, for its first pass and again after each healthy period (a connection
    that stayed up at least HEALTHY_AFTER); beyond the table one per last entry."""
    passes = elapsed / HEALTHY_AFTER + 1
    return 1 + passes * len(BACKOFF) + elapsed / BACKOFF[-1]


class Lifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.server: HostileServer = self.runner.run(self._open_server())
        config = hostile_config(
            self.server,
            backoff=BACKOFF,
            healthy_after=HEALTHY_AFTER,
            connect_timeout=TIMEOUT,
            event_timeout=TIMEOUT,
            queue_timeout=TIMEOUT,
            ping_timeout=TIMEOUT,
            liveness_timeout=TIMEOUT,
        )
        self.client = AVSClient(config, StaticTokenProvider(TOKEN))
        self.runner.run(self.client.start())
        self.started = time.monotonic()
        self.events: list[tuple[float, asyncio.Task[Any]]] = []

    async def _open_server(self) -> HostileServer:
        server = HostileServer(tls=True)
        await server.__aenter__()
        return server

    def _run_for(self, seconds: float) -> None:
        self.runner.run(asyncio.sleep(seconds))

    # -- server behaviours -------------------------------------------------------------------

    @rule(delay_ms=st.sampled_from([None, 0, 30]))
    def goaway_after_connect(self, delay_ms: int | None) -> None:
        self.server.behaviour.goaway_after_sync_ms = delay_ms
        self._run_for(STEP)

    @rule(delay_ms=st.sampled_from([None, 0, 30]))
    def protocol_error_after_connect(self, delay_ms: int | None) -> None:
        self.server.behaviour.protocol_error_after_sync_ms = delay_ms
        self._run_for(STEP)

    @rule()
    def drop_connections(self) -> None:
        for conn in list(self.server._live):
            conn.close()
        self._run_for(STEP)

    @rule(hold=st.booleans())
    def stall_events(self, hold: bool) -> None:
        self.server.behaviour.hold_events = hold
        self._run_for(STEP)

    @rule(at_connect=st.sampled_from([None, 0]), after=st.sampled_from([None, 1]))
    def stream_limits(self, at_connect: int | None, after: int | None) -> None:
        self.server.behaviour.max_concurrent_streams = at_connect
        self.server.behaviour.lower_streams_after_sync = after
        self._run_for(STEP)

    @rule()
    def well_behaved(self) -> None:
        behaviour = self.server.behaviour
        behaviour.goaway_after_sync_ms = behaviour.protocol_error_after_sync_ms = None
        behaviour.max_concurrent_streams = behaviour.lower_streams_after_sync = None
        behaviour.hold_events = False
        self._run_for(STEP)

    # -- the application ---------------------------------------------------------------------

    @precondition(lambda self: len(self.events) < 12)
    @rule()
    def send_event(self) -> None:
        async def start() -> asyncio.Task[Any]:
            return asyncio.create_task(self.client.manager.send_event(event_document()))

        self.events.append((time.monotonic(), self.runner.run(start())))

    @rule(seconds=st.sampled_from([0.05, 0.3, 0.6]))
    def time_passes(self, seconds: float) -> None:
        self._run_for(seconds)

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def reconnect_rate_is_bounded(self) -> None:
        elapsed = time.monotonic() - self.started
        connections = len(self.server.connections)
        assert connections <= max_connections(elapsed), (
            f"{connections} connections in {elapsed:.2f} s"
        )

    @invariant()
    def every_event_ends_within_its_deadline(self) -> None:
        now = time.monotonic()
        for sent_at, task in self.events:
            if now - sent_at > 2 * TIMEOUT + SLACK:
                assert task.done(), f"an event has no outcome {now - sent_at:.2f} s after it"

    def teardown(self) -> None:
        async def close() -> list[asyncio.Task[Any]]:
            await self.client.aclose()
            await self.server.aclose()
            await asyncio.sleep(0)
            current = asyncio.current_task()
            return [t for t in asyncio.all_tasks() if t is not current and not t.done()]

        try:
            # Every event still running ends with exactly one result once the client closes.
            left = self.runner.run(close())
            results = [task.result() for _, task in self.events]
            assert len(results) == len(self.events)
            assert all(hasattr(result, "outcome") for result in results)
            assert left == [], f"tasks left after close: {left}"
        finally:
            self.runner.close()


Lifecycle.TestCase.settings = settings(
    max_examples=6,
    stateful_step_count=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_connection_lifecycle = Lifecycle.TestCase
