"""The decision core of the event gateway and Skill Messaging clients; no I/O, no clock.

A `Delivery` takes the batches of one report (or the one request of a skill message) and
decides, response by response, what happens next: send, wait and resend, refresh the token
and resend, split the batch (HTTP 413), or give up with a typed error. It follows the error
table of avs-protocol.md 7.3 (and section 8 for Skill Messaging). Its driver sends the requests
it names, reports each status and body (or transport failure) with the time `now`, and stops
at `DeliveryFinished`, which carries the one `DeliveryResult` of the report.
"""

from __future__ import annotations

import enum
import json
import math
import random as _random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from avsclient._fsm import StateMachine, Table
from avsclient._retry import RetryPolicy
from avsclient.exceptions import (
    AVSError,
    GatewayError,
    GatewayUnavailable,
    InsufficientPermission,
    InvalidAccessToken,
    InvalidGatewayRequest,
    ReportTooLarge,
    SkillDisabled,
    SkillNotFound,
    TransportError,
)
from avsclient.gateway.config import GATEWAY_RETRY, MAX_RETRY_AFTER, _check_retry

__all__ = [
    "EVENT_GATEWAY_RULES",
    "GATEWAY_TRANSITIONS",
    "SKILL_MESSAGING_RULES",
    "BatchOutcome",
    "Delivery",
    "DeliveryFinished",
    "DeliveryResult",
    "ErrorRules",
    "GatewayEvent",
    "GatewayInput",
    "GatewayRetryScheduled",
    "GatewayState",
    "ReportOutcome",
    "RequestReady",
    "Splittable",
    "TokenRefreshRequired",
    "parse_error_body",
]

_MAX_DESCRIPTION = 300


class Splittable(Protocol):
    """What the core needs from a batch."""

    def split(self) -> tuple[Any, Any] | None:
        """Two halves, or None when it cannot be split."""
        ...


B = TypeVar("B", bound=Splittable)


# -- error bodies --------------------------------------------------------------------------


def parse_error_body(body: bytes) -> tuple[str | None, str | None]:
    """Read the error code and description from a gateway error body (avs-protocol.md 7.3).

    The code is `payload.code`, else `payload.type` (clients differ on which they read, so
    both are checked), else a top-level `code` or `type`. The description is
    `payload.description` or `payload.message` (or top-level ones), cut to 300 characters.

    Returns:
        `(code, description)`; either may be None (no JSON, no such field).
    """
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(doc, dict):
        return None, None
    payload = doc.get("payload")
    places = [payload, doc] if isinstance(payload, dict) else [doc]

    def first(*keys: str) -> str | None:
        for place in places:
            for key in keys:
                value = place.get(key)
                if isinstance(value, str) and value:
                    return value
        return None

    code = first("code", "type")
    if code is not None and (len(code) > 100 or not code.isprintable()):
        code = None
    description = first("description", "message")
    if description is not None:
        description = "".join(c if c.isprintable() else " " for c in description)
        description = description[:_MAX_DESCRIPTION]
    return code, description


# -- the error table -----------------------------------------------------------------------


class _Action(enum.Enum):
    DELIVERED = "delivered"
    REFRESH = "refresh"
    RETRY = "retry"
    SPLIT = "split"
    FAIL = "fail"


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorRules:
    """How one API's error replies are handled.

    Attributes:
        api: the API's name, for messages.
        refresh_statuses: statuses that mean "the token was refused": refresh once, resend.
        refresh_codes: error codes with the same meaning, whatever the status.
        fatal: error code -> (exception class, what to do), never retried.
        fatal_status: status -> (exception class, what to do), when the code is unknown.
        split_status: the status that asks for smaller messages (413), or None.
    """

    api: str
    refresh_statuses: frozenset[int]
    refresh_codes: frozenset[str]
    fatal: dict[str, tuple[type[GatewayError], str]]
    fatal_status: dict[int, tuple[type[GatewayError], str]]
    split_status: int | None


_FIX = "fix the message and do not resend it unchanged"
_DISABLED = (
    "the user disabled the skill or unlinked the account: delete this user's stored tokens "
    "and send nothing more until Alexa sends a new AcceptGrant"
)
_PERMISSION = (
    "the skill lacks the 'Send Alexa Events' permission: enable it in the developer console "
    "(Build > Permissions) and have the user link the account again"
)
_NOT_FOUND = (
    "the skill is unknown at this host: check the skill's client id and the region the user "
    "enabled it in, and delete tokens issued for the wrong skill or region"
)

