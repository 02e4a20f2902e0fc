"""ConnectionManager under the simulator's faults: GOAWAY, resets, drops, pings, timeouts,
failed downchannels and syncs, endpoint changes, wake(). Real sockets, nothing mocked."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from avsclient.avs import ChangedReason, ConnectionStatus, EventOutcome
from avsclient.exceptions import EndpointRejected
from avsclient.simulator import Simulator, directive
from tests.avs.managerkit import (
    audio_frames,
    check_ledger,
    make_event,
    recognize_event,
    running_manager,
)

CONNECTED = ConnectionStatus.CONNECTED
PENDING = ConnectionStatus.PENDING


def syncs(sim: Simulator) -> list[int]:
    """Connection ids of the accepted SynchronizeState events."""
    return [e.connection_id for e in sim.events if e.name == "SynchronizeState" and e.status < 300]


async def wait_for(predicate: object, timeout: float = 20.0) -> None:
    """Poll `predicate` until it holds; the ceiling only stops a hung test."""
    async with asyncio.timeout(timeout):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.005)


async def test_goaway_is_make_before_break(sim: Simulator) -> None:
    """After GOAWAY a new connection (downchannel + sync) takes new events while the old one
    finishes the Recognize in flight; the status never leaves CONNECTED."""
    gate = asyncio.Event()

    async def audio() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"\x05" * 320
        await gate.wait()
        yield b"\x06" * 320

    sim.script.recognize(stop_capture_after=None)
    async with running_manager(sim) as run:
        await run.manager.wait_connected(20)
        recognize = asyncio.create_task(run.send(recognize_event(), audio=audio()))
        await asyncio.sleep(0.05)
        sim.faults.goaway()
        await wait_for(lambda: len(syncs(sim)) == 2)
        new = await run.send(make_event("AfterGoaway"))
        assert new.ok
        gate.set()
        old = await recognize
        assert old.outcome is EventOutcome.SUCCESS
        by_name = {e.name: e.connection_id for e in sim.events}
        first, second = syncs(sim)  # the simulator's numbers (LWA connections count too)
        assert by_name["Recognize"] == first
        assert by_name["AfterGoaway"] == second
        assert [s for s, _ in run.statuses] == [PENDING, CONNECTED]
        await wait_for(lambda: sim.connected_downchannels == 1)  # the old one was let go


@pytest.mark.parametrize("with_audio", [False, True])
async def test_stream_refused_by_goaway_is_resent_on_the_new_connection(
    sim: Simulator, with_audio: bool
) -> None:
    """A stream opened after the server's GOAWAY (before we read it) was never processed:
    it goes again on the next connection, audio included, and is delivered once."""
    async with running_manager(sim) as run:
        await run.manager.wait_connected(20)
        sim.faults.goaway()
        # The GOAWAY is on the wire but not read yet: this stream opens on the old connection.
        event = recognize_event() if with_audio else make_event()
        audio = audio_frames(20) if with_audio else None
        result = await run.send(event, audio=audio)
        assert result.ok, result
        message_id = event["event"]["header"]["messageId"]
        (received,) = [e for e in sim.events if e.message_id == message_id]
        assert received.connection_id == syncs(sim)[1]
        if with_audio:
            assert len(received.audio) == 20 * 320
        check_ledger(sim, run.results, [message_id])


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("reset_downchannel", ChangedReason.SERVER_SIDE_DISCONNECT),
        ("drop_connections", ChangedReason.NETWORK_ERROR),
    ],
)
async def test_loss_reconnects_with_reason(
    sim: Simulator, fault: str, reason: ChangedReason
) -> None:
    """Any end of the downchannel, or of the connection, is a disconnect: PENDING with its
    reason, then CONNECTED again after a fresh sync."""
    async with running_manager(sim) as run:
        await run.manager.wait_connected(20)
        getattr(sim.faults, fault)()
        await run.wait_status(lambda s, r: s is PENDING and r is reason)
        await run.manager.wait_connected(20)
        assert len(syncs(sim)) == 2
        assert (await run.send(make_event())).ok


async def test_answered_pings_keep_the_link(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    """After ping_interval idle the manager pings; answered pings keep the link."""
    caplog.set_level(logging.DEBUG, logger="avsclient.avs")

    def answered() -> int:
        return sum("ping answered" in r.getMessage() for r in caplog.records)

    # A short interval but a generous timeout: a loaded machine may delay an answer.
    async with running_manager(sim, ping_interval=0.05, ping_timeout=30.0) as run:
        await run.manager.wait_connected(10)
        await wait_for(lambda: answered() >= 3, timeout=20)
        assert run.statuses == [
            (PENDING, ChangedReason.CLIENT_REQUEST),
            (CONNECTED, ChangedReason.SUCCESS),
        ]
        assert len(syncs(sim)) == 1  # no reconnect


async def test_unanswered_ping_is_a_dead_link(sim: Simulator) -> None:
    """No answer within ping_timeout: the link is dead (PING_TIMEOUT), and it is remade."""
    async with running_manager(sim, ping_interval=0.05, ping_timeout=0.2) as run:
        await run.manager.wait_connected(10)
        sim.faults.ignore_pings()
        seen = len(run.statuses)  # a loaded machine may have lost a ping already: look after
        await wait_for(
            lambda: (PENDING, ChangedReason.PING_TIMEOUT) in run.statuses[seen:], timeout=20
        )
        sim.faults.ignore_pings(False)
        await run.manager.wait_connected(20)
        assert len(syncs(sim)) >= 2


async def test_unanswered_ping_frame_is_a_dead_link(sim: Simulator) -> None:
    """An HTTP/2 PING frame unanswered within liveness_timeout ends the link (PING_TIMEOUT)
    long before GET /ping is due, and fails the streams still open on it."""
    sim.script.recognize(stop_capture_after=None)

    async def stalled_microphone() -> AsyncIterator[bytes]:
        yield bytes(320)
        await asyncio.Event().wait()  # the user says nothing more: the stream stays open

    async with running_manager(
        sim, ping_interval=300.0, liveness_interval=0.3, liveness_timeout=0.2, event_timeout=30.0
    ) as run:
        await run.manager.wait_connected(10)
        sim.faults.ignore_pings()
        seen = len(run.statuses)
        result = await run.send(recognize_event(), audio=stalled_microphone())
        assert result.outcome is EventOutcome.NOT_CONNECTED
        await wait_for(
            lambda: (PENDING, ChangedReason.PING_TIMEOUT) in run.statuses[seen:], timeout=20
        )
        sim.faults.clear()
        await run.manager.wait_connected(20)


async def test_answered_ping_frames_keep_a_quiet_link(sim: Simulator) -> None:
    """A quiet link whose PING frames are answered stays CONNECTED through many checks."""
    async with running_manager(
        sim, ping_interval=300.0, liveness_interval=0.05, liveness_timeout=1.0
    ) as run:
        await run.manager.wait_connected(10)
        seen = len(run.statuses)
        await asyncio.sleep(0.5)  # about ten PING frames
        assert run.statuses[seen:] == []
        assert run.manager.status is ConnectionStatus.CONNECTED


async def test_event_timeout_triggers_an_immediate_ping(sim: Simulator) -> None:
    """A stalled event ends TIMEDOUT and pings at once (ping_interval is far away): the
    unanswered ping then takes the link down."""
    async with running_manager(sim, event_timeout=0.2, ping_timeout=0.2) as run:
        await run.manager.wait_connected(20)
        sim.faults.delay_responses(60.0)  # no answer while the fault lasts
        sim.faults.ignore_pings()
        event = make_event()
        result = await run.send(event)
        assert result.outcome is EventOutcome.TIMEDOUT
        await run.wait_status(lambda s, r: r is ChangedReason.PING_TIMEOUT, timeout=20)
        sim.faults.clear()
        await run.manager.wait_connected(20)
        check_ledger(sim, run.results, [event["event"]["header"]["messageId"]])


async def test_slow_but_progressing_response_is_not_a_timeout(sim: Simulator) -> None:
    """Audio still flowing counts as progress: no TIMEDOUT while the upload moves, though the
    whole upload (at least 12 x 0.1 s) lasts longer than event_timeout."""
    sim.script.recognize(stop_capture_after=None)
    # The gaps between frames are a tenth of the timeout, so a loaded machine that stalls the
    # upload for a while still does not reach it.
    async with running_manager(sim, event_timeout=1.0) as run:
        await run.manager.wait_connected(10)
        result = await run.send(recognize_event(), audio=audio_frames(12, pause=0.1))
        assert result.outcome is EventOutcome.SUCCESS


async def test_failed_downchannels_are_retried(sim: Simulator) -> None:
    """503 on the downchannel: back off and retry; 403: refresh the token, then connect."""
    sim.faults.fail_next_downchannels(3, status=503)
    async with running_manager(sim) as run:
        await run.manager.wait_connected(20)
        assert (PENDING, ChangedReason.SERVER_ERROR) in run.statuses
    sim.faults.fail_next_downchannels(1, status=403)
    async with running_manager(sim) as run:
        before = len(sim.lwa.requests)
        await run.manager.wait_connected(20)
        assert len(sim.lwa.requests) == before + 2  # the first token, then the refresh


async def test_connected_only_after_synchronize_state_succeeds(sim: Simulator) -> None:
    """SynchronizeState answered 503 twice: retried with back-off, CONNECTED after the third."""
    sim.faults.fail_next_events(2, status=503)
    async with running_manager(sim) as run:
        await run.manager.wait_connected(20)
        statuses = [e.status for e in sim.events if e.name == "SynchronizeState"]
        assert statuses == [503, 503, 204]
        assert [s for s, _ in run.statuses] == [PENDING, CONNECTED]


async def test_drop_during_connect_never_leaves_it_pending(sim: Simulator) -> None:
    """Connections dropped in the middle of the sync, again and again: still connects."""
    sim.faults.delay_responses(0.05)
    async with running_manager(sim) as run:
        for _ in range(4):
            await wait_for(lambda: sim.open_connections > 0)
            await asyncio.sleep(0.02)
            sim.faults.drop_connections()
        sim.faults.clear()
        await run.manager.wait_connected(20)
        assert (await run.send(make_event())).ok


async def test_malformed_downchannel_moves_to_a_new_connection(sim: Simulator) -> None:
    """Broken framing on the downchannel: the sink hears the error, a new link is made."""
    async with running_manager(sim) as run:
        await run.manager.wait_connected(20)
        sim.faults.malformed_multipart_next()
        await sim.push_directive(directive("Speaker", "SetMute", {"mute": True}))
        await wait_for(lambda: len(syncs(sim)) == 2)
        await run.manager.wait_connected(20)
        errors = [e for s, e in run.sink.ended.items() if s.kind == "downchannel"]
        assert errors and errors[0] is not None
        assert (await run.send(make_event())).ok


async def test_malformed_json_is_handed_on_and_the_link_stays(sim: Simulator) -> None:
    """Unparseable directive JSON is the pipeline's business: the bytes reach the sink."""
    async with running_manager(sim) as run:
        await run.manager.wait_connected(20)
        sim.faults.malformed_directive_json_next()
        await sim.push_directive(directive("Speaker", "SetMute", {"mute": True}))
        await wait_for(lambda: run.sink.parts_of("downchannel"))
        with pytest.raises(ValueError):  # noqa: PT011 - JSONDecodeError or UnicodeDecodeError
            json.loads(run.sink.parts_of("downchannel")[0])
        assert len(syncs(sim)) == 1


