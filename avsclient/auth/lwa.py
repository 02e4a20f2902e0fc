"""Login with Amazon token logic without I/O: requests, replies, tokens and retries.

Nothing here touches the network or reads the clock: callers pass `now` (seconds on one clock
of their choice; a wall clock when tokens are stored) and a `random` callable for jitter, send
the `LWARequest`s these objects build, and feed back the status and body they got. Protocol:
avs-protocol.md section 6 (LWA endpoints, grants, refresh). The code-pair state machine that
builds on these lives in `avsclient.auth.codepair`.
"""

from __future__ import annotations

import enum
import json
import logging
import math
import random as _random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from avsclient._fsm import StateMachine, Table
from avsclient._retry import RetryPolicy
from avsclient.exceptions import (
    AuthError,
    ClientConfigError,
    ReauthorizationRequired,
    TransportError,
)

__all__ = [
    "CODEPAIR_PATH",
    "DEFAULT_LWA_URL",
    "DEFAULT_POLL_INTERVAL",
    "DEFAULT_REFRESH_MARGIN",
    "LWA_RETRY",
    "MAX_POLL_INTERVAL",
    "TOKEN_PATH",
    "CodePair",
    "CodePairReceived",
    "LWAConfig",
    "LWAEvent",
    "LWARequest",
    "LWARetryScheduled",
    "PollScheduled",
    "RetryPolicy",
    "TokenExchange",
    "TokenSet",
    "TokensReceived",
    "client_credentials_request",
    "codepair_request",
    "device_token_request",
    "parse_token_reply",
    "refresh_request",
]

logger = logging.getLogger("avsclient.auth")

DEFAULT_LWA_URL = "https://api.amazon.com"
TOKEN_PATH = "/auth/o2/token"
CODEPAIR_PATH = "/auth/O2/create/codepair"

# The AVS Device SDK refreshes 10 minutes before expiry (CBLAuthDelegate, section 6.2).
DEFAULT_REFRESH_MARGIN = 600.0
# The SDK's LWA retry table, each entry +/-50 % (section 6.3, last paragraph). One pass
# through the table (about 107 s nominal), then give up and let the caller (the connection
# manager) apply its own reconnect back-off.
LWA_RETRY = RetryPolicy(
    delays=(0.0, 1.0, 2.0, 4.0, 10.0, 30.0, 60.0), jitter=(0.5, 1.5), max_retries=7
)
# Code-pair polling: the SDK starts at 5 s and doubles on slow_down up to 60 s (section 6.3).
DEFAULT_POLL_INTERVAL = 5.0
MAX_POLL_INTERVAL = 60.0
# LWA tokens are at most 2048 bytes (section 6.2); allow twice that before calling a reply
# hostile, so a modest format change upstream does not lock devices out.
MAX_TOKEN_BYTES = 4096
# A client id is at most 100 bytes (section 6.2).
MAX_CLIENT_ID_BYTES = 100

_FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
# Form fields whose values are secrets; LWARequest's repr never shows them.
_SECRET_FIELDS = frozenset({"refresh_token", "client_secret", "device_code", "code"})
# Error codes that mean "fix the configuration", never retried (section 6.3 table).
_CONFIG_ERRORS = frozenset(
    {
        "invalid_client",
        "unauthorized_client",
        "invalid_request",
        "unsupported_grant_type",
        "invalid_scope",
        "InvalidValue",
    }
)
# Error codes that mean "LWA had a problem": retried with back-off whatever the status.
_SERVER_ERRORS = frozenset({"servererror", "server_error", "temporarily_unavailable"})


def _is_retryable_status(status: int) -> bool:
    return status == 429 or 500 <= status <= 599


def _redact(value: str | None) -> str:
    return "None" if value is None else f"<{len(value)} chars hidden>"


