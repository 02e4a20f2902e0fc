"""`EventGatewayClient`: sends smart-home reports to the Alexa event gateway for one user.

```python
tokens = RefreshingTokenProvider(LWAConfig(client_id=SKILL_ID, client_secret=SECRET),
                                 store=TokenStore(f"tokens/{user}.json"))
async with EventGatewayClient(tokens, config=GatewayConfig(region=Region.EU)) as gateway:
    await gateway.send(AddOrUpdateReport(endpoints=(Endpoint.camera("cam-1", "Front door",
                                                                    manufacturer_name="Acme"),)))
```

The token provider gives the user's access token (the LWA refresh grant with the skill's own
client id and secret, avs-protocol.md 7.1); the decisions are `avsclient.gateway.core`'s.
"""

from __future__ import annotations

import asyncio
import logging
import random as _random
import time
from collections.abc import Callable
from typing import TypeAlias

from avsclient.auth.provider import TokenProvider
from avsclient.gateway.config import EVENT_GATEWAY_PATH, GatewayConfig
from avsclient.gateway.core import EVENT_GATEWAY_RULES, Delivery, DeliveryResult
from avsclient.gateway.http import ApiClient, Clock, GatewayReply, Sleep, drive
from avsclient.gateway.reports import Batch, Report

__all__ = ["EventGatewayClient", "ReportResult"]

logger = logging.getLogger("avsclient.gateway")

ReportResult: TypeAlias = DeliveryResult[Batch]


class EventGatewayClient(ApiClient[GatewayConfig]):
    """Sends `AddOrUpdateReport`, `DeleteReport` and `ChangeReport` for one user.

    Reports go out one batch at a time, split before sending to respect `config.limits`,
    and each ends with exactly one `ReportResult` (see `Delivery` for the error table).

    Args:
        tokens: the user's access tokens (usually a `RefreshingTokenProvider` with the
            skill's client id and secret and a `TokenStore` per user). Not closed by this
            client.
        config: region or base URL, CA file, timeouts, retry policy and limits.
        clock: a monotonic time source (tests pass a fake).
        sleep: waits between retries (tests pass a fake so nothing sleeps for real).
        random: returns a float in [0, 1) for retry jitter.
    """

    def __init__(
        self,
        tokens: TokenProvider,
        *,
        config: GatewayConfig | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        random: Callable[[], float] = _random.random,
    ) -> None:
        super().__init__(
            tokens,
            config or GatewayConfig(),
            what="event gateway",
            clock=clock,
            sleep=sleep,
            random=random,
        )

    async def send(self, report: Report, *, raise_on_error: bool = True) -> ReportResult:
        """Send one report and return its outcome.

        Args:
            report: an `AddOrUpdateReport`, `DeleteReport` or `ChangeReport`.
            raise_on_error: raise the error that stopped a failed report (default). With
                False the result is returned either way, so that partial deliveries of a
                split report can be inspected (`result.batches`).

        Returns:
            The report's result; `result.ok` when every batch was delivered.

        Raises:
            RuntimeError: the client is closed.
            ValueError: the report cannot be split to fit the limits (one endpoint too big).
            InvalidGatewayRequest: 400: the message was malformed.
            InvalidAccessToken: 401 again after one token refresh.
            SkillDisabled: 403 SKILL_DISABLED_EXCEPTION: delete the user's tokens.
            InsufficientPermission: 403: the skill lacks "Send Alexa Events".
            SkillNotFound: 404: wrong skill or region.
            ReportTooLarge: 413 for a batch that cannot be split further.
            GatewayUnavailable: 429, 5xx or network failures outlasted the retries.
            GatewayError: any other refusal.
            AuthError: no access token could be obtained (e.g. `ReauthorizationRequired`).
        """
        if self._closed:
            raise RuntimeError("EventGatewayClient is closed")
        batches = report.batches(self._config.limits)
        logger.info(
            "sending %s (%d batch%s) to %s",
            report.name,
            len(batches),
            "" if len(batches) == 1 else "es",
            self._config.url,
        )
        delivery = Delivery(
            batches, rules=EVENT_GATEWAY_RULES, retry=self._config.retry, random=self._random
        )
        result = await drive(
            delivery, tokens=self._tokens, send=self._send, clock=self._clock, sleep=self._sleep
        )
        if result.ok:
            logger.info("%s delivered in %d batch(es)", report.name, len(result.delivered))
        else:
            logger.warning("%s failed: %s", report.name, result.error)
            if raise_on_error:
                result.raise_for_error()
        return result

    async def _send(self, batch: Batch, token: str) -> GatewayReply:
        body = batch.encode(token)
        logger.debug(
            "POST %s %s %s (%d endpoints, %d bytes)",
            EVENT_GATEWAY_PATH,
            batch.name,
            batch.message_id,
            len(batch.endpoint_ids),
            len(body),
        )
        reply = await self._http.post(EVENT_GATEWAY_PATH, body, token)
        logger.debug("%s %s answered HTTP %d", batch.name, batch.message_id, reply.status)
        return reply
