"""The AVS session's decisions, without I/O: lifecycle, liveness schedule, outcomes, reasons.

The asyncio shell (`manager.py`, `link.py`, `exchange.py`) does what these plain values and
functions, fed `now`, decide, so they are tested without sockets or clocks: the state table
of the connection lifecycle, when a link's liveness is checked and how, the one map from
HTTP statuses, errors and outcomes to an event's `EventOutcome` and a link's `ChangedReason`, and
the parsing of AVS JSON exception bodies, and when the next connection attempt may start
(`ReconnectSchedule`, on the client configuration's `avsclient._retry.RetryPolicy`).
"""

from __future__ import annotations

import enum
import json
import ssl
from dataclasses import dataclass
from typing import Final

from avsclient._fsm import StateMachine, Table
from avsclient._retry import RetryPolicy
from avsclient.exceptions import (
    AuthError,
    ClientConfigError,
    ConnectionClosed,
    ConnectionDraining,
    MultipartError,
    NetworkError,
    PingTimeout,
    ReauthorizationRequired,
    RemoteProtocolError,
    StreamReset,
    TimeoutException,
    TransportError,
    TrustStoreError,
)

# Plain sorted order, as tests/test_exports.py checks (not ruff's isort-style order).
__all__ = [
    "LIFECYCLE_TRANSITIONS",
    "MAX_EXCEPTION_BODY",
    "STATUS_OF",
    "Action",
    "ChangedReason",
    "ConnectionStatus",
    "EventOutcome",
    "LifecycleInput",
    "LifecycleMachine",
    "LifecycleState",
    "LivenessCheck",
    "ReconnectSchedule",
    "is_permanent",
    "next_check",
    "outcome_for_error",
    "outcome_for_status",
    "parse_exception_body",
    "ping_due_in",
    "reason_for_error",
    "reason_for_outcome",
    "reason_for_status",
]

#: The AVS Device SDK keeps at most 4096 bytes of an exception body (avs-protocol.md 4.1).
MAX_EXCEPTION_BODY: Final = 4096


class ConnectionStatus(enum.Enum):
    """What the application sees of the connection (the AVS Device SDK's three statuses)."""

    DISCONNECTED = "DISCONNECTED"  # not started, or closed by the application
    PENDING = "PENDING"  # connecting, or waiting to retry
    CONNECTED = "CONNECTED"  # downchannel open and SynchronizeState accepted


class ChangedReason(enum.Enum):
    """Why the status changed (after the SDK's ConnectionStatusObserver reasons)."""

    NONE = "NONE"
    CLIENT_REQUEST = "CLIENT_REQUEST"  # start(), aclose()
    SUCCESS = "SUCCESS"  # connected
    SERVER_SIDE_DISCONNECT = "SERVER_SIDE_DISCONNECT"  # downchannel ended, non-204 ping
    PING_TIMEOUT = "PING_TIMEOUT"
    GOAWAY = "GOAWAY"
    INVALID_AUTH = "INVALID_AUTH"  # 403 again after a refresh, or no token to be had
    NETWORK_ERROR = "NETWORK_ERROR"  # refused, dropped, TLS failure
    CONNECTION_TIMEDOUT = "CONNECTION_TIMEDOUT"  # TCP, TLS or downchannel took too long
    SERVER_ERROR = "SERVER_ERROR"  # downchannel or SynchronizeState answered 4xx/5xx
    PROTOCOL_ERROR = "PROTOCOL_ERROR"  # malformed response framing
    ENDPOINT_CHANGED = "ENDPOINT_CHANGED"  # System.SetEndpoint
    INTERNAL_ERROR = "INTERNAL_ERROR"


