"""The one table-driven state machine of avsclient: enum states and inputs, one table; no I/O.

Theory of operation
-------------------
A machine is a current `state` and a table `{(state, input): (action, next_state)}`, states
and inputs being members of two `enum.Enum` classes (h11 `_state.py`, h2
`H2ConnectionStateMachine`). `feed(input)` looks the pair up, moves to `next_state` and
returns `action`, the side effect the owner performs next: an `Action` enum member for a
machine whose owner dispatches on it (the connection lifecycle), or None in a table whose
transitions have no side effect of their own. The table is the whole truth: the owner never
assigns `state` itself, so reading the table tells every path the object can take.

A pair missing from the table is misuse (a bug in the driver, or a peer that broke the
protocol). What it does depends on the one choice a machine makes, `error_state`:

- A machine with an `error_state` (protocol objects: the LWA exchanges, an event-gateway
  delivery, an HTTP/2 connection) moves there, and the error is sticky: it is raised now
  and by every later `feed` of a pair the table does not list. A table may still list pairs
  out of the error state (an HTTP/2 connection lets `close()` through, leaving it broken).
  `fail(input, exc)` takes a listed transition into a terminal state and makes `exc` the
  sticky error, so a final failure (`invalid_grant`, an expired code pair) is raised again
  by every later call, like h11's ERROR state and multipart's `parser.error`.
- A machine without one (`error_state=None`: supervisors that must never stop, the
  connection manager's lifecycle and the speech recognizer) raises and keeps its state:
  the illegal input is reported and ignored, and the device goes on.

The misuse exception is `LocalProtocolError` unless the machine names another (the
recognizer raises `StateError`); its message names the machine, the input and the state.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Generic, TypeVar

from avsclient.exceptions import AVSError, LocalProtocolError

__all__ = ["StateMachine", "Table"]

S = TypeVar("S", bound=enum.Enum)
I = TypeVar("I", bound=enum.Enum)  # noqa: E741 - the table's own letters: state, input, action
A = TypeVar("A")

#: A transition table: (state, input) -> (action, next state).
Table = Mapping[tuple[S, I], tuple[A, S]]

_E = TypeVar("_E", bound=BaseException)


class StateMachine(Generic[S, I, A]):
    """A state and a transition table (see the module docstring).

    Args:
        table: `{(state, input): (action, next_state)}`; it is not copied, so build it once
            at module level.
        initial: the first state.
        name: the owner's name, for error messages ("TokenExchange").
        error_state: where misuse leaves the machine (errors then stick), or None to raise
            and keep the state.
        misuse: the exception class raised for a pair missing from the table.

    Attributes:
        state: the current state. Tests may set it to reach a state directly.
        error: the sticky error, or None.
    """

    __slots__ = ("_error_state", "_misuse", "_name", "_table", "error", "state")

    def __init__(
        self,
        table: Table[S, I, A],
        initial: S,
        *,
        name: str,
        error_state: S | None,
        misuse: type[AVSError] = LocalProtocolError,
    ) -> None:
        self._table = table
        self._name = name
        self._error_state = error_state
        self._misuse = misuse
        self.state = initial
        self.error: BaseException | None = None

    def __repr__(self) -> str:
        return f"<{self._name} machine in {self.state.name}>"

    def accepts(self, event: I) -> bool:
        """True if the table lists `event` in the current state."""
        return (self.state, event) in self._table

    def check(self) -> None:
        """Raise the sticky error, if there is one."""
        if self.error is not None:
            raise self.error

    def feed(self, event: I) -> A:
        """Apply `event`: move to the table's next state and return its action.

        Raises:
            LocalProtocolError: (or the `misuse` class) the pair is not in the table. With an
                `error_state` the machine moves there and the error sticks.
            BaseException: the sticky error, when a failed machine is fed a pair the table
                does not list.
        """
        try:
            action, self.state = self._table[(self.state, event)]
        except KeyError:
            self.check()
            error = self._misuse(
                f"{self._name} cannot handle {event.name} in state {self.state.name}"
            )
            if self._error_state is not None:
                self.state = self._error_state
                self.error = error
            raise error from None
        return action

    def fail(self, event: I, exc: _E) -> _E:
        """Apply `event` (a transition to a terminal state), then make `exc` sticky.

        Returns `exc`, so the caller writes `raise machine.fail(Input.FAIL, exc)`.

        Raises:
            LocalProtocolError: as `feed`, when the pair is not in the table.
        """
        self.feed(event)
        self.error = exc
        return exc
