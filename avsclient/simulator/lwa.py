"""The simulator's Login with Amazon service: token grants and code pairs; sans-IO, no clock.

`LWAService.handle(path, form, now)` turns one form-encoded request into an `LWAResponse`; the
server only routes `POST /auth/o2/token` and `POST /auth/O2/create/codepair` to it and writes
the reply. Replies follow avs-protocol.md section 6: tokens as JSON, errors as
`{"error": ..., "error_description": ...}` with HTTP 400 (401 for `invalid_client`).
"""

from __future__ import annotations

import json
import secrets
import string
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "CodePairState",
    "IssuedCode",
    "LWAResponse",
    "LWAService",
]

DEFAULT_CLIENT_ID = "sim-client-id"
DEFAULT_CLIENT_SECRET = "sim-client-secret"

TOKEN_PATH = "/auth/o2/token"
CODEPAIR_PATH = "/auth/o2/create/codepair"  # compared case-insensitively: docs spell it "O2"

# LWA access tokens are at least 350 characters (avs-protocol.md 6.2): 5 + 400 is well above.
_ACCESS_TOKEN_RANDOM_CHARS = 400
_MAX_LIVE_ACCESS_TOKENS = 10_000
_USER_CODE_ALPHABET = string.ascii_uppercase + string.digits
_ERROR_STATUS = {"invalid_client": 401}


class CodePairState(Enum):
    """Where a code pair stands in the linking flow."""

    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    USED = "used"


@dataclass(slots=True)
class IssuedCode:
    """One issued code pair (avs-protocol.md 6.3) and what the simulated user did with it."""

    user_code: str
    device_code: str
    client_id: str
    product_id: str
    serial: str
    expires_at: float
    interval: int
    state: CodePairState = CodePairState.PENDING
    deny_error: str = "access_denied"
    last_poll: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LWAResponse:
    """What the server sends back for one LWA request.

    Attributes:
        status: the HTTP status.
        body: the response body (JSON unless a fault supplied raw bytes).
        delay: seconds to wait before replying.
        drop: close the connection instead of replying.
    """

    status: int
    body: bytes
    delay: float = 0.0
    drop: bool = False


@dataclass(slots=True)
class _Client:
    secret: str | None
    product_id: str | None


@dataclass(slots=True)
class _AccessToken:
    client_id: str
    expires_at: float
    scope: str | None


@dataclass(slots=True)
class _Fault:
    remaining: int
    status: int = 0
    error: str | None = None
    body: bytes | None = None
    delay: float = 0.0


@dataclass(slots=True)
class _Faults:
    fail: deque[_Fault] = field(default_factory=deque)
    delay: deque[_Fault] = field(default_factory=deque)
    drop: int = 0


def _error(error: str, description: str) -> tuple[int, dict[str, Any]]:
    return _ERROR_STATUS.get(error, 400), {"error": error, "error_description": description}


