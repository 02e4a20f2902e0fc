"""ConnectionManager against the real simulator (TLS and h2c): connect, events, status."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from avsclient.auth import StaticTokenProvider
from avsclient.avs import (
    MAX_REPLAY_BYTES,
    ChangedReason,
    ConnectionManager,
    ConnectionStatus,
    EventOutcome,
)
from avsclient.config import ClientConfig
from avsclient.exceptions import ConnectionClosed, ConnectTimeout
from avsclient.simulator import ScriptedReply, Simulator, directive
from tests.avs.managerkit import (
    RecordingSink,
    audio_frames,
    check_ledger,
    make_event,
    recognize_event,
    running_manager,
    sim_config,
)

CONNECTED = ConnectionStatus.CONNECTED
PENDING = ConnectionStatus.PENDING


async def test_connect_sequence_downchannel_then_sync_then_connected(sim: Simulator) -> None:
    """CONNECTED is reported only after SynchronizeState (with the full context) succeeded."""
    context = [{"header": {"namespace": "Speaker", "name": "VolumeState"}, "payload": {"v": 1}}]
    seen_at_sync: list[int] = []

    def on_sync(event: object) -> ScriptedReply:
        seen_at_sync.append(sim.connected_downchannels)
        return ScriptedReply()

    sim.script.on("System", "SynchronizeState", on_sync)
    async with running_manager(sim, context=lambda: context) as run:
        await run.manager.wait_connected(20)
        assert run.statuses == [
            (PENDING, ChangedReason.CLIENT_REQUEST),
            (CONNECTED, ChangedReason.SUCCESS),
        ]
        sync = await sim.wait_for_event("System", "SynchronizeState")
        assert sync.context == context
        assert seen_at_sync == [1]  # the downchannel was open before the sync
        assert run.manager.status is CONNECTED
    assert run.manager.status is ConnectionStatus.DISCONNECTED
    assert run.statuses[-1] == (ConnectionStatus.DISCONNECTED, ChangedReason.CLIENT_REQUEST)


async def test_async_context_provider(sim: Simulator) -> None:
    """The context provider may be a coroutine function."""

    async def context() -> list[dict[str, object]]:
        await asyncio.sleep(0)
        return [{"header": {"namespace": "A", "name": "B"}, "payload": {}}]

    async with running_manager(sim, context=context) as run:
        await run.manager.wait_connected(20)
        sync = await sim.wait_for_event("System", "SynchronizeState")
        assert sync.context[0]["header"]["namespace"] == "A"


async def test_event_without_content_is_sent_once(sim: Simulator) -> None:
    """A 204 answer gives SUCCESS_NO_CONTENT with status, request id and timestamps."""
    async with running_manager(sim) as run:
        await run.manager.wait_connected(20)
        event = make_event()
        result = await run.send(event)
    assert result.outcome is EventOutcome.SUCCESS_NO_CONTENT
    assert result.ok
    assert result.status == 204
    assert result.request_id
    assert result.started_at is not None and result.completed_at is not None
    assert result.started_at <= result.response_started_at <= result.completed_at  # type: ignore[operator]
    check_ledger(sim, run.results, [event["event"]["header"]["messageId"]])


async def test_recognize_streams_audio_and_response_parts_reach_the_sink(sim: Simulator) -> None:
    """Audio streams as the source yields it; Speak and its MP3 reach the sink, scoped by
    (connection, stream) with the event's messageId."""
    sim.script.recognize(speech="hello")
    async with running_manager(sim) as run:
        await run.manager.wait_connected(20)
        event = recognize_event()
        result = await run.send(event, audio=audio_frames(50, pause=0.001))
    assert result.outcome is EventOutcome.SUCCESS, result
    received = await sim.wait_for_event("SpeechRecognizer", "Recognize")
    assert len(received.audio) == 50 * 320
    assert received.audio[:320] == bytes([0]) * 320
    parts = run.sink.parts_of("event")
    speak = json.loads(parts[0])
    assert speak["directive"]["header"]["name"] == "Speak"
    assert len(parts[1]) > 1000  # the MP3 attachment
    sources = {s for _, s in run.sink.calls if s.kind == "event"}
    (source,) = sources
    assert source.message_id == event["event"]["header"]["messageId"]
    assert run.sink.ended[source] is None
    assert result.first_byte_at is not None and result.body_sent_at is not None


async def test_downchannel_directives_reach_the_sink(sim: Simulator) -> None:
    """Directives pushed on the downchannel arrive with kind="downchannel"."""
    async with running_manager(sim) as run:
        await run.manager.wait_connected(20)
        await sim.push_directive(directive("Speaker", "SetVolume", {"volume": 10}))
        async with asyncio.timeout(5):
            while not run.sink.parts_of("downchannel"):
                await asyncio.sleep(0.005)
        (part,) = run.sink.parts_of("downchannel")
        assert json.loads(part)["directive"]["header"]["name"] == "SetVolume"