EVENT_GATEWAY_RULES = ErrorRules(
    api="event gateway",
    refresh_statuses=frozenset({401}),
    refresh_codes=frozenset({"INVALID_ACCESS_TOKEN_EXCEPTION"}),
    fatal={
        "INVALID_REQUEST_EXCEPTION": (InvalidGatewayRequest, _FIX),
        "SKILL_DISABLED_EXCEPTION": (SkillDisabled, _DISABLED),
        # The issue text names this code; the gateway's own tables say SKILL_DISABLED.
        "SKILL_NEVER_ENABLED_EXCEPTION": (SkillDisabled, _DISABLED),
        "INSUFFICIENT_PERMISSION_EXCEPTION": (InsufficientPermission, _PERMISSION),
        "SKILL_NOT_FOUND_EXCEPTION": (SkillNotFound, _NOT_FOUND),
    },
    fatal_status={
        400: (InvalidGatewayRequest, _FIX),
        # A 403 without a known code: the two documented 403 causes both stop the report.
        403: (GatewayError, f"either {_DISABLED}; or {_PERMISSION}"),
        404: (SkillNotFound, _NOT_FOUND),
    },
    split_status=413,
)

SKILL_MESSAGING_RULES = ErrorRules(
    api="Skill Messaging API",
    # Section 8: refresh the token on 401 and 403.
    refresh_statuses=frozenset({401, 403}),
    refresh_codes=frozenset({"INVALID_ACCESS_TOKEN_EXCEPTION"}),
    fatal={
        "INVALID_REQUEST_EXCEPTION": (InvalidGatewayRequest, _FIX),
        "SKILL_NOT_FOUND_EXCEPTION": (SkillNotFound, _NOT_FOUND),
    },
    fatal_status={
        400: (
            InvalidGatewayRequest,
            "fix the message (data must be a JSON object with string keys) and do not resend it",
        ),
        404: (SkillNotFound, "the user id or skill is unknown in this region"),
    },
    split_status=None,
)


def _is_transient(status: int) -> bool:
    # 429, 500 and 503 are in the table; other 5xx (502, 504 from proxies) are as transient.
    return status == 429 or 500 <= status <= 599


# -- outcomes ------------------------------------------------------------------------------


class ReportOutcome(enum.Enum):
    """How one batch, or a whole report, ended."""

    DELIVERED = "delivered"  # a 2xx reply (202 Accepted: queued by Alexa)
    SPLIT = "split"  # 413: replaced by its two halves, which have outcomes of their own
    FAILED = "failed"
    NOT_SENT = "not sent"  # an earlier batch failed, so the report stopped


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchOutcome(Generic[B]):
    """The end of one batch.

    Attributes:
        batch: the batch.
        outcome: how it ended.
        status: the last HTTP status received for it, or None.
        attempts: how many times it was sent.
        error: the error it failed with (FAILED only).
    """

    batch: B
    outcome: ReportOutcome
    status: int | None
    attempts: int
    error: AVSError | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryResult(Generic[B]):
    """The one outcome of a report: DELIVERED when every batch was, else FAILED.

    Attributes:
        outcome: `ReportOutcome.DELIVERED` or `ReportOutcome.FAILED`.
        batches: every batch's outcome, in the order they ended (split halves after their
            parent; batches never sent last).
        error: the error that stopped the report (FAILED only).
        token_refreshes: how many times the token was refreshed for it (0 or 1).
    """

    outcome: ReportOutcome
    batches: tuple[BatchOutcome[B], ...]
    error: AVSError | None = None
    token_refreshes: int = 0

    @property
    def ok(self) -> bool:
        """True when every batch was delivered."""
        return self.outcome is ReportOutcome.DELIVERED

    @property
    def delivered(self) -> tuple[B, ...]:
        """The batches that were delivered."""
        return tuple(b.batch for b in self.batches if b.outcome is ReportOutcome.DELIVERED)

    def raise_for_error(self) -> None:
        """Raise the error that stopped the report, if any.

        Raises:
            GatewayError: a subclass saying what to do (`SkillDisabled`, ...).
            AVSError: a transport or token failure that ended the report.
        """
        if self.error is not None:
            raise self.error


# -- events --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayEvent:
    """Base class of what a `Delivery` tells its driver to do next."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestReady(GatewayEvent, Generic[B]):
    """Send `batch` now (encoded with the current token); `attempt` counts from 1."""

    batch: B
    attempt: int


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayRetryScheduled(GatewayEvent):
    """Wait `delay` seconds, then ask again (the last attempt failed transiently)."""

    delay: float
    retry: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenRefreshRequired(GatewayEvent):
    """The token was refused: drop it, get a fresh one, then ask again."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryFinished(GatewayEvent, Generic[B]):
    """The report is over; `result` is its one outcome."""

    result: DeliveryResult[B]


