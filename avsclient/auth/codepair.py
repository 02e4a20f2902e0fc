"""The code-based linking state machine (avs-protocol.md section 6.3), without I/O.

Request a code pair, show it, poll the token endpoint at the interval LWA asks for (doubling
on `slow_down`, up to 60 s), until tokens arrive or the pair ends. Time comes in as `now`.
"""

from __future__ import annotations

import enum
import logging
import random as _random
from collections.abc import Callable

from avsclient._fsm import StateMachine, Table
from avsclient._retry import RetryPolicy
from avsclient.auth.lwa import (
    DEFAULT_POLL_INTERVAL,
    LWA_RETRY,
    MAX_POLL_INTERVAL,
    CodePair,
    CodePairReceived,
    LWAEvent,
    LWARequest,
    LWARetryScheduled,
    PollScheduled,
    TokensReceived,
    _classify,
    _codepair_from,
    _failure,
    _Kind,
    _tokens_from,
    codepair_request,
    device_token_request,
)
from avsclient.exceptions import AuthError, LinkingExpired, TransportError

__all__ = ["CodePairLinking", "LinkingState"]

logger = logging.getLogger("avsclient.auth")

# Replies that mean "the user is not done yet": keep polling (section 6.3).
_KEEP_POLLING_ERRORS = frozenset({"authorization_pending", "slow_down"})
# Errors that end a code pair: request a new one (section 6.3; expired_token and
# access_denied are RFC 8628 names, treated as "restart linking").
_PAIR_ENDED_ERRORS = frozenset(
    {"invalid_code_pair", "expired_token", "invalid_grant", "access_denied"}
)


# -- code-based linking --------------------------------------------------------------------


class LinkingState(enum.Enum):
    """States of `CodePairLinking`."""

    IDLE = "idle"
    REQUESTING_PAIR = "requesting pair"
    PAIR_BACKOFF = "pair backoff"
    WAITING = "waiting"
    POLLING = "polling"
    LINKED = "linked"
    EXPIRED = "expired"
    ERROR = "error"


class _LinkInput(enum.Enum):
    SEND_CODEPAIR = "send codepair request"
    PAIR_RECEIVED = "code pair received"
    RETRY = "transient failure"
    SEND_POLL = "send poll"
    PENDING = "authorization pending"
    TOKENS = "tokens received"
    PAIR_ENDED = "code pair ended"
    FAIL = "final failure"


_S, _I = LinkingState, _LinkInput

# Theory of operation (section 6.3): request a code pair (REQUESTING_PAIR; transient
# failures go through PAIR_BACKOFF and ask again), then alternate WAITING (the user is at
# the verification page; the driver sleeps) and POLLING (one device_code grant in flight).
# authorization_pending and slow_down return to WAITING, slow_down with a doubled interval;
# transient failures also return to WAITING with a back-off delay. Tokens end in LINKED; the
# pair running out (expires_in elapsed, invalid_code_pair, expired_token, invalid_grant,
# access_denied) ends in EXPIRED, after which the driver may start over with a new machine.
# Final failures end in ERROR. LINKED, EXPIRED and ERROR are terminal; any pair missing from
# the table is driver misuse and moves to ERROR. No transition has a side effect of its own
# (the methods do the work), so every action is None.
_LINK_TRANSITIONS: Table[LinkingState, _LinkInput, None] = {
    (_S.IDLE, _I.SEND_CODEPAIR): (None, _S.REQUESTING_PAIR),
    (_S.PAIR_BACKOFF, _I.SEND_CODEPAIR): (None, _S.REQUESTING_PAIR),
    (_S.REQUESTING_PAIR, _I.PAIR_RECEIVED): (None, _S.WAITING),
    (_S.REQUESTING_PAIR, _I.RETRY): (None, _S.PAIR_BACKOFF),
    (_S.REQUESTING_PAIR, _I.FAIL): (None, _S.ERROR),
    (_S.WAITING, _I.SEND_POLL): (None, _S.POLLING),
    (_S.WAITING, _I.PAIR_ENDED): (None, _S.EXPIRED),
    (_S.POLLING, _I.PENDING): (None, _S.WAITING),
    (_S.POLLING, _I.RETRY): (None, _S.WAITING),
    (_S.POLLING, _I.TOKENS): (None, _S.LINKED),
    (_S.POLLING, _I.PAIR_ENDED): (None, _S.EXPIRED),
    (_S.POLLING, _I.FAIL): (None, _S.ERROR),
}


