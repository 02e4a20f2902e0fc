"""The thin httpx shell around the LWA core: send `LWARequest`s over HTTP/2, map errors.

It makes no protocol decisions: `avsclient.auth.lwa` decides what to send, what a reply
means and how long to wait; this module sends, reads the (bounded) reply, sleeps, and turns
httpx exceptions into avsclient ones, once, at this boundary.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from avsclient._httpx import http2_client, map_httpx_errors
from avsclient._resource import AsyncResource
from avsclient.auth.lwa import (
    DEFAULT_LWA_URL,
    LWARequest,
    LWARetryScheduled,
    TokenExchange,
    TokenSet,
    TokensReceived,
)
from avsclient.exceptions import AuthError, ResponseTimeout, TransportError

__all__ = ["MAX_REPLY_BYTES", "LWAHttpClient", "LWAReply", "run_exchange"]

logger = logging.getLogger("avsclient.auth")

# LWA replies are a few hundred bytes of JSON; 64 KiB bounds what a hostile server can make
# us buffer.
MAX_REPLY_BYTES = 64 * 1024

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True, kw_only=True)
class LWAReply:
    """A complete LWA reply: status and body (the body is never shown in reprs).

    Attributes:
        status: the HTTP status.
        body: the body bytes, at most `MAX_REPLY_BYTES`.
    """

    status: int
    body: bytes

    def __repr__(self) -> str:
        return f"LWAReply(status={self.status}, body=<{len(self.body)} bytes>)"


class LWAHttpClient(AsyncResource):
    """Sends LWA requests over HTTP/2 (httpx, `http2=True`) and returns complete replies.

    Args:
        url: the LWA base URL (`https://api.amazon.com`, or the simulator's `sim.url`).
            `http://` URLs use HTTP/2 with prior knowledge (h2c).
        ca_file: a PEM file of CAs to trust instead of the system store (the simulator's CA).
        ssl_context: a ready TLS context (takes precedence over `ca_file`).
        timeout: seconds allowed for one whole request: connecting, sending and reading the
            complete reply (a server trickling bytes cannot stretch it).
        max_reply_bytes: the largest reply body accepted.
    """

    def __init__(
        self,
        url: str = DEFAULT_LWA_URL,
        *,
        ca_file: str | os.PathLike[str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 10.0,
        max_reply_bytes: int = MAX_REPLY_BYTES,
    ) -> None:
        self._url = url.rstrip("/")
        self._timeout = timeout
        self._max_reply_bytes = max_reply_bytes
        self._client = http2_client(
            self._url, ca_file=ca_file, ssl_context=ssl_context, timeout=timeout
        )

    def __repr__(self) -> str:
        return f"LWAHttpClient({self._url!r})"

    @property
    def url(self) -> str:
        """The LWA base URL."""
        return self._url

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def send(self, request: LWARequest) -> LWAReply:
        """POST one form request and read the whole reply.

        Returns:
            The reply (any status).

        Raises:
            TransportError: connect failure, timeout, or the connection broke
                (`ConnectError`, `ConnectTimeout`, `ResponseTimeout`, `ConnectionLost`,
                `NetworkError`).
            AuthError: the reply body is larger than `max_reply_bytes`, or its
                Content-Encoding is broken.
        """
        logger.debug("LWA POST %s (%s)", request.path, request.grant_type or "codepair")
        headers = {
            "Content-Type": request.content_type,
            "Accept": "application/json",
            # Replies are tiny JSON: nothing to gain from compression, and without it the size
            # limit counts what the server sent.
            "Accept-Encoding": "identity",
        }
        try:
            # httpx bounds each connect, read and write; this bounds the request as a whole.
            async with asyncio.timeout(self._timeout):
                with map_httpx_errors("LWA"):
                    async with self._client.stream(
                        "POST", request.path, content=request.body(), headers=headers
                    ) as response:
                        body = bytearray()
                        # aiter_bytes undoes a Content-Encoding the server applied anyway.
                        async for chunk in response.aiter_bytes():
                            body += chunk
                            if len(body) > self._max_reply_bytes:
                                raise AuthError(
                                    f"LWA reply is larger than {self._max_reply_bytes} bytes",
                                    status=response.status_code,
                                )
                        status = response.status_code
        except TimeoutError as exc:
            raise ResponseTimeout(
                f"LWA did not complete the request within {self._timeout} s"
            ) from exc
        except httpx.DecodingError as exc:
            raise AuthError(f"LWA reply has a broken Content-Encoding: {exc}") from exc
        logger.debug("LWA %s answered HTTP %d (%d bytes)", request.path, status, len(body))
        return LWAReply(status=status, body=bytes(body))


async def run_exchange(
    http: LWAHttpClient,
    exchange: TokenExchange,
    *,
    clock: Clock = time.time,
    sleep: Sleep = asyncio.sleep,
    on_retry: Callable[[LWARetryScheduled], None] | None = None,
) -> TokenSet:
    """Drive a `TokenExchange` to the end: send, wait out retries, return the tokens.

    Args:
        http: the client to send with.
        exchange: a fresh exchange.
        clock: the time source for `expires_at` (a wall clock when tokens are stored).
        sleep: the coroutine that waits between retries (tests pass a fake).
        on_retry: told of each failed attempt before its back-off (why it failed).

    Returns:
        The tokens.

    Raises:
        ReauthorizationRequired, ClientConfigError, AuthError: see
            `TokenExchange.receive_reply`.
        TransportError: the network kept failing until the retry policy ran out.
    """
    while True:
        request = exchange.next_request()
        event: TokensReceived | LWARetryScheduled
        try:
            reply = await http.send(request)
        except TransportError as exc:
            event = exchange.transport_failed(exc)
        else:
            result = exchange.receive_reply(reply.status, reply.body, now=clock())
            assert isinstance(result, TokensReceived | LWARetryScheduled)
            event = result
        if isinstance(event, TokensReceived):
            return event.tokens
        if on_retry is not None:
            on_retry(event)
        await sleep(event.delay)