class LWAService:
    """A Login with Amazon authorization server kept in memory.

    A default client is registered: id `sim-client-id`, secret `sim-client-secret`. Time is
    passed in as `now`; `clock` is only where the server shell reads it (tests replace it).

    Attributes:
        access_token_lifetime: seconds an access token stays valid (`expires_in`).
        codepair_lifetime: seconds a code pair stays valid.
        codepair_interval: the poll interval a code pair asks for; faster polls get `slow_down`.
        rotate_refresh_tokens: when True, a refresh returns a new refresh token and the old one
            stops working.
        verification_uri: the URL shown to the user with the code.
        auto_approve: when True, every new code pair is approved at once, as if the user
            had entered its code (`avsclient simulate` turns this on); else a pair waits for
            `approve()` or `deny()`.
        clock: the time source the server passes in as `now` (default `time.monotonic`).
        codepairs: every code pair issued, oldest first.
        requests: every request received as `(path, form)`, secrets included (test use only).
    """

    def __init__(self) -> None:
        self.access_token_lifetime = 3600
        self.codepair_lifetime = 600
        self.codepair_interval = 5
        self.rotate_refresh_tokens = False
        self.verification_uri = "https://amazon.com/us/code"
        self.auto_approve = False
        self.clock: Callable[[], float] = time.monotonic
        self.codepairs: list[IssuedCode] = []
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._clients: dict[str, _Client] = {}
        self._refresh_tokens: dict[str, str] = {}  # token -> client_id (live tokens only)
        self._access_tokens: dict[str, _AccessToken] = {}
        self._faults = _Faults()
        self.register_client(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)

    # -- configuration -------------------------------------------------------------------

    def register_client(
        self, client_id: str, client_secret: str | None = None, *, product_id: str | None = None
    ) -> None:
        """Register (or replace) a client.

        Args:
            client_id: the LWA client id.
            client_secret: its secret; None for a client that authenticates without one.
            product_id: when given, code pairs for this client must name this AVS product id.
        """
        if not client_id:
            raise ValueError("client_id must not be empty")
        self._clients[client_id] = _Client(client_secret, product_id)

    def issue_refresh_token(self, client_id: str = DEFAULT_CLIENT_ID) -> str:
        """Issue a valid `Atzr|` refresh token for a registered client, as if linking succeeded.

        Raises:
            KeyError: the client is not registered.
        """
        if client_id not in self._clients:
            raise KeyError(f"unknown client {client_id!r}")
        return self._new_refresh_token(client_id)

    def issue_access_token(self, client_id: str = DEFAULT_CLIENT_ID, *, now: float) -> str:
        """Issue a valid `Atza|` access token, accepted by the AVS endpoints until it expires."""
        if client_id not in self._clients:
            raise KeyError(f"unknown client {client_id!r}")
        return self._new_access_token(client_id, None, now)

    def revoke(self, refresh_token: str) -> None:
        """Revoke a refresh token: later refreshes with it answer 400 `invalid_grant`."""
        self._refresh_tokens.pop(refresh_token, None)

    def approve(self, user_code: str) -> None:
        """The simulated user enters `user_code` and allows the device.

        Raises:
            KeyError: no code pair has this user code.
        """
        self._pair_by_user_code(user_code).state = CodePairState.APPROVED

    def deny(self, user_code: str, *, error: str = "access_denied") -> None:
        """The simulated user refuses: later polls answer 400 with `error`.

        Raises:
            KeyError: no code pair has this user code.
        """
        pair = self._pair_by_user_code(user_code)
        pair.state = CodePairState.DENIED
        pair.deny_error = error

    def enter_code(self, user_code: str | None) -> tuple[int, str]:
        """The verification page (`GET /code?code=USERCODE`): approve a code by request.

        Returns:
            `(status, text)`: 200 and a confirmation, 404 for an unknown code, or 200 and
            how to use the page when no code is given.
        """
        if not user_code:
            mode = "approves every code by itself" if self.auto_approve else "waits for codes"
            return 200, (
                f"avsclient simulator: Login with Amazon {mode}; "
                "approve one with GET /code?code=USERCODE\n"
            )
        try:
            self.approve(user_code.strip().upper())
        except KeyError:
            return 404, f"no code pair with the code {user_code!r}\n"
        return 200, f"code {user_code.strip().upper()} approved: the device is linked\n"

    def access_token_valid(self, token: str, now: float) -> bool:
        """True if `token` is an access token this service issued and it has not expired."""
        issued = self._access_tokens.get(token)
        return issued is not None and now < issued.expires_at

    # -- faults --------------------------------------------------------------------------

    def fail_next(
        self, n: int = 1, *, status: int, error: str | None = None, body: bytes | None = None
    ) -> None:
        """Answer the next `n` requests with `status`.

        Args:
            n: how many requests fail.
            status: the HTTP status to answer.
            error: the LWA error code in the JSON body (default: `servererror` for 5xx,
                `invalid_request` otherwise).
            body: raw body bytes sent instead of the JSON error (e.g. malformed JSON).
        """
        if n < 1 or not 100 <= status <= 599:
            raise ValueError("n must be >= 1 and status an HTTP status")
        self._faults.fail.append(_Fault(n, status=status, error=error, body=body))

    def delay_next(self, seconds: float, n: int = 1) -> None:
        """Delay the replies to the next `n` requests by `seconds`."""
        if n < 1 or seconds < 0:
            raise ValueError("n must be >= 1 and seconds >= 0")
        self._faults.delay.append(_Fault(n, delay=seconds))

    def drop_next(self, n: int = 1) -> None:
        """Close the connection instead of answering the next `n` requests."""
        if n < 1:
            raise ValueError("n must be >= 1")
        self._faults.drop += n

    # -- requests ------------------------------------------------------------------------

    def handle(self, path: str, form: Mapping[str, str], now: float) -> LWAResponse:
        """Answer one request, applying any pending fault first.

        Args:
            path: the request path (`/auth/o2/token` or `/auth/O2/create/codepair`).
            form: the decoded form fields.
            now: the current time, on the same scale as `clock`.

        Returns:
            The reply to send.
        """
        self.requests.append((path, dict(form)))
        delay = 0.0
        if self._faults.delay:
            fault = self._faults.delay[0]
            delay = fault.delay
            fault.remaining -= 1
            if not fault.remaining:
                self._faults.delay.popleft()
        if self._faults.drop:
            self._faults.drop -= 1
            return LWAResponse(status=0, body=b"", delay=delay, drop=True)
        if self._faults.fail:
            fault = self._faults.fail[0]
            fault.remaining -= 1
            if not fault.remaining:
                self._faults.fail.popleft()
            if fault.body is not None:
                return LWAResponse(status=fault.status, body=fault.body, delay=delay)
            error = fault.error or ("servererror" if fault.status >= 500 else "invalid_request")
            body = {"error": error, "error_description": "injected failure"}
            return LWAResponse(status=fault.status, body=_dump(body), delay=delay)
        status, reply = self.respond(path, form, now)
        return LWAResponse(status=status, body=_dump(reply), delay=delay)

    def respond(self, path: str, form: Mapping[str, str], now: float) -> tuple[int, dict[str, Any]]:
        """Answer one request without faults or bookkeeping of `requests`.

        Returns:
            `(status, json_body)`.
        """
        lowered = path.lower()
        if lowered == TOKEN_PATH:
            grant = form.get("grant_type")
            if not grant:
                return _error("invalid_request", "grant_type is missing")
            handler = {
                "refresh_token": self._refresh_grant,
                "client_credentials": self._client_credentials_grant,
                "device_code": self._device_code_grant,
            }.get(grant)
            if handler is None:
                return _error("unsupported_grant_type", f"grant_type {grant!r} is not supported")
            return handler(form, now)
        if lowered == CODEPAIR_PATH:
            return self._create_codepair(form, now)
        return 404, {"error": "not_found", "error_description": f"no LWA endpoint at {path}"}

    # -- grants --------------------------------------------------------------------------

    def _refresh_grant(self, form: Mapping[str, str], now: float) -> tuple[int, dict[str, Any]]:
        token, client_id = form.get("refresh_token"), form.get("client_id")
        if not token or not client_id:
            return _error("invalid_request", "refresh_token and client_id are required")
        client = self._clients.get(client_id)
        if client is None:
            return _error("invalid_client", "unknown client_id")
        secret = form.get("client_secret")
        if secret is not None and secret != client.secret:
            return _error("invalid_client", "client authentication failed")
        if self._refresh_tokens.get(token) != client_id:
            return _error("invalid_grant", "the refresh token is invalid, expired or revoked")
        if self.rotate_refresh_tokens:
            del self._refresh_tokens[token]
            token = self._new_refresh_token(client_id)
        return 200, self._token_reply(client_id, token, None, now)

    def _client_credentials_grant(
        self, form: Mapping[str, str], now: float
    ) -> tuple[int, dict[str, Any]]:
        client_id, secret, scope = (form.get(k) for k in ("client_id", "client_secret", "scope"))
        if not client_id or not secret or not scope:
            return _error("invalid_request", "client_id, client_secret and scope are required")
        client = self._clients.get(client_id)
        if client is None or client.secret is None or client.secret != secret:
            return _error("invalid_client", "client authentication failed")
        return 200, self._token_reply(client_id, None, scope, now)

    def _device_code_grant(self, form: Mapping[str, str], now: float) -> tuple[int, dict[str, Any]]:
        device_code, user_code = form.get("device_code"), form.get("user_code")
        if not device_code or not user_code:
            return _error("invalid_request", "device_code and user_code are required")
        pair = next((p for p in self.codepairs if p.device_code == device_code), None)
        if pair is None or pair.user_code != user_code:
            return _error("invalid_code_pair", "unknown code pair")
        if pair.state is CodePairState.USED:
            return _error("invalid_grant", "this code pair was already exchanged")
        if now >= pair.expires_at:
            return _error("expired_token", "the code pair expired")
        too_fast = pair.last_poll is not None and now - pair.last_poll < pair.interval
        pair.last_poll = now
        if pair.state is CodePairState.DENIED:
            return _error(pair.deny_error, "the user refused the request")
        if too_fast:
            return _error("slow_down", f"poll no faster than every {pair.interval} s")
        if pair.state is CodePairState.PENDING:
            return _error("authorization_pending", "the user has not finished yet")
        pair.state = CodePairState.USED
        refresh = self._new_refresh_token(pair.client_id)
        return 200, self._token_reply(pair.client_id, refresh, None, now)

    def _create_codepair(self, form: Mapping[str, str], now: float) -> tuple[int, dict[str, Any]]:
        if form.get("response_type") != "device_code":
            return _error("invalid_request", "response_type must be device_code")
        client_id = form.get("client_id")
        if not client_id:
            return _error("invalid_request", "client_id is required")
        client = self._clients.get(client_id)
        if client is None:
            return _error("invalid_client", "unknown client_id")
        if form.get("scope") != "alexa:all":
            return _error("invalid_request", "scope must be alexa:all")
        try:
            scope_data = json.loads(form.get("scope_data", ""))
            attrs = scope_data["alexa:all"]
            product_id = attrs["productID"]
            serial = attrs["productInstanceAttributes"]["deviceSerialNumber"]
        except (ValueError, KeyError, TypeError):
            return _error(
                "invalid_request",
                "scope_data must be JSON with alexa:all.productID and "
                "alexa:all.productInstanceAttributes.deviceSerialNumber",
            )
        if not isinstance(product_id, str) or not isinstance(serial, str):
            return _error("invalid_request", "productID and deviceSerialNumber must be strings")
        if client.product_id is not None and product_id != client.product_id:
            return _error("invalid_request", "productID does not belong to this client")
        pair = IssuedCode(
            user_code="".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(6)),
            device_code=str(uuid.uuid4()),
            client_id=client_id,
            product_id=product_id,
            serial=serial,
            expires_at=now + self.codepair_lifetime,
            interval=self.codepair_interval,
            state=CodePairState.APPROVED if self.auto_approve else CodePairState.PENDING,
        )
        self.codepairs.append(pair)
        return 200, {
            "user_code": pair.user_code,
            "device_code": pair.device_code,
            "verification_uri": self.verification_uri,
            "expires_in": self.codepair_lifetime,
            "interval": self.codepair_interval,
        }

    # -- helpers -------------------------------------------------------------------------

    def _pair_by_user_code(self, user_code: str) -> IssuedCode:
        for pair in reversed(self.codepairs):
            if pair.user_code == user_code:
                return pair
        raise KeyError(f"no code pair with user code {user_code!r}")

    def _new_refresh_token(self, client_id: str) -> str:
        token = "Atzr|" + secrets.token_urlsafe(96)
        self._refresh_tokens[token] = client_id
        return token

    def _new_access_token(self, client_id: str, scope: str | None, now: float) -> str:
        if len(self._access_tokens) >= _MAX_LIVE_ACCESS_TOKENS:
            # Bounded memory for long-running simulators: forget the expired tokens.
            expired = [t for t, issued in self._access_tokens.items() if now >= issued.expires_at]
            for old in expired:
                del self._access_tokens[old]
        token = "Atza|" + secrets.token_urlsafe(_ACCESS_TOKEN_RANDOM_CHARS * 3 // 4)
        self._access_tokens[token] = _AccessToken(
            client_id, now + self.access_token_lifetime, scope
        )
        return token

    def _token_reply(
        self, client_id: str, refresh: str | None, scope: str | None, now: float
    ) -> dict[str, Any]:
        reply: dict[str, Any] = {
            "access_token": self._new_access_token(client_id, scope, now),
            "token_type": "bearer",
            "expires_in": self.access_token_lifetime,
        }
        if refresh is not None:
            reply["refresh_token"] = refresh
        if scope is not None:
            reply["scope"] = scope
        return reply


def _dump(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()