class EventOutcome(enum.Enum):
    """How one event ended; every `send_event` call reports exactly one."""

    SUCCESS = "SUCCESS"  # 200, directives delivered to the sink
    SUCCESS_NO_CONTENT = "SUCCESS_NO_CONTENT"  # 204 (or another 2xx without a body)
    NOT_CONNECTED = "NOT_CONNECTED"  # no connection in time, queue full, or the link broke
    TIMEDOUT = "TIMEDOUT"  # no progress for `event_timeout`
    THROTTLED = "THROTTLED"  # 429
    SERVER_ERROR = "SERVER_ERROR"  # 500 and other 5xx but 503
    REFUSED = "REFUSED"  # 503
    INVALID_AUTH = "INVALID_AUTH"  # 403 even after a token refresh
    BAD_REQUEST = "BAD_REQUEST"  # 400 and other 4xx
    CANCELED = "CANCELED"  # the manager was closed, or the caller gave up
    PROTOCOL_ERROR = "PROTOCOL_ERROR"  # malformed response, or the stream was reset
    INTERNAL_ERROR = "INTERNAL_ERROR"  # the audio source (or another local part) failed


# -- liveness ------------------------------------------------------------------------------


class LivenessCheck(enum.Enum):
    """What the link's liveness check does next."""

    WAIT = "WAIT"  # nothing is due yet
    PING_FRAME = "PING_FRAME"  # an HTTP/2 PING frame: nothing was received for a while
    AVS_PING = "AVS_PING"  # GET /ping: no AVS exchange for a while, or asked for at once


def ping_due_in(last_activity: float, now: float, interval: float) -> float:
    """Seconds until an idle-connection ping is due (0 when it is due now).

    Args:
        last_activity: when anything was last received (any byte counts, avs-protocol 4.5).
        now: the current time on the same clock.
        interval: the idle time after which to ping.
    """
    return max(0.0, last_activity + interval - now)


def next_check(
    now: float,
    *,
    received_at: float,
    active_at: float,
    frame_interval: float | None,
    ping_interval: float,
    ping_asked: bool = False,
) -> tuple[LivenessCheck, float]:
    """The liveness check due next on a link, and in how many seconds.

    One schedule drives both probes: the cheap HTTP/2 PING frame after `frame_interval`
    without a received byte (finds a dead link fast), and the `GET /ping` AVS asks for after
    `ping_interval` without an AVS exchange (avs-protocol 1.4; it also keeps AVS from closing
    an idle connection, which a PING frame does not). When both are due, `GET /ping` goes,
    since its answer proves the link alive too.

    Args:
        now: the current time.
        received_at: when bytes last arrived (PING acknowledgements count).
        active_at: when the link last had an AVS exchange (a response, a downchannel part).
        frame_interval: idle time before a PING frame; None: never send one.
        ping_interval: idle time before `GET /ping`.
        ping_asked: a stalled event stream asked for a `GET /ping` at once.

    Returns:
        (what, delay): `delay` is 0 when `what` is due now; for WAIT, how long to sleep
        before asking again.
    """
    if ping_asked:
        return LivenessCheck.AVS_PING, 0.0
    ping_in = ping_due_in(active_at, now, ping_interval)
    if ping_in <= 0:
        return LivenessCheck.AVS_PING, 0.0
    if frame_interval is None:
        return LivenessCheck.WAIT, ping_in
    frame_in = ping_due_in(received_at, now, frame_interval)
    if frame_in <= 0:
        return LivenessCheck.PING_FRAME, 0.0
    return LivenessCheck.WAIT, min(ping_in, frame_in)


# -- the lifecycle state table -------------------------------------------------------------


class LifecycleState(enum.Enum):
    """Where the connection lifecycle is."""

    IDLE = "IDLE"  # built, not started
    CONNECTING = "CONNECTING"  # an attempt runs: token, connection, downchannel, sync
    WAITING = "WAITING"  # an attempt failed or the link died: back-off before the next
    CONNECTED = "CONNECTED"  # a link takes events
    REPLACING = "REPLACING"  # make-before-break: the old link drains, a new one is made
    FAILED = "FAILED"  # a permanent failure: no retry until wake() or a new endpoint
    CLOSED = "CLOSED"  # closed by the application (terminal)


