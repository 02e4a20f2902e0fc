"""One link of the AVS session: an HTTP/2 connection to AVS with its downchannel, its liveness
check and its watcher.

A link never drives the lifecycle itself: it sets its `lost` or `drain` flag and calls
`on_change`, which kicks the manager's supervisor (`avsclient.avs.manager`), so no signal can
be lost between two awaits.

Liveness is one loop (`_liveness_loop`) on one schedule (`policy.next_check`): an HTTP/2 PING
frame when nothing was received for `liveness_interval` (cheap, so it runs often and finds a
dead link in seconds), and the `GET /ping` AVS asks for when the link had no AVS exchange for
`ping_interval` (avs-protocol 1.4), or at once when a stalled event stream asks for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from avsclient.avs.policy import (
    ChangedReason,
    EventOutcome,
    LivenessCheck,
    next_check,
    outcome_for_error,
    parse_exception_body,
    reason_for_error,
    reason_for_status,
)
from avsclient.avs.responses import (
    ResponseSink,
    ResponseSource,
    deliver,
    log_response,
    read_error_body,
)
from avsclient.avs.tokens import AttemptFailed, TokenGate
from avsclient.exceptions import (
    MultipartError,
    ParserError,
    PingTimeout,
    TimeoutException,
    TransportError,
)
from avsclient.multipart import MultipartParser, boundary_from_content_type

if TYPE_CHECKING:
    from avsclient.config import ClientConfig
    from avsclient.http2.connection import HTTP2Connection
    from avsclient.http2.events import GoAwayReceived
    from avsclient.http2.stream import HTTP2Stream, Response

# Plain sorted order, as tests/test_exports.py checks (not ruff's isort-style order).
__all__ = [
    "DIRECTIVES_PATH",
    "PING_PATH",
    "Link",
]

# The session's modules log as one, so that an application's logging setup sees one name.
logger = logging.getLogger("avsclient.avs")

DIRECTIVES_PATH: Final = "/v20160207/directives"
PING_PATH: Final = "/ping"


@dataclass(eq=False)
class Link:
    """One HTTP/2 connection with its downchannel, liveness check and watcher (internal).

    `turn` lets one event stream open at a time (the next opens once the previous one has
    its response headers); `in_flight` counts the exchanges running on the link.
    """

    id: int
    url: str
    conn: HTTP2Connection
    config: ClientConfig
    gate: TokenGate
    sink: ResponseSink
    on_change: Callable[[], None]  # wakes the supervisor and everything waiting for a link
    manager_closed: Callable[[], bool]
    turn: asyncio.Lock = field(default_factory=asyncio.Lock)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    ping_now: asyncio.Event = field(default_factory=asyncio.Event)
    last_activity: float = 0.0
    in_flight: int = 0
    lost: ChangedReason | None = None  # set once: the link died
    drain: ChangedReason | None = None  # set once: take no new events, move to a new link
    closing: bool = False  # we are closing it (its death is no news)
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def usable(self) -> bool:
        return self.lost is None and self.drain is None and not self.closing and self.conn.is_open

    def touch(self) -> None:
        self.last_activity = asyncio.get_running_loop().time()

    def outcome_for(self, error: BaseException) -> EventOutcome:
        """`outcome_for_error`, except that a link we closed because it died is NOT_CONNECTED:
        CANCELED is kept for the application's own aclose()."""
        outcome = outcome_for_error(error)
        if outcome is EventOutcome.CANCELED and not self.manager_closed():
            return EventOutcome.NOT_CONNECTED
        return outcome

    # -- health ------------------------------------------------------------------------------

    def mark_lost(self, reason: ChangedReason, why: str) -> None:
        """The link died (the first reason sticks)."""
        if self.lost is not None or self.closing:
            return
        self.lost = reason
        logger.info("connection %d lost (%s): %s", self.id, reason.name, why)
        self.idle.set()
        self.on_change()

    def mark_draining(self, reason: ChangedReason) -> None:
        """Take no new events; the manager moves to a new link (the first reason sticks)."""
        if self.drain is not None or self.closing:
            return
        self.drain = reason
        logger.info("connection %d draining (%s)", self.id, reason.name)
        self.on_change()

    def on_goaway(self, event: GoAwayReceived) -> None:
        logger.info(
            "connection %d: GOAWAY (error code %s, last stream %s)",
            self.id,
            event.error_code,
            event.last_stream_id,
        )
        self.mark_draining(ChangedReason.GOAWAY)

    # -- tasks -------------------------------------------------------------------------------

    def start_task(self, coro: Awaitable[None], what: str) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        task.set_name(f"avs {what} {self.id}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def start_monitoring(self) -> None:
        """Start the watcher and the liveness check (once the link is ready for events)."""
        self.start_task(self._watch_connection(), "watcher")
        self.start_task(self._liveness_loop(), "liveness")

    async def aclose(self) -> None:
        """Cancel the link's tasks and close its connection."""
        self.closing = True
        tasks = [t for t in self.tasks if not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.conn.aclose()

    # -- the downchannel ---------------------------------------------------------------------

    async def open_downchannel(self, token: str) -> None:
        """GET /v20160207/directives; a 200 starts the reader task (avs-protocol 2.1 step 3).

        A 403 is tried once more with a renewed token (`TokenGate.with_renewal`).

        Raises:
            AttemptFailed: the request failed or was answered otherwise.
        """
        timeout = self.config.connect_timeout

        async def attempt(token: str) -> tuple[HTTP2Stream | None, Response, str]:
            """The stream and response of a 200; else no stream, and the AVS exception."""
            try:
                stream = await self.conn.open_stream(
                    "GET",
                    DIRECTIVES_PATH,
                    [("authorization", f"Bearer {token}")],
                    response_timeout=timeout,
                    inactivity_timeout=None,
                )
                response = await stream.response()
            except TransportError as exc:
                raise AttemptFailed(reason_for_error(exc), f"downchannel failed: {exc}") from exc
            self.touch()
            log_response("downchannel", response)
            if response.status == 200:
                return stream, response, ""
            body = await read_error_body(stream, timeout)
            await stream.aclose()
            code, description = parse_exception_body(body)
            return None, response, f"{code or ''} {description or ''}".strip()

        stream, response, why = await self.gate.with_renewal(
            attempt, rejected=lambda answer: answer[1].status == 403, token=token
        )
        if stream is None:
            raise AttemptFailed(
                reason_for_status(response.status, otherwise=ChangedReason.SERVER_ERROR),
                f"the downchannel was answered {response.status} {why}".rstrip(),
            )
        try:
            parser = MultipartParser(
                boundary_from_content_type(response.header("content-type") or "")
            )
        except (ValueError, MultipartError) as exc:
            await stream.aclose()
            raise AttemptFailed(
                ChangedReason.PROTOCOL_ERROR, f"the downchannel is not multipart: {exc}"
            ) from exc
        self.start_task(self._read_downchannel(stream, parser), "downchannel")

    async def _read_downchannel(self, stream: HTTP2Stream, parser: MultipartParser) -> None:
        source = ResponseSource(self.id, stream.stream_id, "downchannel")
        error: BaseException | None = None
        try:
            async for chunk in stream:
                self.touch()
                await deliver(self.sink, parser, chunk, source)
            error = ParserError("the downchannel ended") if not parser.done else None
            self.mark_lost(ChangedReason.SERVER_SIDE_DISCONNECT, "the downchannel ended")
        except MultipartError as exc:
            # The framing is broken: nothing after it can be trusted. Move to a new link and
            # let this one finish its event streams.
            error = exc
            logger.warning("connection %d: malformed downchannel body: %s", self.id, exc)
            await stream.aclose()
            self.mark_draining(ChangedReason.PROTOCOL_ERROR)
        except TransportError as exc:
            error = exc
            self.mark_lost(reason_for_error(exc), f"the downchannel failed: {exc}")
        finally:
            with contextlib.suppress(Exception):
                await self.sink.response_ended(source, error)

    # -- the watcher and the liveness check ---------------------------------------------------

    async def _watch_connection(self) -> None:
        error = await self.conn.wait_closed()
        reason = ChangedReason.SERVER_SIDE_DISCONNECT
        if error is not None:
            reason = reason_for_error(error)
        self.mark_lost(reason, f"the connection closed: {error}")

    async def _liveness_loop(self) -> None:
        """Check the link on the one schedule of `policy.next_check`; a failed check loses it."""
        loop = asyncio.get_running_loop()
        config = self.config
        while True:
            check, delay = next_check(
                loop.time(),
                received_at=self.conn.last_received_at,
                active_at=self.last_activity,
                frame_interval=config.liveness_interval,
                ping_interval=config.ping_interval,
                ping_asked=self.ping_now.is_set(),
            )
            if check is LivenessCheck.WAIT:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self.ping_now.wait()
                continue
            if check is LivenessCheck.AVS_PING:
                self.ping_now.clear()
                reason = await self._ping()
            else:
                reason = await self._ping_frame()
            if reason is not None:
                self.mark_lost(reason, "the liveness check failed")
                return

    async def _ping_frame(self) -> ChangedReason | None:
        """One HTTP/2 PING frame, `liveness_timeout` to answer; the failure reason."""
        try:
            rtt = await self.conn.ping(self.config.liveness_timeout)
        except PingTimeout:
            return ChangedReason.PING_TIMEOUT
        except TransportError as exc:
            return reason_for_error(exc)
        logger.debug("connection %d: PING answered in %.1f ms", self.id, rtt * 1000)
        return None

    async def _ping(self) -> ChangedReason | None:
        """One `GET /ping` (a second one after a 403 and a token refresh); the failure reason."""
        timeout = self.config.ping_timeout

        async def attempt(token: str) -> int:
            stream, response = await self.conn.request(
                "GET",
                PING_PATH,
                [("authorization", f"Bearer {token}")],
                response_timeout=timeout,
                inactivity_timeout=timeout,
            )
            await stream.aclose()
            self.touch()
            if response.status != 204:
                logger.warning("connection %d: ping answered %d", self.id, response.status)
            return response.status

        try:
            status = await self.gate.with_renewal(attempt, rejected=lambda code: code == 403)
        except AttemptFailed as exc:
            return exc.reason
        except TimeoutException:
            return ChangedReason.PING_TIMEOUT
        except TransportError as exc:
            return reason_for_error(exc)
        if status == 204:
            logger.debug("connection %d: ping answered", self.id)
            return None
        # avs-protocol 1.4: anything but 204 means the server considers the link dead.
        return reason_for_status(status, otherwise=ChangedReason.SERVER_SIDE_DISCONNECT)
