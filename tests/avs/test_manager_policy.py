"""The connection manager's sans-IO rules: state table, back-off, outcomes, exception bodies."""

from __future__ import annotations

import json
from collections import deque

import pytest
from hypothesis import given
from hypothesis import strategies as st

from avsclient._retry import RetryPolicy
from avsclient.avs.manager import ConnectionManager
from avsclient.avs.policy import (
    LIFECYCLE_TRANSITIONS,
    MAX_EXCEPTION_BODY,
    STATUS_OF,
    Action,
    ChangedReason,
    ConnectionStatus,
    EventOutcome,
    LifecycleInput,
    LifecycleMachine,
    LifecycleState,
    LivenessCheck,
    next_check,
    outcome_for_error,
    outcome_for_status,
    parse_exception_body,
    ping_due_in,
    reason_for_error,
    reason_for_outcome,
    reason_for_status,
)
from avsclient.config import ClientConfig
from avsclient.exceptions import (
    AuthError,
    ConnectError,
    ConnectionClosed,
    ConnectionDraining,
    ConnectionLost,
    LocalProtocolError,
    ParserError,
    PingTimeout,
    RemoteProtocolError,
    ResponseTimeout,
    StreamInactivityTimeout,
    StreamReset,
    TransportError,
)

SDK_TABLE = (0.25, 1.0, 3.0, 5.0, 10.0, 20.0)

# -- back-off --------------------------------------------------------------------------------


RECONNECT = RetryPolicy(delays=SDK_TABLE, jitter=(0.667, 1.5))


def test_backoff_follows_the_table_and_repeats_the_last_entry() -> None:
    """With the draw at the middle of [0.667, 1.5] each delay is its entry times 1.0835."""
    factor = 0.667 + 0.833 * 0.4
    draws: list[float] = []

    def random() -> float:
        draws.append(0.4)
        return 0.4

    delays = [RECONNECT.next_delay(failures, random) for failures in range(1, 10)]
    expected = [*SDK_TABLE, 20.0, 20.0, 20.0]
    assert delays == pytest.approx([e * factor for e in expected])
    assert len(draws) == 9


def test_the_managers_schedule_is_the_configured_table() -> None:
    """The manager builds its reconnect schedule from `backoff` and `backoff_jitter`."""
    config = ClientConfig(backoff=SDK_TABLE, backoff_jitter=(0.667, 1.5))
    manager = ConnectionManager(config, None, None, context=list)  # type: ignore[arg-type]
    assert manager._reconnect == RECONNECT
    assert manager._schedule.policy == RECONNECT
    assert manager._schedule.failures == 0
    assert manager._schedule.healthy_after == config.healthy_after


def test_backoff_extremes_of_the_draw() -> None:
    """A draw of 0 gives 0.667 x, a draw just under 1 gives almost 1.5 x."""
    assert RECONNECT.next_delay(1, lambda: 0.0) == pytest.approx(0.25 * 0.667)
    assert RECONNECT.next_delay(1, lambda: 0.999999) == pytest.approx(0.25 * 1.5, rel=1e-5)


def test_backoff_reset_starts_over() -> None:
    """After a success the count starts again at 1, so the next wait is the first entry."""
    policy = RetryPolicy(delays=SDK_TABLE)
    assert [policy.next_delay(n, lambda: 0.5) for n in (1, 2, 3)] == [0.25, 1.0, 3.0]
    assert policy.next_delay(1, lambda: 0.5) == 0.25


def test_backoff_clamps_a_misbehaving_random() -> None:
    """A random source outside [0, 1) cannot push a delay outside the jitter range."""
    policy = RetryPolicy(delays=(1.0,), jitter=(0.5, 2.0))
    assert policy.next_delay(1, lambda: 7.0) == 2.0
    assert policy.next_delay(1, lambda: -3.0) == 0.5