class LifecycleInput(enum.Enum):
    """What happens to the lifecycle."""

    START = "START"  # the application started the manager
    ATTEMPT_SUCCEEDED = "ATTEMPT_SUCCEEDED"  # downchannel open and SynchronizeState accepted
    ATTEMPT_FAILED = "ATTEMPT_FAILED"  # any step of an attempt failed
    # An attempt failed in a way retrying cannot mend (`is_permanent`): a rejected
    # certificate, a revoked refresh token, a wrong LWA client configuration.
    PERMANENT_FAILURE = "PERMANENT_FAILURE"
    LINK_LOST = "LINK_LOST"  # the link in use died (downchannel end, ping, network)
    DRAIN = "DRAIN"  # GOAWAY, SetEndpoint, corrupt downchannel: move to a new link
    RETRY = "RETRY"  # the back-off elapsed, or wake() (the only way out of FAILED)
    CLOSE = "CLOSE"  # the application closed the manager


class Action(enum.Enum):
    """The side effect the shell performs for a transition."""

    NONE = "NONE"
    CONNECT = "CONNECT"  # start an attempt now
    RESTART = "RESTART"  # abandon the running attempt and start another now
    SCHEDULE_RETRY = "SCHEDULE_RETRY"  # wait the next back-off delay (wake() cuts it short)
    # A link is up: the back-off starts over once it has proven healthy, i.e. stayed up
    # `healthy_after` seconds (`ReconnectSchedule`); a link that ends sooner counts as a
    # failed attempt, so a server that ends every connection at once meets the back-off.
    RESET_BACKOFF = "RESET_BACKOFF"
    HOLD = "HOLD"  # report the failure; no timer: only wake(), SetEndpoint or close go on
    SHUT_DOWN = "SHUT_DOWN"  # stop every task and close every link


# Theory of operation
# -------------------
# One attempt at a time makes a link: token, HTTP/2 connection, downchannel, then
# SynchronizeState retried until accepted (avs-protocol 2.1). CONNECTED is reached only from an
# attempt that succeeded. Every state but CLOSED has an exit for each way its work can end, so
# the lifecycle cannot stall: a failed attempt always schedules a retry, a retry always starts
# an attempt, and nothing waits without a timer or an event that is sure to come. GOAWAY and
# SetEndpoint drain the link (REPLACING): the old link finishes its streams while the
# attempt runs, so events keep flowing (make-before-break, avs-protocol 2.2). While
# REPLACING, the status stays CONNECTED; it drops to PENDING only if the attempt fails or
# the old link dies first. A permanent failure (a rejected certificate, invalid_grant, a
# wrong client configuration) is the one exception to "always retry": retrying cannot mend
# it, so FAILED (status DISCONNECTED) waits for the application (wake(): re-linked, network
# or clock fixed) or for a new endpoint. CLOSED absorbs every input, because callbacks of
# links that are being torn down may still arrive.
_S, _I, _A = LifecycleState, LifecycleInput, Action
LIFECYCLE_TRANSITIONS: Final[Table[LifecycleState, LifecycleInput, Action]] = {
    (_S.IDLE, _I.START): (_A.CONNECT, _S.CONNECTING),
    (_S.IDLE, _I.CLOSE): (_A.SHUT_DOWN, _S.CLOSED),
    (_S.CONNECTING, _I.ATTEMPT_SUCCEEDED): (_A.RESET_BACKOFF, _S.CONNECTED),
    (_S.CONNECTING, _I.ATTEMPT_FAILED): (_A.SCHEDULE_RETRY, _S.WAITING),
    (_S.CONNECTING, _I.PERMANENT_FAILURE): (_A.HOLD, _S.FAILED),
    (_S.CONNECTING, _I.DRAIN): (_A.RESTART, _S.CONNECTING),
    (_S.CONNECTING, _I.CLOSE): (_A.SHUT_DOWN, _S.CLOSED),
    (_S.WAITING, _I.RETRY): (_A.CONNECT, _S.CONNECTING),
    (_S.WAITING, _I.DRAIN): (_A.CONNECT, _S.CONNECTING),
    (_S.WAITING, _I.CLOSE): (_A.SHUT_DOWN, _S.CLOSED),
    (_S.CONNECTED, _I.LINK_LOST): (_A.SCHEDULE_RETRY, _S.WAITING),
    (_S.CONNECTED, _I.DRAIN): (_A.CONNECT, _S.REPLACING),
    (_S.CONNECTED, _I.CLOSE): (_A.SHUT_DOWN, _S.CLOSED),
    (_S.REPLACING, _I.ATTEMPT_SUCCEEDED): (_A.RESET_BACKOFF, _S.CONNECTED),
    (_S.REPLACING, _I.ATTEMPT_FAILED): (_A.SCHEDULE_RETRY, _S.WAITING),
    (_S.REPLACING, _I.PERMANENT_FAILURE): (_A.HOLD, _S.FAILED),
    (_S.REPLACING, _I.LINK_LOST): (_A.NONE, _S.CONNECTING),
    (_S.REPLACING, _I.DRAIN): (_A.RESTART, _S.REPLACING),
    (_S.REPLACING, _I.CLOSE): (_A.SHUT_DOWN, _S.CLOSED),
    (_S.FAILED, _I.RETRY): (_A.CONNECT, _S.CONNECTING),
    (_S.FAILED, _I.DRAIN): (_A.CONNECT, _S.CONNECTING),
    (_S.FAILED, _I.CLOSE): (_A.SHUT_DOWN, _S.CLOSED),
    **{(_S.CLOSED, i): (_A.NONE, _S.CLOSED) for i in LifecycleInput},
}
del _S, _I, _A