# -- configuration -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class LWAConfig:
    """The Login with Amazon client: who we are, where LWA is, and how patient to be.

    Attributes:
        client_id: the LWA client (security profile) id, at most 100 bytes.
        client_secret: the client secret, if the client has one (never shown in reprs).
        url: the LWA base URL; the simulator's `sim.url` in tests.
        refresh_margin: refresh this many seconds before the access token expires.
        retry: the retry policy for transport errors, 5xx and 429 replies (`LWA_RETRY`).
        timeout: seconds allowed for one HTTP request (connect, send and reply).
    """

    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    url: str = DEFAULT_LWA_URL
    refresh_margin: float = DEFAULT_REFRESH_MARGIN
    retry: RetryPolicy = LWA_RETRY
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if not self.client_id or len(self.client_id.encode()) > MAX_CLIENT_ID_BYTES:
            raise ValueError("client_id must be 1 to 100 bytes")
        if self.client_secret is not None and not self.client_secret:
            raise ValueError("client_secret must be None or non-empty")
        parts = urlsplit(self.url)
        if parts.scheme not in ("https", "http") or not parts.netloc:
            raise ValueError(f"url must be an http(s) URL, got {self.url!r}")
        if not math.isfinite(self.refresh_margin) or self.refresh_margin < 0:
            raise ValueError("refresh_margin must be >= 0")
        if not math.isfinite(self.timeout) or self.timeout <= 0:
            raise ValueError("timeout must be > 0")


# -- values --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenSet:
    """Tokens from one successful grant. The repr shows lengths, never the tokens.

    Attributes:
        access_token: the bearer token (`Atza|...`).
        refresh_token: the refresh token (`Atzr|...`), None for client_credentials.
        expires_at: when the access token expires, on the clock that supplied `now`.
        token_type: always "bearer".
        scope: the granted scope when LWA names it (client_credentials), else None.
    """

    access_token: str
    refresh_token: str | None
    expires_at: float
    token_type: str = "bearer"
    scope: str | None = None

    def __repr__(self) -> str:
        return (
            f"TokenSet(access_token={_redact(self.access_token)}, "
            f"refresh_token={_redact(self.refresh_token)}, expires_at={self.expires_at!r}, "
            f"token_type={self.token_type!r}, scope={self.scope!r})"
        )

    def refresh_due(self, now: float, margin: float = DEFAULT_REFRESH_MARGIN) -> bool:
        """True when the access token expires within `margin` seconds of `now`."""
        return now >= self.expires_at - margin

    def expired(self, now: float) -> bool:
        """True when the access token can no longer be used at `now`."""
        return now >= self.expires_at


@dataclass(frozen=True, slots=True, kw_only=True)
class CodePair:
    """A code pair for code-based linking. The device code is secret and never shown.

    Attributes:
        user_code: the code the user types at `verification_uri`.
        verification_uri: where the user goes (as returned; never hard-coded).
        device_code: the secret half, sent only in polls.
        expires_at: when the pair stops working, on the caller's clock.
        interval: the poll period LWA asked for, in seconds.
    """

    user_code: str
    verification_uri: str
    device_code: str = field(repr=False)
    expires_at: float
    interval: float


@dataclass(frozen=True, slots=True, kw_only=True)
class LWARequest:
    """One form POST to LWA. The repr shows field names, never secret values.

    Attributes:
        path: the URL path (`TOKEN_PATH` or `CODEPAIR_PATH`).
        form: the form fields in order.
    """

    path: str
    form: tuple[tuple[str, str], ...] = field(repr=False)

    content_type = _FORM_CONTENT_TYPE

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{k}=<hidden>" if k in _SECRET_FIELDS else f"{k}={v!r}" for k, v in self.form
        )
        return f"LWARequest(path={self.path!r}, form=[{shown}])"

    @property
    def grant_type(self) -> str | None:
        """The `grant_type` field, or None for the code-pair request."""
        return dict(self.form).get("grant_type")

    def body(self) -> bytes:
        """The URL-encoded form body."""
        return urlencode(self.form).encode("ascii")


def refresh_request(
    refresh_token: str, client_id: str, client_secret: str | None = None
) -> LWARequest:
    """Build the refresh grant (section 6.4)."""
    form = [("grant_type", "refresh_token"), ("refresh_token", refresh_token)]
    form.append(("client_id", client_id))
    if client_secret is not None:
        form.append(("client_secret", client_secret))
    return LWARequest(path=TOKEN_PATH, form=tuple(form))


def client_credentials_request(
    client_id: str, client_secret: str, scope: str = "alexa:skill_messaging"
) -> LWARequest:
    """Build the client_credentials grant (Skill Messaging API token, section 8)."""
    return LWARequest(
        path=TOKEN_PATH,
        form=(
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", client_secret),
            ("scope", scope),
        ),
    )


