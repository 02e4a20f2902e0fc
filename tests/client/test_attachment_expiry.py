"""Unclaimed attachments expire on time, with no further traffic, and free their memory."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from avsclient.attachments import AttachmentLimits, AttachmentStore
from avsclient.exceptions import AttachmentError


class FakeTimer:
    def __init__(self, due: float, callback: Callable[[], None]) -> None:
        self.due = due
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """A clock and a scheduler with it: `advance()` moves time and runs what fell due."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[FakeTimer] = []

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(self.now + delay, callback)
        self.timers.append(timer)
        return timer

    @property
    def pending(self) -> list[FakeTimer]:
        return [t for t in self.timers if not t.cancelled and t.callback is not None]

    def advance(self, seconds: float) -> None:
        self.now += seconds
        while due := [t for t in self.pending if t.due <= self.now]:
            timer = min(due, key=lambda t: t.due)
            callback, timer.callback = timer.callback, None  # type: ignore[assignment]
            callback()


def _store(loop: FakeLoop, ttl: float = 30.0) -> AttachmentStore:
    return AttachmentStore(AttachmentLimits(ttl=ttl), clock=loop.time, call_later=loop.call_later)


async def test_unclaimed_attachment_memory_is_released_at_its_expiry_without_traffic() -> None:
    """One timer, due at ttl; when it fires the buffered bytes are dropped and the entry gone."""
    loop = FakeLoop()
    store = _store(loop)
    part = store.begin("s", "tts")
    await part.put(memoryview(b"x" * 1_000_000))
    part.finish()
    assert part.buffered == 1_000_000
    assert [t.due for t in loop.pending] == [30.0] and store.expiry_due == 30.0
    loop.advance(29.9)
    assert len(store) == 1 and part.buffered == 1_000_000
    loop.advance(0.1)
    assert len(store) == 0 and store.expired == 1
    assert part.buffered == 0 and not part._chunks
    assert isinstance(part.error, AttachmentError)
    assert loop.pending == [] and store.expiry_due is None


async def test_the_timer_is_re_armed_for_the_next_oldest() -> None:
    """Attachments arriving later expire at their own time, one timer at a time."""
    loop = FakeLoop()
    store = _store(loop, ttl=10)
    first = store.begin("s", "a")
    loop.advance(4)
    second = store.begin("s", "b")
    assert len(loop.pending) == 1 and store.expiry_due == 10
    loop.advance(6)
    assert first.error is not None and second.error is None and len(store) == 1
    assert [t.due for t in loop.pending] == [14] and store.expiry_due == 14
    loop.advance(4)
    assert second.error is not None and len(store) == 0 and loop.pending == []


async def test_claim_before_expiry_cancels_the_timer_and_the_data_stays_readable() -> None:
    """A directive claiming the attachment in time keeps it past the ttl."""
    loop = FakeLoop()
    store = _store(loop, ttl=10)
    part = store.begin("s", "x")
    await part.put(memoryview(b"speech"))
    part.finish()
    timer = loop.pending[0]
    loop.advance(9)
    store.claim("s", "x")
    assert timer.cancelled and loop.pending == [] and store.expiry_due is None
    loop.advance(100)
    async with store.open("s", "x") as reader:
        assert b"".join([bytes(c) async for c in reader]) == b"speech"


async def test_opening_before_expiry_cancels_the_timer() -> None:
    """A reader attached in time also takes the attachment out of expiry."""
    loop = FakeLoop()
    store = _store(loop, ttl=10)
    part = store.begin("s", "x")
    await part.put(memoryview(b"abc"))
    reader = store.open("s", "x")
    assert loop.pending == []
    loop.advance(50)
    part.finish()
    assert b"".join([bytes(c) async for c in reader]) == b"abc"
    await reader.aclose()