STATUS_OF: Final[dict[LifecycleState, ConnectionStatus]] = {
    LifecycleState.IDLE: ConnectionStatus.DISCONNECTED,
    LifecycleState.CONNECTING: ConnectionStatus.PENDING,
    LifecycleState.WAITING: ConnectionStatus.PENDING,
    LifecycleState.CONNECTED: ConnectionStatus.CONNECTED,
    LifecycleState.REPLACING: ConnectionStatus.CONNECTED,
    LifecycleState.FAILED: ConnectionStatus.DISCONNECTED,
    LifecycleState.CLOSED: ConnectionStatus.DISCONNECTED,
}


class LifecycleMachine(StateMachine[LifecycleState, LifecycleInput, Action]):
    """The connection lifecycle: feed it inputs, perform the actions it returns.

    A pair missing from `LIFECYCLE_TRANSITIONS` raises `LocalProtocolError` and, unlike a protocol
    parser, leaves the state as it was (`error_state=None`): a connection manager must never
    be stuck, so a misfed input is reported (it is a bug in the shell) without ending the
    lifecycle.
    """

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(
            LIFECYCLE_TRANSITIONS, LifecycleState.IDLE, name="lifecycle", error_state=None
        )

    @property
    def status(self) -> ConnectionStatus:
        """The status the application sees in the current state."""
        return STATUS_OF[self.state]


# -- when to reconnect ---------------------------------------------------------------------


@dataclass(slots=True)
class ReconnectSchedule:
    """When the next connection attempt may start (no I/O: the shell passes `now`).

    The delay is `policy`'s entry for the count of consecutive attempts that did not give a
    healthy link. A link proves healthy by staying up `healthy_after` seconds; only then does
    the count start over. Until then its end (lost, or drained by GOAWAY) counts as one more
    failure, so a server that accepts every connection and ends it at once (GOAWAY, a
    connection error, a stream limit of 0) meets the same growing back-off as one that
    refuses connections: at most one attempt per `policy`'s last delay once the table has
    run out, whatever the server does.

    Attributes:
        policy: the delay table and jitter (the client configuration's back-off).
        healthy_after: seconds a link must stay up before the back-off starts over.
        failures: consecutive attempts without a healthy link (the retry number of the next
            delay).
        connected_at: when the link in use came up, or None.
    """

    policy: RetryPolicy
    healthy_after: float
    failures: int = 0
    connected_at: float | None = None

    def attempt_failed(self) -> None:
        """A connection attempt failed: the next delay is one step longer."""
        self.failures += 1

    def connected(self, now: float) -> None:
        """A link came up at `now` (the count stands until it proves healthy)."""
        self.connected_at = now

    def healthy(self, now: float) -> bool:
        """Whether the link in use has stayed up long enough to count as healthy."""
        return self.connected_at is not None and now - self.connected_at >= self.healthy_after

    def link_ended(self, now: float, *, drained: bool) -> bool:
        """The link in use ended at `now`: lost, or `drained` (GOAWAY, a corrupt downchannel).

        Returns:
            Whether the next attempt must first wait `delay()`. A healthy link that drains
            is replaced at once (make-before-break); any other end counts as a failure.
        """
        healthy = self.healthy(now)
        self.connected_at = None
        if healthy:
            self.failures = 0
            if drained:
                return False
        self.failures += 1
        return True

    def delay(self, draw: float) -> float:
        """The wait before the next attempt, for one random draw in [0, 1)."""
        return self.policy.delay(self.failures, draw)


