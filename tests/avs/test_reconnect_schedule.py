"""The reconnect schedule and the permanent-failure rule (sans-IO): a link must prove healthy
before the back-off starts over, and only failures retrying cannot mend stop the retries."""

from __future__ import annotations

import ssl

from avsclient._retry import RetryPolicy
from avsclient.avs.policy import (
    LIFECYCLE_TRANSITIONS,
    Action,
    ChangedReason,
    ConnectionStatus,
    LifecycleInput,
    LifecycleMachine,
    LifecycleState,
    ReconnectSchedule,
    is_permanent,
)
from avsclient.avs.tokens import AttemptFailed
from avsclient.exceptions import (
    AuthError,
    ClientConfigError,
    ConnectError,
    ConnectTimeout,
    ReauthorizationRequired,
)

TABLE = RetryPolicy(delays=(1.0, 2.0, 4.0))


def schedule() -> ReconnectSchedule:
    return ReconnectSchedule(policy=TABLE, healthy_after=10.0)


def test_a_link_that_ends_before_proving_healthy_counts_as_a_failure() -> None:
    """GOAWAY 0.1 s after each connect: the waits climb the table instead of starting over."""
    plan = schedule()
    waits = []
    now = 0.0
    for _ in range(5):
        plan.connected(now)
        now += 0.1
        assert plan.link_ended(now, drained=True)
        waits.append(plan.delay(0.0))
        now += waits[-1]
    assert waits == [1.0, 2.0, 4.0, 4.0, 4.0]


def test_a_healthy_link_starts_the_back_off_over() -> None:
    """A link that stayed up `healthy_after`: lost, the next wait is the first entry; drained
    (GOAWAY), it is replaced at once."""
    plan = schedule()
    for _ in range(3):
        plan.attempt_failed()
    plan.connected(100.0)
    assert not plan.healthy(109.9)
    assert plan.healthy(110.0)
    assert plan.link_ended(110.0, drained=False)
    assert plan.delay(0.0) == 1.0
    plan.connected(200.0)
    assert not plan.link_ended(250.0, drained=True)
    assert plan.failures == 0


def test_failed_attempts_climb_the_table() -> None:
    plan = schedule()
    delays = []
    for _ in range(4):
        plan.attempt_failed()
        delays.append(plan.delay(0.0))
    assert delays == [1.0, 2.0, 4.0, 4.0]


def _attempt_failed(cause: BaseException) -> AttemptFailed:
    try:
        try:
            raise cause
        except BaseException as exc:
            raise AttemptFailed(ChangedReason.NETWORK_ERROR, str(exc)) from exc
    except AttemptFailed as failed:
        return failed


def test_permanent_failures_are_told_apart_from_transient_ones() -> None:
    """Revoked refresh token, wrong LWA client configuration, rejected certificate: permanent
    wherever they sit in the chain of causes; timeouts, other auth and network errors: not."""
    rejected = ConnectError("the certificate was rejected")
    rejected.__cause__ = ssl.SSLCertVerificationError("certificate verify failed")
    assert is_permanent(_attempt_failed(rejected))
    assert is_permanent(_attempt_failed(ReauthorizationRequired("invalid_grant")))
    assert is_permanent(_attempt_failed(ClientConfigError("invalid_client")))
    assert not is_permanent(_attempt_failed(ConnectError("refused")))
    assert not is_permanent(_attempt_failed(ConnectTimeout("slow")))
    assert not is_permanent(_attempt_failed(AuthError("LWA answered 500")))
    assert not is_permanent(None)


def test_a_permanent_failure_holds_until_woken() -> None:
    """FAILED has no timer: only wake() (RETRY), a new endpoint (DRAIN) or close leave it."""
    machine = LifecycleMachine()
    machine.feed(LifecycleInput.START)
    assert machine.feed(LifecycleInput.PERMANENT_FAILURE) is Action.HOLD
    assert machine.status is ConnectionStatus.DISCONNECTED
    leaving = {event for (state, event) in LIFECYCLE_TRANSITIONS if state is LifecycleState.FAILED}
    assert leaving == {LifecycleInput.RETRY, LifecycleInput.DRAIN, LifecycleInput.CLOSE}
    assert machine.feed(LifecycleInput.RETRY) is Action.CONNECT
    assert machine.state is LifecycleState.CONNECTING