def codepair_request(client_id: str, product_id: str, serial: str) -> LWARequest:
    """Build the code-pair request, with scope_data exactly as the SDK builds it (section 6.3)."""
    if not product_id or not serial:
        raise ValueError("product_id and serial must be non-empty")
    scope_data = {
        "alexa:all": {
            "productID": product_id,
            "productInstanceAttributes": {"deviceSerialNumber": serial},
        }
    }
    return LWARequest(
        path=CODEPAIR_PATH,
        form=(
            ("response_type", "device_code"),
            ("client_id", client_id),
            ("scope", "alexa:all"),
            ("scope_data", json.dumps(scope_data, separators=(",", ":"))),
        ),
    )


def device_token_request(pair: CodePair) -> LWARequest:
    """Build one code-pair poll of the token endpoint (section 6.3, step 2)."""
    return LWARequest(
        path=TOKEN_PATH,
        form=(
            ("grant_type", "device_code"),
            ("device_code", pair.device_code),
            ("user_code", pair.user_code),
        ),
    )


# -- replies -------------------------------------------------------------------------------


class _Kind(enum.Enum):
    OK = "ok"
    RETRY = "retry"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class _Reply:
    kind: _Kind
    status: int
    data: Mapping[str, Any]
    error: str | None
    description: str | None


def _load_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def _classify(status: int, body: bytes) -> _Reply:
    """Sort a reply into success, retryable failure or final failure."""
    data = _load_json(body)
    obj: Mapping[str, Any] = data if isinstance(data, dict) else {}
    raw_error = obj.get("error")
    error = raw_error if isinstance(raw_error, str) and raw_error else None
    raw_desc = obj.get("error_description")
    description = raw_desc[:200] if isinstance(raw_desc, str) else None
    if status == 200:
        if not isinstance(data, dict):
            raise AuthError("LWA sent a 200 reply that is not a JSON object", status=status)
        return _Reply(_Kind.OK, status, obj, None, None)
    if _is_retryable_status(status) or error in _SERVER_ERRORS:
        return _Reply(_Kind.RETRY, status, obj, error, description)
    return _Reply(_Kind.ERROR, status, obj, error, description)


def _failure(reply: _Reply, what: str) -> AuthError:
    """The exception for a final (non-retryable) error reply."""
    detail = f"HTTP {reply.status}" + (f", {reply.error}" if reply.error else "")
    if reply.description:
        detail += f": {reply.description}"
    if reply.error == "invalid_grant":
        return ReauthorizationRequired(
            f"{what} was rejected ({detail}); re-authorize this device",
            error=reply.error,
            status=reply.status,
        )
    if reply.status == 401 or reply.error in _CONFIG_ERRORS:
        return ClientConfigError(
            f"{what} failed, check the client configuration ({detail})",
            error=reply.error,
            status=reply.status,
        )
    if reply.error is None and not reply.data:
        return AuthError(
            f"{what} failed with HTTP {reply.status} and no JSON error body", status=reply.status
        )
    return AuthError(f"{what} failed ({detail})", error=reply.error, status=reply.status)


def _token_str(data: Mapping[str, Any], name: str, status: int) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise AuthError(f"LWA token reply has no {name}", status=status)
    # Tokens go into an Authorization header and a file: printable ASCII, bounded.
    if not (value.isascii() and value.isprintable()) or " " in value:
        raise AuthError(f"LWA token reply has a malformed {name}", status=status)
    if len(value) > MAX_TOKEN_BYTES:
        raise AuthError(f"LWA token reply has a {name} over {MAX_TOKEN_BYTES} bytes", status=status)
    return value


def _positive_number(data: Mapping[str, Any], name: str) -> float | None:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value <= 0:
        return None
    return float(value)


def parse_token_reply(
    status: int, body: bytes, *, now: float, require_refresh_token: bool
) -> TokenSet:
    """Validate a 200 token reply the way the SDK does (section 6.2).

    Args:
        status: the HTTP status (must be 200).
        body: the reply body.
        now: the current time, to turn `expires_in` into `expires_at`.
        require_refresh_token: True for the refresh and device_code grants.

    Returns:
        The tokens.

    Raises:
        AuthError: the reply is not a JSON object, or a field is missing or malformed.
    """
    reply = _classify(status, body)
    if reply.kind is not _Kind.OK:
        raise _failure(reply, "LWA token request")
    return _tokens_from(reply, now=now, require_refresh_token=require_refresh_token)