async def test_close_cancels_the_timer_and_drops_every_attachment() -> None:
    """Closing the store leaves no timer behind; a waiting reader gets AttachmentError."""
    loop = FakeLoop()
    store = _store(loop)
    store.begin("s", "unclaimed")
    reader = store.open("s", "waiting")
    assert len(loop.pending) == 1
    store.close()
    assert loop.pending == [] and store.expiry_due is None and len(store) == 0
    with pytest.raises(AttachmentError, match="store closed"):
        await reader.read()
    store.close()  # idempotent
    loop.advance(60)
    assert store.expired == 0  # nothing expired: everything went with close()


async def test_expiry_on_the_running_loop_with_a_short_ttl() -> None:
    """By default the running loop times the expiry: memory goes with no further traffic."""
    store = AttachmentStore(AttachmentLimits(ttl=0.05))
    part = store.begin("s", "x")
    await part.put(memoryview(b"y" * 65536))
    kept = store.begin("s", "kept")
    store.claim("s", "kept")
    assert store.expiry_due is not None
    await asyncio.sleep(0.3)
    assert part.buffered == 0 and isinstance(part.error, AttachmentError)
    assert len(store) == 1 and kept.error is None
    assert store.expiry_due is None
    store.close()


def test_without_a_running_loop_expiry_waits_for_the_next_use() -> None:
    """Outside an event loop no timer can be armed; the next use of the store expires."""
    now = [0.0]
    store = AttachmentStore(AttachmentLimits(ttl=1), clock=lambda: now[0])
    store.begin("s", "old")
    assert store.expiry_due is None
    now[0] = 2.0
    store.begin("s", "new")
    assert len(store) == 1 and store.expired == 1


async def test_closing_the_client_drops_held_attachments_and_their_timer() -> None:
    """`AVSClient.aclose()` closes its attachment store: no timer and no memory left behind."""
    from avsclient import AVSClient, ClientConfig
    from avsclient.auth import StaticTokenProvider

    client = AVSClient(ClientConfig(endpoint="https://127.0.0.1:9"), StaticTokenProvider("t"))
    part = client.attachments.begin("response", "unclaimed")
    await part.put(memoryview(b"x" * 65536))
    reader = client.attachments.open("response", "waiting")
    assert client.attachments.expiry_due is not None
    await client.aclose()
    assert client.attachments.expiry_due is None and len(client.attachments) == 0
    assert part.buffered == 0 and isinstance(part.error, AttachmentError)
    with pytest.raises(AttachmentError, match="store closed"):
        await reader.read()


async def test_a_reader_waits_for_an_attachment_that_never_arrives_at_most_ttl() -> None:
    """A Speak's reader of a `cid:` part that never begins fails with AttachmentError once
    it has waited `ttl`, instead of waiting for ever (the Speak then ends)."""
    store = AttachmentStore(AttachmentLimits(ttl=0.2))
    store.claim("src", "lost")
    reader = store.open("src", "lost")
    async with asyncio.timeout(2):
        with pytest.raises(AttachmentError, match="never arrived"):
            await reader.read()
    await reader.aclose()


async def test_a_trickling_attachment_fails_once_its_waits_add_up_to_ttl() -> None:
    """Data trickling in keeps each wait short, but the waits add up: the budget is total.
    Time the reader spends away (the player busy) does not use it up."""
    store = AttachmentStore(AttachmentLimits(ttl=0.3))
    attachment = store.begin("src", "slow")
    reader = store.open("src", "slow")
    await attachment.put(memoryview(b"a"))
    await asyncio.sleep(0.4)  # the reader is busy elsewhere: no budget spent
    assert await reader.read() == b"a"

    async def trickle() -> None:
        while True:
            await asyncio.sleep(0.05)
            await attachment.put(memoryview(b"x"))

    feeding = asyncio.create_task(trickle())
    received = 0
    try:
        async with asyncio.timeout(3):
            with pytest.raises(AttachmentError, match="stalled"):
                while await reader.read():
                    received += 1
    finally:
        feeding.cancel()
        await asyncio.gather(feeding, return_exceptions=True)
    assert received >= 2  # it did read while the budget lasted
    await reader.aclose()
