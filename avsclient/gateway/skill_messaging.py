"""`SkillMessagingClient`: sends messages to a skill through the Skill Messaging API.

`POST /v1/skillmessages/users/{userId}` with `{"data": {...}, "expiresAfterSeconds": N}` and a
client_credentials token (scope `alexa:skill_messaging`, avs-protocol.md 8). 202 Accepted means
queued, not delivered: the skill later gets a `Messaging.MessageReceived` request.

```python
lwa = LWAConfig(client_id=SKILL_CLIENT_ID, client_secret=SKILL_CLIENT_SECRET)
async with ClientCredentialsTokenProvider(lwa) as tokens, SkillMessagingClient(tokens) as sm:
    await sm.send(user_id, {"event": "doorbell"})
```
"""

from __future__ import annotations

import asyncio
import json
import logging
import random as _random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias
from urllib.parse import quote

from avsclient.auth.provider import TokenProvider
from avsclient.gateway.config import SKILL_MESSAGING_PATH, SkillMessagingConfig
from avsclient.gateway.core import SKILL_MESSAGING_RULES, Delivery, DeliveryResult
from avsclient.gateway.http import ApiClient, Clock, GatewayReply, Sleep, drive

__all__ = [
    "DEFAULT_EXPIRES_AFTER",
    "MAX_EXPIRES_AFTER",
    "MIN_EXPIRES_AFTER",
    "MessageResult",
    "SkillMessage",
    "SkillMessagingClient",
]

logger = logging.getLogger("avsclient.gateway")

# expiresAfterSeconds: optional, default 3600 (avs-protocol.md 8). The Skill Messaging API
# reference bounds it to 60 .. 86400 seconds.
DEFAULT_EXPIRES_AFTER = 3600
MIN_EXPIRES_AFTER = 60
MAX_EXPIRES_AFTER = 86_400
# A skill's userId is `amzn1.ask.account.` plus a few hundred characters.
_MAX_USER_ID = 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class SkillMessage:
    """One message for a skill, checked when it is made.

    Attributes:
        user_id: the skill's `context.System.user.userId` of the user.
        data: a JSON object with string keys (`{}` if there is nothing to say).
        expires_after_seconds: how long Alexa keeps trying to deliver it.
    """

    user_id: str
    data: Mapping[str, Any] = field(repr=False)
    expires_after_seconds: int = DEFAULT_EXPIRES_AFTER

    def __post_init__(self) -> None:
        uid = self.user_id
        if (
            not isinstance(uid, str)
            or not uid
            or len(uid) > _MAX_USER_ID
            or not (uid.isascii() and uid.isprintable())
            or " " in uid
        ):
            raise ValueError("user_id must be 1 to 1024 printable ASCII characters, no spaces")
        if not isinstance(self.data, Mapping):
            raise TypeError("data must be a mapping (a JSON object); use {} when empty")
        if not all(isinstance(key, str) for key in self.data):
            raise ValueError("data keys must be strings")
        try:
            json.dumps(dict(self.data), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"data is not plain JSON: {exc}") from None
        seconds = self.expires_after_seconds
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int)
            or not MIN_EXPIRES_AFTER <= seconds <= MAX_EXPIRES_AFTER
        ):
            raise ValueError(
                f"expires_after_seconds must be an int from {MIN_EXPIRES_AFTER} to "
                f"{MAX_EXPIRES_AFTER}"
            )

    @property
    def path(self) -> str:
        """The request path, with the user id escaped."""
        return SKILL_MESSAGING_PATH.format(user_id=quote(self.user_id, safe=""))

    def encode(self, max_data_bytes: int) -> bytes:
        """The JSON body.

        Raises:
            ValueError: `data` encodes to more than `max_data_bytes`.
        """
        data = json.dumps(dict(self.data), separators=(",", ":"), allow_nan=False).encode()
        if len(data) > max_data_bytes:
            raise ValueError(
                f"message data encodes to {len(data)} bytes, over the {max_data_bytes}-byte limit"
            )
        return b'{"data":' + data + b',"expiresAfterSeconds":%d}' % self.expires_after_seconds

    def split(self) -> None:
        """A message cannot be split (the core asks only on 413, which this API does not use)."""


MessageResult: TypeAlias = DeliveryResult[SkillMessage]


class SkillMessagingClient(ApiClient[SkillMessagingConfig]):
    """Sends Skill Messaging API requests for one skill.

    Args:
        tokens: a `ClientCredentialsTokenProvider` for the skill's client id and secret
            (scope `alexa:skill_messaging`); it caches the token. Not closed by this client.
        config: region or base URL, CA file, timeouts, retry policy and the data limit.
        clock: a monotonic time source (tests pass a fake).
        sleep: waits between retries (tests pass a fake).
        random: returns a float in [0, 1) for retry jitter.
    """

    def __init__(
        self,
        tokens: TokenProvider,
        *,
        config: SkillMessagingConfig | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        random: Callable[[], float] = _random.random,
    ) -> None:
        super().__init__(
            tokens,
            config or SkillMessagingConfig(),
            what="Skill Messaging API",
            clock=clock,
            sleep=sleep,
            random=random,
        )

    async def send(
        self,
        user_id: str,
        data: Mapping[str, Any],
        *,
        expires_after_seconds: int = DEFAULT_EXPIRES_AFTER,
        raise_on_error: bool = True,
    ) -> MessageResult:
        """Queue one message for the skill.

        A refused token (401 or 403) is refreshed once and the message resent once; 429 and
        5xx replies and network failures are retried with back-off.

        Args:
            user_id: the user's skill userId.
            data: a JSON object with string keys.
            expires_after_seconds: 60 to 86400 (default 3600).
            raise_on_error: raise the error of a failed send (default), else return it in the
                result.

        Returns:
            The result; `result.ok` when Alexa accepted (queued) the message.

        Raises:
            RuntimeError: the client is closed.
            ValueError, TypeError: the message is invalid or its data too large.
            InvalidGatewayRequest: 400: the message was malformed.
            InvalidAccessToken: 401/403 again after one token refresh.
            SkillNotFound: 404: unknown user or skill in this region.
            GatewayUnavailable: 429, 5xx or network failures outlasted the retries.
            GatewayError: any other refusal.
            AuthError: no token could be obtained (e.g. `ClientConfigError`).
        """
        if self._closed:
            raise RuntimeError("SkillMessagingClient is closed")
        message = SkillMessage(
            user_id=user_id, data=data, expires_after_seconds=expires_after_seconds
        )
        message.encode(self._config.max_data_bytes)  # fail early, before any token is fetched
        delivery = Delivery(
            [message], rules=SKILL_MESSAGING_RULES, retry=self._config.retry, random=self._random
        )
        result = await drive(
            delivery, tokens=self._tokens, send=self._send, clock=self._clock, sleep=self._sleep
        )
        if result.ok:
            logger.info("skill message queued (%d attempt(s))", result.batches[-1].attempts)
        else:
            logger.warning("skill message failed: %s", result.error)
            if raise_on_error:
                result.raise_for_error()
        return result

    async def _send(self, message: SkillMessage, token: str) -> GatewayReply:
        body = message.encode(self._config.max_data_bytes)
        logger.debug("POST %s (%d bytes)", SKILL_MESSAGING_PATH, len(body))
        return await self._http.post(message.path, body, token)
