"""`Replay`: the pump that reads an event's audio and keeps it for a resend (no sockets)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from avsclient.avs.upload import MAX_REPLAY_BYTES, READ_AHEAD_BYTES, Replay


async def _take_all(replay: Replay, start: int = 0) -> list[bytes]:
    chunks = []
    position = start
    while True:
        chunk, after = await replay.chunk(position)
        if chunk is None:
            assert after == position
            return chunks
        assert after == position + 1
        chunks.append(chunk)
        position = after


async def _chunk(replay: Replay, position: int) -> bytes | None:
    return (await replay.chunk(position))[0]


async def _frames(count: int, log: list[str] | None = None) -> AsyncIterator[bytes]:
    try:
        for i in range(count):
            await asyncio.sleep(0)
            yield bytes([i]) * 320
    finally:
        if log is not None:
            log.append("closed")


async def test_chunks_in_order_then_none_and_again_for_a_resend() -> None:
    replay = Replay(_frames(5))
    first = await _take_all(replay)
    assert first == [bytes([i]) * 320 for i in range(5)]
    assert await _chunk(replay, 5) is None
    assert replay.replayable
    assert await _take_all(replay) == first  # a second attempt from the start
    await replay.aclose()


async def test_a_read_interrupted_by_a_cancelled_upload_is_not_lost() -> None:
    """The upload is stopped while the source is between frames; the next attempt gets the
    frame that was being read, and the source was not closed."""
    gate = asyncio.Event()
    log: list[str] = []

    async def audio() -> AsyncIterator[bytes]:
        try:
            yield b"a"
            await gate.wait()
            yield b"b"
            yield b"c"
        finally:
            log.append("closed")

    replay = Replay(audio())
    assert await _chunk(replay, 0) == b"a"
    reading = asyncio.create_task(_chunk(replay, 1))
    await asyncio.sleep(0.01)
    assert not reading.done()
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    assert log == []  # the source is still open
    gate.set()
    assert await _take_all(replay) == [b"a", b"b", b"c"]
    await replay.aclose()
    assert log == ["closed"]


async def test_commit_stops_keeping_and_forbids_a_resend() -> None:
    replay = Replay(_frames(3))
    assert await _chunk(replay, 0) == bytes(320)
    replay.commit()
    assert not replay.replayable
    assert await _chunk(replay, 1) == b"\x01" * 320  # the upload goes on
    with pytest.raises(RuntimeError, match="not kept"):
        await _chunk(replay, 0)
    await replay.aclose()


async def test_audio_beyond_the_replay_bound_is_not_kept() -> None:
    async def audio() -> AsyncIterator[bytes]:
        yield bytes(MAX_REPLAY_BYTES)
        yield b"x"  # one byte over

    replay = Replay(audio())
    assert await _chunk(replay, 0) is not None
    assert replay.replayable
    assert await _chunk(replay, 1) == b"x"
    assert not replay.replayable
    await replay.aclose()


async def test_source_error_comes_after_the_chunks_before_it() -> None:
    async def audio() -> AsyncIterator[bytes]:
        yield b"a"
        yield b"b"
        raise OSError("microphone unplugged")

    replay = Replay(audio())
    assert await _chunk(replay, 0) == b"a"
    assert await _chunk(replay, 1) == b"b"
    with pytest.raises(OSError, match="unplugged"):
        await _chunk(replay, 2)
    with pytest.raises(OSError, match="unplugged"):  # sticky
        await _chunk(replay, 2)
    await replay.aclose()


async def test_a_source_that_raises_cancelled_by_itself_is_an_error() -> None:
    async def audio() -> AsyncIterator[bytes]:
        yield b"a"
        raise asyncio.CancelledError

    replay = Replay(audio())
    assert await _chunk(replay, 0) == b"a"
    with pytest.raises(RuntimeError, match="cancelled"):
        await _chunk(replay, 1)
    await replay.aclose()


async def test_the_pump_reads_a_bounded_amount_ahead() -> None:
    """With nobody taking chunks (the stream has no window), the source is left unread once
    `READ_AHEAD_BYTES` are waiting; taking chunks lets it go on."""
    produced = 0

    async def audio() -> AsyncIterator[bytes]:
        nonlocal produced
        while True:
            produced += 1
            yield bytes(320)
            await asyncio.sleep(0)

    replay = Replay(audio())
    await _chunk(replay, 0)
    for _ in range(3000):  # far more loop turns than the pump needs to fill its bound
        await asyncio.sleep(0)
    limit = READ_AHEAD_BYTES // 320 + 2
    assert limit - 2 <= produced <= limit
    stalled = produced
    for _ in range(100):
        await asyncio.sleep(0)
    assert produced == stalled  # it waits
    for position in range(1, limit):
        await _chunk(replay, position)
    for _ in range(100):
        await asyncio.sleep(0)
    assert produced > stalled
    await replay.aclose()


async def test_has_ready() -> None:
    gate = asyncio.Event()

    async def audio() -> AsyncIterator[bytes]:
        yield b"a"
        yield b"b"
        await gate.wait()
        yield b"c"

    replay = Replay(audio())
    assert not replay.has_ready(0)  # nothing read yet
    assert await _chunk(replay, 0) == b"a"
    await asyncio.sleep(0)
    assert replay.has_ready(1)  # "b" was read ahead
    assert await _chunk(replay, 1) == b"b"
    assert not replay.has_ready(2)  # the source waits
    assert replay.has_ready(0)  # a resend
    gate.set()
    assert await _take_all(replay, 2) == [b"c"]
    assert replay.has_ready(3)  # the end is known
    await replay.aclose()


async def test_aclose_stops_the_pump_and_closes_the_source() -> None:
    log: list[str] = []
    replay = Replay(_frames(1_000_000, log))
    assert await _chunk(replay, 0) == bytes(320)
    await replay.aclose()
    assert log == ["closed"]
    assert await _chunk(replay, 1) is None
    await replay.aclose()  # twice is fine


async def test_aclose_before_any_read_does_not_touch_the_source() -> None:
    log: list[str] = []
    source = _frames(3, log)
    replay = Replay(source)
    await replay.aclose()
    assert log == []
    await source.aclose()


async def test_offered_chunks_are_sent_on_the_spot_and_kept_for_a_resend() -> None:
    """While the upload waits, the pump hands new chunks to its direct send; the ones taken
    move the position on and a refused one (no window) comes back through `chunk()`. Chunks
    read while nobody waits are not offered. A resend from 0 still has them all."""
    gate = asyncio.Event()
    sent: list[bytes] = []
    answers = iter([True, True, False])

    async def audio() -> AsyncIterator[bytes]:
        yield b"a"
        await gate.wait()
        for chunk in (b"b", b"c", b"d", b"e", b"f"):
            await asyncio.sleep(0)
            yield chunk

    def offer(data: bytes) -> bool:
        answer = next(answers)
        if answer:
            sent.append(data)
        return answer

    replay = Replay(audio())
    assert await replay.chunk(0) == (b"a", 1)
    waiting = asyncio.create_task(replay.chunk(1, offer))
    await asyncio.sleep(0)
    gate.set()
    assert await waiting == (b"d", 4)  # b and c went out directly; d was refused
    assert sent == [b"b", b"c"]
    for _ in range(20):  # the pump reads e and f while nobody waits
        await asyncio.sleep(0)
    assert await replay.chunk(4, offer) == (b"e", 5)
    assert await replay.chunk(5, offer) == (b"f", 6)
    assert await replay.chunk(6, offer) == (None, 6)
    assert sent == [b"b", b"c"]
    assert await _take_all(replay) == [b"a", b"b", b"c", b"d", b"e", b"f"]
    await replay.aclose()


async def test_a_failing_offer_took_nothing() -> None:
    """An offer that raises counts as a refusal: the chunk comes back through `chunk()`."""

    def offer(data: bytes) -> bool:
        raise ConnectionError("the stream broke")

    replay = Replay(_frames(2))
    assert await replay.chunk(0, offer) == (bytes(320), 1)
    assert await replay.chunk(1, offer) == (b"\x01" * 320, 2)
    assert await replay.chunk(2, offer) == (None, 2)
    await replay.aclose()
