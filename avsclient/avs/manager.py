"""The AVS session's supervisor: one live link to AVS, kept up for ever, carrying events.

`ConnectionManager` connects (token, HTTP/2 connection, downchannel, `System.SynchronizeState`
with the full context: avs-protocol.md 2.1), reports CONNECTED only after the sync was
accepted, checks the link's liveness, reconnects with back-off on any loss, replaces a link that
got GOAWAY before letting it go (make-before-break), refreshes a rejected token once
(single-flight), and sends events one at a time as AVS asks while a Recognize's audio keeps
streaming. Every `send_event` ends with exactly one `EventResult`.

The rules (state table, liveness schedule, outcome and reason maps, exception bodies) live in
`avsclient.avs.policy`, the back-off schedule is an `avsclient._retry.RetryPolicy`; the rest of
the asyncio shell is split in modules below this one: `responses` (the sink protocol,
`EventResult`), `tokens` (the token gate and its 403 rule), `link` (one connection with its
downchannel reader, liveness check and watcher), `upload` (the body and the audio kept for a
resend), `exchange` (one event stream) and `attempt` (one connection attempt, its steps and
their deadline). This module is
the supervisor: one task runs the lifecycle, and events run in their callers' tasks. Links
never feed the lifecycle directly: they set flags and "kick" the supervisor, which reads the
flags, so no signal can be lost between two awaits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random as _random
from collections.abc import AsyncIterable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from avsclient._resource import AsyncService
from avsclient._retry import RetryPolicy
from avsclient.avs.attempt import Connector, LinkSender, PostConnectStep
from avsclient.avs.exchange import (
    REFUSED,
    ContextCallback,
    exchange,
    message_id_of,
    send_authorized,
)
from avsclient.avs.link import Link
from avsclient.avs.policy import (
    Action,
    ChangedReason,
    ConnectionStatus,
    EventOutcome,
    LifecycleInput,
    LifecycleMachine,
    LifecycleState,
    ReconnectSchedule,
    is_permanent,
    reason_for_error,
)
from avsclient.avs.responses import EventResult, ResponseSink, ResponseSource, failed
from avsclient.avs.tokens import AttemptFailed, TokenGate
from avsclient.avs.upload import MAX_REPLAY_BYTES, EventBody, Replay
from avsclient.config import ClientConfig
from avsclient.exceptions import (
    ConnectionClosed,
    ConnectionDraining,
    ConnectTimeout,
)

if TYPE_CHECKING:
    from avsclient.auth.provider import TokenProvider

# Plain sorted order, as tests/test_exports.py checks (not ruff's isort-style order).
__all__ = [
    "MAX_REPLAY_BYTES",
    "ChangedReason",
    "ConnectionManager",
    "ConnectionStatus",
    "ContextCallback",
    "EventOutcome",
    "EventResult",
    "LinkSender",
    "PostConnectStep",
    "ResponseSink",
    "ResponseSource",
]

logger = logging.getLogger("avsclient.avs")




class ConnectionManager(AsyncService):
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
        post_connect: gives, for each connection attempt, the steps to run on the new link
            between the downchannel and SynchronizeState (`PostConnectStep`).

    Use `async with ConnectionManager(...) as manager:` or `await manager.start()` ...
    `await manager.aclose()`.
    """

    def __init__(
        self,
        config: ClientConfig,
        tokens: TokenProvider,
        sink: ResponseSink,
        *,
        context: ContextCallback,
        on_status: Callable[[ConnectionStatus, ChangedReason], None] | None = None,
        endpoint_store: Callable[[str], None] | None = None,
        random: Callable[[], float] = _random.random,
        post_connect: Callable[[], Sequence[PostConnectStep]] | None = None,
    ) -> None:
        self.config = config
        self._sink = sink
        self._context = context
        self._on_status = on_status
        self._endpoint_store = endpoint_store
        self._random = random
        self._url = config.url()
        self._machine = LifecycleMachine()
        self._reconnect = RetryPolicy(delays=config.backoff, jitter=config.backoff_jitter)
        self._schedule = ReconnectSchedule(
            policy=self._reconnect, healthy_after=config.healthy_after
        )
        self._hold = 0.0  # back-off before the replacement of a link that ended unproven
        self._reason = ChangedReason.NONE
        self._last_failure: str | None = None  # why the latest connection attempt failed
        self._permanent: BaseException | None = None  # what put the lifecycle in FAILED
        self._reported: tuple[ConnectionStatus, ChangedReason] | None = None
        self._link: Link | None = None
        self._retired: set[Link] = set()
        self._supervisor: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()
        self._changed = asyncio.Event()
        self._wake_requested = False
        self._endpoint_changed = False
        self._waiting = 0
        self._gate = TokenGate(tokens, config.connect_timeout)
        self._connector = Connector(
            config,
            tokens,
            self._gate,
            sink,
            context=context,
            retry=self._reconnect,
            random=random,
            current_url=lambda: self._url,
            post_connect=post_connect,
            on_change=self._link_changed,
            manager_closed=self._is_closed,
        )
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
        self._feed(LifecycleInput.START, ChangedReason.CLIENT_REQUEST)
        self._supervisor = asyncio.create_task(self._run(), name="avs connection manager")

    async def aclose(self) -> None:
        """Close every connection; waiting and running events end with CANCELED.

        Safe to call more than once.
        """
        if self._closed:
            return
        self._closed = True
        self._feed(LifecycleInput.CLOSE, ChangedReason.CLIENT_REQUEST)
        self._pulse()
        supervisor = self._supervisor
        if supervisor is not None and not supervisor.done():
            supervisor.cancel()
        links = [link for link in (self._link, *self._retired) if link is not None]
        self._link = None
        self._retired.clear()
        # Cleanup is shielded from the caller's cancellation, so no task or socket leaks.
        await asyncio.shield(self._shutdown(supervisor, links))

    async def _shutdown(self, supervisor: asyncio.Task[None] | None, links: list[Link]) -> None:
        if supervisor is not None:
            await asyncio.gather(supervisor, return_exceptions=True)
        retiring = list(self._retire_tasks)
        for task in retiring:
            task.cancel()
        await asyncio.gather(*retiring, return_exceptions=True)
        await asyncio.gather(*(link.aclose() for link in links), return_exceptions=True)

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the status is CONNECTED.

        Args:
            timeout: seconds to wait at most; None waits for ever.

        Raises:
            ConnectTimeout: not connected within `timeout` seconds (a `TimeoutException`,
                not the built-in `TimeoutError`); its message says why the last attempt
                failed, or which step the attempt under way is stuck in.
            ConnectError: at once, when the server's certificate was rejected (the manager
                does not retry it until `wake()`).
            ReauthorizationRequired, ClientConfigError: at once, when Login with Amazon
                refused the refresh token or the client configuration (no retry until
                `wake()`).
            ConnectionClosed: the manager is (or gets) closed.
        """
        try:
            async with asyncio.timeout(timeout):
                while self.status is not ConnectionStatus.CONNECTED:
                    if self._closed:
                        raise ConnectionClosed("the connection manager is closed")
                    if self._machine.state is LifecycleState.FAILED and self._permanent is not None:
                        raise self._permanent
                    await self._changed.wait()
        except TimeoutError as exc:
            raise ConnectTimeout(
                f"not connected to {self._url} within {timeout} s "
                f"(status {self.status.name}, reason {self._reason.name}){self._why()}"
            ) from exc

    def _why(self) -> str:
        """What held the connection up, for a ConnectTimeout message."""
        why = f"; the last attempt failed: {self._last_failure}" if self._last_failure else ""
        return why + self._connector.describe_step()

    def wake(self) -> None:
        """Retry now if the manager is waiting out a back-off delay (the network came back),
        or after a permanent failure (the device was linked again, the clock or the trust
        store was fixed)."""
        self._wake_requested = True
        self._kick.set()
        self._connector.cut_hold()  # the hold before replacing a link that ended unproven

    async def set_endpoint(self, url: object) -> None:
        """Move to another endpoint (System.SetEndpoint): check it, persist it, then reconnect
        there.

        The URL comes from AVS, so it is checked first (`ClientConfig.check_cloud_endpoint`:
        https only, a bare base URL, a host of `config.endpoint_hosts`); a rejected one is
        neither stored nor used, and the manager carries on as before. The current link keeps
        finishing its streams while the new one is made.

        Args:
            url: the new base URL, `https://host[:port]`, as the directive gave it.

        Raises:
            EndpointRejected: the URL is not one the configuration allows (a `ValueError`
                and a `DirectiveError`, reported to AVS as UNEXPECTED_INFORMATION_RECEIVED).
        """
        url = self.config.check_cloud_endpoint(url)
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

    def _feed(self, event: LifecycleInput, reason: ChangedReason) -> Action:
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

    def _link_changed(self) -> None:
        """A link died or must be replaced: wake the waiters and the supervisor."""
        self._pulse()
        self._kick.set()

    def _is_closed(self) -> bool:
        return self._closed

    # -- the supervisor ----------------------------------------------------------------------

    async def _run(self) -> None:
        action = Action.CONNECT
        while True:
            if action is Action.SCHEDULE_RETRY:
                action = await self._pause(self._schedule.delay(self._random()))
            elif action is Action.HOLD:
                logger.error(
                    "not retrying %s: %s (call wake() once it is mended)",
                    self._url,
                    self._last_failure,
                )
                action = await self._pause(None)
            else:
                action = await self._connect_phase()

    async def _pause(self, delay: float | None) -> Action:
        """Wait out a back-off delay (None: until woken); wake() or a new endpoint cuts it
        short."""
        if delay is not None:
            logger.info("reconnecting to %s in %.3f s", self._url, delay)
        loop = asyncio.get_running_loop()
        deadline = None if delay is None else loop.time() + delay
        self._wake_requested = False
        while True:
            self._kick.clear()
            if self._endpoint_changed:
                self._endpoint_changed = False
                return self._feed(LifecycleInput.DRAIN, ChangedReason.ENDPOINT_CHANGED)
            if self._wake_requested:
                self._wake_requested = False
                logger.info("woken: retrying at once")
                return self._feed(LifecycleInput.RETRY, self._reason)
            if deadline is not None and deadline <= loop.time():
                return self._feed(LifecycleInput.RETRY, self._reason)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await self._kick.wait()

    async def _connect_phase(self) -> Action:
        """Run one attempt; on success install the link and watch it until it ends."""
        self._endpoint_changed = False
        hold, self._hold = self._hold, 0.0
        attempt = asyncio.create_task(
            self._connector.attempt_within(hold), name="avs connect attempt"
        )
        try:
            while True:
                self._kick.clear()
                if self._endpoint_changed:
                    self._endpoint_changed = False
                    attempt.cancel()
                    with contextlib.suppress(BaseException):
                        await attempt
                    return self._feed(LifecycleInput.DRAIN, ChangedReason.ENDPOINT_CHANGED)
                old = self._link
                if (
                    self._machine.state is LifecycleState.REPLACING
                    and old is not None
                    and old.lost is not None
                    and not old.closing
                ):
                    # The draining link died before its replacement was ready.
                    self._feed(LifecycleInput.LINK_LOST, old.lost)
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
        except AttemptFailed as exc:
            logger.warning("connecting to %s failed: %s", self._url, exc)
            self._last_failure = str(exc)
            if is_permanent(exc):
                self._permanent = exc.__cause__ or exc
                return self._feed(LifecycleInput.PERMANENT_FAILURE, exc.reason)
            self._schedule.attempt_failed()
            return self._feed(LifecycleInput.ATTEMPT_FAILED, exc.reason)
        except Exception as exc:  # a bug below us must not end the lifecycle
            logger.exception("connecting to %s failed unexpectedly", self._url)
            self._last_failure = f"unexpected error: {exc!r}"
            self._schedule.attempt_failed()
            return self._feed(LifecycleInput.ATTEMPT_FAILED, reason_for_error(exc))
        self._last_failure = None
        self._permanent = None
        old = self._link
        self._link = link
        self._schedule.connected(asyncio.get_running_loop().time())
        action = self._feed(LifecycleInput.ATTEMPT_SUCCEEDED, ChangedReason.SUCCESS)
        assert action is Action.RESET_BACKOFF
        logger.info("connected to %s (connection %d)", link.url, link.id)
        if old is not None:
            self._retire(old)
        return await self._watch(link)

    async def _watch(self, link: Link) -> Action:
        """Wait until the link in use dies or must be replaced."""
        loop = asyncio.get_running_loop()
        while True:
            self._kick.clear()
            if link.lost is not None:
                self._retire(link)
                self._link = None
                self._schedule.link_ended(loop.time(), drained=False)
                return self._feed(LifecycleInput.LINK_LOST, link.lost)
            if link.drain is not None:
                self._retire(link)
                if self._schedule.link_ended(loop.time(), drained=True):
                    # It ended before proving healthy: the replacement waits its back-off.
                    self._hold = self._schedule.delay(self._random())
                return self._feed(LifecycleInput.DRAIN, link.drain)
            if self._endpoint_changed:
                self._endpoint_changed = False
                link.drain = ChangedReason.ENDPOINT_CHANGED
                self._retire(link)
                self._schedule.link_ended(loop.time(), drained=True)
                return self._feed(LifecycleInput.DRAIN, ChangedReason.ENDPOINT_CHANGED)
            await self._kick.wait()

    def _retire(self, link: Link) -> None:
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

    async def _close_when_idle(self, link: Link) -> None:
        try:
            while link.in_flight and link.lost is None:
                link.idle.clear()
                await link.idle.wait()
        finally:
            self._retired.discard(link)
            await link.aclose()

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
        body = EventBody.encode(event, audio=audio is not None)  # TypeError: not JSON (misuse)
        message_id = message_id_of(event)
        if self._closed:
            return failed(
                EventOutcome.CANCELED, message_id, ConnectionClosed("the manager is closed")
            )
        if self._waiting >= self.config.queue_size:
            logger.warning("event %s refused: %d events already wait", message_id, self._waiting)
            return failed(
                EventOutcome.NOT_CONNECTED,
                message_id,
                ConnectionClosed(f"the event queue is full ({self.config.queue_size} waiting)"),
            )
        replay = Replay(audio) if audio is not None else None
        try:
            return await self._send(body, replay, message_id)
        finally:
            if replay is not None:
                await replay.aclose()

    async def _send(self, body: EventBody, replay: Replay | None, message_id: str) -> EventResult:
        """`send_event` once the body is encoded: wait for a link, send, resend if refused.

        A first 403 is sent again with a renewed token (`send_authorized`), on whichever link
        is in use then.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.queue_timeout
        # The first link is waited for before the token is fetched, so that an event waiting
        # for a connection fails NOT_CONNECTED, whatever the token service says meanwhile.
        first = await self._acquire_link(deadline)
        if first is None:
            return self._no_link(message_id)
        ready: list[Link] = [first]  # a link whose turn lock is held for the next exchange

        async def run(token: str) -> tuple[EventResult, Link | None]:
            nonlocal deadline
            while True:
                link = ready.pop() if ready else await self._acquire_link(deadline)
                if link is None:
                    return self._no_link(message_id), None
                result = await exchange(link, body, replay, message_id, token)
                if isinstance(result, EventResult):
                    return result, link
                assert result == REFUSED
                if replay is not None and not replay.replayable:
                    refused = ConnectionDraining("refused by GOAWAY, and too much audio to resend")
                    return failed(EventOutcome.NOT_CONNECTED, message_id, refused), link
                logger.info("event %s refused by GOAWAY: resending it", message_id)
                deadline = loop.time() + self.config.queue_timeout

        try:
            return await send_authorized(self._gate, run, replay, message_id)
        finally:
            if ready:  # no token came: the exchange never ran
                ready.pop().turn.release()

    def _no_link(self, message_id: str) -> EventResult:
        why = "the manager was closed" if self._closed else "no connection in time"
        if not self._closed and self._machine.state is LifecycleState.FAILED:
            why = f"not connecting: {self._last_failure}"
        outcome = EventOutcome.CANCELED if self._closed else EventOutcome.NOT_CONNECTED
        return failed(outcome, message_id, ConnectionClosed(why))

    async def _acquire_link(self, deadline: float) -> Link | None:
        """A usable link whose turn lock we now hold, or None (closed, or out of time)."""
        loop = asyncio.get_running_loop()
        self._waiting += 1
        try:
            while True:
                if self._closed or self._machine.state is LifecycleState.FAILED:
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

    def _takes_events(self, link: Link) -> bool:
        # A method, not an expression: mypy would keep the checks narrowed across awaits.
        return link.usable and not self._closed
