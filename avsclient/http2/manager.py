"""The AVS connection manager: one live link to AVS, kept up for ever, carrying events.

`ConnectionManager` connects (token, HTTP/2 connection, downchannel, `System.SynchronizeState`
with the full context: avs-protocol.md 2.1), reports CONNECTED only after the sync was
accepted, pings after idle time, reconnects with back-off on any loss, replaces a link that
got GOAWAY before letting it go (make-before-break), refreshes a rejected token once
(single-flight), and sends events one at a time as AVS asks while a Recognize's audio keeps
streaming. Every `send_event` ends with exactly one `EventResult`.

The rules (state table, back-off, outcome mapping, exception bodies) live in
`avsclient.http2.policy`; this module is the asyncio shell around them. One supervisor task
runs the lifecycle; each link owns a downchannel reader, a ping task and a watcher; events run
in their callers' tasks. Links never feed the lifecycle directly: they set flags and "kick"
the supervisor, which reads the flags, so no signal can be lost between two awaits.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import random as _random
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from avsclient.config import ClientConfig, check_endpoint
from avsclient.exceptions import (
    AuthError,
    ConnectionClosed,
    ConnectionDraining,
    ConnectTimeout,
    MultipartError,
    NetworkError,
    ParserError,
    PingTimeout,
    ResponseTimeout,
    ServerError,
    TimeoutException,
    TransportError,
)
from avsclient.http2.connection import HTTP2Connection
from avsclient.http2.policy import (
    MAX_EXCEPTION_BODY,
    Action,
    Backoff,
    ChangedReason,
    ConnectionStatus,
    Input,
    LifecycleMachine,
    Outcome,
    State,
    outcome_for_error,
    outcome_for_status,
    parse_exception_body,
    ping_due_in,
)
from avsclient.http2.stream import HTTP2Stream, Response
from avsclient.multipart import (
    Headers,
    MessageEnded,
    MultipartEncoder,
    MultipartParser,
    PartData,
    PartEnded,
    PartStarted,
    boundary_from_content_type,
)

if TYPE_CHECKING:
    from avsclient.auth.provider import TokenProvider
    from avsclient.http2.events import GoAwayReceived

# Plain sorted order, as tests/test_exports.py checks (not ruff's isort-style order).
__all__ = [
    "ChangedReason",
    "ConnectionManager",
    "ConnectionStatus",
    "ContextProvider",
    "EventResult",
    "Outcome",
    "ResponseSink",
    "ResponseSource",
]

logger = logging.getLogger("avsclient.http2.manager")

DIRECTIVES_PATH: Final = "/v20160207/directives"
EVENTS_PATH: Final = "/v20160207/events"
PING_PATH: Final = "/ping"

#: Audio kept for resending an event that a GOAWAY refused before the server took it. The
#: refusal comes within a round trip, so a second of 16 kHz PCM (32 KB) is plenty; 1 MiB
#: bounds it while covering slow links.
MAX_REPLAY_BYTES: Final = 1024 * 1024

_SUCCESS = frozenset({Outcome.SUCCESS, Outcome.SUCCESS_NO_CONTENT})

#: Gives the full context (a list of `{"header": ..., "payload": ...}` state objects) for
#: SynchronizeState; may be a plain function or a coroutine function.
ContextProvider = Callable[[], "Awaitable[list[dict[str, Any]]] | list[dict[str, Any]]"]


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

    outcome: Outcome
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


@dataclass(frozen=True, slots=True)
class _Body:
    """An event's request body, encoded once so that it can be sent again (internal)."""

    content_type: str
    head: bytes  # the metadata part, plus the audio part's head when audio follows
    tail: bytes  # the close delimiter

    @classmethod
    def encode(cls, event: Mapping[str, Any], *, audio: bool) -> _Body:
        encoder = MultipartEncoder()
        head = encoder.metadata_part(event)
        if audio:
            head += encoder.audio_part_start()
        return cls(encoder.content_type, head, encoder.end())


