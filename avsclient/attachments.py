"""Attachments: binary response parts (Speak's MP3) readable as async byte streams by `cid:`.

A part with a `Content-ID` becomes an attachment keyed by `(source, content id)`: a `cid:`
URL resolves only against parts of the same HTTP/2 response (avs-protocol 4.3). Either side
may come first: the directive's reader waits for a part that has not arrived yet, and a part
that arrives before its directive is buffered until someone opens it.

Theory of operation, and why memory stays bounded:

- A reader that is reading applies backpressure: once `AttachmentLimits.max_buffer` bytes
  wait for it, `Attachment.put()` (awaited by the response sink, and so by the HTTP/2 reader
  of that one stream) waits until the reader catches up.
- A part nobody reads yet cannot wait for its reader (the directive may come later on the same
  stream, which would deadlock), so it buffers up to `max_unclaimed_bytes`; beyond that it
  fails, and its reader, if one ever comes, gets `AttachmentError`.
- An attachment no directive claims expires `ttl` seconds after it arrived, and at most
  `max_unclaimed` are kept (the oldest go first); when its response ends, nothing can claim
  it any more and it goes at once. Claimed ones live until their directive is done
  (`release()`), bounded by `max_claimed`.
- Expiry is on time, not on traffic: the store keeps one timer, due when its oldest unclaimed
  attachment expires, re-armed after each expiry and cancelled when nothing unclaimed is left
  (claimed, opened or dropped) or the store is closed. No other attachment has to arrive for
  an unread one's memory to go.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass
from typing import Protocol

from avsclient._resource import AsyncResource
from avsclient.exceptions import AttachmentError

__all__ = [
    "Attachment",
    "AttachmentLimits",
    "AttachmentReader",
    "AttachmentStore",
    "CallLater",
    "TimerHandle",
    "cid_of",
]

_log = logging.getLogger("avsclient.attachments")

# How many ended responses are remembered, so that opening a cid of a response that is
# already over fails at once instead of waiting for a part that cannot come.
_ENDED_SOURCES = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class AttachmentLimits:
    """Bounds on attachment buffering.

    Attributes:
        max_buffer: bytes buffered ahead of an active reader before the sink waits (256 KiB:
            about 40 s of 48 kbit/s speech, far more than network jitter needs).
        max_unclaimed_bytes: bytes one attachment may hold before anyone reads it (4 MiB:
            minutes of speech; a longer unread part is treated as hostile).
        max_unclaimed: attachments held that no directive claimed (oldest dropped first).
        max_claimed: attachments held for directives that have not opened them yet.
        ttl: seconds an unclaimed attachment is kept; also the most a reader waits, in all,
            for data that does not come (a part that never begins, or one that trickles):
            then the read fails with `AttachmentError`, so a Speak whose audio never
            arrives ends instead of PLAYING for ever. Time the reader spends elsewhere (the
            player draining its buffer) does not count.
    """

    max_buffer: int = 256 * 1024
    max_unclaimed_bytes: int = 4 * 1024 * 1024
    max_unclaimed: int = 16
    max_claimed: int = 64
    ttl: float = 30.0

    def __post_init__(self) -> None:
        if min(self.max_buffer, self.max_unclaimed_bytes, self.max_unclaimed) <= 0:
            raise ValueError("attachment limits must be positive")
        if self.max_claimed <= 0 or self.ttl <= 0:
            raise ValueError("attachment limits must be positive")


class TimerHandle(Protocol):
    """What a scheduler returns: a pending call that can be cancelled (`asyncio.TimerHandle`)."""

    def cancel(self) -> None: ...


#: Schedules a call `delay` seconds from now (`loop.call_later`'s shape).
CallLater = Callable[[float, Callable[[], None]], TimerHandle]


def cid_of(url: object) -> str | None:
    """The content id a `cid:` URL names (RFC 2392), or None for anything else."""
    if isinstance(url, str) and url[:4].lower() == "cid:":
        return url[4:]
    return None


class Attachment:
    """One attachment: written by the response sink, read by at most one `AttachmentReader`."""

    __slots__ = (
        "_chunks",
        "_data",
        "_space",
        "_store",
        "buffered",
        "cid",
        "claimed",
        "created_at",
        "ended",
        "error",
        "opened",
        "received",
        "source",
        "started",
        "starved",
    )

    def __init__(self, store: AttachmentStore, source: Hashable, cid: str, now: float) -> None:
        self._store = store
        self.source = source
        self.cid = cid
        self.created_at = now
        self._chunks: collections.deque[memoryview] = collections.deque()
        self._data = asyncio.Event()
        self._space = asyncio.Event()
        self.buffered = 0
        self.received = 0
        self.started = False  # its part began arriving
        self.ended = False
        self.opened = False  # a reader exists
        self.claimed = False  # a directive names it
        self.starved = 0.0  # seconds a reader has waited for data, in all
        self.error: BaseException | None = None

    @property
    def done(self) -> bool:
        """True once no more data will be added (ended or failed)."""
        return self.ended or self.error is not None

    async def put(self, data: memoryview) -> None:
        """Add a piece of the part; waits while an active reader lags `max_buffer` behind.

        The view is kept without copying (it views immutable bytes). Data for an attachment
        that failed, expired or whose reader went away is dropped.
        """
        if self.done or not data:
            return
        limits = self._store.limits
        if self.opened:
            while self.buffered >= limits.max_buffer:
                self._space.clear()
                await self._space.wait()
                if self.error is not None or self.ended:
                    return  # failed or discarded while waiting
        elif self.buffered + len(data) > limits.max_unclaimed_bytes:
            self.fail(AttachmentError(f"attachment {self.cid!r} exceeds the unread limit"))
            return
        self._chunks.append(data)
        self.buffered += len(data)
        self.received += len(data)
        self._data.set()

    def finish(self, error: BaseException | None = None) -> None:
        """Mark the part complete, or failed with `error`."""
        if self.done:
            return
        if error is not None:
            self.fail(error)
            return
        self.ended = True
        self._data.set()

    def fail(self, error: BaseException) -> None:
        """Fail the attachment: its reader raises `error`, buffered data is dropped."""
        if self.error is None and not self.ended:
            _log.warning("attachment %r failed: %s", self.cid, error)
        if self.error is None:
            self.error = error
        self._chunks.clear()
        self.buffered = 0
        self._data.set()
        self._space.set()

    async def _read(self) -> bytes | memoryview:
        while not self._chunks:
            if self.error is not None:
                raise self.error
            if self.ended:
                return b""
            self._data.clear()
            await self._wait_for_data()
        if self.error is not None:
            raise self.error
        chunk = self._chunks.popleft()
        self.buffered -= len(chunk)
        self._space.set()
        return chunk

    async def _wait_for_data(self) -> None:
        """Wait for data within what is left of the reader's budget (`limits.ttl` in all)."""
        ttl = self._store.limits.ttl
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            async with asyncio.timeout(max(ttl - self.starved, 0.0)):
                await self._data.wait()
        except TimeoutError:
            what = "never arrived" if not self.started else "stalled"
            self.fail(
                AttachmentError(
                    f"attachment {self.cid!r} {what}: its reader waited {ttl} s in all "
                    f"({self.received} bytes received)"
                )
            )
        finally:
            self.starved += loop.time() - start

    def _discard(self) -> None:
        self._chunks.clear()
        self.buffered = 0
        if not self.done:
            self.error = AttachmentError(f"attachment {self.cid!r} was discarded")
        self._space.set()
        self._data.set()


