"""The event exchange of the connection manager: one event stream on a link, from its request
body and streamed audio to the `EventResult`.

AVS takes one event stream opening at a time: the caller holds the link's turn lock, released
here once the response headers arrived, while the audio keeps streaming. An event refused by
GOAWAY, or rejected once with 403, is reported back so that the manager sends it again, audio
included, from the copy kept by `Replay`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from avsclient.exceptions import (
    AuthError,
    ConnectionDraining,
    MultipartError,
    ResponseTimeout,
    ServerError,
    TimeoutException,
    TransportError,
)
from avsclient.http2._link import AttemptFailed, Link
from avsclient.http2._responses import (
    EventResult,
    ResponseSource,
    Trace,
    deliver,
    failed,
    log_response,
    read_error_body,
    result,
)
from avsclient.http2.policy import (
    ChangedReason,
    Outcome,
    outcome_for_status,
    parse_exception_body,
)
from avsclient.multipart import MultipartEncoder, MultipartParser, boundary_from_content_type

if TYPE_CHECKING:
    from avsclient.http2.stream import HTTP2Stream, Response

# Plain sorted order, as tests/test_exports.py checks (not ruff's isort-style order).
__all__ = [
    "Body",
    "EVENTS_PATH",
    "MAX_REPLAY_BYTES",
    "Replay",
    "exchange",
    "message_id_of",
    "send_on_link",
]

# The manager's modules log as one, so that an application's logging setup sees one name.
logger = logging.getLogger("avsclient.http2.manager")

EVENTS_PATH: Final = "/v20160207/events"

#: Audio kept for resending an event that a GOAWAY refused before the server took it. The
#: refusal comes within a round trip, so a second of 16 kHz PCM (32 KB) is plenty; 1 MiB
#: bounds it while covering slow links.
MAX_REPLAY_BYTES: Final = 1024 * 1024

#: Audio the pump reads ahead of an upload that cannot send (no flow-control window): two
#: seconds of 16 kHz PCM. Beyond it the source is left unread.
READ_AHEAD_BYTES: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class Body:
    """An event's request body, encoded once so that it can be sent again (internal)."""

    content_type: str
    head: bytes  # the metadata part, plus the audio part's head when audio follows
    tail: bytes  # the close delimiter

    @classmethod
    def encode(cls, event: Mapping[str, Any], *, audio: bool) -> Body:
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


def message_id_of(event: Mapping[str, Any]) -> str:
    """The event's messageId, or "" when it has none."""
    try:
        value = event["event"]["header"]["messageId"]
    except (KeyError, TypeError):
        return ""
    return value if isinstance(value, str) else ""


async def send_on_link(
    link: Link,
    event: Mapping[str, Any],
    audio: AsyncIterable[bytes] | None,
) -> EventResult:
    """Send an event on one given link (SynchronizeState), with the 403 retry."""
    body = Body.encode(event, audio=audio is not None)
    message_id = message_id_of(event)
    replay = Replay(audio) if audio is not None else None
    retried = False
    try:
        while True:
            await link.turn.acquire()
            outcome = await exchange(link, body, replay, message_id, retried=retried)
            if isinstance(outcome, EventResult):
                return outcome
            if outcome == "refused":
                return failed(
                    Outcome.NOT_CONNECTED, message_id, ConnectionDraining("refused by GOAWAY")
                )
            retried = True
    finally:
        if replay is not None:
            await replay.aclose()


