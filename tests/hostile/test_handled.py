"""Misbehaviours the client already survives, checked against the hostile server: each
ends in a recovery or a clean, bounded failure.

The first tests are controls: they show that the server's well-behaved paths work, so that
a failing strict-xfail test elsewhere fails for its defect and not for the server.
"""

from __future__ import annotations

import asyncio
import time

from .kit import event_document, hostile_client, hostile_config, tone, wait_until
from .server import HostileServer


async def test_a_well_behaved_server_gets_a_working_client(server: HostileServer) -> None:
    """Control: connect, a pushed directive, a Recognize with a scripted reply, a ping; the
    token only ever travels over TLS."""
    server.behaviour.recognize_reply = [("Speaker", "SetVolume", {"volume": 61})]
    config = hostile_config(server, ping_interval=0.3)
    async with hostile_client(server, config) as client:
        await client.wait_connected(5)
        await server.push_directive("Speaker", "SetVolume", {"volume": 33})
        pushed = await server.wait_for_event("Speaker", "VolumeChanged", timeout=5)
        dialog = await asyncio.wait_for(client.recognize(tone(0.3), profile="CLOSE_TALK"), 10)
        answered = await server.wait_for_event("Speaker", "VolumeChanged", nth=2, timeout=5)
        pinged = await wait_until(
            lambda: any(r.path == "/ping" for r in server.requests), timeout=3
        )
    assert pushed.payload["volume"] == 33
    assert dialog.result is not None and dialog.result.outcome.name == "SUCCESS"
    assert answered.payload["volume"] == 61
    assert pinged
    assert len(server.connections) == 1
    assert all(
        r.tls and r.headers["authorization"] == "Bearer hostile-test-token-0123456789"
        for r in server.requests
    )


async def test_an_unanswered_ping_replaces_the_link(server: HostileServer) -> None:
    """Control for the stream-slot ping test: a ping that gets no answer within ping_timeout
    makes the client reconnect."""
    server.behaviour.hold_pings = True
    config = hostile_config(server, ping_interval=0.5, ping_timeout=1.0)
    async with hostile_client(server, config):
        replaced = await wait_until(lambda: len(server.connections) >= 2, timeout=0.5 + 1.0 + 2.5)
    assert replaced


async def test_an_unanswered_event_times_out(server: HostileServer) -> None:
    """Control for the stream-slot event test: an event stream that gets no answer ends
    TIMEDOUT after event_timeout, once."""
    server.behaviour.hold_events = True
    async with hostile_client(server, hostile_config(server, event_timeout=1.0)) as client:
        await client.wait_connected(5)
        started = time.monotonic()
        result = await asyncio.wait_for(client.manager.send_event(event_document()), 5)
        elapsed = time.monotonic() - started
    assert result.outcome.name == "TIMEDOUT"
    assert elapsed < 1.0 + 2.0


async def _never_connects_and_backs_off(server: HostileServer, *, window: float = 2.0) -> int:
    """Run a client for `window` s against a refusing server; check it neither connects nor
    hammers the server, and closes fast. Returns the connection count."""
    async with hostile_client(server) as client:
        connected = await wait_until(lambda: client.status.name == "CONNECTED", timeout=window)
        count = len(server.connections)
        closing = time.monotonic()
        await client.aclose()
        shutdown = time.monotonic() - closing
    assert not connected
    # Back-off 0.05, 0.1, 0.2, 0.4, 0.4, ...: about 7 attempts fit in 2 s (no reset).
    assert 1 <= count <= 12, f"{count} connections in {window} s"
    assert shutdown < 2.0
    return count


async def test_403_forever_is_a_clean_bounded_failure(server: HostileServer) -> None:
    """Every request answered 403: never connected, attempts follow the back-off."""
    server.behaviour.status = 403
    await _never_connects_and_backs_off(server)


async def test_500_forever_is_a_clean_bounded_failure(server: HostileServer) -> None:
    """Every request answered 500: the same."""
    server.behaviour.status = 500
    await _never_connects_and_backs_off(server)


async def test_a_downchannel_of_the_wrong_content_type_is_refused(server: HostileServer) -> None:
    """A downchannel answered 200 text/html: the attempts fail and back off, and the client
    connects once the server behaves."""
    server.behaviour.downchannel_content_type = "text/html; charset=utf-8"
    await _never_connects_and_backs_off(server, window=1.5)
    server.behaviour.downchannel_content_type = None
    async with hostile_client(server) as client:
        await client.wait_connected(5)


async def test_a_silent_server_fails_each_attempt_at_its_deadline(server: HostileServer) -> None:
    """TCP and TLS accepted, then no HTTP/2 at all: each attempt ends at connect_timeout and
    is retried; closing the client is immediate."""
    server.behaviour.silent = True
    config = hostile_config(server, connect_timeout=0.5)
    async with hostile_client(server, config) as client:
        retried = await wait_until(lambda: len(server.connections) >= 3, timeout=4.0)
        assert client.status.name != "CONNECTED"
        closing = time.monotonic()
        await client.aclose()
        shutdown = time.monotonic() - closing
    assert retried, f"{len(server.connections)} connection(s) in 4 s"
    assert shutdown < 2.0
