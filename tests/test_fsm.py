"""The one state-machine helper: table moves, actions, misuse, sticky errors, both policies."""

from __future__ import annotations

import enum

import pytest
from hypothesis import given
from hypothesis import strategies as st

from avsclient._fsm import StateMachine, Table
from avsclient.exceptions import LocalProtocolError, RemoteProtocolError, StateError


class S(enum.Enum):
    IDLE = "idle"
    BUSY = "busy"
    DONE = "done"
    ERROR = "error"


class In(enum.Enum):
    START = "start"
    FINISH = "finish"
    FAIL = "fail"
    CLOSE = "close"


class Act(enum.Enum):
    NONE = "none"
    RUN = "run"
    REPORT = "report"


TABLE: Table[S, In, Act] = {
    (S.IDLE, In.START): (Act.RUN, S.BUSY),
    (S.BUSY, In.FINISH): (Act.REPORT, S.DONE),
    (S.BUSY, In.FAIL): (Act.NONE, S.ERROR),
    # A broken machine may still be closed, and stays broken (like an HTTP/2 connection).
    (S.ERROR, In.CLOSE): (Act.NONE, S.ERROR),
}


def sticky() -> StateMachine[S, In, Act]:
    return StateMachine(TABLE, S.IDLE, name="Job", error_state=S.ERROR)


def lenient() -> StateMachine[S, In, Act]:
    return StateMachine(TABLE, S.IDLE, name="Job", error_state=None, misuse=StateError)


def test_feed_moves_along_the_table_and_returns_the_action() -> None:
    """Each listed pair moves to its next state and hands back its action."""
    machine = sticky()
    assert machine.accepts(In.START)
    assert not machine.accepts(In.FINISH)
    assert machine.feed(In.START) is Act.RUN
    assert machine.state is S.BUSY
    assert machine.feed(In.FINISH) is Act.REPORT
    assert machine.state is S.DONE
    assert machine.error is None
    assert "Job" in repr(machine) and "DONE" in repr(machine)


@given(st.sampled_from(S), st.sampled_from(In))
def test_sticky_machine_follows_the_table_or_breaks(state: S, event: In) -> None:
    """A listed pair moves; any other breaks the machine, and later misuse raises the same
    error again."""
    machine = sticky()
    machine.state = state
    if (state, event) in TABLE:
        assert machine.feed(event) is TABLE[(state, event)][0]
        assert machine.state is TABLE[(state, event)][1]
    else:
        with pytest.raises(LocalProtocolError, match=f"Job cannot handle {event.name}") as info:
            machine.feed(event)
        assert machine.state is S.ERROR
        assert machine.error is info.value
        with pytest.raises(LocalProtocolError) as again:
            machine.feed(In.START)
        assert again.value is info.value
        with pytest.raises(LocalProtocolError):
            machine.check()


@given(st.sampled_from(S), st.sampled_from(In))
def test_lenient_machine_follows_the_table_or_refuses(state: S, event: In) -> None:
    """Without an error state, a missing pair raises the misuse class and changes nothing."""
    machine = lenient()
    machine.state = state
    if (state, event) in TABLE:
        machine.feed(event)
        assert machine.state is TABLE[(state, event)][1]
    else:
        with pytest.raises(StateError, match=state.name):
            machine.feed(event)
        assert machine.state is state
        assert machine.error is None
    machine.check()  # never raises: nothing sticks


def test_fail_takes_a_transition_and_makes_the_error_sticky() -> None:
    """fail() records a final error that every later misuse raises, but listed pairs out of
    the error state still apply."""
    machine = sticky()
    machine.feed(In.START)
    final = RemoteProtocolError("the peer broke it")
    assert machine.fail(In.FAIL, final) is final
    assert machine.state is S.ERROR
    with pytest.raises(RemoteProtocolError) as info:
        machine.feed(In.START)
    assert info.value is final
    assert machine.feed(In.CLOSE) is Act.NONE  # listed: closing a broken machine is allowed
    with pytest.raises(RemoteProtocolError):
        machine.check()


def test_fail_on_a_missing_pair_is_misuse() -> None:
    """fail() with an input the table does not list breaks the machine like feed()."""
    machine = sticky()
    with pytest.raises(LocalProtocolError):
        machine.fail(In.FAIL, RemoteProtocolError("x"))
    assert machine.state is S.ERROR
    assert isinstance(machine.error, LocalProtocolError)


def test_misuse_error_is_not_chained_to_the_lookup() -> None:
    """The misuse error hides the internal KeyError."""
    with pytest.raises(LocalProtocolError) as info:
        sticky().feed(In.CLOSE)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