@given(
    draws=st.lists(st.floats(min_value=0.0, max_value=1.0, exclude_max=True), max_size=40),
)
def test_every_draw_lies_in_the_jitter_range(draws: list[float]) -> None:
    """Each delay is within [0.667 x, 1.5 x] of its table entry, whatever the draws."""
    source = deque(draws)
    for index in range(len(draws)):
        entry = SDK_TABLE[min(index, len(SDK_TABLE) - 1)]
        delay = RECONNECT.next_delay(index + 1, source.popleft)
        assert delay is not None
        assert 0.667 * entry - 1e-9 <= delay <= 1.5 * entry + 1e-9


def test_backoff_rejects_bad_tables() -> None:
    with pytest.raises(ValueError, match="delays"):
        RetryPolicy(delays=())
    with pytest.raises(ValueError, match="delays"):
        RetryPolicy(delays=(1.0, -1.0))
    with pytest.raises(ValueError, match="backoff"):
        ClientConfig(backoff=())
    with pytest.raises(ValueError, match="backoff"):
        ClientConfig(backoff=(1.0, -1.0))
    with pytest.raises(ValueError, match="backoff_jitter"):
        ClientConfig(backoff_jitter=(0.0, 1.0))


def test_ping_due_in() -> None:
    assert ping_due_in(100.0, 100.0, 300.0) == 300.0
    assert ping_due_in(100.0, 350.0, 300.0) == 50.0
    assert ping_due_in(100.0, 500.0, 300.0) == 0.0


def test_liveness_defaults_find_a_dead_link_within_30_s() -> None:
    """With the defaults (PING frame after 15 s without a byte, 5 s to answer) the first
    check of a link that went silent at t=0 is a PING frame at 15 s, long before GET /ping."""
    config = ClientConfig()
    assert config.liveness_interval is not None
    check, delay = next_check(
        0.0,
        received_at=0.0,
        active_at=0.0,
        frame_interval=config.liveness_interval,
        ping_interval=config.ping_interval,
    )
    assert (check, delay) == (LivenessCheck.WAIT, 15.0)
    check, delay = next_check(
        15.0,
        received_at=0.0,
        active_at=0.0,
        frame_interval=config.liveness_interval,
        ping_interval=config.ping_interval,
    )
    assert (check, delay) == (LivenessCheck.PING_FRAME, 0.0)
    assert config.liveness_interval + config.liveness_timeout <= 30.0


def test_liveness_schedule_cases() -> None:
    """GET /ping wins when it is due or asked for; PING frames follow received bytes only."""
    kw = {"frame_interval": 15.0, "ping_interval": 300.0}
    assert next_check(10.0, received_at=0.0, active_at=0.0, **kw) == (LivenessCheck.WAIT, 5.0)
    assert next_check(300.0, received_at=299.0, active_at=0.0, **kw) == (
        LivenessCheck.AVS_PING,
        0.0,
    )
    assert next_check(1.0, received_at=0.0, active_at=0.0, ping_asked=True, **kw) == (
        LivenessCheck.AVS_PING,
        0.0,
    )
    # A PING acknowledgement moves received_at, not active_at: GET /ping still comes.
    assert next_check(295.0, received_at=290.0, active_at=0.0, **kw) == (LivenessCheck.WAIT, 5.0)
    assert next_check(
        20.0, received_at=0.0, active_at=0.0, frame_interval=None, ping_interval=300.0
    ) == (LivenessCheck.WAIT, 280.0)


@given(
    st.floats(0, 1e6),
    st.floats(0, 1e6),
    st.floats(0, 1e6),
    st.none() | st.floats(0.001, 1e4),
    st.floats(0.001, 1e4),
    st.booleans(),
)
def test_liveness_schedule_never_waits_past_a_due_check(
    now: float,
    received: float,
    active: float,
    frame: float | None,
    ping: float,
    asked: bool,
) -> None:
    """Whatever the clock, a check is due now or the wait ends no later than the next one."""
    check, delay = next_check(
        now,
        received_at=received,
        active_at=active,
        frame_interval=frame,
        ping_interval=ping,
        ping_asked=asked,
    )
    assert delay >= 0
    if check is not LivenessCheck.WAIT:
        assert delay == 0
        return
    assert not asked
    assert delay <= ping_due_in(active, now, ping) and delay > 0
    if frame is not None:
        assert delay <= ping_due_in(received, now, frame)