def is_permanent(error: BaseException | None) -> bool:
    """Whether a failed connection attempt cannot succeed by retrying alone.

    A revoked refresh token (`ReauthorizationRequired`, LWA's invalid_grant), a wrong LWA
    client configuration (`ClientConfigError`), a CA file that cannot be loaded
    (`TrustStoreError`) and a server certificate the trust store rejects need the application
    (re-linking, a new configuration, a fixed clock or trust store). Network failures,
    timeouts and server errors are transient. The whole chain of causes is looked at, since
    each layer wraps the error below it.
    """
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(
            error,
            ReauthorizationRequired
            | ClientConfigError
            | TrustStoreError
            | ssl.SSLCertVerificationError,
        ):
            return True
        error = error.__cause__
    return False


# -- outcomes ------------------------------------------------------------------------------

# avs-protocol.md 4.1 and the SDK's status mapping ([R4][R5]).
_STATUS_OUTCOMES: Final = {
    200: EventOutcome.SUCCESS,
    204: EventOutcome.SUCCESS_NO_CONTENT,
    400: EventOutcome.BAD_REQUEST,
    403: EventOutcome.INVALID_AUTH,
    429: EventOutcome.THROTTLED,
    500: EventOutcome.SERVER_ERROR,
    503: EventOutcome.REFUSED,
}


def outcome_for_status(status: int) -> EventOutcome:
    """Map an event's HTTP response status to its outcome (avs-protocol.md 4.1).

    Other 2xx count as success (no content unless 200), other 4xx as BAD_REQUEST, other 5xx
    as SERVER_ERROR, and anything else (1xx, 3xx, nonsense) as PROTOCOL_ERROR.
    """
    known = _STATUS_OUTCOMES.get(status)
    if known is not None:
        return known
    if 200 <= status < 300:
        return EventOutcome.SUCCESS_NO_CONTENT
    if 400 <= status < 500:
        return EventOutcome.BAD_REQUEST
    if 500 <= status < 600:
        return EventOutcome.SERVER_ERROR
    return EventOutcome.PROTOCOL_ERROR


# One table says what an error means, for the event it stopped (its `EventOutcome`) and for the
# link it ended (its `ChangedReason`): the classes are checked in order, so a subclass comes
# before its base. Anything that is not listed (the audio source's OSError, a bug) is
# INTERNAL_ERROR on both sides.
_ERROR_MEANINGS: Final[tuple[tuple[type[BaseException], EventOutcome, ChangedReason], ...]] = (
    (AuthError, EventOutcome.INVALID_AUTH, ChangedReason.INVALID_AUTH),
    # Refused by GOAWAY, never processed: the manager resends such an event rather than
    # reporting it; if it must be reported, it is NOT_CONNECTED.
    (ConnectionDraining, EventOutcome.NOT_CONNECTED, ChangedReason.GOAWAY),
    (PingTimeout, EventOutcome.TIMEDOUT, ChangedReason.PING_TIMEOUT),
    (TimeoutException, EventOutcome.TIMEDOUT, ChangedReason.CONNECTION_TIMEDOUT),
    (ConnectionClosed, EventOutcome.CANCELED, ChangedReason.SERVER_SIDE_DISCONNECT),
    (NetworkError, EventOutcome.NOT_CONNECTED, ChangedReason.NETWORK_ERROR),
    (StreamReset, EventOutcome.PROTOCOL_ERROR, ChangedReason.SERVER_SIDE_DISCONNECT),
    (MultipartError, EventOutcome.PROTOCOL_ERROR, ChangedReason.PROTOCOL_ERROR),
    (RemoteProtocolError, EventOutcome.PROTOCOL_ERROR, ChangedReason.PROTOCOL_ERROR),
    (TransportError, EventOutcome.NOT_CONNECTED, ChangedReason.SERVER_SIDE_DISCONNECT),
)