async def test_events_open_one_at_a_time(sim: Simulator) -> None:
    """The next event stream opens only after the previous one got its response headers,
    while the earlier Recognize keeps streaming its audio."""
    gate = asyncio.Event()
    order: list[str] = []

    async def slow_audio() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"\x01" * 320
        await gate.wait()
        yield b"\x02" * 320

    sim.script.recognize(stop_capture_after=None)
    async with running_manager(sim) as run:
        await run.manager.wait_connected(20)
        recognize = asyncio.create_task(run.send(recognize_event(), audio=slow_audio()))
        await asyncio.sleep(0.05)
        other = asyncio.create_task(run.send(make_event("Second")))
        await asyncio.sleep(0.1)
        # CLOSE_TALK: no response headers before the upload ends, so "Second" has to wait.
        order.extend(e.name for e in sim.events)
        assert "Second" not in order
        assert run.manager.queued == 1
        gate.set()
        first, second = await asyncio.gather(recognize, other)
    assert first.outcome is EventOutcome.SUCCESS
    assert second.outcome is EventOutcome.SUCCESS_NO_CONTENT
    names = [e.name for e in sim.events]
    assert names.index("Recognize") < names.index("Second")


async def test_streams_overlap_once_headers_arrived(sim: Simulator) -> None:
    """NEAR_FIELD: StopCapture comes with the headers while audio flows, and the next event
    can go out while the Recognize upload is still running."""
    sim.script.recognize(stop_capture_after=640)
    gate = asyncio.Event()

    async def audio() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"\x03" * 320
        await gate.wait()

    async with running_manager(sim) as run:
        await run.manager.wait_connected(20)
        recognize = asyncio.create_task(run.send(recognize_event("NEAR_FIELD"), audio=audio()))
        second = await asyncio.wait_for(run.send(make_event("Second")), 5)
        assert second.outcome is EventOutcome.SUCCESS_NO_CONTENT
        assert not recognize.done()
        gate.set()
        first = await recognize
    assert first.outcome is EventOutcome.SUCCESS


@pytest.mark.parametrize(
    ("status", "outcome", "code"),
    [
        (400, EventOutcome.BAD_REQUEST, "INVALID_REQUEST_EXCEPTION"),
        (429, EventOutcome.THROTTLED, "THROTTLING_EXCEPTION"),
        (500, EventOutcome.SERVER_ERROR, "INTERNAL_SERVICE_EXCEPTION"),
        (503, EventOutcome.REFUSED, None),
    ],
)
async def test_error_statuses_map_to_outcomes(
    sim: Simulator, status: int, outcome: EventOutcome, code: str | None
) -> None:
    """avs-protocol 4.1: 400, 429, 500, 503 with the AVS JSON exception code; not resent."""
    async with running_manager(sim) as run:
        await run.manager.wait_connected(20)
        sim.faults.fail_next_events(1, status=status)
        event = make_event()
        result = await run.send(event)
        assert result.outcome is outcome
        assert result.status == status
        if code is not None:
            assert result.exception_code == code
        assert result.error is not None
        assert run.manager.status is CONNECTED
        check_ledger(sim, run.results, [event["event"]["header"]["messageId"]])


async def test_single_403_refreshes_the_token_once_and_resends(sim: Simulator) -> None:
    """A 403 reports that token to the provider, and the event goes again with a new one."""
    async with running_manager(sim) as run:
        await run.manager.wait_connected(20)
        refreshes = len(sim.lwa.requests)
        sim.faults.fail_next_events(1, status=403)
        event = make_event()
        result = await run.send(event)
        assert result.outcome is EventOutcome.SUCCESS_NO_CONTENT
        assert len(sim.lwa.requests) == refreshes + 1
        check_ledger(sim, run.results, [event["event"]["header"]["messageId"]])


async def test_repeated_403_is_invalid_auth_and_surfaced(sim: Simulator) -> None:
    """403 again after the refresh: INVALID_AUTH to the caller and as the status reason; the
    manager reconnects with a fresh token."""
    async with running_manager(sim) as run:
        await run.manager.wait_connected(20)
        sim.faults.fail_next_events(2, status=403)
        event = make_event()
        result = await run.send(event)
        assert result.outcome is EventOutcome.INVALID_AUTH
        assert result.status == 403
        await run.wait_status(lambda s, r: r is ChangedReason.INVALID_AUTH)
        await run.manager.wait_connected(20)
        again = await run.send(make_event())
        assert again.ok


