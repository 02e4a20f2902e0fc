"""One connection attempt: token, HTTP/2 connection, downchannel, the post-connect steps
(VerifyGateway, Discovery) and `System.SynchronizeState`, within one deadline
(avs-protocol.md 2.1, 9.5).

`Connector` makes a `Link` ready for events or raises `AttemptFailed`; the supervisor in
`avsclient.avs.manager` decides when to try and what a failure means. While an attempt runs,
`Connector.step` says where it is, so that a `ConnectTimeout` can name the step that holds
it up.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from avsclient._retry import RetryPolicy
from avsclient.avs.exchange import ContextCallback, message_id_of, send_on_link, synchronize
from avsclient.avs.link import Link
from avsclient.avs.policy import ChangedReason, reason_for_error
from avsclient.avs.responses import EventResult, ResponseSink
from avsclient.avs.tokens import AttemptFailed, TokenGate
from avsclient.avs.upload import EventBody
from avsclient.config import ClientConfig
from avsclient.exceptions import TransportError
from avsclient.http2.connection import HTTP2Connection

if TYPE_CHECKING:
    from avsclient.auth.provider import TokenProvider

__all__ = ["GETTING_TOKEN", "Connector", "LinkSender", "PostConnectStep"]

logger = logging.getLogger("avsclient.avs")

#: The attempt's first step: waiting for the token provider.
GETTING_TOKEN = "getting an access token"


class LinkSender:
    """What a post-connect step may do on the link being set up: send events on it, before
    the manager reports CONNECTED (avs-protocol 2.1 step 6, 9.5).

    Attributes:
        url: the endpoint the link is connected to.
        deadline: the event loop time at which the connection attempt times out
            (`connect_timeout`); a step that retries leaves room for the steps after it.
    """

    def __init__(self, link: Link, gate: TokenGate, deadline: float = math.inf) -> None:
        self._link = link
        self._gate = gate
        self.url = link.url
        self.deadline = deadline

    @property
    def usable(self) -> bool:
        """False once the link died or is draining (a step should stop then)."""
        return self._link.usable

    async def token(self) -> str:
        """The access token in use (a Discovery report carries it in its `scope`)."""
        return await self._gate.token()

    async def send(self, event: Mapping[str, Any]) -> EventResult:
        """Send one event document on this link (no audio) and return its result.

        Never raises for network or server trouble (like `ConnectionManager.send_event`).

        Raises:
            TypeError: the event cannot be serialised as JSON.
        """
        body = EventBody.encode(event, audio=False)
        return await send_on_link(self._link, body, None, message_id_of(event))


PostConnectStep = Callable[[LinkSender], Awaitable[None]]
"""One step run on a new link after its downchannel opened and before SynchronizeState, in
the order given (the SDK's: VerifyGateway, then Discovery; avs-protocol 9.5). A step that
raises `AttemptFailed` fails the attempt; any other exception is logged and the next step
runs. Steps must bound their own waits: the attempt waits for them."""


class Connector:
    """Makes links: one attempt at a time, each within `config.connect_timeout`.

    Args:
        config: the client configuration (CA, transport settings, timeouts).
        tokens: the token provider (asked for its `last_failure`, when it has one).
        gate: the token gate every request of the attempt goes through.
        sink: receives the new link's downchannel parts.
        context: the full context for SynchronizeState.
        retry: the schedule SynchronizeState retries on.
        random: the jitter source.
        current_url: the endpoint to use now (a post-connect step may move the device).
        post_connect: the steps to run between the downchannel and SynchronizeState.
        on_change: the new link's way to wake the supervisor.
        manager_closed: tells the new link whether the manager is closing.
    """

    def __init__(
        self,
        config: ClientConfig,
        tokens: TokenProvider,
        gate: TokenGate,
        sink: ResponseSink,
        *,
        context: ContextCallback,
        retry: RetryPolicy,
        random: Callable[[], float],
        current_url: Callable[[], str],
        post_connect: Callable[[], Sequence[PostConnectStep]] | None,
        on_change: Callable[[], None],
        manager_closed: Callable[[], bool],
    ) -> None:
        self.config = config
        self._tokens = tokens
        self._gate = gate
        self._sink = sink
        self._context = context
        self._retry = retry
        self._random = random
        self._current_url = current_url
        self._post_connect = post_connect
        self._on_change = on_change
        self._manager_closed = manager_closed
        self._transport = config.connection_config()
        self._link_ids = itertools.count(1)
        #: The running attempt's step and since when (loop time), or None between attempts.
        self.step: tuple[str, float] | None = None
        self._deadline = math.inf  # loop time at which the attempt under way times out
        self._hold_cut = asyncio.Event()

    def cut_hold(self) -> None:
        """End the hold before an attempt now (`ConnectionManager.wake`: the network is back)."""
        self._hold_cut.set()

    def describe_step(self) -> str:
        """Where the attempt under way is, for a ConnectTimeout message ("" between attempts):
        the step, for how long, and why Login with Amazon failed if it is the token step."""
        if self.step is None:
            return ""
        step, since = self.step
        spent = asyncio.get_running_loop().time() - since
        text = f"; the attempt under way has been {step} for {spent:.1f} s"
        # A token provider that retries on its own (RefreshingTokenProvider) says why.
        token_failure = getattr(self._tokens, "last_failure", None)
        if step == GETTING_TOKEN and isinstance(token_failure, str):
            text += f" ({token_failure})"
        return text

    async def attempt_within(self, hold: float) -> Link:
        """Wait `hold` seconds (the back-off of a link that ended unproven), then make a link
        within `connect_timeout` as a whole.

        Raises:
            AttemptFailed: any step failed, or the whole took too long.
        """
        if hold > 0:
            logger.info(
                "the last connection to %s ended before it proved healthy: the next one in %.3f s",
                self._current_url(),
                hold,
            )
            self._hold_cut.clear()
            with contextlib.suppress(TimeoutError):  # cut_hold() ends it early
                async with asyncio.timeout(hold):
                    await self._hold_cut.wait()
        limit = self.config.connect_timeout
        self._deadline = asyncio.get_running_loop().time() + limit
        try:
            async with asyncio.timeout(limit):
                return await self._attempt()
        except TimeoutError as exc:
            step = self.step[0] if self.step is not None else "connecting"
            raise AttemptFailed(
                ChangedReason.CONNECTION_TIMEDOUT,
                f"no connection within connect_timeout ({limit} s): still {step}",
            ) from exc
        finally:
            self.step = None

    def _at(self, step: str) -> None:
        self.step = (step, asyncio.get_running_loop().time())

    async def _attempt(self) -> Link:
        """Token, connection, downchannel, SynchronizeState: a link ready for events.

        Raises:
            AttemptFailed: any step failed.
        """
        config = self.config
        url = self._current_url()
        self._at(GETTING_TOKEN)
        token = await self._gate.token()
        links: list[Link] = []
        conn = HTTP2Connection.from_url(
            url,
            ca_file=config.ca_file,
            ssl_context=config.ssl_context,
            config=self._transport,
            on_goaway=lambda event: links[0].on_goaway(event),
        )
        link = Link(
            id=next(self._link_ids),
            url=url,
            conn=conn,
            config=config,
            gate=self._gate,
            sink=self._sink,
            on_change=self._on_change,
            manager_closed=self._manager_closed,
        )
        links.append(link)
        try:
            self._at("opening the HTTP/2 connection")
            try:
                await conn.connect()
            except TransportError as exc:
                raise AttemptFailed(reason_for_error(exc), f"connection failed: {exc}") from exc
            link.touch()
            self._at("opening the downchannel")
            await link.open_downchannel(token)
            self._at("verifying the gateway and reporting capabilities")
            await self._run_post_connect(link)
            self._at("sending SynchronizeState")
            await synchronize(link, self._context, self._retry, self._random)
            if not link.usable:
                raise AttemptFailed(
                    link.lost or link.drain or ChangedReason.SERVER_SIDE_DISCONNECT,
                    "the connection ended while synchronizing",
                )
        except BaseException:
            await asyncio.shield(link.aclose())
            raise
        link.start_monitoring()
        return link

    async def _run_post_connect(self, link: Link) -> None:
        if self._post_connect is None:
            return
        sender = LinkSender(link, self._gate, self._deadline)
        for step in self._post_connect():
            if self._current_url() != link.url:  # a step moved the device (SetGateway)
                raise AttemptFailed(
                    ChangedReason.ENDPOINT_CHANGED, f"moved to {self._current_url()}"
                )
            if not link.usable:
                break
            try:
                await step(sender)
            except AttemptFailed:
                raise
            except Exception:
                logger.exception("post-connect step %r failed; going on", step)
        if self._current_url() != link.url:
            raise AttemptFailed(ChangedReason.ENDPOINT_CHANGED, f"moved to {self._current_url()}")