# -- the state machine ---------------------------------------------------------------------


class GatewayState(enum.Enum):
    """Where a `Delivery` stands."""

    READY = "ready"  # a batch is queued; next_event returns RequestReady
    AWAITING_REPLY = "awaiting reply"
    BACKING_OFF = "backing off"  # next_event returns RetryScheduled until the delay passed
    REFRESHING = "refreshing"  # next_event returns TokenRefreshRequired once
    FINISHED = "finished"
    ERROR = "error"  # the driver misused the core (sticky)


class GatewayInput(enum.Enum):
    """What can happen to a `Delivery`."""

    SEND = "send"
    REPLY_DONE = "reply: batch over"  # delivered, split or failed: next batch or finish
    REPLY_RETRY = "reply: retry"
    REPLY_REFRESH = "reply: refresh"
    WAITED = "waited"
    REFRESHED = "refreshed"
    FINISH = "finish"
    ABORT = "abort"  # the driver could not send (no token, invalid body): the report ends


# Theory of operation: batches are sent one at a time. READY sends (AWAITING_REPLY); the reply
# or transport failure is judged by the error table and leads to BACKING_OFF (429/5xx/network,
# a retry is left), REFRESHING (the token was refused, first time in this report), or back to
# READY (delivered, split into halves queued first, or failed: then the rest is dropped and the
# queue is empty). ABORT (the driver could not send: no token, an invalid body) fails the batch
# like a fatal reply. BACKING_OFF returns to READY once `now` reaches the retry time; REFRESHING
# returns to READY when the driver collects TokenRefreshRequired. READY with an empty queue
# finishes. Any other pair is driver misuse and moves to ERROR, which is sticky. No transition
# has a side effect of its own (the methods do the work), so every action is None.
GATEWAY_TRANSITIONS: Table[GatewayState, GatewayInput, None] = {
    (GatewayState.READY, GatewayInput.SEND): (None, GatewayState.AWAITING_REPLY),
    (GatewayState.READY, GatewayInput.FINISH): (None, GatewayState.FINISHED),
    (GatewayState.AWAITING_REPLY, GatewayInput.REPLY_DONE): (None, GatewayState.READY),
    (GatewayState.AWAITING_REPLY, GatewayInput.REPLY_RETRY): (None, GatewayState.BACKING_OFF),
    (GatewayState.AWAITING_REPLY, GatewayInput.REPLY_REFRESH): (None, GatewayState.REFRESHING),
    (GatewayState.AWAITING_REPLY, GatewayInput.ABORT): (None, GatewayState.READY),
    (GatewayState.BACKING_OFF, GatewayInput.WAITED): (None, GatewayState.READY),
    (GatewayState.REFRESHING, GatewayInput.REFRESHED): (None, GatewayState.READY),
}


