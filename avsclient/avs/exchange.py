"""The event exchange of the AVS session: one event stream on a link, from its request body
and streamed audio to the `EventResult`.

AVS takes one event stream opening at a time: the caller holds the link's turn lock, released
here once the response headers arrived, while the audio keeps streaming. An event refused by
GOAWAY is reported back so that the manager sends it again elsewhere; one rejected with 403
is sent again once with a renewed token (`send_authorized`, through the token gate's one
rule); both resend the audio from the copy kept by `Replay` (upload.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal

from avsclient._retry import RetryPolicy
from avsclient.avs.policy import (
    ChangedReason,
    EventOutcome,
    outcome_for_status,
    parse_exception_body,
    reason_for_outcome,
)
from avsclient.avs.responses import (
    EventResult,
    ResponseSource,
    Trace,
    deliver,
    failed,
    log_response,
    read_error_body,
    result,
)
from avsclient.avs.tokens import AttemptFailed, TokenGate
from avsclient.avs.upload import EventBody
from avsclient.exceptions import (
    ConnectionDraining,
    MultipartError,
    ResponseTimeout,
    ServerError,
    TimeoutException,
    TransportError,
)
from avsclient.multipart import MultipartParser, boundary_from_content_type

if TYPE_CHECKING:
    from avsclient.avs.link import Link
    from avsclient.avs.upload import Replay
    from avsclient.http2.stream import HTTP2Stream, Response

# Plain sorted order, as tests/test_exports.py checks (not ruff's isort-style order).
__all__ = [
    "EVENTS_PATH",
    "REFUSED",
    "ContextCallback",
    "exchange",
    "message_id_of",
    "send_authorized",
    "send_on_link",
    "synchronize",
]

# The session's modules log as one, so that an application's logging setup sees one name.
logger = logging.getLogger("avsclient.avs")

EVENTS_PATH: Final = "/v20160207/events"

#: What `exchange` returns for a stream a GOAWAY refused (never processed: send it elsewhere).
REFUSED: Final = "refused"

#: Gives the full context (a list of `{"header": ..., "payload": ...}` state objects) for
#: SynchronizeState; may be a plain function or a coroutine function.
ContextCallback = Callable[[], "Awaitable[list[dict[str, Any]]] | list[dict[str, Any]]"]


def message_id_of(event: Mapping[str, Any]) -> str:
    """The event's messageId, or "" when it has none."""
    try:
        value = event["event"]["header"]["messageId"]
    except (KeyError, TypeError):
        return ""
    return value if isinstance(value, str) else ""


async def send_authorized(
    gate: TokenGate,
    run: Callable[[str], Awaitable[tuple[EventResult, Link | None]]],
    replay: Replay | None,
    message_id: str,
) -> EventResult:
    """Run an event with a token, and once more with a renewed one after a first 403.

    The rule is the token gate's (`TokenGate.with_renewal`); what is particular to events:
    the audio must still be kept to send it again, and a 403 that stands (again after the
    renewal, or no new token) takes the link it came on down as INVALID_AUTH.

    Args:
        gate: the token gate.
        run: sends the event once with the given token; returns its result and the link it
            ran on (None if it never got one).
        replay: the event's audio, if any.
        message_id: for the results and the log.
    """
    ran: list[tuple[EventResult, Link | None]] = []

    async def attempt(token: str) -> EventResult:
        if ran and replay is not None and not replay.replayable:
            # The token is renewed for the events to come, but this one cannot be sent whole.
            logger.warning("event %s: 403, and too much audio to resend", message_id)
            return ran[-1][0]
        ran.append(await run(token))
        return ran[-1][0]

    try:
        outcome = await gate.with_renewal(attempt, rejected=lambda done: done.status == 403)
    except AttemptFailed as exc:
        if not ran:  # no token to start with
            error = exc.__cause__ or exc
            if exc.reason is ChangedReason.INVALID_AUTH:
                return failed(EventOutcome.INVALID_AUTH, message_id, error)
            return failed(EventOutcome.NOT_CONNECTED, message_id, error)
        logger.warning("event %s: no new token: %s", message_id, exc)
        outcome, link = ran[-1]
        if link is not None:
            link.mark_lost(ChangedReason.INVALID_AUTH, "403, and no new token")
        return outcome
    link = ran[-1][1]
    if outcome.status == 403 and len(ran) == 2 and link is not None:
        link.mark_lost(ChangedReason.INVALID_AUTH, "403 again after a refresh")
    return outcome


