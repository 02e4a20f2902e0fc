"""Alexa.ApiGateway 1.0: which AVS gateway the device talks to (avs-protocol 9.6).

After each connection to a gateway not yet verified, the agent sends `VerifyGateway` (a
post-connect step that runs before Discovery and SynchronizeState, 9.5): 204 marks the gateway
verified in the device store; 200 carries a `SetGateway` directive; 400, 403 and 503 are
fatal; anything else, or no answer, is retried on the 9.3 schedule until verified, as the SDK
does, but for `deadline` seconds at most inside the connection attempt: then the client
reports connected (voice turns come first) and the retries go on in the background on the
live connection (observable: `verified`, `last_result`, `failures`). `SetGateway` persists the
new gateway as unverified and moves the connection there the way SetEndpoint does
(make-before-break: the old link finishes its streams while the new one is made), and only to
an https URL on a host the configuration allows (`ClientConfig.check_cloud_endpoint`).
"""

from __future__ import annotations

import asyncio
import logging
import random as _random
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from avsclient._retry import RetryPolicy
from avsclient.agents import payload
from avsclient.agents.base import CapabilityAgent, DirectiveHandler
from avsclient.config import MAX_CLOUD_ENDPOINT

if TYPE_CHECKING:
    from avsclient.avs.manager import EventResult, LinkSender, PostConnectStep
    from avsclient.messages import Directive

__all__ = ["ApiGatewayAgent", "DEFAULT_VERIFY_DEADLINE", "GATEWAY_STORE", "VERIFY_RETRY"]

_log = logging.getLogger("avsclient.agents")

#: The device store namespace of the gateway in use (`gateway`) and the one verified
#: (`verified`); SetEndpoint writes the same `gateway` key.
GATEWAY_STORE = "Alexa.ApiGateway"

#: VerifyGateway's retries after a status that is neither success nor fatal, or no answer:
#: the 9.3 table (1, 2, 4, ... 256 s, the last repeating), until the gateway is verified,
#: as the SDK does (avs-protocol 9.5, 9.6).
VERIFY_RETRY = RetryPolicy.exponential(1.0, cap=256.0)
#: How long VerifyGateway may hold a connection attempt (and so every voice turn) before the
#: client reports connected without it: the first attempt and the retries after 1, 2 and 4 s.
#: Then the retries go on in the background on the live connection, on the same schedule.
DEFAULT_VERIFY_DEADLINE = 8.0

# How long VerifyGateway's 200 waits for its SetGateway to take effect (it arrived in the
# same response, so its handler runs at once; a SetGateway naming this gateway changes nothing).
_MOVE_WAIT = 1.0
# 400, 403 and 503 are fatal for VerifyGateway (avs-protocol 9.6, [R31]).
_FATAL = frozenset({400, 403, 503})


