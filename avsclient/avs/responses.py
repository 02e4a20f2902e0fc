"""What comes back from AVS to the connection manager's caller: response bodies handed part by
part to a `ResponseSink`, and the one `EventResult` that ends every event.

Shared by the link (downchannel) and the event exchange; `avsclient.avs` exports the public
names.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from avsclient.avs.policy import MAX_EXCEPTION_BODY, EventOutcome
from avsclient.exceptions import TransportError
from avsclient.multipart import MessageEnded, PartData, PartEnded, PartStarted

if TYPE_CHECKING:
    from avsclient.http2.stream import HTTP2Stream, Response
    from avsclient.multipart import Headers, MultipartParser

# Plain sorted order, as tests/test_exports.py checks (not ruff's isort-style order).
__all__ = [
    "EventResult",
    "ResponseSink",
    "ResponseSource",
    "Trace",
    "deliver",
    "failed",
    "log_response",
    "read_error_body",
    "result",
]

# The session's modules log as one, so that an application's logging setup sees one name.
logger = logging.getLogger("avsclient.avs")

_SUCCESS = frozenset({EventOutcome.SUCCESS, EventOutcome.SUCCESS_NO_CONTENT})


@dataclass(frozen=True, slots=True)
class ResponseSource:
    """Identifies one response body: the scope of its `cid:` references (avs-protocol 4.3).

    Attributes:
        connection_id: the manager's number for the connection (from 1).
        stream_id: the HTTP/2 stream.
        kind: "downchannel" or "event".
        message_id: the event's messageId for event streams, else None.
    """

    connection_id: int
    stream_id: int
    kind: Literal["downchannel", "event"]
    message_id: str | None = None


class ResponseSink(Protocol):
    """Where response bodies go, part by part (implemented by the directive pipeline).

    The manager awaits each call before it takes the next chunk off the HTTP/2 stream, so a
    slow sink applies HTTP/2 backpressure. `data` views immutable bytes: keeping one is safe,
    but costs memory. An exception raised by the sink is logged and the body goes on.
    """

    async def part_started(self, source: ResponseSource, headers: Headers) -> None:
        """A part's headers were read."""
        ...

    async def part_data(self, source: ResponseSource, data: memoryview) -> None:
        """A piece of the current part's content."""
        ...

    async def part_ended(self, source: ResponseSource) -> None:
        """The current part is complete."""
        ...

    async def response_ended(self, source: ResponseSource, error: BaseException | None) -> None:
        """The body ended: completely (None) or broken (the error)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class EventResult:
    """How one event ended (exactly one per `send_event` call).

    Attributes:
        outcome: the outcome.
        status: the HTTP status, if a response arrived.
        message_id: the event's messageId ("" if the event had none).
        error: what failed (a `ServerError` for error statuses, a transport or parse error,
            or the audio source's exception), or None.
        exception_code: the AVS exception code of an error response, if any.
        request_id: the `x-amzn-requestid` response header, if any.
        started_at: when the event stream was opened (`loop.time()`), for the latency trace.
        body_sent_at: when the request body (audio included) was completely sent.
        response_started_at: when the response headers arrived.
        first_byte_at: when the first response body byte arrived.
        completed_at: when the outcome was known.
    """

    outcome: EventOutcome
    status: int | None = None
    message_id: str = ""
    error: BaseException | None = None
    exception_code: str | None = None
    request_id: str | None = None
    started_at: float | None = None
    body_sent_at: float | None = None
    response_started_at: float | None = None
    first_byte_at: float | None = None
    completed_at: float | None = None

    @property
    def ok(self) -> bool:
        """True for SUCCESS and SUCCESS_NO_CONTENT."""
        return self.outcome in _SUCCESS


@dataclass(slots=True)
class Trace:
    """Mutable stamps and progress of one exchange (internal)."""

    started_at: float | None = None
    body_sent_at: float | None = None
    response_started_at: float | None = None
    first_byte_at: float | None = None


def result(
    outcome: EventOutcome,
    message_id: str,
    trace: Trace,
    *,
    status: int | None = None,
    error: BaseException | None = None,
    code: str | None = None,
    request_id: str | None = None,
) -> EventResult:
    """The `EventResult` of an exchange, stamped from its trace (completed now)."""
    return EventResult(
        outcome=outcome,
        status=status,
        message_id=message_id,
        error=error,
        exception_code=code,
        request_id=request_id,
        started_at=trace.started_at,
        body_sent_at=trace.body_sent_at,
        response_started_at=trace.response_started_at,
        first_byte_at=trace.first_byte_at,
        completed_at=asyncio.get_running_loop().time(),
    )


def failed(
    outcome: EventOutcome, message_id: str, error: BaseException, trace: Trace | None = None
) -> EventResult:
    """The `EventResult` of an event that failed without a response."""
    return result(outcome, message_id, trace or Trace(), error=error)


async def deliver(
    sink: ResponseSink, parser: MultipartParser, chunk: bytes, source: ResponseSource
) -> None:
    """Feed a chunk to the parser and its events to the sink, one awaited call each."""
    for event in parser.feed(chunk):
        try:
            if type(event) is PartData:
                await sink.part_data(source, event.data)
            elif type(event) is PartStarted:
                await sink.part_started(source, event.headers)
            elif type(event) is PartEnded:
                await sink.part_ended(source)
            elif type(event) is MessageEnded:
                pass
        except Exception:
            logger.exception("the response sink failed on %r", event)


async def read_error_body(stream: HTTP2Stream, timeout: float | None = None) -> bytes:
    """At most MAX_EXCEPTION_BODY bytes of a (small, JSON) error body, read within `timeout`
    in all; errors give b""."""
    parts: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in stream:
                parts.append(chunk[: MAX_EXCEPTION_BODY - size])
                size += len(parts[-1])
                if size >= MAX_EXCEPTION_BODY:
                    break
    except (TransportError, TimeoutError):
        pass
    return b"".join(parts)


def log_response(what: str, response: Response) -> None:
    """Log a response's status and request id (DEBUG)."""
    logger.debug(
        "%s: status %d, x-amzn-requestid %s",
        what,
        response.status,
        response.header("x-amzn-requestid"),
    )
