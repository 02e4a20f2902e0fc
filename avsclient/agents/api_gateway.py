"""Alexa.ApiGateway 1.0: which AVS gateway the device talks to (avs-protocol 9.6).

After each connection to a gateway not yet verified, the agent sends `VerifyGateway` (a
post-connect step that runs before Discovery and SynchronizeState, 9.5): 204 marks the gateway
verified in the device store; 200 carries a `SetGateway` directive. `SetGateway` persists the
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
    from avsclient.avs.manager import LinkSender, PostConnectStep
    from avsclient.messages import Directive

__all__ = ["ApiGatewayAgent", "GATEWAY_STORE", "VERIFY_RETRY"]

_log = logging.getLogger("avsclient.agents")

#: The device store namespace of the gateway in use (`gateway`) and the one verified
#: (`verified`); SetEndpoint writes the same `gateway` key.
GATEWAY_STORE = "Alexa.ApiGateway"

#: VerifyGateway retries within one connection attempt for statuses that are neither success
#: nor fatal: the 9.3 table (1, 2, 4 s ...), but none by default, so that a gateway that does
#: not answer holds the connection back by one event timeout at most (the SDK retries until
#: done before reporting connected; here voice turns come first). The gateway stays
#: unverified and the next connection verifies it again.
VERIFY_RETRY = RetryPolicy.exponential(1.0, cap=256.0, max_retries=0)

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
        random: Callable[[], float] = _random.random,
    ) -> None:
        """Create the agent.

        Args:
            retry: retries of VerifyGateway after a status that is neither success nor
                fatal, within one connection attempt.
            random: the jitter source of `retry`.
        """
        super().__init__()
        self.retry = retry
        self._random = random
        #: The last VerifyGateway outcome, e.g. "verified", "moved", "fatal 403".
        self.last_result: str | None = None

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
        store = self.services.store
        if store is not None and store.get(GATEWAY_STORE, "verified") == sender.url:
            return
        failures = 0
        while sender.usable:
            document: dict[str, Any] = {
                "event": {
                    "header": {
                        "namespace": self.namespace,
                        "name": "VerifyGateway",
                        "messageId": str(uuid.uuid4()),
                    },
                    "payload": {},
                }
            }
            result = await sender.send(document)
            self.messenger.observe(document, result)
            if result.status == 204:
                self.last_result = "verified"
                if store is not None:
                    store.set(GATEWAY_STORE, "verified", sender.url)
                return
            if result.status == 200:
                # The body carried SetGateway, whose handler moves the connection, which ends
                # this attempt: nothing more may be sent to the old gateway meanwhile.
                self.last_result = "moved"
                await self._await_move(sender.url)
                return
            if result.status in _FATAL:
                self.last_result = f"fatal {result.status}"
                _log.warning(
                    "VerifyGateway: %s (%s); going on unverified", result.status, result.error
                )
                return
            failures += 1
            delay = self.retry.next_delay(failures, self._random)
            if delay is None:
                self.last_result = f"failed {result.outcome.name}"
                _log.warning("VerifyGateway failed %d times; going on unverified", failures)
                return
            await asyncio.sleep(delay)

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