def _meaning(error: BaseException) -> tuple[EventOutcome, ChangedReason]:
    for kind, outcome, reason in _ERROR_MEANINGS:
        if isinstance(error, kind):
            return outcome, reason
    return EventOutcome.INTERNAL_ERROR, ChangedReason.INTERNAL_ERROR


def outcome_for_error(exc: BaseException) -> EventOutcome:
    """Map what stopped an event (a transport, parse, token or local error) to its outcome."""
    return _meaning(exc)[0]


def reason_for_error(exc: BaseException) -> ChangedReason:
    """Map what ended a link (or a connect attempt) to the reason the application sees.

    A connection lost because a PING went unanswered is PING_TIMEOUT.
    """
    if isinstance(exc.__cause__, PingTimeout):
        return ChangedReason.PING_TIMEOUT
    return _meaning(exc)[1]


# How a failed event stands for the link it ran on, when that event was the link's first
# (SynchronizeState) and the link gave no reason of its own.
_OUTCOME_REASONS: Final = {
    EventOutcome.INVALID_AUTH: ChangedReason.INVALID_AUTH,
    EventOutcome.TIMEDOUT: ChangedReason.CONNECTION_TIMEDOUT,
    EventOutcome.NOT_CONNECTED: ChangedReason.NETWORK_ERROR,
    EventOutcome.CANCELED: ChangedReason.NETWORK_ERROR,
}


def reason_for_outcome(outcome: EventOutcome) -> ChangedReason:
    """Map the outcome of a connect attempt's SynchronizeState to the attempt's reason."""
    return _OUTCOME_REASONS.get(outcome, ChangedReason.SERVER_ERROR)


def reason_for_status(status: int, *, otherwise: ChangedReason) -> ChangedReason:
    """Map a non-2xx answer to a downchannel or a `GET /ping` to the link's reason.

    Args:
        status: the HTTP status.
        otherwise: the reason for anything but 403 (SERVER_ERROR for the downchannel,
            SERVER_SIDE_DISCONNECT for a ping: avs-protocol 1.4).
    """
    return ChangedReason.INVALID_AUTH if status == 403 else otherwise


def parse_exception_body(body: bytes) -> tuple[str | None, str | None]:
    """Read the AVS exception code and description from an error response body.

    Accepts the documented shape `{"header": ..., "payload": {"code": ..., "description":
    ...}}` and the legacy `{"error": {"code": ..., "message": ...}}` (avs-protocol.md 4.1);
    anything else (not JSON, not UTF-8, other shapes, non-string fields) gives None for what
    is missing. Only the first `MAX_EXCEPTION_BODY` bytes are looked at.

    Returns:
        (code, description), either may be None.
    """
    try:
        document = json.loads(bytes(body[:MAX_EXCEPTION_BODY]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None, None
    if not isinstance(document, dict):
        return None, None
    inner = document.get("payload")
    text_key = "description"
    if not isinstance(inner, dict):
        inner = document.get("error")
        text_key = "message"
    if not isinstance(inner, dict):
        return None, None
    code = inner.get("code")
    text = inner.get(text_key)
    return (
        code[:256] if isinstance(code, str) else None,
        text[:1024] if isinstance(text, str) else None,
    )
