"""Defect 3: waiting for an HTTP/2 stream slot must have a deadline.

SETTINGS_MAX_CONCURRENT_STREAMS=0 from the start must fail the connection attempt within
`connect_timeout` and retry; a limit lowered to 1 after connecting (the downchannel takes the
only slot) must still give every event exactly one outcome within its timeout, and a ping
that cannot open a stream must count as a failed ping (the link is replaced).
"""

from __future__ import annotations

import asyncio
import time

from .kit import event_document, hostile_client, hostile_config, wait_until
from .server import HostileServer


async def test_no_stream_slots_at_connect_fails_the_attempt_and_retries(
    server: HostileServer,
) -> None:
    """MAX_CONCURRENT_STREAMS=0: the downchannel can never open; the attempt ends at
    connect_timeout and a new connection is tried."""
    server.behaviour.max_concurrent_streams = 0
    config = hostile_config(server, connect_timeout=1.5)
    async with hostile_client(server, config) as client:
        retried = await wait_until(lambda: len(server.connections) >= 2, timeout=4.0)
        assert client.status.name != "CONNECTED"
    assert retried, f"{len(server.connections)} connection(s) in 4 s with connect_timeout 1.5 s"


async def test_events_get_an_outcome_when_the_stream_limit_drops(server: HostileServer) -> None:
    """Limit lowered to 1 after connecting: three events each end within their timeout."""
    server.behaviour.lower_streams_after_sync = 1
    config = hostile_config(server, event_timeout=1.5, queue_timeout=1.5)
    async with hostile_client(server, config) as client:
        await client.wait_connected(5)
        await asyncio.sleep(0.2)  # the SETTINGS frame is acknowledged
        started = time.monotonic()

        async def send() -> tuple[str, float]:
            result = await client.manager.send_event(event_document())
            return result.outcome.name, time.monotonic() - started

        sends = [asyncio.create_task(send()) for _ in range(3)]
        done, pending = await asyncio.wait(sends, timeout=5.0)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        results = [task.result() for task in done]
    assert not pending, f"{len(pending)} of 3 events had no outcome after 5 s: {results}"
    # Each event: at most its queue wait plus its event timeout, plus scheduling slack.
    assert all(elapsed <= 1.5 + 1.5 + 1.0 for _, elapsed in results), results


async def test_a_ping_without_a_stream_slot_fails_and_the_link_is_replaced(
    server: HostileServer,
) -> None:
    """Limit lowered to 1 after connecting: the idle ping cannot open its stream; within
    ping_interval + ping_timeout (+ slack) the client gives the link up and reconnects."""
    server.behaviour.lower_streams_after_sync = 1
    config = hostile_config(server, ping_interval=0.5, ping_timeout=1.0)
    async with hostile_client(server, config) as client:
        await client.wait_connected(5)
        replaced = await wait_until(lambda: len(server.connections) >= 2, timeout=0.5 + 1.0 + 2.5)
    assert replaced, "the link stayed in use although its ping never went out"