# -- the state table -------------------------------------------------------------------------


@given(st.sampled_from(LifecycleState), st.sampled_from(LifecycleInput))
def test_every_state_input_pair_is_a_transition_or_a_clean_error(
    state: LifecycleState, event: LifecycleInput
) -> None:
    """Pairs in the table move to a valid state; others raise and change nothing."""
    machine = LifecycleMachine()
    machine.state = state
    if (state, event) in LIFECYCLE_TRANSITIONS:
        assert machine.accepts(event)
        action = machine.feed(event)
        assert (action, machine.state) == LIFECYCLE_TRANSITIONS[(state, event)]
        assert isinstance(machine.status, ConnectionStatus)
    else:
        assert not machine.accepts(event)
        with pytest.raises(LocalProtocolError, match=event.name):
            machine.feed(event)
        assert machine.state is state


def test_connected_is_reached_only_through_a_successful_attempt() -> None:
    """Status CONNECTED starts only with ATTEMPT_SUCCEEDED (SynchronizeState accepted)."""
    for (state, event), (_action, target) in LIFECYCLE_TRANSITIONS.items():
        if STATUS_OF[target] is ConnectionStatus.CONNECTED and (
            STATUS_OF[state] is not ConnectionStatus.CONNECTED
        ):
            assert event is LifecycleInput.ATTEMPT_SUCCEEDED


def test_no_live_state_can_get_stuck() -> None:
    """From every state but CLOSED, CONNECTED is reachable; every live state can close; the
    states that wait for work have an exit for each way that work ends."""
    live = [s for s in LifecycleState if s is not LifecycleState.CLOSED]
    for start in live:
        seen, frontier = {start}, [start]
        while frontier:
            state = frontier.pop()
            for (source, _event), (_action, target) in LIFECYCLE_TRANSITIONS.items():
                if source is state and target not in seen:
                    seen.add(target)
                    frontier.append(target)
        assert LifecycleState.CONNECTED in seen, start
        assert LIFECYCLE_TRANSITIONS[(start, LifecycleInput.CLOSE)] == (
            Action.SHUT_DOWN,
            LifecycleState.CLOSED,
        )
    for attempting in (LifecycleState.CONNECTING, LifecycleState.REPLACING):
        assert (attempting, LifecycleInput.ATTEMPT_FAILED) in LIFECYCLE_TRANSITIONS
        assert (attempting, LifecycleInput.ATTEMPT_SUCCEEDED) in LIFECYCLE_TRANSITIONS
        assert (attempting, LifecycleInput.DRAIN) in LIFECYCLE_TRANSITIONS
    assert (
        LIFECYCLE_TRANSITIONS[(LifecycleState.WAITING, LifecycleInput.RETRY)][1]
        is LifecycleState.CONNECTING
    )
    assert LIFECYCLE_TRANSITIONS[(LifecycleState.CONNECTED, LifecycleInput.LINK_LOST)] == (
        Action.SCHEDULE_RETRY,
        LifecycleState.WAITING,
    )
    # A failed attempt always schedules a retry: nothing ends in a state without a timer.
    for (source, event), (action, _target) in LIFECYCLE_TRANSITIONS.items():
        if event is LifecycleInput.ATTEMPT_FAILED and source is not LifecycleState.CLOSED:
            assert action is Action.SCHEDULE_RETRY


def test_make_before_break_keeps_connected_while_replacing() -> None:
    machine = LifecycleMachine()
    assert machine.feed(LifecycleInput.START) is Action.CONNECT
    assert machine.feed(LifecycleInput.ATTEMPT_SUCCEEDED) is Action.RESET_BACKOFF
    assert machine.feed(LifecycleInput.DRAIN) is Action.CONNECT
    assert machine.state is LifecycleState.REPLACING
    assert machine.status is ConnectionStatus.CONNECTED
    assert machine.feed(LifecycleInput.LINK_LOST) is Action.NONE  # the old link died first
    assert machine.status is ConnectionStatus.PENDING
    assert machine.feed(LifecycleInput.ATTEMPT_SUCCEEDED) is Action.RESET_BACKOFF
    assert machine.status is ConnectionStatus.CONNECTED