async def test_malformed_event_response_is_protocol_error(sim: Simulator) -> None:
    """Broken framing in an event's response: PROTOCOL_ERROR, delivered once, link stays."""
    sim.script.recognize(stop_capture_after=None)
    async with running_manager(sim) as run:
        await run.manager.wait_connected(20)
        sim.faults.malformed_multipart_next()
        event = recognize_event()
        result = await run.send(event, audio=audio_frames(5))
        assert result.outcome is EventOutcome.PROTOCOL_ERROR
        assert result.status == 200
        check_ledger(sim, run.results, [event["event"]["header"]["messageId"]])
        assert (await run.send(make_event())).ok
        assert len(syncs(sim)) == 1


async def test_set_endpoint_persists_and_moves(tmp_path: Path) -> None:
    """System.SetEndpoint: the URL is stored, the manager moves there make-before-break. A
    URL the configuration does not allow is refused before it is stored, and changes nothing."""
    stored: list[str] = []
    async with Simulator() as first, Simulator() as second:
        # One CA bundle trusting both simulators (each has its own throwaway CA).
        assert first.ca_file is not None and second.ca_file is not None
        bundle = tmp_path / "both.pem"
        bundle.write_bytes(first.ca_file.read_bytes() + second.ca_file.read_bytes())
        async with running_manager(first, endpoint_store=stored.append, ca_file=str(bundle)) as run:
            await run.manager.wait_connected(20)
            second.add_token(await run.tokens.get_token())  # LWA tokens of the first simulator
            await run.manager.set_endpoint(second.url + "/")
            assert stored == [second.url]
            await second.wait_for_event("System", "SynchronizeState")
            await wait_for(lambda: first.connected_downchannels == 0)
            assert run.manager.url == second.url
            assert (await run.send(make_event("There"))).ok
            assert [e.name for e in second.events] == ["SynchronizeState", "There"]
            assert [s for s, _ in run.statuses] == [PENDING, CONNECTED]
            for refused in (
                "ftp://nowhere",
                f"http://127.0.0.1:{first.port}",  # cleartext: the token would travel bare
                f"https://localhost:{first.port}",  # not a configured host
                f"https://127.0.0.1:{first.port}/v20160207",
                42,
            ):
                with pytest.raises(EndpointRejected, match="endpoint"):
                    await run.manager.set_endpoint(refused)
            assert stored == [second.url]
            assert run.manager.url == second.url
            assert (await run.send(make_event("Still"))).ok
            assert [s for s, _ in run.statuses] == [PENDING, CONNECTED]