def _tokens_from(reply: _Reply, *, now: float, require_refresh_token: bool) -> TokenSet:
    data, status = reply.data, reply.status
    access = _token_str(data, "access_token", status)
    token_type = data.get("token_type")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise AuthError("LWA token reply has no token_type 'bearer'", status=status)
    expires_in = _positive_number(data, "expires_in")
    if expires_in is None:
        raise AuthError("LWA token reply has no positive expires_in", status=status)
    refresh: str | None = None
    if require_refresh_token or data.get("refresh_token") is not None:
        refresh = _token_str(data, "refresh_token", status)
    scope = data.get("scope")
    return TokenSet(
        access_token=access,
        refresh_token=refresh,
        expires_at=now + expires_in,
        scope=scope if isinstance(scope, str) else None,
    )


def _codepair_from(reply: _Reply, now: float) -> CodePair:
    data, status = reply.data, reply.status
    texts: dict[str, str] = {}
    for name in ("user_code", "device_code", "verification_uri"):
        value = data.get(name)
        # user_code and verification_uri are shown on a terminal: no control characters.
        if not isinstance(value, str) or not value or not value.isprintable() or len(value) > 2048:
            raise AuthError(f"LWA code-pair reply has no valid {name}", status=status)
        texts[name] = value
    if urlsplit(texts["verification_uri"]).scheme not in ("https", "http"):
        raise AuthError("LWA code-pair reply has a verification_uri that is not a URL")
    expires_in = _positive_number(data, "expires_in")
    if expires_in is None:
        raise AuthError("LWA code-pair reply has no positive expires_in", status=status)
    interval = _positive_number(data, "interval") or DEFAULT_POLL_INTERVAL
    return CodePair(
        user_code=texts["user_code"],
        verification_uri=texts["verification_uri"],
        device_code=texts["device_code"],
        expires_at=now + expires_in,
        interval=interval,
    )