@given(st.lists(st.sampled_from(LifecycleInput), max_size=30))
def test_closed_absorbs_everything(events: list[LifecycleInput]) -> None:
    machine = LifecycleMachine()
    machine.feed(LifecycleInput.CLOSE)
    for event in events:
        assert machine.feed(event) is Action.NONE
        assert machine.status is ConnectionStatus.DISCONNECTED


# -- outcomes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, EventOutcome.SUCCESS),
        (204, EventOutcome.SUCCESS_NO_CONTENT),
        (202, EventOutcome.SUCCESS_NO_CONTENT),
        (400, EventOutcome.BAD_REQUEST),
        (404, EventOutcome.BAD_REQUEST),
        (403, EventOutcome.INVALID_AUTH),
        (429, EventOutcome.THROTTLED),
        (500, EventOutcome.SERVER_ERROR),
        (502, EventOutcome.SERVER_ERROR),
        (503, EventOutcome.REFUSED),
        (301, EventOutcome.PROTOCOL_ERROR),
        (100, EventOutcome.PROTOCOL_ERROR),
        (999, EventOutcome.PROTOCOL_ERROR),
    ],
)
def test_status_outcomes(status: int, outcome: EventOutcome) -> None:
    """avs-protocol.md 4.1 and the SDK's mapping."""
    assert outcome_for_status(status) is outcome


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (ResponseTimeout("t"), EventOutcome.TIMEDOUT),
        (StreamInactivityTimeout("t"), EventOutcome.TIMEDOUT),
        (PingTimeout("t"), EventOutcome.TIMEDOUT),
        (ConnectionClosed("c"), EventOutcome.CANCELED),
        (ConnectionLost("l"), EventOutcome.NOT_CONNECTED),
        (ConnectError("e"), EventOutcome.NOT_CONNECTED),
        (ConnectionDraining("d"), EventOutcome.NOT_CONNECTED),
        (StreamReset("r", stream_id=1, error_code=2), EventOutcome.PROTOCOL_ERROR),
        (ParserError("p"), EventOutcome.PROTOCOL_ERROR),
        (RemoteProtocolError("p"), EventOutcome.PROTOCOL_ERROR),
        (TransportError("t"), EventOutcome.NOT_CONNECTED),
        (OSError("mic"), EventOutcome.INTERNAL_ERROR),
    ],
)
def test_error_outcomes(error: BaseException, outcome: EventOutcome) -> None:
    assert outcome_for_error(error) is outcome


def _lost_to_ping() -> ConnectionLost:
    error = ConnectionLost("no answer")
    error.__cause__ = PingTimeout("t")
    return error


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (AuthError("no token"), ChangedReason.INVALID_AUTH),
        (ConnectionDraining("d"), ChangedReason.GOAWAY),
        (PingTimeout("t"), ChangedReason.PING_TIMEOUT),
        (_lost_to_ping(), ChangedReason.PING_TIMEOUT),
        (ResponseTimeout("t"), ChangedReason.CONNECTION_TIMEDOUT),
        (ConnectError("e"), ChangedReason.NETWORK_ERROR),
        (ConnectionLost("l"), ChangedReason.NETWORK_ERROR),
        (ParserError("p"), ChangedReason.PROTOCOL_ERROR),
        (RemoteProtocolError("p"), ChangedReason.PROTOCOL_ERROR),
        (ConnectionClosed("c"), ChangedReason.SERVER_SIDE_DISCONNECT),
        (StreamReset("r", stream_id=1, error_code=2), ChangedReason.SERVER_SIDE_DISCONNECT),
        (TransportError("t"), ChangedReason.SERVER_SIDE_DISCONNECT),
        (OSError("bug"), ChangedReason.INTERNAL_ERROR),
    ],
)
def test_error_reasons(error: BaseException, reason: ChangedReason) -> None:
    """One table maps an error to the reason a link ended with it."""
    assert reason_for_error(error) is reason


