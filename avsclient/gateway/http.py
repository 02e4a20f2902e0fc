"""The thin httpx shell shared by both gateway clients: POST JSON, read a bounded reply, and
drive a `Delivery` to its end (tokens, sleeps, exception mapping). It decides nothing: the
error table lives in `avsclient.gateway.core`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random as _random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from avsclient._httpx import http2_client, map_httpx_errors
from avsclient._resource import AsyncResource
from avsclient.auth.provider import TokenProvider
from avsclient.exceptions import AuthError, AVSError, LocalProtocolError, TransportError
from avsclient.gateway.config import MAX_REPLY_BYTES
from avsclient.gateway.core import (
    B,
    Delivery,
    DeliveryFinished,
    DeliveryResult,
    GatewayRetryScheduled,
    RequestReady,
    TokenRefreshRequired,
)

__all__ = ["ApiClient", "Clock", "GatewayReply", "JsonPoster", "Sleep", "drive"]

logger = logging.getLogger("avsclient.gateway")

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]
T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayReply:
    """A reply: status, the first `MAX_REPLY_BYTES` of the body, and Retry-After in seconds."""

    status: int
    body: bytes
    retry_after: float | None

    def __repr__(self) -> str:
        return f"Reply(status={self.status}, body=<{len(self.body)} bytes>)"


def _retry_after(value: str | None) -> float | None:
    # Only the delta-seconds form; Retry-After is not documented for the gateway (7.3).
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


class JsonPoster:
    """POSTs JSON bodies with a bearer token over HTTP/2 (HTTP/1.1 as a TLS fallback).

    Args:
        url: the base URL (`https://host[:port]`); `http://` uses h2c with prior knowledge.
        what: the API's name for error messages.
        ca_file: a PEM file of CAs to trust instead of the system store.
        timeout: seconds for connecting and for each read and write.
    """

    def __init__(
        self, url: str, *, what: str, ca_file: str | os.PathLike[str] | None, timeout: float
    ) -> None:
        self._url = url
        self._what = what
        self._client = http2_client(url, ca_file=ca_file, timeout=timeout)

    def __repr__(self) -> str:
        return f"JsonPoster({self._url!r})"

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def post(self, path: str, body: bytes, token: str) -> GatewayReply:
        """POST `body` to `path` and read the reply (at most `MAX_REPLY_BYTES` of it).

        Raises:
            TransportError: connecting failed, timed out, or the connection broke.
        """
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        with map_httpx_errors(f"the {self._what}"):
            async with self._client.stream("POST", path, content=body, headers=headers) as resp:
                data = bytearray()
                async for chunk in resp.aiter_raw():
                    data += chunk
                    if len(data) >= MAX_REPLY_BYTES:
                        # Enough to classify the reply; a hostile server cannot make us buffer.
                        del data[MAX_REPLY_BYTES:]
                        break
                return GatewayReply(
                    status=resp.status_code,
                    body=bytes(data),
                    retry_after=_retry_after(resp.headers.get("retry-after")),
                )


async def drive(
    delivery: Delivery[B],
    *,
    tokens: TokenProvider,
    send: Callable[[B, str], Awaitable[GatewayReply]],
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
) -> DeliveryResult[B]:
    """Run a `Delivery` to its end.

    Args:
        delivery: a fresh delivery.
        tokens: where bearer tokens come from; a refused token is reported with `invalidate`.
        send: encodes a batch with the token and sends it (may raise `TransportError`, or
            `LocalProtocolError` for a body that fails validation).
        clock: a monotonic time source.
        sleep: waits between retries (tests pass a fake).

    Returns:
        The delivery's one result (a failure is in `result.error`, not raised).
    """
    token: str | None = None
    while True:
        event = delivery.next_event(clock())
        if isinstance(event, DeliveryFinished):
            return event.result
        if isinstance(event, GatewayRetryScheduled):
            logger.info("retrying in %.1f s (%s)", event.delay, event.reason)
            await sleep(event.delay)
            continue
        if isinstance(event, TokenRefreshRequired):
            if token is not None:
                await tokens.invalidate(token)
            token = None
            continue
        assert isinstance(event, RequestReady)
        try:
            token = await tokens.get_token()
        except (AuthError, TransportError) as exc:
            logger.warning("no access token for the report: %s", exc)
            delivery.abort(exc)
            continue
        try:
            reply = await send(event.batch, token)
        except TransportError as exc:
            logger.info("attempt %d got no reply: %s", event.attempt, exc)
            delivery.transport_failed(exc, now=clock())
            continue
        except (LocalProtocolError, ValueError) as exc:
            error = exc if isinstance(exc, AVSError) else LocalProtocolError(str(exc))
            delivery.abort(error)
            continue
        delivery.receive_response(
            reply.status, reply.body, now=clock(), retry_after=reply.retry_after
        )


class _ApiSettings(Protocol):
    @property
    def url(self) -> str: ...
    @property
    def ca_file(self) -> str | os.PathLike[str] | None: ...
    @property
    def timeout(self) -> float: ...


ConfigT = TypeVar("ConfigT", bound=_ApiSettings)


class ApiClient(AsyncResource, Generic[ConfigT]):
    """What the event gateway and Skill Messaging clients share: their configuration, a
    token provider (not closed here), the HTTP/2 JSON poster, and the retry clock.

    Args:
        tokens: where bearer tokens come from.
        config: the service's configuration.
        what: the service's name, for messages.
        clock: a monotonic time source (tests pass a fake).
        sleep: waits between retries (tests pass a fake so nothing sleeps for real).
        random: returns a float in [0, 1) for retry jitter.
    """

    def __init__(
        self,
        tokens: TokenProvider,
        config: ConfigT,
        *,
        what: str,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self._config = config
        self._tokens = tokens
        self._clock = clock
        self._sleep = sleep
        self._random = random
        self._http = JsonPoster(
            config.url, what=what, ca_file=config.ca_file, timeout=config.timeout
        )
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"{type(self).__name__}({self._config.url!r}, {state})"

    @property
    def config(self) -> ConfigT:
        """The configuration in use."""
        return self._config

    async def aclose(self) -> None:
        """Close the connection pool (the token provider stays open)."""
        self._closed = True
        await self._http.aclose()