class ApiGatewayAgent(CapabilityAgent):
    """VerifyGateway after connecting to an unverified gateway; SetGateway moves the device."""

    namespace = "Alexa.ApiGateway"
    version = "1.0"  # avs-protocol 9.1: Discovery needs >= 1.0

    def __init__(
        self,
        *,
        retry: RetryPolicy = VERIFY_RETRY,
        deadline: float = DEFAULT_VERIFY_DEADLINE,
        random: Callable[[], float] = _random.random,
    ) -> None:
        """Create the agent.

        Args:
            retry: the schedule of VerifyGateway retries after a status that is neither
                success nor fatal, or no answer (avs-protocol 9.3 table).
            deadline: seconds VerifyGateway may hold a connection attempt, answers and
                retries included (and never more than half of what the attempt has left of
                `connect_timeout`); then the connection goes on unverified and the retries
                continue in the background.
            random: the jitter source of `retry`.

        Raises:
            ValueError: `deadline` is not positive.
        """
        super().__init__()
        if not deadline > 0:
            raise ValueError("deadline must be positive")
        self.retry = retry
        self.deadline = deadline
        self._random = random
        #: The last VerifyGateway outcome, e.g. "verified", "moved", "fatal 403".
        self.last_result: str | None = None
        #: VerifyGateway attempts that failed since the gateway was last verified.
        self.failures = 0
        self._background: asyncio.Task[None] | None = None

    def handlers(self) -> dict[str, DirectiveHandler]:
        return {"SetGateway": self._on_set_gateway}

    def post_connect(self) -> list[tuple[int, PostConnectStep]]:
        return [(50, self._verify)]

    @property
    def verified(self) -> bool:
        """True when the gateway in use was verified (VerifyGateway answered 204)."""
        store = self.services.store
        return (
            store is not None and store.get(GATEWAY_STORE, "verified") == self.services.endpoint()
        )

    async def _verify(self, sender: LinkSender) -> None:
        """The post-connect step: VerifyGateway until verified, for `deadline` at most."""
        self._stop_background()
        store = self.services.store
        if store is not None and store.get(GATEWAY_STORE, "verified") == sender.url:
            return
        self.failures = 0
        loop = asyncio.get_running_loop()
        # At most `deadline`, and at most half of what the connection attempt has left:
        # Discovery and SynchronizeState come after it within connect_timeout.
        now = loop.time()
        deadline = now + min(self.deadline, (sender.deadline - now) / 2)
        while sender.usable:
            document = _verify_gateway()
            try:
                async with asyncio.timeout_at(deadline):
                    result = await sender.send(document)
            except TimeoutError:
                self.failures += 1
                self.last_result = "no answer"
                break
            self.messenger.observe(document, result)
            if await self._settled(result, sender.url):
                return
            delay = self.retry.next_delay(self.failures, self._random)
            if delay is None or loop.time() + delay >= deadline:
                break
            await asyncio.sleep(delay)
        if not sender.usable:
            return
        _log.warning(
            "VerifyGateway: %s after %d attempt(s) within %g s; connecting unverified, "
            "retrying in the background",
            self.last_result,
            self.failures,
            self.deadline,
        )
        self._background = asyncio.create_task(
            self._verify_in_background(sender.url), name="VerifyGateway retry"
        )

    async def _settled(self, result: EventResult, url: str) -> bool:
        """Act on one answer: True when done (verified, moved or fatal)."""
        store = self.services.store
        if result.status == 204:
            self.last_result = "verified"
            self.failures = 0
            if store is not None:
                store.set(GATEWAY_STORE, "verified", url)
            return True
        if result.status == 200:
            # The body carried SetGateway, whose handler moves the connection, which ends
            # this attempt: nothing more may be sent to the old gateway meanwhile.
            self.last_result = "moved"
            await self._await_move(url)
            return True
        if result.status in _FATAL:
            self.last_result = f"fatal {result.status}"
            _log.warning("VerifyGateway: %s (%s); going on unverified", result.status, result.error)
            return True
        self.failures += 1
        status = "" if result.status is None else f" {result.status}"
        self.last_result = f"failed {result.outcome.name}{status}"
        return False

    async def _verify_in_background(self, url: str) -> None:
        """Go on with the schedule on the connected link (the next connection's step stops
        this), so that a gateway is verified without holding voice turns back."""
        while self.services.endpoint() == url:
            delay = self.retry.next_delay(self.failures, self._random)
            if delay is None:
                return
            await asyncio.sleep(delay)
            if self.services.endpoint() != url:
                return
            document = _verify_gateway()
            result = await self.messenger.send_document(document)
            if await self._settled(result, url):
                return

    def _stop_background(self) -> None:
        task, self._background = self._background, None
        if task is not None:
            task.cancel()

    async def aclose(self) -> None:
        """Stop the background retries."""
        task, self._background = self._background, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _await_move(self, url: str) -> None:
        """Wait (at most `_MOVE_WAIT`) for SetGateway to move the device off `url`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _MOVE_WAIT
        while self.services.endpoint() == url and loop.time() < deadline:
            await asyncio.sleep(0.01)

    async def _on_set_gateway(self, directive: Directive) -> None:
        url = payload.text(directive.payload, "gateway", max_length=MAX_CLOUD_ENDPOINT)
        services = self.services
        # Checked before it is stored: https, a host the configuration allows
        # (EndpointRejected is a DirectiveError: AVS is told, nothing changes).
        url = services.check_cloud_endpoint(url)
        if url == services.endpoint():
            _log.info("SetGateway names the gateway in use: nothing to do")
            return
        _log.info("AVS moves the device to gateway %s", url)
        if services.store is not None:
            with services.store.transaction() as store:
                store.set(GATEWAY_STORE, "gateway", url)
                store.delete(GATEWAY_STORE, "verified")
        await services.set_endpoint(url)


def _verify_gateway() -> dict[str, Any]:
    """A VerifyGateway event: payload `{}`, no context (avs-protocol 9.6)."""
    return {
        "event": {
            "header": {
                "namespace": "Alexa.ApiGateway",
                "name": "VerifyGateway",
                "messageId": str(uuid.uuid4()),
            },
            "payload": {},
        }
    }