class Delivery(Generic[B]):
    """Delivers the batches of one report in order, by the error table of section 7.3.

    Drive it like this: call `next_event(now)`; on `RequestReady` send the batch and feed the
    reply to `receive_response` (or a transport error to `transport_failed`); on
    `GatewayRetryScheduled` wait `delay` seconds; on `TokenRefreshRequired` invalidate the token and
    fetch a new one; repeat until `DeliveryFinished`. Driver misuse raises
    `LocalProtocolError` and every later call raises it again.

    The table: 2xx delivered; a refused token (401, or `INVALID_ACCESS_TOKEN_EXCEPTION`) is
    refreshed once per report and the batch resent once; 413 halves a discovery batch and
    resends both halves; 429, 5xx and network failures are retried `retry.max_retries` times,
    at least 1 s apart (longer when the server sends Retry-After); 400, 403, 404 and any other
    status fail the batch at once with a typed error, and the batches not yet sent are dropped.

    Args:
        batches: the report's batches, in order (at least one).
        rules: `EVENT_GATEWAY_RULES` or `SKILL_MESSAGING_RULES`.
        retry: the retry policy (`GATEWAY_RETRY` when None).
        random: returns a float in [0, 1) for jitter.

    Raises:
        ValueError: no batches, or a retry policy the gateway rules forbid (a delay under
            1 s, or no limit on retries).
    """

    def __init__(
        self,
        batches: Sequence[B],
        *,
        rules: ErrorRules = EVENT_GATEWAY_RULES,
        retry: RetryPolicy | None = None,
        random: Callable[[], float] = _random.random,
    ) -> None:
        if not batches:
            raise ValueError("a delivery needs at least one batch")
        self._queue: deque[B] = deque(batches)
        self._rules = rules
        self._retry = retry or GATEWAY_RETRY
        _check_retry(self._retry)
        self._random = random
        self._machine = StateMachine(
            GATEWAY_TRANSITIONS, GatewayState.READY, name="Delivery", error_state=GatewayState.ERROR
        )
        self._outcomes: list[BatchOutcome[B]] = []
        self._failure: AVSError | None = None
        self._refreshed = False
        self._refreshes = 0
        self._attempts = 0  # of the current batch
        self._retries = 0  # of the current batch
        self._last_status: int | None = None
        self._not_before = -math.inf
        self._pending_retry: GatewayRetryScheduled | None = None
        self._finished: DeliveryFinished[B] | None = None

    @property
    def state(self) -> GatewayState:
        """The current state."""
        return self._machine.state

    # -- driver API --------------------------------------------------------------------

    def next_event(self, now: float) -> GatewayEvent:
        """What to do next.

        Args:
            now: the current time in seconds (any monotonic clock).

        Returns:
            `RequestReady`, `GatewayRetryScheduled` (still too early to resend),
            `TokenRefreshRequired`, or `DeliveryFinished` (also on every later call).

        Raises:
            LocalProtocolError: a reply is still awaited, or the core was misused before.
        """
        self._machine.check()
        if self._finished is not None:
            return self._finished
        if self._machine.state is GatewayState.BACKING_OFF:
            if now < self._not_before:
                pending = self._pending_retry
                assert pending is not None
                return GatewayRetryScheduled(
                    delay=self._not_before - now, retry=pending.retry, reason=pending.reason
                )
            self._machine.feed(GatewayInput.WAITED)
        elif self._machine.state is GatewayState.REFRESHING:
            self._machine.feed(GatewayInput.REFRESHED)
            return TokenRefreshRequired()
        if self._machine.state is GatewayState.READY and not self._queue:
            self._machine.feed(GatewayInput.FINISH)
            self._finished = DeliveryFinished(result=self._result())
            return self._finished
        self._machine.feed(GatewayInput.SEND)
        self._attempts += 1
        return RequestReady(batch=self._queue[0], attempt=self._attempts)

    def receive_response(
        self, status: int, body: bytes, *, now: float, retry_after: float | None = None
    ) -> None:
        """Feed the reply to the batch last returned by `RequestReady`.

        Args:
            status: the HTTP status.
            body: the reply body (only error bodies are read).
            now: the current time, on the clock given to `next_event`.
            retry_after: a Retry-After value in seconds, if the server sent one.

        Raises:
            LocalProtocolError: no request is outstanding.
        """
        if self._machine.state is not GatewayState.AWAITING_REPLY:
            self._machine.feed(GatewayInput.REPLY_DONE)  # raises: misuse
        self._last_status = status
        if 200 <= status <= 299:
            self._end_batch(ReportOutcome.DELIVERED)
            return
        code, description = parse_error_body(body)
        action, error = self._judge(status, code, description)
        if action is _Action.REFRESH:
            self._refreshed = True
            self._refreshes += 1
            self._machine.feed(GatewayInput.REPLY_REFRESH)
        elif action is _Action.SPLIT:
            batch = self._queue.popleft()
            halves = batch.split()
            assert halves is not None
            self._record(batch, ReportOutcome.SPLIT)
            self._queue.extendleft(reversed(halves))
            self._reset_batch()
            self._machine.feed(GatewayInput.REPLY_DONE)
        elif action is _Action.RETRY:
            reason = f"HTTP {status}" + (f" {code}" if code else "")
            self._schedule_retry(now, reason, retry_after, error)
        else:
            assert error is not None
            self._fail_batch(error)

    def transport_failed(self, error: TransportError, *, now: float) -> None:
        """Report that the last request got no reply (connect error, timeout, dropped).

        Raises:
            LocalProtocolError: no request is outstanding.
        """
        if self._machine.state is not GatewayState.AWAITING_REPLY:
            self._machine.feed(GatewayInput.REPLY_DONE)  # raises: misuse
        self._schedule_retry(now, type(error).__name__, None, error)

    def abort(self, error: AVSError) -> None:
        """End the report because the batch last returned by `RequestReady` could not be sent
        (the token could not be obtained, or the body failed validation).

        Raises:
            LocalProtocolError: no request is outstanding.
        """
        if self._machine.state is not GatewayState.AWAITING_REPLY:
            self._machine.feed(GatewayInput.ABORT)  # raises: misuse
        self._failure = error
        batch = self._queue.popleft()
        self._record(batch, ReportOutcome.FAILED, error)
        self._drop_rest()
        self._reset_batch()
        self._machine.feed(GatewayInput.ABORT)

    # -- internals ---------------------------------------------------------------------

    def _judge(
        self, status: int, code: str | None, description: str | None
    ) -> tuple[_Action, AVSError | None]:
        rules = self._rules
        detail = f"HTTP {status}" + (f" {code}" if code else "")
        if description:
            detail += f" ({description})"
        refused = status in rules.refresh_statuses or code in rules.refresh_codes
        known = rules.fatal.get(code or "")
        if refused and known is None:
            if not self._refreshed:
                return _Action.REFRESH, None
            return _Action.FAIL, InvalidAccessToken(
                f"the {rules.api} refused the access token even after a refresh ({detail}): "
                "link the account again (a new AcceptGrant or client credentials)",
                status=status,
                code=code,
                description=description,
            )
        if known is None and rules.split_status is not None and status == rules.split_status:
            if self._queue[0].split() is not None:
                return _Action.SPLIT, None
            return _Action.FAIL, ReportTooLarge(
                f"the {rules.api} found this message too large ({detail}) and it cannot be "
                "split further: make the endpoint's description smaller",
                status=status,
                code=code,
                description=description,
            )
        if known is None and _is_transient(status):
            return _Action.RETRY, GatewayUnavailable(
                f"the {rules.api} kept failing ({detail}) after "
                f"{self._retry.max_retries} retries: send the report again later",
                status=status,
                code=code,
                description=description,
            )
        cls, advice = known or rules.fatal_status.get(
            status, (GatewayError, "unexpected reply; not retried")
        )
        return _Action.FAIL, cls(
            f"the {rules.api} refused the message ({detail}): {advice}",
            status=status,
            code=code,
            description=description,
        )

    def _schedule_retry(
        self, now: float, reason: str, retry_after: float | None, final: AVSError | None
    ) -> None:
        delay = self._retry.next_delay(self._retries + 1, self._random)
        if delay is None:
            assert final is not None
            if isinstance(final, TransportError):
                cause = final
                final = GatewayUnavailable(
                    f"the {self._rules.api} could not be reached ({type(cause).__name__}: "
                    f"{cause}) after {self._retry.max_retries} retries: send it again later",
                    status=0,
                )
                final.__cause__ = cause
            self._fail_batch(final)
            return
        self._retries += 1
        if retry_after is not None and math.isfinite(retry_after):
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
        self._not_before = now + delay
        self._pending_retry = GatewayRetryScheduled(delay=delay, retry=self._retries, reason=reason)
        self._machine.feed(GatewayInput.REPLY_RETRY)

    def _fail_batch(self, error: AVSError) -> None:
        self._failure = error
        batch = self._queue.popleft()
        self._record(batch, ReportOutcome.FAILED, error)
        self._drop_rest()
        self._reset_batch()
        self._machine.feed(GatewayInput.REPLY_DONE)

    def _drop_rest(self) -> None:
        for batch in self._queue:
            self._outcomes.append(
                BatchOutcome(batch=batch, outcome=ReportOutcome.NOT_SENT, status=None, attempts=0)
            )
        self._queue.clear()

    def _end_batch(self, outcome: ReportOutcome, error: AVSError | None = None) -> None:
        batch = self._queue.popleft()
        self._record(batch, outcome, error)
        self._reset_batch()
        self._machine.feed(GatewayInput.REPLY_DONE)

    def _record(self, batch: B, outcome: ReportOutcome, error: AVSError | None = None) -> None:
        self._outcomes.append(
            BatchOutcome(
                batch=batch,
                outcome=outcome,
                status=self._last_status,
                attempts=self._attempts,
                error=error,
            )
        )

    def _reset_batch(self) -> None:
        self._attempts = 0
        self._retries = 0
        self._last_status = None
        self._pending_retry = None

    def _result(self) -> DeliveryResult[B]:
        return DeliveryResult(
            outcome=ReportOutcome.FAILED if self._failure is not None else ReportOutcome.DELIVERED,
            batches=tuple(self._outcomes),
            error=self._failure,
            token_refreshes=self._refreshes,
        )