class CodePairLinking:
    """Code-based linking for a headless device (section 6.3), without I/O.

    Drive it like this: send `codepair_request()`, feed the reply to `receive_codepair_reply`
    (on `LWARetryScheduled` wait and ask again; on `CodePairReceived` show the code), then loop:
    wait the event's delay, send `poll_request(now)`, feed the reply to `receive_poll_reply`,
    until `TokensReceived`. `LinkingExpired` means the pair ran out: start a new machine to
    restart. Errors are sticky.

    Args:
        client_id: the LWA client id.
        product_id: the AVS product id.
        serial: the device serial number (deviceSerialNumber).
        retry: the retry policy for transport errors, 5xx and 429 replies (`LWA_RETRY`
            when None).
        random: returns a float in [0, 1) for jitter.
    """

    def __init__(
        self,
        client_id: str,
        product_id: str,
        serial: str,
        *,
        retry: RetryPolicy | None = None,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self._request = codepair_request(client_id, product_id, serial)
        self._retry = retry or LWA_RETRY
        self._random = random
        self._machine = StateMachine(
            _LINK_TRANSITIONS, LinkingState.IDLE, name="CodePairLinking", error_state=_S.ERROR
        )
        self._pair: CodePair | None = None
        self._interval = DEFAULT_POLL_INTERVAL
        self._failures = 0  # consecutive transient failures

    @property
    def state(self) -> LinkingState:
        """The current state."""
        return self._machine.state

    @property
    def code_pair(self) -> CodePair | None:
        """The code pair, once received."""
        return self._pair

    @property
    def interval(self) -> float:
        """The poll interval in force."""
        return self._interval

    def _transient(self, reason: str, final: BaseException) -> LWARetryScheduled:
        self._failures += 1
        delay = self._retry.next_delay(self._failures, self._random)
        if delay is None:
            raise self._machine.fail(_I.FAIL, final)
        self._machine.feed(_I.RETRY)
        logger.debug("LWA code-pair linking: %s; retrying in %.2f s", reason, delay)
        return LWARetryScheduled(delay=delay, attempt=self._failures, reason=reason)

    def codepair_request(self) -> LWARequest:
        """Return the code-pair request to send.

        Raises:
            LocalProtocolError: not in IDLE or PAIR_BACKOFF.
        """
        self._machine.feed(_I.SEND_CODEPAIR)
        return self._request

    def receive_codepair_reply(self, status: int, body: bytes, *, now: float) -> LWAEvent:
        """Feed the reply to the code-pair request.

        Returns:
            `CodePairReceived`, or `LWARetryScheduled` after a 5xx or 429 reply.

        Raises:
            ClientConfigError: the client, product or request was rejected.
            AuthError: a malformed reply, another final error, or retries exhausted.
            LocalProtocolError: no code-pair request is outstanding.
        """
        if self._machine.state is not LinkingState.REQUESTING_PAIR:
            self._machine.feed(_I.PAIR_RECEIVED)  # raises: misuse
        try:
            reply = _classify(status, body)
            if reply.kind is _Kind.OK:
                pair = _codepair_from(reply, now)
            elif reply.kind is _Kind.ERROR:
                raise _failure(reply, "LWA code-pair request")
        except AuthError as exc:
            raise self._machine.fail(_I.FAIL, exc) from None
        if reply.kind is _Kind.RETRY:
            reason = f"HTTP {status}" + (f" {reply.error}" if reply.error else "")
            return self._transient(
                reason,
                AuthError(f"LWA code-pair request kept failing ({reason})", status=status),
            )
        self._machine.feed(_I.PAIR_RECEIVED)
        self._pair = pair
        self._interval = pair.interval
        self._failures = 0
        logger.debug("LWA code pair received; polling every %.1f s", pair.interval)
        return CodePairReceived(code_pair=pair)

    def poll_request(self, now: float) -> LWARequest:
        """Return the next poll of the token endpoint.

        Raises:
            LinkingExpired: the pair's `expires_in` has elapsed.
            LocalProtocolError: not WAITING.
        """
        waiting = self._machine.state is LinkingState.WAITING
        if waiting and self._pair and now >= self._pair.expires_at:
            raise self._machine.fail(
                _I.PAIR_ENDED,
                LinkingExpired("the code pair expired before the user finished linking"),
            )
        self._machine.feed(_I.SEND_POLL)
        assert self._pair is not None  # WAITING is reached only with a pair
        return device_token_request(self._pair)

    def _next_poll(self, now: float, delay: float) -> float:
        assert self._pair is not None
        # Never sleep past the pair's end: the next poll_request then reports expiry.
        return max(0.0, min(delay, self._pair.expires_at - now))

    def receive_poll_reply(self, status: int, body: bytes, *, now: float) -> LWAEvent:
        """Feed the reply to the poll last returned by `poll_request`.

        Returns:
            `TokensReceived`; `PollScheduled` for authorization_pending and slow_down;
            `LWARetryScheduled` after a 5xx or 429 reply.

        Raises:
            LinkingExpired: the pair expired, was refused or is unknown.
            ClientConfigError: the client or request was rejected.
            AuthError: a malformed reply, another final error, or retries exhausted.
            LocalProtocolError: no poll is outstanding.
        """
        if self._machine.state is not LinkingState.POLLING:
            self._machine.feed(_I.TOKENS)  # raises: misuse
        try:
            reply = _classify(status, body)
            if reply.kind is _Kind.OK:
                tokens = _tokens_from(reply, now=now, require_refresh_token=True)
            elif reply.kind is _Kind.ERROR and reply.error in _PAIR_ENDED_ERRORS:
                raise self._machine.fail(
                    _I.PAIR_ENDED,
                    LinkingExpired(
                        f"the code pair ended before linking finished ({reply.error})",
                        error=reply.error,
                        status=status,
                    ),
                )
            elif reply.kind is _Kind.ERROR and reply.error not in _KEEP_POLLING_ERRORS:
                raise _failure(reply, "LWA code-pair poll")
        except LinkingExpired:
            raise
        except AuthError as exc:
            raise self._machine.fail(_I.FAIL, exc) from None
        if reply.kind is _Kind.OK:
            self._machine.feed(_I.TOKENS)
            logger.debug("LWA code pair linked")
            return TokensReceived(tokens=tokens)
        if reply.kind is _Kind.RETRY:
            reason = f"HTTP {status}" + (f" {reply.error}" if reply.error else "")
            event = self._transient(
                reason, AuthError(f"LWA code-pair poll kept failing ({reason})", status=status)
            )
            delay = self._next_poll(now, max(event.delay, self._interval))
            return LWARetryScheduled(delay=delay, attempt=event.attempt, reason=reason)
        self._machine.feed(_I.PENDING)
        self._failures = 0
        slowed = reply.error == "slow_down"
        if slowed:
            self._interval = max(self._interval, min(self._interval * 2, MAX_POLL_INTERVAL))
            logger.debug("LWA asked to slow down; polling every %.1f s", self._interval)
        return PollScheduled(
            delay=self._next_poll(now, self._interval),
            interval=self._interval,
            slowed_down=slowed,
        )

    def transport_failed(self, error: TransportError, *, now: float) -> LWARetryScheduled:
        """Report that the last request got no reply (connect error, timeout, drop).

        Returns:
            When to send it again (`codepair_request` or `poll_request`).

        Raises:
            TransportError: `error` itself, once the retry policy is exhausted.
            LocalProtocolError: no request is outstanding.
        """
        if self._machine.state is LinkingState.REQUESTING_PAIR:
            return self._transient(type(error).__name__, error)
        if self._machine.state is not LinkingState.POLLING:
            self._machine.feed(_I.RETRY)  # raises: misuse
        event = self._transient(type(error).__name__, error)
        return LWARetryScheduled(
            delay=self._next_poll(now, max(event.delay, self._interval)),
            attempt=event.attempt,
            reason=event.reason,
        )
