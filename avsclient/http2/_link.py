"""One link of the connection manager: an HTTP/2 connection to AVS with its downchannel, its
ping timer and its watcher, plus the token gate that all links share.

A link never drives the lifecycle itself: it sets its `lost` or `drain` flag and calls
`on_change`, which kicks the manager's supervisor (avsclient.http2.manager), so no signal can
be lost between two awaits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from avsclient.exceptions import (
    AuthError,
    ConnectionDraining,
    MultipartError,
    NetworkError,
    ParserError,
    PingTimeout,
    TimeoutException,
    TransportError,
)
from avsclient.http2._responses import (
    ResponseSink,
    ResponseSource,
    deliver,
    log_response,
    read_error_body,
)
from avsclient.http2.policy import (
    ChangedReason,
    Outcome,
    outcome_for_error,
    parse_exception_body,
    ping_due_in,
)
from avsclient.multipart import MultipartParser, boundary_from_content_type

if TYPE_CHECKING:
    from avsclient.auth.provider import TokenProvider
    from avsclient.config import ClientConfig
    from avsclient.http2.connection import HTTP2Connection
    from avsclient.http2.events import GoAwayReceived
    from avsclient.http2.stream import HTTP2Stream

# Plain sorted order, as tests/test_exports.py checks (not ruff's isort-style order).
__all__ = [
    "AttemptFailed",
    "DIRECTIVES_PATH",
    "Link",
    "PING_PATH",
    "TokenGate",
    "reason_for",
]

# The manager's modules log as one, so that an application's logging setup sees one name.
logger = logging.getLogger("avsclient.http2.manager")

DIRECTIVES_PATH: Final = "/v20160207/directives"
PING_PATH: Final = "/ping"


class AttemptFailed(Exception):
    """A connect attempt (or a step a link needs) failed for a known reason (internal)."""

    def __init__(self, reason: ChangedReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class TokenGate:
    """Access tokens for every link: bounded waits, and one report per rejected token.

    Args:
        provider: where bearer tokens come from.
        timeout: how long getting a token may take (the connect timeout).
    """

    def __init__(self, provider: TokenProvider, timeout: float) -> None:
        self.provider = provider
        self._timeout = timeout
        self._lock = asyncio.Lock()
        self._invalidated: str | None = None

    async def token(self) -> str:
        """A token, within the timeout.

        Raises:
            AttemptFailed: INVALID_AUTH, CONNECTION_TIMEDOUT or NETWORK_ERROR.
        """
        try:
            async with asyncio.timeout(self._timeout):
                return await self.provider.get_token()
        except AuthError as exc:
            raise AttemptFailed(ChangedReason.INVALID_AUTH, f"no access token: {exc}") from exc
        except TimeoutError as exc:
            raise AttemptFailed(
                ChangedReason.CONNECTION_TIMEDOUT, "getting an access token took too long"
            ) from exc
        except TransportError as exc:
            raise AttemptFailed(
                ChangedReason.NETWORK_ERROR, f"getting an access token failed: {exc}"
            ) from exc

    async def renew(self, rejected: str) -> str:
        """Report a token AVS rejected (once, however many streams saw it); get another.

        Raises:
            AttemptFailed: no new token (INVALID_AUTH, or the token service failed).
        """
        async with self._lock:
            if self._invalidated != rejected:
                self._invalidated = rejected
                logger.warning("AVS rejected the access token (403): refreshing it")
                await self.provider.invalidate(rejected)
        return await self.token()


@dataclass(eq=False)
class Link:
    """One HTTP/2 connection with its downchannel, ping timer and watcher (internal).

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

    def outcome_for(self, error: BaseException) -> Outcome:
        """`outcome_for_error`, except that a link we closed because it died is NOT_CONNECTED:
        CANCELED is kept for the application's own aclose()."""
        outcome = outcome_for_error(error)
        if outcome is Outcome.CANCELED and not self.manager_closed():
            return Outcome.NOT_CONNECTED
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
        """Start the watcher and the ping timer (once the link is ready for events)."""
        self.start_task(self._watch_connection(), "watcher")
        self.start_task(self._ping_loop(), "ping")

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

        Raises:
            AttemptFailed: the request failed or was answered otherwise.
        """
        timeout = self.config.connect_timeout
        for attempt in (1, 2):
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
                raise AttemptFailed(reason_for(exc), f"downchannel failed: {exc}") from exc
            self.touch()
            log_response("downchannel", response)
            if response.status == 200:
                break
            body = await read_error_body(stream, None, timeout)
            code, description = parse_exception_body(body)
            await stream.aclose()
            if response.status == 403 and attempt == 1:
                token = await self.gate.renew(token)
                continue
            reason = (
                ChangedReason.INVALID_AUTH if response.status == 403 else ChangedReason.SERVER_ERROR
            )
            raise AttemptFailed(
                reason,
                f"the downchannel was answered {response.status} {code or ''} "
                f"{description or ''}".rstrip(),
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
            self.mark_lost(reason_for(exc), f"the downchannel failed: {exc}")
        finally:
            with contextlib.suppress(Exception):
                await self.sink.response_ended(source, error)

    # -- the watcher and the ping timer --------------------------------------------------------

    async def _watch_connection(self) -> None:
        error = await self.conn.wait_closed()
        reason = reason_for(error) if error is not None else ChangedReason.SERVER_SIDE_DISCONNECT
        self.mark_lost(reason, f"the connection closed: {error}")

    async def _ping_loop(self) -> None:
        """GET /ping after `ping_interval` without activity, or at once when asked."""
        loop = asyncio.get_running_loop()
        interval = self.config.ping_interval
        while True:
            due = ping_due_in(self.last_activity, loop.time(), interval)
            if due > 0 and not self.ping_now.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(due):
                        await self.ping_now.wait()
                continue
            self.ping_now.clear()
            reason = await self._ping()
            if reason is not None:
                self.mark_lost(reason, "ping failed")
                return

    async def _ping(self) -> ChangedReason | None:
        """One ping (a second one after a 403 and a token refresh); the failure reason."""
        try:
            token = await self.gate.token()
        except AttemptFailed as exc:
            return exc.reason
        for attempt in (1, 2):
            try:
                stream, response = await self.conn.request(
                    "GET",
                    PING_PATH,
                    [("authorization", f"Bearer {token}")],
                    response_timeout=self.config.ping_timeout,
                    inactivity_timeout=self.config.ping_timeout,
                )
            except TimeoutException:
                return ChangedReason.PING_TIMEOUT
            except TransportError as exc:
                return reason_for(exc)
            await stream.aclose()
            self.touch()
            if response.status == 204:
                logger.debug("connection %d: ping answered", self.id)
                return None
            logger.warning("connection %d: ping answered %d", self.id, response.status)
            if response.status == 403 and attempt == 1:
                try:
                    token = await self.gate.renew(token)
                except AttemptFailed as exc:
                    return exc.reason
                continue
            break
        # avs-protocol 1.4: anything but 204 means the server considers the link dead.
        return (
            ChangedReason.INVALID_AUTH
            if response.status == 403
            else ChangedReason.SERVER_SIDE_DISCONNECT
        )


def reason_for(error: BaseException) -> ChangedReason:
    """Why a link ended, from the error that ended it."""
    if isinstance(error, AuthError):
        return ChangedReason.INVALID_AUTH
    if isinstance(error, ConnectionDraining):
        return ChangedReason.GOAWAY
    if isinstance(error, PingTimeout) or isinstance(error.__cause__, PingTimeout):
        return ChangedReason.PING_TIMEOUT
    if isinstance(error, TimeoutException):
        return ChangedReason.CONNECTION_TIMEDOUT
    if isinstance(error, NetworkError):
        return ChangedReason.NETWORK_ERROR
    if isinstance(error, MultipartError):
        return ChangedReason.PROTOCOL_ERROR
    if isinstance(error, TransportError):
        return ChangedReason.SERVER_SIDE_DISCONNECT
    return ChangedReason.INTERNAL_ERROR