async def send_on_link(
    link: Link, body: EventBody, replay: Replay | None, message_id: str
) -> EventResult:
    """Send an event on one given link (SynchronizeState), with the 403 resend."""

    async def run(token: str) -> tuple[EventResult, Link | None]:
        await link.turn.acquire()
        outcome = await exchange(link, body, replay, message_id, token)
        if outcome == REFUSED:
            refused = ConnectionDraining("refused by GOAWAY")
            return failed(EventOutcome.NOT_CONNECTED, message_id, refused), link
        assert isinstance(outcome, EventResult)
        return outcome, link

    return await send_authorized(link.gate, run, replay, message_id)


async def synchronize(
    link: Link, context: ContextCallback, retry: RetryPolicy, random: Callable[[], float]
) -> None:
    """Send System.SynchronizeState on `link` until it is accepted (avs-protocol 2.1 step 5).

    A failed attempt is retried after `retry`'s delay for the count of failures so far, drawn
    from `random`. `retry` has no retry limit (the manager passes its reconnect schedule): the
    attempt ends when the link does.

    Raises:
        AttemptFailed: the link ended meanwhile, or AVS rejected the token twice.
    """
    failures = 0
    while True:
        state = context()
        if inspect.isawaitable(state):
            state = await state
        event = {
            "context": list(state),
            "event": {
                "header": {
                    "namespace": "System",
                    "name": "SynchronizeState",
                    "messageId": str(uuid.uuid4()),
                },
                "payload": {},
            },
        }
        body = EventBody.encode(event, audio=False)
        result = await send_on_link(link, body, None, message_id_of(event))
        if result.ok:
            return
        if not link.usable:
            raise AttemptFailed(
                link.lost or link.drain or reason_for_outcome(result.outcome),
                f"the connection ended during SynchronizeState ({result.outcome.name})",
            )
        if result.outcome is EventOutcome.INVALID_AUTH:
            raise AttemptFailed(ChangedReason.INVALID_AUTH, "SynchronizeState got 403 twice")
        failures += 1
        delay = retry.next_delay(failures, random)
        assert delay is not None  # no max_retries: retry until the link ends
        logger.warning(
            "SynchronizeState failed (%s, status %s); again in %.3f s",
            result.outcome.name,
            result.status,
            delay,
        )
        await asyncio.sleep(delay)