class _AttemptFailed(Exception):
    """A connect attempt failed for a known reason (internal)."""

    def __init__(self, reason: ChangedReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(slots=True)
class _Trace:
    """Mutable stamps and progress of one exchange (internal)."""

    started_at: float | None = None
    body_sent_at: float | None = None
    response_started_at: float | None = None
    first_byte_at: float | None = None
    progress_at: float = 0.0  # when a chunk was last sent or received

    def moved(self) -> None:
        self.progress_at = asyncio.get_running_loop().time()


class _Replay:
    """An event's audio, kept until the server accepted the stream so a refused one is resent.

    A GOAWAY refuses streams the server never processed (RFC 9113 6.8), and a 403 rejects the
    stream before AVS looks at it; those are sent again, audio included, from the chunks kept
    here. Once the response headers of an accepted stream arrive, `commit()` frees the copy.

    The source is read in a task of its own, so that stopping an upload in the middle of a
    read (its stream was rejected) neither loses the chunk being read nor closes the source
    (cancelling a task that awaits an async generator's `__anext__` finalises the generator).
    `aclose()` stops a read nobody will take.
    """

    __slots__ = ("_buffer", "_exhausted", "_iterator", "_pending", "_size", "_source", "replayable")

    def __init__(self, source: AsyncIterable[bytes]) -> None:
        self._source = source
        self._iterator: AsyncIterator[bytes] | None = None
        self._pending: asyncio.Future[bytes] | None = None
        self._buffer: list[bytes] = []
        self._size = 0
        self._exhausted = False
        self.replayable = True

    async def chunk(self, position: int) -> bytes | None:
        """The chunk at `position` of the stream (None at its end)."""
        if position < len(self._buffer):
            return self._buffer[position]
        if self._exhausted:
            return None
        if self._pending is None:
            if self._iterator is None:
                self._iterator = aiter(self._source)
            self._pending = asyncio.ensure_future(anext(self._iterator))
        pending = self._pending
        try:
            data = await asyncio.shield(pending)
        except StopAsyncIteration:
            self._pending = None
            self._exhausted = True
            return None
        except asyncio.CancelledError:
            if not pending.cancelled():
                raise  # we were cancelled; the read goes on for the next attempt
            self._pending = None
            raise
        except BaseException:
            self._pending = None
            raise
        self._pending = None
        if self.replayable:
            self._size += len(data)
            if self._size > MAX_REPLAY_BYTES:
                self.commit()
            else:
                self._buffer.append(data)
        return data

    def commit(self) -> None:
        """The stream was accepted (or is too long to keep): stop keeping chunks."""
        self.replayable = False
        self._buffer = []

    async def aclose(self) -> None:
        """Stop a read of the source that no upload will take."""
        pending, self._pending = self._pending, None
        if pending is not None and not pending.done():
            pending.cancel()
        if pending is not None:
            with contextlib.suppress(BaseException):
                await pending


@dataclass(eq=False)
class _Link:
    """One HTTP/2 connection with its downchannel (internal)."""

    id: int
    url: str
    conn: HTTP2Connection
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


class ConnectionManager:
    """Keeps one AVS connection up and carries events over it.

    Args:
        config: endpoint, timeouts, back-off and bounds.
        tokens: where bearer tokens come from; a rejected one is reported with `invalidate`.
        sink: receives the parts of the downchannel and of every event response.
        context: gives the full context for `System.SynchronizeState`.
        on_status: called (in the loop) with the status and the reason whenever the status
            changes, or the reason changes while PENDING.
        endpoint_store: called with the new URL when `set_endpoint` moves the device
            (System.SetEndpoint), so that the application persists it.
        random: returns a float in [0, 1) for the back-off jitter.

    Use `async with ConnectionManager(...) as manager:` or `await manager.start()` ...
    `await manager.aclose()`.
    """

    def __init__(
        self,
        config: ClientConfig,
        tokens: TokenProvider,
        sink: ResponseSink,
        *,
        context: ContextProvider,
        on_status: Callable[[ConnectionStatus, ChangedReason], None] | None = None,
        endpoint_store: Callable[[str], None] | None = None,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.config = config
        self._tokens = tokens
        self._sink = sink
        self._context = context
        self._on_status = on_status
        self._endpoint_store = endpoint_store
        self._random = random
        self._transport = config.connection_config()
        self._url = config.url()
        self._machine = LifecycleMachine()
        self._backoff = Backoff(config.backoff, config.backoff_jitter, random)
        self._reason = ChangedReason.NONE
        self._reported: tuple[ConnectionStatus, ChangedReason] | None = None
        self._link: _Link | None = None
        self._retired: set[_Link] = set()
        self._link_ids = itertools.count(1)
        self._supervisor: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()
        self._changed = asyncio.Event()
        self._wake_requested = False
        self._endpoint_changed = False
        self._waiting = 0
        self._auth_lock = asyncio.Lock()
        self._invalidated: str | None = None
        self._retire_tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def __repr__(self) -> str:
        return f"<ConnectionManager {self._url} {self._machine.state.name} {self._reason.name}>"

    # -- public state ------------------------------------------------------------------------

    @property
    def status(self) -> ConnectionStatus:
        """DISCONNECTED, PENDING or CONNECTED (only after SynchronizeState succeeded)."""
        return self._machine.status

    @property
    def reason(self) -> ChangedReason:
        """Why the status last changed."""
        return self._reason

    @property
    def url(self) -> str:
        """The endpoint in use (changed by `set_endpoint`)."""
        return self._url

    @property
    def queued(self) -> int:
        """Events waiting for a connection (or for their turn to open a stream)."""
        return self._waiting

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Begin connecting in the background; returns at once.

        Network and server trouble never raises here: the manager retries for ever. Use
        `wait_connected()` to wait for the link.

        Raises:
            ConnectionClosed: the manager was closed.
            RuntimeError: already started.
        """
        if self._closed:
            raise ConnectionClosed("the connection manager is closed")
        if self._supervisor is not None:
            raise RuntimeError("the connection manager is already started")
        self._feed(Input.START, ChangedReason.CLIENT_REQUEST)
        self._supervisor = asyncio.create_task(self._run(), name="avs connection manager")

    async def aclose(self) -> None:
        """Close every connection; waiting and running events end with CANCELED.

        Safe to call more than once.
        """
        if self._closed:
            return
        self._closed = True
        self._feed(Input.CLOSE, ChangedReason.CLIENT_REQUEST)
        self._pulse()
        supervisor = self._supervisor
        if supervisor is not None and not supervisor.done():
            supervisor.cancel()
        links = [link for link in (self._link, *self._retired) if link is not None]
        self._link = None
        self._retired.clear()
        # Cleanup is shielded from the caller's cancellation, so no task or socket leaks.
        await asyncio.shield(self._shutdown(supervisor, links))

    async def _shutdown(self, supervisor: asyncio.Task[None] | None, links: list[_Link]) -> None:
        if supervisor is not None:
            await asyncio.gather(supervisor, return_exceptions=True)
        retiring = list(self._retire_tasks)
        for task in retiring:
            task.cancel()
        await asyncio.gather(*retiring, return_exceptions=True)
        await asyncio.gather(*(self._close_link(link) for link in links), return_exceptions=True)

    async def __aenter__(self) -> ConnectionManager:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the status is CONNECTED.

        Raises:
            ConnectTimeout: not connected within `timeout` seconds.
            ConnectionClosed: the manager is (or gets) closed.
        """
        try:
            async with asyncio.timeout(timeout):
                while self.status is not ConnectionStatus.CONNECTED:
                    if self._closed:
                        raise ConnectionClosed("the connection manager is closed")
                    await self._changed.wait()
        except TimeoutError as exc:
            raise ConnectTimeout(
                f"not connected to {self._url} within {timeout} s "
                f"(status {self.status.name}, reason {self._reason.name})"
            ) from exc

    def wake(self) -> None:
        """Retry now if the manager is waiting out a back-off delay (the network came back)."""
        self._wake_requested = True
        self._kick.set()

    async def set_endpoint(self, url: str) -> None:
        """Move to another endpoint (System.SetEndpoint): persist it, then reconnect there.

        The current link keeps finishing its streams while the new one is made.

        Args:
            url: the new base URL, `https://host[:port]`.

        Raises:
            ValueError: not an http(s) base URL.
        """
        url = check_endpoint(url)
        if self._endpoint_store is not None:
            try:
                self._endpoint_store(url)
            except Exception:
                logger.exception("persisting the new endpoint %s failed", url)
        if url == self._url:
            return
        logger.info("endpoint changed from %s to %s", self._url, url)
        self._url = url
        if self._supervisor is not None and not self._closed:
            self._endpoint_changed = True
            self._kick.set()

    # -- status ------------------------------------------------------------------------------

    def _feed(self, event: Input, reason: ChangedReason) -> Action:
        action = self._machine.feed(event)
        self._reason = reason
        status = self._machine.status
        previous = self._reported
        if (
            previous is None
            or previous[0] is not status
            or (status is ConnectionStatus.PENDING and previous[1] is not reason)
        ):
            self._reported = (status, reason)
            logger.info("connection status %s (%s)", status.name, reason.name)
            if self._on_status is not None:
                try:
                    self._on_status(status, reason)
                except Exception:
                    logger.exception("the on_status callback failed")
        self._pulse()
        return action

    def _pulse(self) -> None:
        """Wake everything waiting for a status or link change."""
        self._changed.set()
        self._changed = asyncio.Event()

    # -- the supervisor ----------------------------------------------------------------------

    async def _run(self) -> None:
        action = Action.CONNECT
        while True:
            if action is Action.SCHEDULE_RETRY:
                action = await self._pause(self._backoff.next_delay())
            else:
                action = await self._connect_phase()

    async def _pause(self, delay: float) -> Action:
        """Wait out a back-off delay; wake() or a new endpoint cuts it short."""
        logger.info("reconnecting to %s in %.3f s", self._url, delay)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + delay
        self._wake_requested = False
        while True:
            self._kick.clear()
            if self._endpoint_changed:
                self._endpoint_changed = False
                return self._feed(Input.DRAIN, ChangedReason.ENDPOINT_CHANGED)
            if self._wake_requested:
                self._wake_requested = False
                logger.info("woken: retrying at once")
                return self._feed(Input.RETRY, self._reason)
            remaining = deadline - loop.time()
            if remaining <= 0:
                return self._feed(Input.RETRY, self._reason)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._kick.wait()

    async def _connect_phase(self) -> Action:
        """Run one attempt; on success install the link and watch it until it ends."""
        self._endpoint_changed = False
        attempt = asyncio.create_task(self._attempt(), name="avs connect attempt")
        try:
            while True:
                self._kick.clear()
                if self._endpoint_changed:
                    self._endpoint_changed = False
                    attempt.cancel()
                    with contextlib.suppress(BaseException):
                        await attempt
                    return self._feed(Input.DRAIN, ChangedReason.ENDPOINT_CHANGED)
                old = self._link
                if (
                    self._machine.state is State.REPLACING
                    and old is not None
                    and old.lost is not None
                    and not old.closing
                ):
                    # The draining link died before its replacement was ready.
                    self._feed(Input.LINK_LOST, old.lost)
                if attempt.done():
                    break
                kick = asyncio.ensure_future(self._kick.wait())
                try:
                    await asyncio.wait([attempt, kick], return_when=asyncio.FIRST_COMPLETED)
                finally:
                    kick.cancel()
        except BaseException:
            attempt.cancel()
            with contextlib.suppress(BaseException):
                await attempt
            raise
        try:
            link = attempt.result()
        except _AttemptFailed as exc:
            logger.warning("connecting to %s failed: %s", self._url, exc)
            return self._feed(Input.ATTEMPT_FAILED, exc.reason)
        except Exception as exc:  # a bug below us must not end the lifecycle
            logger.exception("connecting to %s failed unexpectedly", self._url)
            return self._feed(Input.ATTEMPT_FAILED, _reason_for(exc))
        old = self._link
        self._link = link
        self._backoff.reset()
        action = self._feed(Input.ATTEMPT_SUCCEEDED, ChangedReason.SUCCESS)
        assert action is Action.RESET_BACKOFF
        logger.info("connected to %s (connection %d)", link.url, link.id)
        if old is not None:
            self._retire(old)
        return await self._watch(link)

    async def _watch(self, link: _Link) -> Action:
        """Wait until the link in use dies or must be replaced."""
        while True:
            self._kick.clear()
            if link.lost is not None:
                self._retire(link)
                self._link = None
                return self._feed(Input.LINK_LOST, link.lost)
            if link.drain is not None:
                self._retire(link)
                return self._feed(Input.DRAIN, link.drain)
            if self._endpoint_changed:
                self._endpoint_changed = False
                link.drain = ChangedReason.ENDPOINT_CHANGED
                self._retire(link)
                return self._feed(Input.DRAIN, ChangedReason.ENDPOINT_CHANGED)
            await self._kick.wait()

    def _retire(self, link: _Link) -> None:
        """Take no new events on `link`; close it once its streams are done."""
        if link.drain is None:
            link.drain = link.lost or ChangedReason.NONE
        self._pulse()
        if link in self._retired or link.closing:
            return
        self._retired.add(link)
        task = asyncio.create_task(self._close_when_idle(link), name=f"avs retire {link.id}")
        self._retire_tasks.add(task)
        task.add_done_callback(self._retire_tasks.discard)

    async def _close_when_idle(self, link: _Link) -> None:
        try:
            while link.in_flight and link.lost is None:
                link.idle.clear()
                await link.idle.wait()
        finally:
            self._retired.discard(link)
            await self._close_link(link)

    async def _close_link(self, link: _Link) -> None:
        link.closing = True
        tasks = [t for t in link.tasks if not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await link.conn.aclose()

    # -- connecting --------------------------------------------------------------------------

    async def _attempt(self) -> _Link:
        """Token, connection, downchannel, SynchronizeState: a link ready for events.

        Raises:
            _AttemptFailed: any step failed.
        """
        config = self.config
        url = self._url
        token = await self._token()
        links: list[_Link] = []
        conn = HTTP2Connection.from_url(
            url,
            ca_file=config.ca_file,
            ssl_context=config.ssl_context,
            config=self._transport,
            on_goaway=lambda event: self._on_goaway(links[0], event),
        )
        link = _Link(id=next(self._link_ids), url=url, conn=conn)
        links.append(link)
        try:
            try:
                await conn.connect()
            except TransportError as exc:
                raise _AttemptFailed(_reason_for(exc), f"connection failed: {exc}") from exc
            link.touch()
            await self._open_downchannel(link, token)
            await self._synchronize(link)
            if not link.usable:
                raise _AttemptFailed(
                    link.lost or link.drain or ChangedReason.SERVER_SIDE_DISCONNECT,
                    "the connection ended while synchronizing",
                )
        except BaseException:
            await asyncio.shield(self._close_link(link))
            raise
        self._start_task(link, self._watch_connection(link), "watcher")
        self._start_task(link, self._ping_loop(link), "ping")
        return link

    async def _token(self) -> str:
        try:
            async with asyncio.timeout(self.config.connect_timeout):
                return await self._tokens.get_token()
        except AuthError as exc:
            raise _AttemptFailed(ChangedReason.INVALID_AUTH, f"no access token: {exc}") from exc
        except TimeoutError as exc:
            raise _AttemptFailed(
                ChangedReason.CONNECTION_TIMEDOUT, "getting an access token took too long"
            ) from exc
        except TransportError as exc:
            raise _AttemptFailed(
                ChangedReason.NETWORK_ERROR, f"getting an access token failed: {exc}"
            ) from exc

    async def _renew(self, rejected: str) -> str:
        """Report a token AVS rejected (once, however many streams saw it); get another.

        Raises:
            _AttemptFailed: no new token (INVALID_AUTH, or the token service failed).
        """
        async with self._auth_lock:
            if self._invalidated != rejected:
                self._invalidated = rejected
                logger.warning("AVS rejected the access token (403): refreshing it")
                await self._tokens.invalidate(rejected)
        return await self._token()

    def _start_task(self, link: _Link, coro: Awaitable[None], what: str) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        task.set_name(f"avs {what} {link.id}")
        link.tasks.add(task)
        task.add_done_callback(link.tasks.discard)

    async def _open_downchannel(self, link: _Link, token: str) -> None:
        """GET /v20160207/directives; a 200 starts the reader task (avs-protocol 2.1 step 3)."""
        for attempt in (1, 2):
            try:
                stream = await link.conn.open_stream(
                    "GET",
                    DIRECTIVES_PATH,
                    [("authorization", f"Bearer {token}")],
                    response_timeout=self.config.connect_timeout,
                    inactivity_timeout=None,
                )
                response = await stream.response()
            except TransportError as exc:
                raise _AttemptFailed(_reason_for(exc), f"downchannel failed: {exc}") from exc
            link.touch()
            _log_response("downchannel", response)
            if response.status == 200:
                break
            body = await _read_error_body(stream, None, self.config.connect_timeout)
            code, description = parse_exception_body(body)
            await stream.aclose()
            if response.status == 403 and attempt == 1:
                token = await self._renew(token)
                continue
            reason = (
                ChangedReason.INVALID_AUTH if response.status == 403 else ChangedReason.SERVER_ERROR
            )
            raise _AttemptFailed(
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
            raise _AttemptFailed(
                ChangedReason.PROTOCOL_ERROR, f"the downchannel is not multipart: {exc}"
            ) from exc
        self._start_task(link, self._read_downchannel(link, stream, parser), "downchannel")

    async def _read_downchannel(
        self, link: _Link, stream: HTTP2Stream, parser: MultipartParser
    ) -> None:
        source = ResponseSource(link.id, stream.stream_id, "downchannel")
        error: BaseException | None = None
        try:
            async for chunk in stream:
                link.touch()
                await self._deliver(parser, chunk, source)
            error = ParserError("the downchannel ended") if not parser.done else None
            self._link_lost(link, ChangedReason.SERVER_SIDE_DISCONNECT, "the downchannel ended")
        except MultipartError as exc:
            # The framing is broken: nothing after it can be trusted. Move to a new link and
            # let this one finish its event streams.
            error = exc
            logger.warning("connection %d: malformed downchannel body: %s", link.id, exc)
            await stream.aclose()
            self._link_drain(link, ChangedReason.PROTOCOL_ERROR)
        except TransportError as exc:
            error = exc
            self._link_lost(link, _reason_for(exc), f"the downchannel failed: {exc}")
        finally:
            with contextlib.suppress(Exception):
                await self._sink.response_ended(source, error)

    async def _synchronize(self, link: _Link) -> None:
        """Send System.SynchronizeState until it is accepted (avs-protocol 2.1 step 5)."""
        backoff = Backoff(self.config.backoff, self.config.backoff_jitter, self._random)
        while True:
            context = self._context()
            if inspect.isawaitable(context):
                context = await context
            event = {
                "context": list(context),
                "event": {
                    "header": {
                        "namespace": "System",
                        "name": "SynchronizeState",
                        "messageId": str(uuid.uuid4()),
                    },
                    "payload": {},
                },
            }
            result = await self._send_on_link(link, event, None)
            if result.ok:
                return
            if not link.usable:
                raise _AttemptFailed(
                    link.lost or link.drain or _reason_for_outcome(result.outcome),
                    f"the connection ended during SynchronizeState ({result.outcome.name})",
                )
            if result.outcome is Outcome.INVALID_AUTH:
                raise _AttemptFailed(ChangedReason.INVALID_AUTH, "SynchronizeState got 403 twice")
            delay = backoff.next_delay()
            logger.warning(
                "SynchronizeState failed (%s, status %s); again in %.3f s",
                result.outcome.name,
                result.status,
                delay,
            )
            await asyncio.sleep(delay)

    # -- link health -------------------------------------------------------------------------

    def _link_lost(self, link: _Link, reason: ChangedReason, why: str) -> None:
        if link.lost is not None or link.closing:
            return
        link.lost = reason
        logger.info("connection %d lost (%s): %s", link.id, reason.name, why)
        link.idle.set()
        self._pulse()
        self._kick.set()

    def _link_drain(self, link: _Link, reason: ChangedReason) -> None:
        if link.drain is not None or link.closing:
            return
        link.drain = reason
        logger.info("connection %d draining (%s)", link.id, reason.name)
        self._pulse()
        self._kick.set()

    def _on_goaway(self, link: _Link, event: GoAwayReceived) -> None:
        logger.info(
            "connection %d: GOAWAY (error code %s, last stream %s)",
            link.id,
            event.error_code,
            event.last_stream_id,
        )
        self._link_drain(link, ChangedReason.GOAWAY)

    async def _watch_connection(self, link: _Link) -> None:
        error = await link.conn.wait_closed()
        reason = _reason_for(error) if error is not None else ChangedReason.SERVER_SIDE_DISCONNECT
        self._link_lost(link, reason, f"the connection closed: {error}")

    async def _ping_loop(self, link: _Link) -> None:
        """GET /ping after `ping_interval` without activity, or at once when asked."""
        loop = asyncio.get_running_loop()
        interval = self.config.ping_interval
        while True:
            due = ping_due_in(link.last_activity, loop.time(), interval)
            if due > 0 and not link.ping_now.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(due):
                        await link.ping_now.wait()
                continue
            link.ping_now.clear()
            reason = await self._ping(link)
            if reason is not None:
                self._link_lost(link, reason, "ping failed")
                return

    async def _ping(self, link: _Link) -> ChangedReason | None:
        """One ping (a second one after a 403 and a token refresh); the failure reason."""
        try:
            token = await self._token()
        except _AttemptFailed as exc:
            return exc.reason
        for attempt in (1, 2):
            try:
                stream, response = await link.conn.request(
                    "GET",
                    PING_PATH,
                    [("authorization", f"Bearer {token}")],
                    response_timeout=self.config.ping_timeout,
                    inactivity_timeout=self.config.ping_timeout,
                )
            except TimeoutException:
                return ChangedReason.PING_TIMEOUT
            except TransportError as exc:
                return _reason_for(exc)
            await stream.aclose()
            link.touch()
            if response.status == 204:
                logger.debug("connection %d: ping answered", link.id)
                return None
            logger.warning("connection %d: ping answered %d", link.id, response.status)
            if response.status == 403 and attempt == 1:
                try:
                    token = await self._renew(token)
                except _AttemptFailed as exc:
                    return exc.reason
                continue
            break
        # avs-protocol 1.4: anything but 204 means the server considers the link dead.
        return (
            ChangedReason.INVALID_AUTH
            if response.status == 403
            else ChangedReason.SERVER_SIDE_DISCONNECT
        )

    # -- events ------------------------------------------------------------------------------

    async def send_event(
        self, event: Mapping[str, Any], *, audio: AsyncIterable[bytes] | None = None
    ) -> EventResult:
        """Send one event (and its streamed audio); return how it ended.

        Waits (at most `queue_timeout`, with at most `queue_size` others) for a connection,
        then for the previous event's response headers (AVS takes one event stream opening
        at a time). The response's parts go to the sink, and this returns when the response
        ended. An event refused by GOAWAY (never processed) is resent on the next connection;
        one answered 403 is resent once with a refreshed token; nothing else is resent.

        Args:
            event: the whole JSON document, `{"context": [...], "event": {...}}`.
            audio: chunks for the `audio` part (a Recognize), sent as they come.

        Returns:
            The result; it is never raised, whatever the network or the server did.

        Raises:
            TypeError: the event cannot be serialised as JSON.
            asyncio.CancelledError: the calling task was cancelled (the stream is reset).
        """
        body = _Body.encode(event, audio=audio is not None)  # TypeError: not JSON (misuse)
        message_id = _message_id(event)
        if self._closed:
            return _failed(Outcome.CANCELED, message_id, ConnectionClosed("the manager is closed"))
        if self._waiting >= self.config.queue_size:
            logger.warning("event %s refused: %d events already wait", message_id, self._waiting)
            return _failed(
                Outcome.NOT_CONNECTED,
                message_id,
                ConnectionClosed(f"the event queue is full ({self.config.queue_size} waiting)"),
            )
        replay = _Replay(audio) if audio is not None else None
        try:
            return await self._send(body, replay, message_id)
        finally:
            if replay is not None:
                await replay.aclose()

    async def _send(self, body: _Body, replay: _Replay | None, message_id: str) -> EventResult:
        """`send_event` once the body is encoded: wait for a link, send, resend if refused."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.queue_timeout
        renewed = False
        while True:
            link = await self._acquire_link(deadline)
            if link is None:
                why = "the manager was closed" if self._closed else "no connection in time"
                outcome = Outcome.CANCELED if self._closed else Outcome.NOT_CONNECTED
                return _failed(outcome, message_id, ConnectionClosed(why))
            result = await self._exchange(link, body, replay, message_id, retried=renewed)
            if isinstance(result, EventResult):
                return result
            if result == "refused":
                if replay is not None and not replay.replayable:
                    return _failed(
                        Outcome.NOT_CONNECTED,
                        message_id,
                        ConnectionDraining("refused by GOAWAY, and too much audio to resend"),
                    )
                logger.info("event %s refused by GOAWAY: resending it", message_id)
                deadline = loop.time() + self.config.queue_timeout
                continue
            # "auth": a first 403; the token was refreshed. A second 403 is reported.
            renewed = True

    async def _send_on_link(
        self,
        link: _Link,
        event: Mapping[str, Any],
        audio: AsyncIterable[bytes] | None,
    ) -> EventResult:
        """Send an event on one given link (SynchronizeState), with the 403 retry."""
        body = _Body.encode(event, audio=audio is not None)
        message_id = _message_id(event)
        replay = _Replay(audio) if audio is not None else None
        retried = False
        try:
            while True:
                await link.turn.acquire()
                result = await self._exchange(link, body, replay, message_id, retried=retried)
                if isinstance(result, EventResult):
                    return result
                if result == "refused":
                    return _failed(
                        Outcome.NOT_CONNECTED, message_id, ConnectionDraining("refused by GOAWAY")
                    )
                retried = True
        finally:
            if replay is not None:
                await replay.aclose()

    async def _acquire_link(self, deadline: float) -> _Link | None:
        """A usable link whose turn lock we now hold, or None (closed, or out of time)."""
        loop = asyncio.get_running_loop()
        self._waiting += 1
        try:
            while True:
                if self._closed:
                    return None
                remaining = deadline - loop.time()
                link = self._link
                if link is not None and link.usable and self.status is ConnectionStatus.CONNECTED:
                    try:
                        async with asyncio.timeout(max(remaining, 0)):
                            await link.turn.acquire()
                    except TimeoutError:
                        return None
                    if self._takes_events(link):  # still, after the wait
                        return link
                    link.turn.release()
                    continue
                if remaining <= 0:
                    return None
                changed = self._changed
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await changed.wait()
        finally:
            self._waiting -= 1

    def _outcome_for(self, error: BaseException) -> Outcome:
        """`outcome_for_error`, except that a link we closed because it died is NOT_CONNECTED:
        CANCELED is kept for the application's own aclose()."""
        outcome = outcome_for_error(error)
        if outcome is Outcome.CANCELED and not self._closed:
            return Outcome.NOT_CONNECTED
        return outcome

    def _takes_events(self, link: _Link) -> bool:
        # A method, not an expression: mypy would keep the checks narrowed across awaits.
        return link.usable and not self._closed

    async def _exchange(
        self,
        link: _Link,
        body: _Body,
        replay: _Replay | None,
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
        trace = _Trace()
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
                token = await self._tokens.get_token()
            except Exception as exc:  # AuthError, TransportError, a broken provider
                release_turn()
                outcome = (
                    Outcome.INVALID_AUTH if isinstance(exc, AuthError) else Outcome.NOT_CONNECTED
                )
                return _failed(outcome, message_id, exc)
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
                self._link_drain(link, ChangedReason.GOAWAY)
                return "refused"
            except TransportError as exc:
                release_turn()
                return _failed(self._outcome_for(exc), message_id, exc, trace)
            upload = asyncio.create_task(
                self._upload(stream, body, replay, trace), name=f"avs upload {stream.stream_id}"
            )
            try:
                response = await self._response(stream, upload, trace)
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
                    return _failed(self._outcome_for(error), message_id, error, trace)
                raise
            trace.response_started_at = loop.time()
            release_turn()
            link.touch()
            status = response.status
            if replay is not None and (status != 403 or retried):
                replay.commit()  # AVS took the stream; a first 403 is sent again, audio too
            request_id = response.header("x-amzn-requestid")
            _log_response(f"event {message_id}", response)
            outcome = outcome_for_status(status)
            if status == 200:
                return await self._read_event_body(
                    link, stream, upload, response, trace, message_id, request_id
                )
            content = await _read_error_body(stream, trace, self.config.event_timeout)
            await _finish_upload(upload, wait=False)
            if outcome is Outcome.SUCCESS_NO_CONTENT:
                return _result(outcome, message_id, trace, status=status, request_id=request_id)
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
                        await self._renew(token)
                        renewed = True
                    except _AttemptFailed as exc:
                        logger.warning("event %s: no new token: %s", message_id, exc)
                if not renewed:
                    self._link_lost(link, ChangedReason.INVALID_AUTH, "403 again after a refresh")
                elif replay is None or replay.replayable:
                    return "auth"
                else:
                    logger.warning("event %s: 403, and too much audio to resend", message_id)
            logger.warning(
                "event %s failed: %d %s (request id %s)", message_id, status, code, request_id
            )
            return _result(
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
        self, stream: HTTP2Stream, body: _Body, replay: _Replay | None, trace: _Trace
    ) -> None:
        """Send the metadata part, then the audio as it comes, then the close delimiter."""
        if replay is None:
            await stream.send_data(body.head + body.tail, end_stream=True)
        else:
            await stream.send_data(body.head)
            position = 0
            while True:
                chunk = await replay.chunk(position)
                if chunk is None:
                    break
                position += 1
                await stream.send_data(chunk)
                trace.moved()
            await stream.send_data(body.tail, end_stream=True)
        trace.body_sent_at = asyncio.get_running_loop().time()
        trace.moved()

    async def _response(
        self, stream: HTTP2Stream, upload: asyncio.Task[None], trace: _Trace
    ) -> Response:
        """Wait for the response headers while the upload progresses (event_timeout idle)."""
        limit = self.config.event_timeout
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
        self,
        link: _Link,
        stream: HTTP2Stream,
        upload: asyncio.Task[None],
        response: Response,
        trace: _Trace,
        message_id: str,
        request_id: str | None,
    ) -> EventResult:
        source = ResponseSource(link.id, stream.stream_id, "event", message_id)
        error: BaseException | None = None
        loop = asyncio.get_running_loop()
        try:
            parser = MultipartParser(
                boundary_from_content_type(response.header("content-type") or "")
            )
        except (ValueError, MultipartError) as exc:
            error = exc
        else:
            limit = self.config.event_timeout
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
                    await self._deliver(parser, chunk, source)
                if not parser.done:
                    parser.close()  # raises ParserError: the body was truncated
            except (TransportError, MultipartError) as exc:
                error = _upload_error(upload) or exc
        await _finish_upload(upload, wait=False)
        with contextlib.suppress(Exception):
            await self._sink.response_ended(source, error)
        if error is not None:
            logger.warning("event %s: response failed: %s", message_id, error)
            return _result(
                self._outcome_for(error),
                message_id,
                trace,
                status=200,
                error=error,
                request_id=request_id,
            )
        return _result(Outcome.SUCCESS, message_id, trace, status=200, request_id=request_id)

    async def _deliver(self, parser: MultipartParser, chunk: bytes, source: ResponseSource) -> None:
        """Feed a chunk to the parser and its events to the sink, one awaited call each."""
        sink = self._sink
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


# -- helpers ---------------------------------------------------------------------------------


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


async def _read_error_body(
    stream: HTTP2Stream, trace: _Trace | None = None, timeout: float | None = None
) -> bytes:
    """At most MAX_EXCEPTION_BODY bytes of a (small, JSON) error body; errors give b""."""
    parts: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in stream:
                if trace is not None:
                    trace.moved()
                parts.append(chunk[: MAX_EXCEPTION_BODY - size])
                size += len(parts[-1])
                if size >= MAX_EXCEPTION_BODY:
                    break
    except (TransportError, TimeoutError):
        pass
    return b"".join(parts)


def _log_response(what: str, response: Response) -> None:
    logger.debug(
        "%s: status %d, x-amzn-requestid %s",
        what,
        response.status,
        response.header("x-amzn-requestid"),
    )


def _message_id(event: Mapping[str, Any]) -> str:
    try:
        value = event["event"]["header"]["messageId"]
    except (KeyError, TypeError):
        return ""
    return value if isinstance(value, str) else ""


def _reason_for(error: BaseException) -> ChangedReason:
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


def _reason_for_outcome(outcome: Outcome) -> ChangedReason:
    if outcome is Outcome.INVALID_AUTH:
        return ChangedReason.INVALID_AUTH
    if outcome is Outcome.TIMEDOUT:
        return ChangedReason.CONNECTION_TIMEDOUT
    if outcome in (Outcome.NOT_CONNECTED, Outcome.CANCELED):
        return ChangedReason.NETWORK_ERROR
    return ChangedReason.SERVER_ERROR


def _result(
    outcome: Outcome,
    message_id: str,
    trace: _Trace,
    *,
    status: int | None = None,
    error: BaseException | None = None,
    code: str | None = None,
    request_id: str | None = None,
) -> EventResult:
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


def _failed(
    outcome: Outcome, message_id: str, error: BaseException, trace: _Trace | None = None
) -> EventResult:
    return _result(outcome, message_id, trace or _Trace(), error=error)