async def test_wake_cuts_the_backoff_short(sim: Simulator) -> None:
    """With a 60 s back-off, wake() reconnects at once."""
    async with running_manager(sim, backoff=(60.0,), random=lambda: 0.5) as run:
        await run.manager.wait_connected(20)
        sim.faults.drop_connections()
        await run.wait_status(lambda s, r: s is PENDING and r is ChangedReason.NETWORK_ERROR)
        await asyncio.sleep(0.05)
        assert run.manager.status is PENDING
        run.manager.wake()
        await run.manager.wait_connected(20)


async def test_backoff_draws_come_from_the_injected_random(sim: Simulator) -> None:
    """Each reconnect wait draws once from the manager's random source; the count of
    failures stands after a success until the link proves healthy (`healthy_after`)."""
    draws: list[int] = []

    def random() -> float:
        draws.append(1)
        return 0.0

    sim.faults.fail_next_downchannels(2, status=500)
    async with running_manager(sim, random=random) as run:
        await run.manager.wait_connected(20)
        assert len(draws) == 2
        assert run.manager._schedule.failures == 2  # not yet healthy
        sim.faults.drop_connections()
        await wait_for(lambda: len(syncs(sim)) == 2)
        assert len(draws) == 3
        assert run.manager._schedule.failures == 3  # the link ended unproven: one more