async def exchange(
    link: Link,
    body: Body,
    replay: Replay | None,
    message_id: str,
    *,
    retried: bool,
) -> EventResult | Literal["refused", "auth"]:
    """Run one event stream on `link`, whose turn lock the caller holds (released here).

    Returns:
        The result, or "refused" (GOAWAY: never processed, send again elsewhere), or
        "auth" (a first 403: the token was refreshed, send again).
    """
    loop = asyncio.get_running_loop()
    trace = Trace()
    turn_held = True

    def release_turn() -> None:
        nonlocal turn_held
        if turn_held:
            turn_held = False
            link.turn.release()

    link.in_flight += 1
    stream: HTTP2Stream | None = None
    upload: asyncio.Task[None] | None = None
    try:
        try:
            token = await link.gate.provider.get_token()
        except Exception as exc:  # AuthError, TransportError, a broken provider
            release_turn()
            outcome = Outcome.INVALID_AUTH if isinstance(exc, AuthError) else Outcome.NOT_CONNECTED
            return failed(outcome, message_id, exc)
        headers = [("authorization", f"Bearer {token}"), ("content-type", body.content_type)]
        trace.started_at = trace.progress_at = loop.time()
        try:
            stream = await link.conn.open_stream(
                "POST",
                EVENTS_PATH,
                headers,
                body=None,
                response_timeout=None,
                inactivity_timeout=None,
            )
        except ConnectionDraining:
            release_turn()
            link.mark_draining(ChangedReason.GOAWAY)
            return "refused"
        except TransportError as exc:
            release_turn()
            return failed(link.outcome_for(exc), message_id, exc, trace)
        upload = asyncio.create_task(
            _upload(stream, body, replay, trace), name=f"avs upload {stream.stream_id}"
        )
        try:
            response = await _response(stream, upload, trace, link.config.event_timeout)
        except ConnectionDraining:
            release_turn()
            await _finish_upload(upload, wait=True)
            return "refused"
        except BaseException as exc:
            release_turn()
            if isinstance(exc, TimeoutException):
                link.ping_now.set()  # SDK: a stalled event stream triggers a ping
            if isinstance(exc, Exception):
                error = _upload_error(upload) or exc
                return failed(link.outcome_for(error), message_id, error, trace)
            raise
        trace.response_started_at = loop.time()
        release_turn()
        link.touch()
        status = response.status
        if replay is not None and (status != 403 or retried):
            replay.commit()  # AVS took the stream; a first 403 is sent again, audio too
        request_id = response.header("x-amzn-requestid")
        log_response(f"event {message_id}", response)
        outcome = outcome_for_status(status)
        if status == 200:
            return await _read_event_body(
                link, stream, upload, response, trace, message_id, request_id
            )
        content = await read_error_body(stream, trace, link.config.event_timeout)
        await _finish_upload(upload, wait=False)
        if outcome is Outcome.SUCCESS_NO_CONTENT:
            return result(outcome, message_id, trace, status=status, request_id=request_id)
        code, description = parse_exception_body(content)
        error = ServerError(
            f"AVS answered {status} {code or ''}: {description or ''}".rstrip(": "),
            status=status,
            code=code,
            description=description,
        )
        if status == 403:
            renewed = False
            if not retried:
                try:
                    await link.gate.renew(token)
                    renewed = True
                except AttemptFailed as exc:
                    logger.warning("event %s: no new token: %s", message_id, exc)
            if not renewed:
                link.mark_lost(ChangedReason.INVALID_AUTH, "403 again after a refresh")
            elif replay is None or replay.replayable:
                return "auth"
            else:
                logger.warning("event %s: 403, and too much audio to resend", message_id)
        logger.warning(
            "event %s failed: %d %s (request id %s)", message_id, status, code, request_id
        )
        return result(
            outcome,
            message_id,
            trace,
            status=status,
            error=error,
            code=code,
            request_id=request_id,
        )
    finally:
        release_turn()
        if upload is not None and not upload.done():
            upload.cancel()
            with contextlib.suppress(BaseException):
                await upload
        if stream is not None:
            await stream.aclose()
        link.in_flight -= 1
        if not link.in_flight:
            link.idle.set()


async def _upload(stream: HTTP2Stream, body: Body, replay: Replay | None, trace: Trace) -> None:
    """Send the metadata part, then the audio as it comes, then the close delimiter."""
    if replay is None:
        await stream.send_data(body.head + body.tail, end_stream=True)
    else:
        await stream.send_data(body.head)

        def send_now(data: bytes) -> bool:
            if stream.try_send_data(data):
                trace.moved()
                return True
            return False

        position = 0
        while True:
            chunk, position = await replay.chunk(position, send_now)
            if chunk is None:
                break
            # Write at once when nothing else is ready (a microphone's frame), else together.
            await stream.send_data(chunk, flush=not replay.has_ready(position))
            trace.moved()
        await stream.send_data(body.tail, end_stream=True)
    trace.body_sent_at = asyncio.get_running_loop().time()
    trace.moved()


