"""Every fault the simulator injects, seen from a raw h2 client."""

from __future__ import annotations

import asyncio
import json

import h2.errors
import pytest

from avsclient.simulator import Simulator, directive
from tests.simulator.conftest import (
    FORM_DATA,
    auth,
    event_body,
    event_metadata,
    post_event,
    recognize,
)
from tests.simulator.rawclient import RawClient, parse_related
from tests.simulator.test_server import open_downchannel


async def test_goaway_lets_open_streams_finish_and_refuses_new_ones(
    sim: Simulator, client: RawClient, token: str
) -> None:
    """GOAWAY names the last stream; an event in flight completes, a new stream is refused."""
    downchannel, _ = await open_downchannel(client, token)
    in_flight = client.request(
        "POST", "/v20160207/events", auth(token, **{"content-type": FORM_DATA}), end=False
    )
    await asyncio.sleep(0.05)  # let the HEADERS reach the simulator before GOAWAY
    assert sim.faults.goaway() == 1
    async with asyncio.timeout(5):
        goaway = await client.goaway
    assert goaway.error_code == 0
    assert goaway.last_stream_id == in_flight
    await client.send(in_flight, event_body(event_metadata("System", "SynchronizeState")), end=True)
    assert (await client.response(in_flight))[":status"] == "204"
    assert sim.events[-1].name == "SynchronizeState"
    assert not client.streams[downchannel].ended.done()  # still open until the client leaves


async def test_goaway_refuses_streams_above_last_stream_id(sim: Simulator, token: str) -> None:
    """A client that ignores GOAWAY gets RST_STREAM REFUSED_STREAM for new streams."""
    raw = await RawClient.connect(sim)
    try:
        sid = raw.request("GET", "/ping", auth(token))
        await raw.response(sid)
        sim.faults.goaway()
        await asyncio.wait_for(raw.goaway, 5)
        late = raw.request("GET", "/ping", auth(token))
        assert await raw.wait_reset(late) == h2.errors.ErrorCodes.REFUSED_STREAM
    finally:
        await raw.aclose()


async def test_goaway_close_after_closes_the_connection(sim: Simulator, client: RawClient) -> None:
    """goaway(close_after=...) closes the connection itself after the grace period."""
    await asyncio.sleep(0.05)
    sim.faults.goaway(error_code=0, close_after=0.05)
    async with asyncio.timeout(5):
        await client.closed.wait()
        while sim.open_connections:
            await asyncio.sleep(0.01)


async def test_reset_downchannel(sim: Simulator, client: RawClient, token: str) -> None:
    """reset_downchannel sends RST_STREAM on the downchannel; a new one can be opened."""
    sid, _ = await open_downchannel(client, token)
    await sim.wait_for_downchannel()
    assert sim.faults.reset_downchannel() == 1
    assert await client.wait_reset(sid) == h2.errors.ErrorCodes.INTERNAL_ERROR
    assert sim.connected_downchannels == 0
    await open_downchannel(client, token)
    await sim.wait_for_downchannel()


async def test_drop_connections(sim: Simulator, client: RawClient, token: str) -> None:
    """drop_connections closes the TCP connection without GOAWAY."""
    await open_downchannel(client, token)
    await sim.wait_for_downchannel()
    assert sim.faults.drop_connections() == 1
    async with asyncio.timeout(5):
        await client.closed.wait()
    assert not client.goaway.done()
    async with asyncio.timeout(5):
        while sim.open_connections:
            await asyncio.sleep(0.01)
    assert sim.connected_downchannels == 0


async def test_ignore_pings_silences_ping_frames_and_get_ping(
    sim: Simulator, client: RawClient, token: str
) -> None:
    """While ignoring pings, PING frames get no ACK and GET /ping no response; then both resume."""
    client.ping(b"before!!")
    async with asyncio.timeout(5):
        await client.ping_acked.wait()
    sim.faults.ignore_pings(True)
    client.ping(b"ignored!")
    silent = client.request("GET", "/ping", auth(token))
    # Prove the connection still works meanwhile: an event round trip completes.
    headers, _ = await post_event(client, token, event_body(event_metadata("A", "B")))
    assert headers[":status"] == "204"
    assert client.ping_acks == [b"before!!"]
    assert not client.streams[silent].headers.done()
    sim.faults.ignore_pings(False)
    client.ping(b"resumed!")
    async with asyncio.timeout(5):
        await client.ping_acked.wait()
    assert client.ping_acks == [b"before!!", b"resumed!"]
    sid = client.request("GET", "/ping", auth(token))
    assert (await client.response(sid))[":status"] == "204"


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (403, "UNAUTHORIZED_REQUEST_EXCEPTION"),
        (429, "THROTTLING_EXCEPTION"),
        (500, "INTERNAL_SERVICE_EXCEPTION"),
        (503, "N/A"),
    ],
)
async def test_fail_next_events(
    sim: Simulator, client: RawClient, token: str, status: int, code: str
) -> None:
    """fail_next_events answers exactly the next N events with the status and AVS body."""
    sim.faults.fail_next_events(2, status=status)
    for _ in range(2):
        headers, body = await post_event(client, token, event_body(recognize(), b"pcm"))
        assert headers[":status"] == str(status)
        assert json.loads(body)["payload"]["code"] == code
    headers, _ = await post_event(client, token, event_body(recognize(), b"pcm"))
    assert headers[":status"] == "200"
    assert [e.status for e in sim.events] == [status, status, 200]
    assert all(e.audio == b"pcm" for e in sim.events)