async def test_recognize_resent_after_403_carries_all_its_audio(sim: Simulator) -> None:
    """A Recognize rejected with 403 goes again with a new token and its whole audio: the
    chunks sent before the 403, and the one being read when it came (the source stays open)."""
    sim.script.recognize(stop_capture_after=None)
    gate = asyncio.Event()
    frames = [bytes([i]) * 320 for i in range(8)]

    async def audio() -> AsyncIterator[bytes]:
        for frame in frames[:4]:
            yield frame
        await gate.wait()  # the first attempt is stopped while it waits here
        for frame in frames[4:]:
            yield frame

    async with running_manager(sim) as run:
        await run.manager.wait_connected(10)
        refreshes = len(sim.lwa.requests)
        sim.faults.fail_next_events(1, status=403)
        event = recognize_event()
        sending = asyncio.create_task(run.send(event, audio=audio()))
        async with asyncio.timeout(10):
            while len(sim.lwa.requests) == refreshes:  # the 403 arrived: the token is renewed
                await asyncio.sleep(0.005)
        gate.set()
        result = await sending
        assert result.outcome is EventOutcome.SUCCESS, result
        message_id = event["event"]["header"]["messageId"]
        (received,) = [e for e in sim.events if e.message_id == message_id and e.status < 300]
        assert bytes(received.audio) == b"".join(frames)
        check_ledger(sim, run.results, [message_id])


async def test_403_with_too_much_audio_to_resend_is_reported(sim: Simulator) -> None:
    """A 403 on a Recognize whose audio outgrew the replay bound: the token is renewed, the
    event ends INVALID_AUTH (it cannot be resent whole) and the link stays."""
    sim.script.recognize(stop_capture_after=None)

    async def audio() -> AsyncIterator[bytes]:
        yield bytes(MAX_REPLAY_BYTES + 2)  # more than a resend may keep

    async with running_manager(sim) as run:
        await run.manager.wait_connected(10)
        refreshes = len(sim.lwa.requests)
        sim.faults.fail_next_events(1, status=403)
        event = recognize_event()
        result = await run.send(event, audio=audio())
        assert result.outcome is EventOutcome.INVALID_AUTH
        assert result.status == 403
        assert len(sim.lwa.requests) == refreshes + 1
        assert run.manager.status is CONNECTED
        assert (await run.send(make_event())).ok
        assert [s for s, _ in run.statuses] == [PENDING, CONNECTED]


async def test_403_storm_refreshes_once(sim: Simulator) -> None:
    """Several streams rejected at once cause a single refresh (single-flight)."""
    async with running_manager(sim) as run:
        await run.manager.wait_connected(20)
        before = len(sim.lwa.requests)
        sim.faults.fail_next_events(1, status=403)
        results = await asyncio.gather(*(run.send(make_event()) for _ in range(3)))
        assert all(r.ok for r in results)
        assert len(sim.lwa.requests) == before + 1


async def test_static_token_rejected_stays_pending_with_invalid_auth(sim: Simulator) -> None:
    """A token that cannot be refreshed: PENDING with reason INVALID_AUTH, retried for ever."""
    token = sim.add_token()
    sim.remove_token(token)
    statuses: list[tuple[ConnectionStatus, ChangedReason]] = []
    manager = ConnectionManager(
        sim_config(sim, queue_timeout=0.2),
        StaticTokenProvider(token),
        RecordingSink(),
        context=list,
        on_status=lambda s, r: statuses.append((s, r)),
    )
    async with manager:
        async with asyncio.timeout(5):
            while (PENDING, ChangedReason.INVALID_AUTH) not in statuses:
                await asyncio.sleep(0.01)
        with pytest.raises(ConnectTimeout):
            await manager.wait_connected(0.1)
        result = await manager.send_event(make_event())  # waits queue_timeout, then gives up
        assert result.outcome is EventOutcome.NOT_CONNECTED
    assert manager.status is ConnectionStatus.DISCONNECTED


async def test_events_wait_in_a_bounded_queue_while_disconnected(sim: Simulator) -> None:
    """Events sent before the link is up wait and go out once connected; past the bound
    they fail NOT_CONNECTED at once; past queue_timeout they fail NOT_CONNECTED."""
    async with running_manager(sim, start=False, queue_size=2, queue_timeout=5.0) as run:
        events = [make_event() for _ in range(3)]
        tasks = [asyncio.create_task(run.send(e)) for e in events]
        await asyncio.sleep(0.05)
        assert tasks[2].done()
        assert tasks[2].result().outcome is EventOutcome.NOT_CONNECTED
        await run.manager.start()
        first, second = await asyncio.gather(*tasks[:2])
        assert first.ok and second.ok
    async with running_manager(sim, start=False, queue_timeout=0.05) as run:
        result = await run.send(make_event())
        assert result.outcome is EventOutcome.NOT_CONNECTED


