"""One request/response exchange of the asyncio shell: `HTTP2Stream` and its `Response`.

A stream holds the chunks the connection's reader routed to it and hands them out as an async
iterator, giving their flow-control window back to the core only when the consumer takes them
(STYLE.md section 9). Its upload is sent within the windows through the connection's single
write path. Everything that touches the socket or the core's connection-wide state lives in
`connection.py`.

The two talk through a small interface and nothing else: the stream calls its owner's
`StreamOwner` methods (`stream_send`, `stream_try_send`, ...), and the connection calls the
stream's "called by the connection" methods (`on_response`, `on_data`, `on_end`,
`on_trailers`, `fail`, `stop_upload`, `start_upload`, `ended`).

Progress: a stream's `inactivity_timeout` bounds every wait on it (the response headers, a
body chunk, room in a window, a full write buffer) by the time since the exchange last moved
in either direction: response headers or a chunk received, or upload bytes queued. So a long
upload keeps the wait for its response alive, and a stream stalled both ways fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

from h2.errors import ErrorCodes

from avsclient._resource import AsyncResource
from avsclient.exceptions import (
    ConnectionClosed,
    LocalProtocolError,
    ProtocolError,
    ResponseTimeout,
    StreamInactivityTimeout,
    StreamReset,
    TransportError,
)

if TYPE_CHECKING:
    from avsclient.config import ConnectionConfig

# Plain sorted order, as tests/test_exports.py checks (not ruff's isort-style order).
__all__ = [
    "Body",
    "DEFAULT",
    "HTTP2Stream",
    "Response",
    "StreamOwner",
]

logger = logging.getLogger("avsclient.http2")

#: A request body: bytes sent at once, or chunks sent as they arrive (never joined).
Body = bytes | bytearray | memoryview | AsyncIterable[bytes]


class _Default:
    """Marks "use the value from ConnectionConfig" in per-call timeout arguments."""

    def __repr__(self) -> str:
        return "DEFAULT"


DEFAULT: Final = _Default()


def _timeout(value: float | _Default | None, default: float | None) -> float | None:
    return default if isinstance(value, _Default) else value


class StreamOwner(Protocol):
    """What a stream needs from its connection (`HTTP2Connection` implements it)."""

    config: ConnectionConfig

    def stream_send(
        self, stream_id: int, data: memoryview, *, end_stream: bool, flush: bool
    ) -> int:
        """Queue what fits the windows, write it (now or next turn); return the count."""
        ...

    def stream_try_send(self, stream_id: int, data: bytes) -> bool:
        """Frame and write `data` now if nothing stands in the way; whether it did."""
        ...

    def stream_acknowledge(self, stream_id: int, length: int) -> None:
        """Give back the window of consumed bytes."""
        ...

    async def stream_wait_window(self, stream: HTTP2Stream) -> None:
        """Wait for room in the windows (bounded by the stream's inactivity timeout)."""
        ...

    async def stream_drain(self, stream: HTTP2Stream) -> None:
        """Wait while the transport holds writes back (bounded likewise)."""
        ...

    def stream_reset(
        self, stream: HTTP2Stream, error: BaseException, error_code: int = ErrorCodes.CANCEL
    ) -> None:
        """Fail the stream with `error` and send RST_STREAM."""
        ...

    def stream_release(self, stream: HTTP2Stream) -> None:
        """Forget a stream that is over."""
        ...


@dataclass(frozen=True, slots=True)
class Response:
    """The status and headers of a response (its body is read from the `HTTP2Stream`).

    Attributes:
        stream_id: the HTTP/2 stream.
        status: the HTTP status code.
        headers: the response headers (names lower-case, values latin-1 decoded), in order.
    """

    stream_id: int
    status: int
    headers: tuple[tuple[str, str], ...]

    def header(self, name: str) -> str | None:
        """Return the first value of a header (case-insensitive), or None."""
        name = name.lower()
        return next((value for key, value in self.headers if key == name), None)


class HTTP2Stream(AsyncResource):
    """One request/response exchange on an `HTTP2Connection`.

    The response body is an async iterator of `bytes` chunks, handed over as they arrived.
    Each chunk's flow-control window is given back to the server only when the chunk is taken
    here, so a slow reader slows the server down instead of filling memory: a stream buffers
    at most `ConnectionConfig.stream_window` bytes.

    Use it as an async context manager (or call `aclose()`): leaving early resets the stream.
    """

    def __init__(
        self,
        connection: StreamOwner,
        stream_id: int,
        *,
        response_timeout: float | None,
        inactivity_timeout: float | None,
        upload_open: bool,
    ) -> None:
        self._conn = connection
        self.stream_id = stream_id
        self.response_timeout = response_timeout
        self.inactivity_timeout = inactivity_timeout
        self.trailers: tuple[tuple[str, str], ...] = ()
        loop = asyncio.get_running_loop()
        self._clock = loop.time
        self._opened_at = self._moved_at = loop.time()  # _moved_at: the exchange's progress
        self._response: asyncio.Future[Response] = loop.create_future()
        self._chunks: deque[tuple[bytes, int]] = deque()
        # Window of chunks the consumer took but not yet handed back: acknowledged together
        # once no chunk is left queued (so a waiting consumer never holds window back) or
        # once `_ack_batch` bytes add up, instead of one h2 call and flush per DATA frame.
        self._unacked = 0
        self._ack_batch = max(1, connection.config.stream_window // 8)
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False  # END_STREAM received
        self._error: BaseException | None = None  # sticky: every later call raises it
        self._upload_open = upload_open
        self._upload_task: asyncio.Task[None] | None = None
        self._upload_error: BaseException | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"<HTTP2Stream {self.stream_id} ended={self._ended} error={self._error!r}>"

    # -- called by the connection ------------------------------------------------------------

    @property
    def ended(self) -> bool:
        """True once the response's END_STREAM arrived."""
        return self._ended

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def on_response(self, response: Response) -> None:
        """The response headers arrived."""
        if not self._response.done():
            self._moved_at = self._clock()
            self._response.set_result(response)

    def on_data(self, data: bytes, length: int) -> None:
        """A body chunk arrived; `length` is its flow-controlled size."""
        self._chunks.append((data, length))
        self._wake()

    def on_end(self) -> None:
        """The response body is complete."""
        self._ended = True
        self._wake()

    def on_trailers(self, headers: tuple[tuple[str, str], ...]) -> None:
        """Trailers arrived."""
        self.trailers = headers

    def fail(self, exc: BaseException) -> None:
        """Fail the stream (sticky); queued chunks are dropped, their window handed back."""
        if self._error is not None:
            return
        self._error = exc
        self._upload_open = False
        if not self._response.done():
            self._response.set_exception(exc)
            # Nobody may be waiting for the headers; do not warn about an unretrieved error.
            self._response.exception()
        self._wake()

    def stop_upload(self) -> None:
        """The server reset the stream after a complete response: only the upload stops."""
        self._upload_open = False

    def start_upload(self, body: Body) -> asyncio.Task[None]:
        """Send `body` from a task of its own (see `wait_upload`); return that task."""
        task = asyncio.create_task(self._pump(body), name=f"http2 upload {self.stream_id}")
        self._upload_task = task
        return task

    def _release_if_finished(self) -> None:
        """Let the connection forget the stream once the exchange is over both ways."""
        if self._ended and not self._chunks and not self._upload_open:
            self._conn.stream_release(self)

    def _progress_deadline(self) -> float | None:
        """When the stream fails for lack of progress (None: never)."""
        limit = self.inactivity_timeout
        return None if limit is None else self._moved_at + limit

    # -- response ----------------------------------------------------------------------------

    async def response(self) -> Response:
        """Wait for the response status and headers.

        Returns:
            The response.

        Raises:
            ResponseTimeout: nothing arrived within `response_timeout` (the stream is reset).
            StreamInactivityTimeout: nothing arrived, and nothing was sent, for
                `inactivity_timeout` (the stream is reset).
            StreamReset: the server reset the stream.
            ConnectionDraining: the server's GOAWAY refused this stream (safe to retry).
            ConnectionLost: the connection broke.
            ConnectionClosed: the connection or the stream was closed by its owner.
        """
        if self._response.done():
            return self._response.result()
        loop = asyncio.get_running_loop()
        limit = self.response_timeout
        total = None if limit is None else loop.time() + limit
        while True:
            deadline = self._progress_deadline()
            if total is not None and (deadline is None or total < deadline):
                deadline = total
            try:
                async with asyncio.timeout_at(deadline):
                    return await asyncio.shield(self._response)
            except TimeoutError as exc:
                if self._response.done():  # pragma: no cover - arrived in the same loop turn
                    return self._response.result()
                now = loop.time()
                error: TransportError
                if total is not None and now >= total:
                    error = ResponseTimeout(
                        f"no response headers on stream {self.stream_id} within {limit} s"
                    )
                else:
                    progress = self._progress_deadline()
                    if progress is None or now < progress:
                        continue  # the upload moved meanwhile: wait on
                    error = StreamInactivityTimeout(
                        f"stream {self.stream_id}: no response headers and nothing sent for "
                        f"{self.inactivity_timeout} s"
                    )
                self._conn.stream_reset(self, error)
                raise error from exc

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        """Return the next body chunk.

        Raises:
            StopAsyncIteration: the body is complete.
            StreamInactivityTimeout: the exchange made no progress either way for
                `inactivity_timeout` (the stream is reset).
            ResponseTimeout, StreamReset, ConnectionDraining, ConnectionLost, ConnectionClosed:
                as `response()`.
        """
        if not self._response.done():
            await self.response()
        chunks = self._chunks
        while not chunks:
            if self._error is not None:
                raise self._error
            if self._ended:
                self._release_if_finished()
                raise StopAsyncIteration
            await self._wait_for_data()
        data, length = chunks.popleft()
        if length:
            # Give the window back now that the consumer has the bytes (STYLE.md section 9).
            self._unacked += length
            if not chunks or self._unacked >= self._ack_batch:
                self._acknowledge()
        return data

    def _acknowledge(self) -> None:
        """Hand the window of consumed (or discarded) chunks back to the core and write."""
        if self._unacked:
            unacked, self._unacked = self._unacked, 0
            self._conn.stream_acknowledge(self.stream_id, unacked)

    async def _wait_for_data(self) -> None:
        """Wait for a chunk, the end or an error, while the exchange moves either way."""
        while True:
            self._waiter = waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout_at(self._progress_deadline()):
                    await waiter
            except TimeoutError as exc:
                deadline = self._progress_deadline()
                if deadline is not None and self._clock() < deadline:
                    continue  # the upload moved meanwhile: wait on
                error = StreamInactivityTimeout(
                    f"stream {self.stream_id} received nothing for {self.inactivity_timeout} s"
                )
                self._conn.stream_reset(self, error)
                raise error from exc
            finally:
                self._waiter = None
            self._moved_at = self._clock()
            return

    async def read(self, max_size: int | None = None) -> bytes:
        """Read the whole response body.

        Args:
            max_size: fail instead of holding more than this many bytes.

        Returns:
            The body.

        Raises:
            ValueError: the body is larger than `max_size` (the stream is reset).
            ResponseTimeout, StreamInactivityTimeout, StreamReset, ConnectionDraining,
                ConnectionLost, ConnectionClosed: as `__anext__`.
        """
        parts: list[bytes] = []
        size = 0
        async for chunk in self:
            size += len(chunk)
            if max_size is not None and size > max_size:
                await self.aclose()
                raise ValueError(f"response body exceeds {max_size} bytes")
            parts.append(chunk)
        return b"".join(parts)

    # -- upload ------------------------------------------------------------------------------

    async def send_data(
        self, data: bytes | bytearray | memoryview, *, end_stream: bool = False, flush: bool = False
    ) -> None:
        """Send body bytes as they are, within the flow-control windows; wait for room.

        Bytes are written on the event loop's next turn, together with any sent right after
        them, unless `flush` (or `end_stream`) asks for at once.

        Args:
            data: the bytes (sent in frames of at most the server's max frame size).
            end_stream: end the request body after them.
            flush: write them at once: the caller has nothing more to send right now (saves a
                loop turn per chunk for a live source).

        Raises:
            StreamInactivityTimeout: the server gave no window for `inactivity_timeout`.
            StreamReset: the server reset the stream (error code 0 after a complete response:
                it wants no more of the body).
            LocalProtocolError: the request body was already ended.
            ConnectionDraining, ConnectionLost, ConnectionClosed: as `response()`.
        """
        conn = self._conn
        view = memoryview(data).cast("B")
        while True:
            self._check_upload()
            try:
                sent = conn.stream_send(self.stream_id, view, end_stream=end_stream, flush=flush)
            except (ProtocolError, TransportError):
                self._check_upload()  # the stream's own error, if it has one, comes first
                raise
            if sent:
                self._moved_at = self._clock()
            if sent == len(view):
                break
            view = view[sent:]
            if not sent:
                await conn.stream_wait_window(self)
        if end_stream:
            self._upload_open = False
        await conn.stream_drain(self)

    def try_send_data(self, data: bytes) -> bool:
        """Send `data` now if nothing stands in the way, else send nothing.

        Nothing stands in the way when the stream takes a body, `data` fits one DATA frame
        within both flow-control windows and the transport is not holding back writes. The
        bytes are then framed and written before this returns (no loop turn, no task switch:
        a producer can hand a live frame straight to the network). Otherwise `send_data` is
        the way: it waits for room, or raises the stream's error.

        Returns:
            Whether `data` was sent.
        """
        if (
            self._error is None
            and self._upload_open
            and self._conn.stream_try_send(self.stream_id, data)
        ):
            self._moved_at = self._clock()
            return True
        return False

    async def end_stream(self) -> None:
        """End the request body.

        Raises:
            As `send_data`.
        """
        await self.send_data(b"", end_stream=True)

    def _check_upload(self) -> None:
        if self._error is not None:
            raise self._error
        if not self._upload_open:
            if self._ended:
                raise StreamReset(
                    f"stream {self.stream_id}: the server finished the response and stopped "
                    "the upload",
                    stream_id=self.stream_id,
                    error_code=ErrorCodes.NO_ERROR,
                )
            raise LocalProtocolError(f"the request body of stream {self.stream_id} has ended")

    async def _pump(self, body: Body) -> None:
        """Send a whole body; failures end up on the stream, never in the caller's task."""
        try:
            if isinstance(body, (bytes, bytearray, memoryview)):
                await self.send_data(body, end_stream=True)
            else:
                async for chunk in body:
                    await self.send_data(chunk)
                await self.end_stream()
        except StreamReset as exc:
            if exc.error_code != ErrorCodes.NO_ERROR or not self._ended:
                self._upload_error = exc
                self.fail(exc)
        except TransportError as exc:
            self._upload_error = exc
            self.fail(exc)
        except Exception as exc:
            # The body iterator failed (a microphone error, say): cancel the request and let
            # whoever waits for the response see that very error.
            logger.warning("stream %d: the request body failed: %r", self.stream_id, exc)
            self._upload_error = exc
            self._conn.stream_reset(self, exc)
        else:
            self._release_if_finished()

    async def wait_upload(self) -> None:
        """Wait until the body given to `open_stream` is sent.

        Raises:
            LocalProtocolError: no body task exists (the body was empty, or None).
            Exception: what stopped the upload: a `TransportError`, or the body iterator's
                own exception.
        """
        task = self._upload_task
        if task is None:
            raise LocalProtocolError(f"stream {self.stream_id} has no body being sent")
        await asyncio.shield(task)
        if self._upload_error is not None:
            raise self._upload_error

    # -- closing -----------------------------------------------------------------------------

    @property
    def complete(self) -> bool:
        """True once the response body was read to its end."""
        return self._ended and not self._chunks and self._error is None

    async def reset(self, error_code: int = ErrorCodes.CANCEL) -> None:
        """Reset the stream (RST_STREAM); later calls raise `StreamReset`.

        Args:
            error_code: the HTTP/2 error code (CANCEL by default).
        """
        self._conn.stream_reset(
            self,
            StreamReset(
                f"stream {self.stream_id} was reset locally",
                stream_id=self.stream_id,
                error_code=error_code,
            ),
            error_code,
        )

    async def aclose(self) -> None:
        """Release the stream: reset it unless the exchange finished; stop the upload."""
        if self._closed:
            return
        self._closed = True
        if not (self._ended and not self._upload_open) and self._error is None:
            self._conn.stream_reset(
                self, ConnectionClosed(f"stream {self.stream_id} was closed by its owner")
            )
        task = self._upload_task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # Nobody will read the chunks still queued: their connection-wide window goes back.
        self._unacked += sum(length for _, length in self._chunks)
        self._chunks.clear()
        self._acknowledge()
        self._conn.stream_release(self)