async def test_fail_next_downchannels(sim: Simulator, client: RawClient, token: str) -> None:
    """fail_next_downchannels answers the next downchannel request with the status."""
    sim.faults.fail_next_downchannels(status=503)
    sid = client.request("GET", "/v20160207/directives", auth(token))
    assert (await client.response(sid))[":status"] == "503"
    await open_downchannel(client, token)


def test_fault_arguments_are_checked(sim: Simulator) -> None:
    """Bad fault arguments raise ValueError."""
    with pytest.raises(ValueError, match="status"):
        sim.faults.fail_next_events(status=418)
    with pytest.raises(ValueError, match="n must"):
        sim.faults.fail_next_events(0)
    with pytest.raises(ValueError, match="seconds"):
        sim.faults.delay_responses(-1)
    with pytest.raises(ValueError, match="n must"):
        sim.faults.malformed_multipart_next(0)


async def test_delay_responses(sim: Simulator, client: RawClient, token: str) -> None:
    """delay_responses holds event and ping responses back by at least the delay."""
    sim.faults.delay_responses(0.3)
    loop = asyncio.get_running_loop()
    start = loop.time()
    headers, _ = await post_event(client, token, event_body(event_metadata("A", "B")))
    assert headers[":status"] == "204"
    assert loop.time() - start >= 0.29  # a lower bound: sleeps never end early
    start = loop.time()
    sid = client.request("GET", "/ping", auth(token))
    assert (await client.response(sid))[":status"] == "204"
    assert loop.time() - start >= 0.29
    sim.faults.clear()
    assert sim.faults.response_delay == 0


async def test_malformed_multipart_next_breaks_one_downchannel_message(
    sim: Simulator, client: RawClient, token: str
) -> None:
    """The next pushed directive is followed by an invalid delimiter; the one after is fine."""
    sid, boundary = await open_downchannel(client, token)
    sim.faults.malformed_multipart_next()
    await sim.push_directive(directive("Speaker", "SetVolume", {"volume": 1}))
    body = await client.wait_data(sid, b"not-a-delimiter\r\n")
    with pytest.raises(ValueError, match="bad delimiter"):
        parse_related(body, boundary)
    await sim.push_directive(directive("Speaker", "SetVolume", {"volume": 2}))
    body = await client.wait_data(sid, b'"volume":2}}}\r\n--' + boundary.encode() + b"\r\n")
    start = body.index(b"not-a-delimiter\r\n") + len(b"not-a-delimiter\r\n")
    # After the broken delimiter, the next message is a well-formed part of its own.
    head, content = body[start:].split(b"\r\n\r\n", 1)
    assert head == b"Content-Type: application/json; charset=UTF-8"
    second = json.loads(content.split(b"\r\n--")[0])
    assert second["directive"]["payload"] == {"volume": 2}


async def test_malformed_multipart_next_in_an_event_response(
    sim: Simulator, client: RawClient, token: str
) -> None:
    """The fault also applies to the next event response."""
    sim.faults.malformed_multipart_next()
    headers, body = await post_event(client, token, event_body(recognize(), b"pcm"))
    assert headers[":status"] == "200"
    assert b"not-a-delimiter" in body


async def test_malformed_directive_json_next(sim: Simulator, client: RawClient, token: str) -> None:
    """The next directive's JSON is cut short; the framing stays valid."""
    sid, boundary = await open_downchannel(client, token)
    sim.faults.malformed_directive_json_next()
    await sim.push_directive(directive("Speaker", "SetMute", {"mute": True}))
    await sim.push_directive(directive("Speaker", "SetMute", {"mute": False}))
    body = await client.wait_data(sid, b'"mute":false}}}\r\n--' + boundary.encode() + b"\r\n")
    first, second = parse_related(body, boundary)
    with pytest.raises(json.JSONDecodeError):
        json.loads(first[1])
    assert json.loads(second[1])["directive"]["payload"] == {"mute": False}