async def test_close_cancels_waiting_events(sim: Simulator) -> None:
    """aclose() ends waiting events with CANCELED; a closed manager refuses new ones."""
    async with running_manager(sim, start=False) as run:
        waiting = asyncio.create_task(run.send(make_event()))
        await asyncio.sleep(0.01)
        await run.manager.aclose()
        assert (await waiting).outcome is EventOutcome.CANCELED
        assert (await run.send(make_event())).outcome is EventOutcome.CANCELED
        with pytest.raises(ConnectionClosed):
            await run.manager.wait_connected(1)
        with pytest.raises(ConnectionClosed):
            await run.manager.start()


async def test_cancelling_the_caller_resets_the_stream(sim: Simulator) -> None:
    """Cancelling send_event while audio streams resets the stream; the link stays up."""
    never = asyncio.Event()

    async def audio() -> AsyncIterator[bytes]:
        yield b"\x00" * 320
        await never.wait()
        yield b""  # pragma: no cover

    async with running_manager(sim) as run:
        await run.manager.wait_connected(20)
        task = asyncio.create_task(run.send(recognize_event(), audio=audio()))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (await run.send(make_event())).ok
        assert not [e for e in sim.events if e.name == "Recognize"]


async def test_audio_source_failure_is_internal_error(sim: Simulator) -> None:
    """A microphone that raises ends the event INTERNAL_ERROR with its exception."""

    async def audio() -> AsyncIterator[bytes]:
        yield b"\x00" * 320
        raise OSError("microphone unplugged")

    async with running_manager(sim) as run:
        await run.manager.wait_connected(20)
        result = await run.send(recognize_event(), audio=audio())
        assert result.outcome is EventOutcome.INTERNAL_ERROR
        assert isinstance(result.error, OSError)
        assert (await run.send(make_event())).ok


async def test_unserialisable_event_is_a_type_error(sim: Simulator) -> None:
    """API misuse raises at once instead of becoming an outcome."""
    async with running_manager(sim, start=False) as run:
        with pytest.raises(TypeError):
            await run.manager.send_event({"event": {"x": object()}})


async def test_start_twice_is_an_error(sim: Simulator) -> None:
    async with running_manager(sim) as run:
        with pytest.raises(RuntimeError):
            await run.manager.start()


async def test_config_url_regions_and_validation() -> None:
    """Regions give their current and legacy hosts; a custom endpoint wins."""
    from avsclient import Region

    assert ClientConfig().url() == "https://alexa.na.gateway.devices.a2z.com"
    assert ClientConfig(region=Region.EU).url() == "https://alexa.eu.gateway.devices.a2z.com"
    assert (
        ClientConfig(region=Region.FE, legacy_host=True).url() == "https://avs-alexa-fe.amazon.com"
    )
    assert ClientConfig(endpoint="http://127.0.0.1:9/").url() == "http://127.0.0.1:9"
    for bad in ("ftp://x", "https://h/path", "https://", "https://h:99999"):
        with pytest.raises(ValueError, match="endpoint"):
            ClientConfig(endpoint=bad)
    with pytest.raises(ValueError, match="backoff"):
        ClientConfig(backoff=())
    with pytest.raises(ValueError, match="backoff_jitter"):
        ClientConfig(backoff_jitter=(2.0, 1.0))
    with pytest.raises(ValueError, match="ping_interval"):
        ClientConfig(ping_interval=0)
    with pytest.raises(ValueError, match="queue_size"):
        ClientConfig(queue_size=0)
    transport = ClientConfig(event_timeout=7.0, connect_timeout=3.0).connection_config()
    assert transport.response_timeout == 7.0
    assert transport.connect_timeout == 3.0
    # The transport has no keep-alive of its own: the link's liveness check sends its PINGs,
    # and a PING waits liveness_timeout by default.
    assert not hasattr(transport, "keepalive_interval")
    assert transport.ping_timeout == ClientConfig().liveness_timeout == 5.0
    assert ClientConfig().liveness_interval == 15.0
    with pytest.raises(ValueError, match="liveness_interval"):
        ClientConfig(liveness_interval=0)
    with pytest.raises(ValueError, match="liveness_timeout"):
        ClientConfig(liveness_timeout=-1.0)


async def test_a_connect_timeout_names_the_login_with_amazon_failure(sim: Simulator) -> None:
    """While the token provider's refresh keeps failing (LWA answers 500), a ConnectTimeout
    says the attempt is getting a token and why Login with Amazon failed, not only a reason
    name."""
    sim.lwa.fail_next(50, status=500)
    async with running_manager(sim) as running:
        with pytest.raises(ConnectTimeout) as info:
            await running.manager.wait_connected(1.5)
    message = str(info.value)
    assert "getting an access token" in message
    assert "Login with Amazon" in message and "500" in message, message