# -- events --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class LWAEvent:
    """Base class of what the LWA state machines tell their driver to do next."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TokensReceived(LWAEvent):
    """The grant succeeded."""

    tokens: TokenSet


@dataclass(frozen=True, slots=True, kw_only=True)
class CodePairReceived(LWAEvent):
    """A code pair arrived: show `user_code` and `verification_uri`, then poll."""

    code_pair: CodePair


@dataclass(frozen=True, slots=True, kw_only=True)
class LWARetryScheduled(LWAEvent):
    """The request failed transiently: wait `delay` seconds, then send it again.

    Attributes:
        delay: seconds to wait.
        attempt: the number of attempts made so far.
        reason: a short, secret-free description of the failure.
    """

    delay: float
    attempt: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PollScheduled(LWAEvent):
    """The user has not finished linking: poll again after `delay` seconds.

    Attributes:
        delay: seconds to wait before the next poll.
        interval: the poll interval now in force (doubled after `slow_down`).
        slowed_down: True when LWA asked us to poll more slowly.
    """

    delay: float
    interval: float
    slowed_down: bool


# -- token exchange (refresh and client_credentials grants) ---------------------------------


class _ExchangeState(enum.Enum):
    IDLE = "idle"
    AWAITING_REPLY = "awaiting reply"
    BACKING_OFF = "backing off"
    DONE = "done"
    ERROR = "error"


class _ExchangeInput(enum.Enum):
    SEND = "send"
    TOKENS = "tokens"
    RETRY = "retry"
    FAIL = "fail"


# Theory of operation: one grant, possibly retried. `next_request` moves IDLE or BACKING_OFF
# to AWAITING_REPLY; the reply (or a transport error) then ends in DONE (tokens), ERROR (a
# final failure, sticky) or BACKING_OFF (retry after the delay the driver is told to wait).
# No transition has a side effect of its own (the methods do the work), so every action is
# None. Any other (state, input) pair is misuse by the driver and moves to ERROR.
_XS, _XI = _ExchangeState, _ExchangeInput
_EXCHANGE_TRANSITIONS: Table[_ExchangeState, _ExchangeInput, None] = {
    (_XS.IDLE, _XI.SEND): (None, _XS.AWAITING_REPLY),
    (_XS.BACKING_OFF, _XI.SEND): (None, _XS.AWAITING_REPLY),
    (_XS.AWAITING_REPLY, _XI.TOKENS): (None, _XS.DONE),
    (_XS.AWAITING_REPLY, _XI.RETRY): (None, _XS.BACKING_OFF),
    (_XS.AWAITING_REPLY, _XI.FAIL): (None, _XS.ERROR),
}
del _XS, _XI


class TokenExchange:
    """One token grant (refresh or client_credentials) with the retry rules of section 6.

    Drive it like this: send `next_request()`, then feed the reply to `receive_reply` (or
    report a transport failure with `transport_failed`); on `LWARetryScheduled` wait and repeat,
    on `TokensReceived` stop. Final failures raise and stay raised (sticky).

    Args:
        request: the grant request to send (from `refresh_request` or
            `client_credentials_request`).
        retry: the retry policy (`LWA_RETRY` when None).
        random: returns a float in [0, 1) for jitter.
    """

    def __init__(
        self,
        request: LWARequest,
        *,
        retry: RetryPolicy | None = None,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self._request = request
        self._retry = retry or LWA_RETRY
        self._random = random
        self._machine = StateMachine(
            _EXCHANGE_TRANSITIONS,
            _ExchangeState.IDLE,
            name="TokenExchange",
            error_state=_ExchangeState.ERROR,
        )
        self._attempts = 0
        self._require_refresh = request.grant_type in ("refresh_token", "device_code")

    @property
    def attempts(self) -> int:
        """How many times the request was sent."""
        return self._attempts

    @property
    def done(self) -> bool:
        """True once tokens were received."""
        return self._machine.state is _ExchangeState.DONE

    def next_request(self) -> LWARequest:
        """Return the request to send now.

        Raises:
            LocalProtocolError: a reply is still awaited, or the exchange is over.
        """
        self._machine.feed(_ExchangeInput.SEND)
        self._attempts += 1
        return self._request

    def receive_reply(self, status: int, body: bytes, *, now: float) -> LWAEvent:
        """Feed the reply to the request last returned by `next_request`.

        Args:
            status: the HTTP status.
            body: the complete reply body.
            now: the current time (for `expires_at`).

        Returns:
            `TokensReceived`, or `LWARetryScheduled` after a 5xx or 429 reply.

        Raises:
            ReauthorizationRequired: `invalid_grant` (the refresh token is no good).
            ClientConfigError: 401, `invalid_client`, `unauthorized_client`, ...
            AuthError: a malformed reply, another final error, or retries exhausted.
            LocalProtocolError: no request is outstanding.
        """
        if self._machine.state is not _ExchangeState.AWAITING_REPLY:
            self._machine.feed(_ExchangeInput.TOKENS)  # raises: misuse
        try:
            reply = _classify(status, body)
            if reply.kind is _Kind.OK:
                tokens = _tokens_from(reply, now=now, require_refresh_token=self._require_refresh)
            elif reply.kind is _Kind.ERROR:
                raise _failure(reply, f"LWA {self._request.grant_type} grant")
        except AuthError as exc:
            raise self._machine.fail(_ExchangeInput.FAIL, exc) from None
        if reply.kind is _Kind.OK:
            self._machine.feed(_ExchangeInput.TOKENS)
            return TokensReceived(tokens=tokens)
        reason = f"HTTP {status}" + (f" {reply.error}" if reply.error else "")
        return self._schedule_retry(
            reason,
            AuthError(
                f"LWA {self._request.grant_type} grant kept failing ({reason})",
                error=reply.error,
                status=status,
            ),
        )

    def transport_failed(self, error: TransportError) -> LWARetryScheduled:
        """Report that the request never got a reply (connect error, timeout, drop).

        Returns:
            When to try again.

        Raises:
            TransportError: `error` itself, once the retry policy is exhausted.
            LocalProtocolError: no request is outstanding.
        """
        if self._machine.state is not _ExchangeState.AWAITING_REPLY:
            self._machine.feed(_ExchangeInput.RETRY)  # raises: misuse
        return self._schedule_retry(type(error).__name__, error)

    def _schedule_retry(self, reason: str, final: BaseException) -> LWARetryScheduled:
        delay = self._retry.next_delay(self._attempts, self._random)
        if delay is None:
            raise self._machine.fail(_ExchangeInput.FAIL, final)
        self._machine.feed(_ExchangeInput.RETRY)
        logger.debug(
            "LWA %s attempt %d failed (%s); retrying in %.2f s",
            self._request.grant_type,
            self._attempts,
            reason,
            delay,
        )
        return LWARetryScheduled(delay=delay, attempt=self._attempts, reason=reason)