async def _response(
    stream: HTTP2Stream, upload: asyncio.Task[None], trace: Trace, limit: float
) -> Response:
    """Wait for the response headers while the upload progresses (`limit` s idle at most)."""
    loop = asyncio.get_running_loop()
    while True:
        remaining = trace.progress_at + limit - loop.time()
        if remaining <= 0:
            await stream.reset()
            raise ResponseTimeout(f"no response to the event within {limit} s")
        with contextlib.suppress(TimeoutError):  # then look at the progress again
            async with asyncio.timeout(remaining):
                return await _first(stream.response(), upload)


async def _read_event_body(
    link: Link,
    stream: HTTP2Stream,
    upload: asyncio.Task[None],
    response: Response,
    trace: Trace,
    message_id: str,
    request_id: str | None,
) -> EventResult:
    source = ResponseSource(link.id, stream.stream_id, "event", message_id)
    error: BaseException | None = None
    loop = asyncio.get_running_loop()
    try:
        parser = MultipartParser(boundary_from_content_type(response.header("content-type") or ""))
    except (ValueError, MultipartError) as exc:
        error = exc
    else:
        limit = link.config.event_timeout
        try:
            while True:
                remaining = trace.progress_at + limit - loop.time()
                if remaining <= 0:
                    await stream.reset()
                    link.ping_now.set()  # SDK: a stalled event stream triggers a ping
                    raise ResponseTimeout(f"the event response stalled for {limit} s")
                try:
                    async with asyncio.timeout(remaining):
                        chunk = await anext(stream, None)
                except TimeoutError:
                    continue  # look at the progress again (the upload may have moved)
                if chunk is None:
                    break
                if trace.first_byte_at is None:
                    trace.first_byte_at = loop.time()
                trace.moved()
                link.touch()
                await deliver(link.sink, parser, chunk, source)
            if not parser.done:
                parser.close()  # raises ParserError: the body was truncated
        except (TransportError, MultipartError) as exc:
            error = _upload_error(upload) or exc
    await _finish_upload(upload, wait=False)
    with contextlib.suppress(Exception):
        await link.sink.response_ended(source, error)
    if error is not None:
        logger.warning("event %s: response failed: %s", message_id, error)
        return result(
            link.outcome_for(error),
            message_id,
            trace,
            status=200,
            error=error,
            request_id=request_id,
        )
    return result(Outcome.SUCCESS, message_id, trace, status=200, request_id=request_id)


async def _first(response: Awaitable[Response], upload: asyncio.Task[None]) -> Response:
    """The response headers; an upload that fails before they come is reported instead."""
    waiter = asyncio.ensure_future(response)
    try:
        while True:
            pending = {waiter} if upload.done() else {waiter, upload}
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if waiter.done():
                return waiter.result()
            error = upload.exception() if not upload.cancelled() else None
            if error is not None and not isinstance(error, TransportError):
                raise error  # the audio source failed: the request cannot complete
    finally:
        if not waiter.done():
            waiter.cancel()
            with contextlib.suppress(BaseException):
                await waiter


def _upload_error(upload: asyncio.Task[None]) -> BaseException | None:
    """The audio source's own failure, if that is what stopped the upload."""
    if upload.done() and not upload.cancelled():
        error = upload.exception()
        if error is not None and not isinstance(error, TransportError):
            return error
    return None


async def _finish_upload(upload: asyncio.Task[None], *, wait: bool) -> None:
    """Let an upload end by itself (`wait`) or stop it; never raise its error here."""
    if not upload.done():
        if not wait:
            return
        with contextlib.suppress(BaseException):
            await asyncio.shield(upload)
    elif not upload.cancelled():
        upload.exception()  # retrieved: the result already reports it