async def exchange(
    link: Link,
    body: EventBody,
    replay: Replay | None,
    message_id: str,
    token: str,
) -> EventResult | Literal["refused"]:
    """Run one event stream on `link`, whose turn lock the caller holds (released here).

    Returns:
        The result (a 403 included: the caller decides on a resend), or REFUSED (GOAWAY:
        never processed, send it again elsewhere).
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
        headers = [("authorization", f"Bearer {token}"), ("content-type", body.content_type)]
        trace.started_at = loop.time()
        try:
            # No total wait for the response: a Recognize's upload lasts as long as the user
            # speaks. The stream fails once it made no progress either way (its upload
            # included) for event_timeout: the one progress timeout, the transport's.
            stream = await link.conn.open_stream(
                "POST",
                EVENTS_PATH,
                headers,
                body=None,
                response_timeout=None,
                inactivity_timeout=link.config.event_timeout,
            )
        except ConnectionDraining:
            release_turn()
            link.mark_draining(ChangedReason.GOAWAY)
            return REFUSED
        except TransportError as exc:
            release_turn()
            return failed(link.outcome_for(exc), message_id, exc, trace)
        upload = asyncio.create_task(
            _upload(stream, body, replay, trace), name=f"avs upload {stream.stream_id}"
        )
        try:
            response = await _first(stream.response(), upload)
        except ConnectionDraining:
            release_turn()
            await _finish_upload(upload, wait=True)
            return REFUSED
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
        if replay is not None and status != 403:
            replay.commit()  # AVS took the stream; a 403 may be sent again, audio too
        request_id = response.header("x-amzn-requestid")
        log_response(f"event {message_id}", response)
        outcome = outcome_for_status(status)
        if status == 200:
            return await _read_event_body(
                link, stream, upload, response, trace, message_id, request_id
            )
        content = await read_error_body(stream, link.config.event_timeout)
        await _finish_upload(upload, wait=False)
        if outcome is EventOutcome.SUCCESS_NO_CONTENT:
            return result(outcome, message_id, trace, status=status, request_id=request_id)
        code, description = parse_exception_body(content)
        error = ServerError(
            f"AVS answered {status} {code or ''}: {description or ''}".rstrip(": "),
            status=status,
            code=code,
            description=description,
        )
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


async def _upload(
    stream: HTTP2Stream, body: EventBody, replay: Replay | None, trace: Trace
) -> None:
    """Send the metadata part, then the audio as it comes, then the close delimiter."""
    if replay is None:
        await stream.send_data(body.head + body.tail, end_stream=True)
    else:
        await stream.send_data(body.head)

        position = 0
        while True:
            chunk, position = await replay.chunk(position, stream.try_send_data)
            if chunk is None:
                break
            # Write at once when nothing else is ready (a microphone's frame), else together.
            await stream.send_data(chunk, flush=not replay.has_ready(position))
        await stream.send_data(body.tail, end_stream=True)
    trace.body_sent_at = asyncio.get_running_loop().time()


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
        try:
            body = _within_total(stream, upload, link.config.event_timeout)
            async with contextlib.aclosing(body):
                async for chunk in body:
                    if trace.first_byte_at is None:
                        trace.first_byte_at = loop.time()
                    link.touch()
                    await deliver(link.sink, parser, chunk, source)
            if not parser.done:
                parser.close()  # raises ParserError: the body was truncated
        except (TransportError, MultipartError) as exc:
            if isinstance(exc, TimeoutException):
                link.ping_now.set()  # SDK: a stalled event stream triggers a ping
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
    return result(EventOutcome.SUCCESS, message_id, trace, status=200, request_id=request_id)


async def _within_total(
    stream: HTTP2Stream, upload: asyncio.Task[None], limit: float
) -> AsyncGenerator[bytes, None]:
    """The response body's chunks, within a total deadline once the request is sent.

    The stream's own timeout only measures inactivity, which a server sending one byte now
    and then keeps alive for ever. Once the upload is over (a Recognize's audio may last as
    long as the user speaks), the time spent waiting for the server adds up, and the body
    must end before `limit` seconds of it. Time the caller spends with a chunk (the sink
    applying back-pressure, a player draining) does not count.

    Raises:
        ResponseTimeout: `limit` seconds of waiting went by after the upload ended.
        TransportError: as the stream's iteration.
    """
    loop = asyncio.get_running_loop()
    waited = 0.0
    chunks = aiter(stream)
    while True:
        counting = upload.done()
        start = loop.time()
        try:
            async with asyncio.timeout(max(limit - waited, 0.0) if counting else None):
                chunk = await anext(chunks)
        except StopAsyncIteration:
            return
        except TimeoutError as exc:
            raise ResponseTimeout(
                f"stream {stream.stream_id}: the response had not ended {limit} s after the "
                "request was sent (the server keeps it open without finishing it)"
            ) from exc
        finally:
            if counting:
                waited += loop.time() - start
        yield chunk


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
