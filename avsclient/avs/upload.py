"""The request body of an event, encoded once, and the audio kept to send it again (`Replay`).

An event refused by GOAWAY before the server took it, or rejected once with 403, is sent
again, audio included; these two classes make that possible without reading the audio
source twice. No HTTP/2 here: the exchange (`exchange.py`) sends what they hold.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from avsclient.multipart import MultipartEncoder

# Plain sorted order, as tests/test_exports.py checks (not ruff's isort-style order).
__all__ = [
    "MAX_REPLAY_BYTES",
    "READ_AHEAD_BYTES",
    "EventBody",
    "Replay",
]

# The session's modules log as one, so that an application's logging setup sees one name.
logger = logging.getLogger("avsclient.avs")

#: Audio kept for resending an event that a GOAWAY refused before the server took it. The
#: refusal comes within a round trip, so a second of 16 kHz PCM (32 KB) is plenty; 1 MiB
#: bounds it while covering slow links.
MAX_REPLAY_BYTES: Final = 1024 * 1024

#: Audio the pump reads ahead of an upload that cannot send (no flow-control window): two
#: seconds of 16 kHz PCM. Beyond it the source is left unread.
READ_AHEAD_BYTES: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class EventBody:
    """An event's request body, encoded once so that it can be sent again (internal)."""

    content_type: str
    head: bytes  # the metadata part, plus the audio part's head when audio follows
    tail: bytes  # the close delimiter

    @classmethod
    def encode(cls, event: Mapping[str, Any], *, audio: bool) -> EventBody:
        encoder = MultipartEncoder()
        head = encoder.metadata_part(event)
        if audio:
            head += encoder.audio_part_start()
        return cls(encoder.content_type, head, encoder.end())


class Replay:
    """An event's audio, read by one pump task and kept until the server accepted the stream.

    A GOAWAY refuses streams the server never processed (RFC 9113 6.8), and a 403 rejects the
    stream before AVS looks at it; those are sent again, audio included, from the chunks kept
    here. Once the response headers of an accepted stream arrive, `commit()` frees the copy.

    The source is read by a task of its own for the whole event, not by the upload: stopping
    an upload in the middle of a read (its stream was rejected) then neither loses the chunk
    being read nor closes the source (cancelling a task that awaits an async generator's
    `__anext__` finalises the generator). An upload waits on a plain future, which it can drop
    at any time. While an upload waits at the live edge, the pump hands each new chunk to the
    upload's direct send (`HTTP2Stream.try_send_data`), so a microphone's frame reaches the
    network in the step that read it. The pump reads at most `READ_AHEAD_BYTES` ahead of the
    upload, so a stalled stream stops the reading (a microphone then counts its drops)
    instead of growing a buffer. `aclose()` stops the pump.
    """

    __slots__ = (
        "_ahead",
        "_ahead_size",
        "_done",
        "_error",
        "_kept",
        "_kept_size",
        "_offer",
        "_pump",
        "_room",
        "_source",
        "_taken",
        "_waiter",
        "replayable",
    )

    def __init__(self, source: AsyncIterable[bytes]) -> None:
        self._source = source
        self._pump: asyncio.Task[None] | None = None
        self._ahead: collections.deque[bytes] = collections.deque()  # read, not yet taken
        self._ahead_size = 0
        self._kept: list[bytes] = []  # taken, kept for a resend while replayable
        self._kept_size = 0
        self._taken = 0  # chunks handed to uploads so far
        self._waiter: asyncio.Future[None] | None = None  # an upload waiting for a chunk
        self._offer: Callable[[bytes], bool] | None = None  # that upload's direct send
        self._room: asyncio.Future[None] | None = None  # the pump waiting for the upload
        self._done = False
        self._error: BaseException | None = None
        self.replayable = True

    def has_ready(self, position: int) -> bool:
        """Whether `chunk(position)` would return without waiting for the source."""
        return position < self._taken or bool(self._ahead) or self._done

    async def chunk(
        self, position: int, offer: Callable[[bytes], bool] | None = None
    ) -> tuple[bytes | None, int]:
        """The chunk at `position` of the stream (None at its end) and the position after it.

        Args:
            position: where the upload is: 0 for a new attempt.
            offer: while this call waits for the source, the pump hands each chunk it reads
                to `offer` first (an upload sending it on the spot, without waking a task);
                a chunk it takes (True) counts as taken and the wait goes on, so the position
                returned can be further on than `position + 1`.

        Raises:
            The source's exception, once the chunks it produced before it are taken.
        """
        if position < self._taken:  # a resend
            if not self.replayable:
                raise RuntimeError("the audio before this point was not kept")
            return self._kept[position], position + 1
        while not self._ahead:
            if self._done:
                if self._error is not None:
                    raise self._error
                return None, self._taken
            if self._pump is None:
                self._pump = asyncio.create_task(self._run_pump(), name="avs audio pump")
            self._waiter = asyncio.get_running_loop().create_future()
            self._offer = offer
            try:
                await self._waiter
            finally:
                self._waiter = self._offer = None
        data = self._ahead.popleft()
        self._ahead_size -= len(data)
        self._keep(data)
        room = self._room
        if room is not None and self._ahead_size <= READ_AHEAD_BYTES // 2 and not room.done():
            room.set_result(None)
        return data, self._taken

    def _keep(self, data: bytes) -> None:
        """`data` was taken by an upload: count it, and keep it while a resend may need it."""
        self._taken += 1
        if self.replayable:
            self._kept_size += len(data)
            if self._kept_size > MAX_REPLAY_BYTES:
                self.commit()
            else:
                self._kept.append(data)

    def commit(self) -> None:
        """The stream was accepted (or is too long to keep): stop keeping chunks."""
        self.replayable = False
        self._kept = []

    async def aclose(self) -> None:
        """Stop the pump: no upload will take what it reads."""
        pump, self._pump = self._pump, None
        if pump is not None:
            if not pump.done():
                pump.cancel()
            with contextlib.suppress(BaseException):
                await pump
        self._done = True

    async def _run_pump(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            async for data in self._source:
                offer = self._offer
                if offer is not None and not self._ahead:
                    try:
                        taken = offer(data)
                    except Exception:  # the upload, sending it itself, meets the failure
                        logger.debug("a direct send failed; the upload sends it", exc_info=True)
                        taken = False
                    if taken:
                        self._keep(data)
                        continue
                self._ahead.append(data)
                self._ahead_size += len(data)
                self._wake()
                if self._ahead_size >= READ_AHEAD_BYTES:
                    self._room = loop.create_future()
                    try:
                        await self._room
                    finally:
                        self._room = None
        except BaseException as exc:  # reported to the upload, in order, after its chunks
            task = asyncio.current_task()
            if isinstance(exc, asyncio.CancelledError):
                if task is not None and task.cancelling():
                    raise  # aclose(): nobody reads on
                exc = RuntimeError("the audio source was cancelled")
            self._error = exc
        finally:
            self._done = True
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