class AttachmentReader(AsyncResource):
    """Reads one attachment as an async iterator of byte chunks (views; keep or copy them).

    Iteration ends at the end of the part. Use `async with` or call `aclose()`, which
    discards anything not read yet and releases the memory.
    """

    def __init__(self, attachment: Attachment) -> None:
        self._attachment = attachment
        self._closed = False

    @property
    def cid(self) -> str:
        """The content id read."""
        return self._attachment.cid

    @property
    def received(self) -> int:
        """Bytes of the part received so far."""
        return self._attachment.received

    async def read(self) -> bytes | memoryview:
        """The next chunk, or b"" at the end of the part.

        Raises:
            AttachmentError: the part never came (its response ended without it), was too
                large to hold unread, or its response broke off.
        """
        if self._closed:
            return b""
        return await self._attachment._read()

    def __aiter__(self) -> AsyncIterator[bytes | memoryview]:
        return self

    async def __anext__(self) -> bytes | memoryview:
        chunk = await self.read()
        if not chunk:
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        """Stop reading; drop what was not read. Idempotent."""
        if not self._closed:
            self._closed = True
            self._attachment._store._forget(self._attachment)


class AttachmentStore:
    """All attachments in flight, keyed by `(source, content id)`."""

    def __init__(
        self,
        limits: AttachmentLimits | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        call_later: CallLater | None = None,
    ) -> None:
        """Create an empty store.

        Args:
            limits: the buffering bounds.
            clock: seconds, for expiry (monotonic).
            call_later: schedules the expiry timer, `delay` seconds on `clock`. By default
                the running event loop's `call_later` (whose clock is `time.monotonic`); with
                no running loop, unclaimed attachments expire only when the store is next used.
        """
        self.limits = limits or AttachmentLimits()
        self._clock = clock
        self._call_later = call_later
        self._timer: TimerHandle | None = None
        self._timer_due = 0.0  # when the armed timer fires, on `clock`
        self._entries: dict[tuple[Hashable, str], Attachment] = {}
        self._ended: collections.OrderedDict[Hashable, BaseException | None] = (
            collections.OrderedDict()
        )
        #: Attachments dropped unread (expired, evicted, overflowed), since creation.
        self.expired = 0

    def __len__(self) -> int:
        return len(self._entries)

    def begin(self, source: Hashable, cid: str) -> Attachment:
        """A part with Content-ID `cid` started in `source`: the attachment to `put()` into.

        A repeated content id in one response gets a detached attachment whose data is
        dropped (the first part wins; AVS never repeats one).
        """
        now = self._clock()
        self.expire(now)
        key = (source, cid)
        entry = self._entries.get(key)
        if entry is not None and entry.started:
            _log.warning("repeated Content-ID %r in one response: part ignored", cid)
            detached = Attachment(self, source, cid, now)
            detached.fail(AttachmentError(f"repeated Content-ID {cid!r}"))
            return detached
        if entry is None:
            entry = self._entries[key] = Attachment(self, source, cid, now)
            self._bound(now)
        entry.started = True
        self._schedule()
        return entry

    def claim(self, source: Hashable, cid: str) -> None:
        """A directive of `source` names `cid`: keep the attachment until `release()`."""
        key = (source, cid)
        entry = self._entries.get(key)
        if entry is None:
            if source in self._ended:
                return  # the response is over and never carried it: open() will say so
            entry = self._entries[key] = Attachment(self, source, cid, self._clock())
        entry.claimed = True
        self._bound(self._clock())
        self._schedule()

    def release(self, source: Hashable, cid: str) -> None:
        """The directive naming `cid` is done: drop the attachment unless a reader has it."""
        entry = self._entries.get((source, cid))
        if entry is not None and not entry.opened:
            self._forget(entry)
            self._schedule()

    def open(self, source: Hashable, cid: str) -> AttachmentReader:
        """A reader of attachment `cid` of `source`, whether or not it has arrived.

        Raises:
            AttachmentError: it was already opened, or its response ended without it.
        """
        key = (source, cid)
        entry = self._entries.get(key)
        if entry is None:
            if source in self._ended:
                error = self._ended[source]
                reason = f" ({error})" if error is not None else ""
                raise AttachmentError(f"no attachment {cid!r} in its response{reason}")
            entry = self._entries[key] = Attachment(self, source, cid, self._clock())
        if entry.opened:
            raise AttachmentError(f"attachment {cid!r} is already being read")
        entry.opened = True
        self._schedule()
        return AttachmentReader(entry)

    def response_ended(self, source: Hashable, error: BaseException | None = None) -> None:
        """The response `source` ended: parts still open fail, awaited parts never come."""
        self._ended[source] = error
        while len(self._ended) > _ENDED_SOURCES:
            self._ended.popitem(last=False)
        for entry in [e for e in self._entries.values() if e.source == source]:
            if not entry.claimed and not entry.opened:
                # Every directive of the response has arrived: nothing can claim it now.
                _log.debug("attachment %r was never referenced: dropped", entry.cid)
                self._drop(entry)
            elif not entry.started:
                entry.fail(AttachmentError(f"no attachment {entry.cid!r} in its response"))
                if not entry.opened:
                    self._forget(entry)
            elif not entry.done:
                entry.fail(error or AttachmentError(f"attachment {entry.cid!r} was cut off"))
        self._schedule()

    def expire(self, now: float | None = None) -> int:
        """Drop unclaimed attachments older than `ttl`; returns how many were dropped."""
        if now is None:
            now = self._clock()
        ttl = self.limits.ttl
        # `created_at + ttl`, the very sum the timer is armed for: it fires exactly on time.
        stale = [
            e
            for e in self._entries.values()
            if not e.claimed and not e.opened and e.created_at + ttl <= now
        ]
        for entry in stale:
            _log.info("attachment %r expired unread", entry.cid)
            self._drop(entry)
        self._schedule()
        return len(stale)

    def close(self) -> None:
        """Cancel the expiry timer and drop every attachment; readers get `AttachmentError`.

        The store stays usable: a later attachment arms a new timer. Idempotent.
        """
        self._cancel_timer()
        for entry in list(self._entries.values()):
            entry.fail(AttachmentError(f"attachment {entry.cid!r} dropped: the store closed"))
            self._forget(entry)

    @property
    def expiry_due(self) -> float | None:
        """When the expiry timer fires (on the store's clock), or None when none is armed."""
        return self._timer_due if self._timer is not None else None

    # -- the expiry timer ----------------------------------------------------------------------

    def _schedule(self) -> None:
        """Arm the timer for the oldest unclaimed attachment, or cancel it if there is none."""
        born = [e.created_at for e in self._entries.values() if not e.claimed and not e.opened]
        if not born:
            self._cancel_timer()
            return
        due = min(born) + self.limits.ttl
        if self._timer is not None and self._timer_due == due:
            return
        call_later = self._call_later
        if call_later is None:
            try:
                call_later = asyncio.get_running_loop().call_later
            except RuntimeError:
                return  # no loop to time it: the next use of the store expires it
        self._cancel_timer()
        self._timer_due = due
        self._timer = call_later(max(0.0, due - self._clock()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.expire()  # re-arms for the next oldest, if any

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def _bound(self, now: float) -> None:
        unclaimed = [e for e in self._entries.values() if not e.claimed and not e.opened]
        for entry in unclaimed[: max(0, len(unclaimed) - self.limits.max_unclaimed)]:
            _log.warning("too many unclaimed attachments: dropping %r", entry.cid)
            self._drop(entry)
        waiting = [e for e in self._entries.values() if e.claimed and not e.opened]
        for entry in waiting[: max(0, len(waiting) - self.limits.max_claimed)]:
            _log.warning("too many claimed attachments: dropping %r", entry.cid)
            self._drop(entry)

    def _drop(self, entry: Attachment) -> None:
        self.expired += 1
        entry.fail(AttachmentError(f"attachment {entry.cid!r} expired unread"))
        self._forget(entry)

    def _forget(self, entry: Attachment) -> None:
        entry._discard()
        key = (entry.source, entry.cid)
        if self._entries.get(key) is entry:
            del self._entries[key]
