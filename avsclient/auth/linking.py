"""Code-based linking driven over HTTP: request a pair, show the code, poll until linked.

The asyncio loop around `CodePairLinking`; every decision (what to send, how long to wait,
when the pair is over) is the core's.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random as _random
import time
from collections.abc import Awaitable, Callable

from avsclient.auth.codepair import CodePairLinking
from avsclient.auth.http import Clock, LWAHttpClient, Sleep
from avsclient.auth.lwa import (
    CodePair,
    CodePairReceived,
    LWAEvent,
    LWARetryScheduled,
    PollScheduled,
    RetryPolicy,
    TokenSet,
    TokensReceived,
)
from avsclient.exceptions import LinkingExpired, TransportError

__all__ = ["CodeCallback", "link_device"]

logger = logging.getLogger("avsclient.auth")

CodeCallback = Callable[[CodePair], Awaitable[None] | None]
"""Called with each new code pair, to show `user_code` and `verification_uri`."""


async def _notify(on_code: CodeCallback, pair: CodePair) -> None:
    result = on_code(pair)
    if inspect.isawaitable(result):
        await result


async def _link_once(
    http: LWAHttpClient,
    machine: CodePairLinking,
    on_code: CodeCallback,
    clock: Clock,
    sleep: Sleep,
) -> TokenSet:
    # Phase 1: obtain a code pair (retrying transient failures).
    while True:
        request = machine.codepair_request()
        event: LWAEvent
        try:
            reply = await http.send(request)
        except TransportError as exc:
            event = machine.transport_failed(exc, now=clock())
        else:
            event = machine.receive_codepair_reply(reply.status, reply.body, now=clock())
        if isinstance(event, CodePairReceived):
            break
        assert isinstance(event, LWARetryScheduled)
        await sleep(event.delay)
    pair = event.code_pair
    await _notify(on_code, pair)
    # Phase 2: poll at the interval in force until tokens arrive or the pair ends.
    delay = pair.interval
    while True:
        await sleep(delay)
        request = machine.poll_request(clock())
        try:
            reply = await http.send(request)
        except TransportError as exc:
            event = machine.transport_failed(exc, now=clock())
        else:
            event = machine.receive_poll_reply(reply.status, reply.body, now=clock())
        if isinstance(event, TokensReceived):
            return event.tokens
        assert isinstance(event, PollScheduled | LWARetryScheduled)
        delay = event.delay


async def link_device(
    http: LWAHttpClient,
    *,
    client_id: str,
    product_id: str,
    serial: str,
    on_code: CodeCallback,
    restart: bool = False,
    max_pairs: int | None = None,
    retry: RetryPolicy | None = None,
    clock: Clock = time.time,
    sleep: Sleep = asyncio.sleep,
    random: Callable[[], float] = _random.random,
) -> TokenSet:
    """Link this device with code-based linking (avs-protocol.md section 6.3).

    Args:
        http: the LWA client.
        client_id: the LWA client id.
        product_id: the AVS product id.
        serial: the device serial number.
        on_code: called with each code pair; show its `user_code` and `verification_uri`.
        restart: when the pair expires (or the user refuses), request a new pair and call
            `on_code` again instead of raising `LinkingExpired`.
        max_pairs: with `restart`, the most code pairs to request (None: no limit).
        retry: the retry policy for transport errors, 5xx and 429 replies.
        clock: the time source (a wall clock: the tokens' `expires_at` uses it).
        sleep: the coroutine that waits (tests pass a fake).
        random: returns a float in [0, 1) for jitter.

    Returns:
        The tokens (access and refresh). Store them; this function does not.

    Raises:
        LinkingExpired: the pair expired or was refused, and `restart` is off (or
            `max_pairs` pairs were used).
        ClientConfigError: LWA rejected the client id, product id or request.
        AuthError: a malformed reply, or LWA kept failing.
        TransportError: the network kept failing until the retry policy ran out.
    """
    pairs = 0
    while True:
        pairs += 1
        machine = CodePairLinking(client_id, product_id, serial, retry=retry, random=random)
        try:
            return await _link_once(http, machine, on_code, clock, sleep)
        except LinkingExpired as exc:
            if not restart or (max_pairs is not None and pairs >= max_pairs):
                raise
            logger.info("code pair ended (%s); requesting a new one", exc.error or "expired")
