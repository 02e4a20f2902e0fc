"""Fault injection for the local AVS simulator: `sim.faults`.

Faults either change how the next requests are answered (kept here as counters the server
consumes) or act at once on the live connections (through the server's `LiveConnections`).
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

__all__ = ["Faults", "LiveConnections"]

_FAIL_STATUSES = frozenset({400, 403, 429, 500, 503})


class LiveConnections(Protocol):
    """What the server lets `Faults` do to the connections that are open right now."""

    def goaway_all(self, error_code: int, close_after: float | None) -> int: ...

    def reset_downchannels(self, error_code: int) -> int: ...

    def drop_all(self) -> int: ...


class Faults:
    """Faults to inject, from tests or the command line.

    Methods acting on connections return how many they affected. The "next" faults are
    consumed by the requests that arrive after the call.
    """

    def __init__(self, live: LiveConnections) -> None:
        self._live = live
        self._fail_events: deque[list[int]] = deque()  # [remaining, status]
        self._fail_downchannels: deque[list[int]] = deque()
        self._malformed_multipart = 0
        self._malformed_json = 0
        self.ignoring_pings = False
        self.response_delay = 0.0
        self.offline = False

    # -- acting now ----------------------------------------------------------------------

    def goaway(self, *, error_code: int = 0, close_after: float | None = None) -> int:
        """Send GOAWAY on every open connection.

        Streams already open may finish (RFC 9113 6.8); new ones get RST_STREAM
        REFUSED_STREAM. The connection stays open for the client to close, or closes after
        `close_after` seconds.

        Args:
            error_code: the GOAWAY error code (0: NO_ERROR, a graceful shutdown).
            close_after: seconds after which the server closes the connection itself.
        """
        return self._live.goaway_all(error_code, close_after)

    def reset_downchannel(self, *, error_code: int = 2) -> int:
        """RST_STREAM every open downchannel (default error: INTERNAL_ERROR)."""
        return self._live.reset_downchannels(error_code)

    def drop_connections(self) -> int:
        """Abort every open TCP connection without GOAWAY (the peer sees a reset)."""
        return self._live.drop_all()

    def go_offline(self) -> int:
        """Be unreachable: abort every open connection and every new one until
        `go_online()` (the network is gone). Returns the connections aborted."""
        self.offline = True
        return self._live.drop_all()

    def go_online(self) -> None:
        """Accept connections again after `go_offline()`."""
        self.offline = False

    def ignore_pings(self, ignore: bool = True) -> None:
        """Stop (or resume) answering pings: HTTP/2 PING frames get no ACK, GET /ping no reply."""
        self.ignoring_pings = ignore

    # -- the next requests ---------------------------------------------------------------

    def fail_next_events(self, n: int = 1, *, status: int = 503) -> None:
        """Answer the next `n` events with `status` (400, 403, 429, 500 or 503) and the AVS
        JSON exception body, as soon as their headers arrive."""
        self._fail_events.append(_check_fail(n, status))

    def fail_next_downchannels(self, n: int = 1, *, status: int = 503) -> None:
        """Answer the next `n` downchannel requests with `status` and the AVS exception body."""
        self._fail_downchannels.append(_check_fail(n, status))

    def delay_responses(self, seconds: float) -> None:
        """Delay the start of every event and ping response by `seconds` (0 turns it off)."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        self.response_delay = float(seconds)

    def malformed_multipart_next(self, n: int = 1) -> None:
        """Break the multipart framing of the next `n` directive messages (pushed on the
        downchannel or sent in an event response): the delimiter after the part is invalid."""
        if n < 1:
            raise ValueError("n must be >= 1")
        self._malformed_multipart += n

    def malformed_directive_json_next(self, n: int = 1) -> None:
        """Send the next `n` directives as truncated, unparsable JSON."""
        if n < 1:
            raise ValueError("n must be >= 1")
        self._malformed_json += n

    def clear(self) -> None:
        """Cancel every pending "next" fault, the delay and ignored pings."""
        self._fail_events.clear()
        self._fail_downchannels.clear()
        self._malformed_multipart = self._malformed_json = 0
        self.ignoring_pings = False
        self.response_delay = 0.0

    # -- consumed by the server ----------------------------------------------------------

    def take_event_failure(self) -> int | None:
        """The status to fail this event with, or None (server use)."""
        return _take(self._fail_events)

    def take_downchannel_failure(self) -> int | None:
        """The status to fail this downchannel with, or None (server use)."""
        return _take(self._fail_downchannels)

    def take_malformed_multipart(self) -> bool:
        """True if this directive message must have broken framing (server use)."""
        if self._malformed_multipart:
            self._malformed_multipart -= 1
            return True
        return False

    def take_malformed_json(self) -> bool:
        """True if this directive must be sent as broken JSON (server use)."""
        if self._malformed_json:
            self._malformed_json -= 1
            return True
        return False


def _check_fail(n: int, status: int) -> list[int]:
    if n < 1:
        raise ValueError("n must be >= 1")
    if status not in _FAIL_STATUSES:
        raise ValueError(f"status must be one of {sorted(_FAIL_STATUSES)}")
    return [n, status]


def _take(queue: deque[list[int]]) -> int | None:
    if not queue:
        return None
    entry = queue[0]
    entry[0] -= 1
    if not entry[0]:
        queue.popleft()
    return entry[1]