def test_outcome_and_status_reasons() -> None:
    assert reason_for_outcome(EventOutcome.INVALID_AUTH) is ChangedReason.INVALID_AUTH
    assert reason_for_outcome(EventOutcome.TIMEDOUT) is ChangedReason.CONNECTION_TIMEDOUT
    assert reason_for_outcome(EventOutcome.NOT_CONNECTED) is ChangedReason.NETWORK_ERROR
    assert reason_for_outcome(EventOutcome.CANCELED) is ChangedReason.NETWORK_ERROR
    assert reason_for_outcome(EventOutcome.THROTTLED) is ChangedReason.SERVER_ERROR
    assert reason_for_status(403, otherwise=ChangedReason.SERVER_ERROR) is (
        ChangedReason.INVALID_AUTH
    )
    assert reason_for_status(500, otherwise=ChangedReason.SERVER_ERROR) is (
        ChangedReason.SERVER_ERROR
    )
    assert reason_for_status(404, otherwise=ChangedReason.SERVER_SIDE_DISCONNECT) is (
        ChangedReason.SERVER_SIDE_DISCONNECT
    )


_ERRORS = (
    AuthError("a"),
    ConnectionDraining("d"),
    PingTimeout("p"),
    ResponseTimeout("r"),
    ConnectionLost("l"),
    ParserError("p"),
    RemoteProtocolError("r"),
    ConnectionClosed("c"),
    TransportError("t"),
    OSError("o"),
)


@given(st.sampled_from(_ERRORS))
def test_outcome_and_reason_come_from_the_same_row(error: BaseException) -> None:
    """An error the link's reason calls a timeout is a TIMEDOUT event, and so on."""
    outcome, reason = outcome_for_error(error), reason_for_error(error)
    if reason in (ChangedReason.PING_TIMEOUT, ChangedReason.CONNECTION_TIMEDOUT):
        assert outcome is EventOutcome.TIMEDOUT
    if reason is ChangedReason.INTERNAL_ERROR:
        assert outcome is EventOutcome.INTERNAL_ERROR


# -- exception bodies ------------------------------------------------------------------------


def test_documented_exception_body() -> None:
    body = json.dumps(
        {
            "header": {"namespace": "System", "name": "Exception", "messageId": "m"},
            "payload": {"code": "THROTTLING_EXCEPTION", "description": "slow down"},
        }
    ).encode()
    assert parse_exception_body(body) == ("THROTTLING_EXCEPTION", "slow down")


def test_null_description_and_legacy_shape() -> None:
    """description may be null; the v1 API's {"error": {...}} is read too (avs-protocol 4.1)."""
    assert parse_exception_body(b'{"payload": {"code": "N/A", "description": null}}') == (
        "N/A",
        None,
    )
    legacy = b'{"error": {"code": "InvalidAccessTokenException", "message": "expired"}}'
    assert parse_exception_body(legacy) == ("InvalidAccessTokenException", "expired")


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"\xff\xfe", b"[1, 2]", b'{"payload": 3}', b'{"payload": {"code": 7}}'],
)
def test_malformed_exception_bodies_give_nothing(body: bytes) -> None:
    code, description = parse_exception_body(body)
    assert code is None
    assert description is None


def test_only_the_first_4096_bytes_are_read() -> None:
    """A body cut at MAX_EXCEPTION_BODY no longer parses: nothing past it is looked at."""
    padding = " " * MAX_EXCEPTION_BODY
    assert parse_exception_body(f'{{"payload": {{"code": "X"}}}}{padding}'.encode()) == ("X", None)
    assert parse_exception_body(f'{padding}{{"payload": {{"code": "X"}}}}'.encode()) == (
        None,
        None,
    )


@given(st.binary(max_size=5000))
def test_any_bytes_parse_without_raising(body: bytes) -> None:
    code, description = parse_exception_body(body)
    assert code is None or isinstance(code, str)
    assert description is None or isinstance(description, str)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["payload", "error", "code", "description", "message"]),
            inner,
            max_size=3,
        )
    ),
)


@given(JSON)
def test_any_json_shape_parses_without_raising(document: object) -> None:
    code, description = parse_exception_body(json.dumps(document).encode())
    assert code is None or isinstance(code, str)
    assert description is None or isinstance(description, str)
