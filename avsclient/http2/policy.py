"""The reconnect back-off schedule (no I/O): table entries in order, the last repeating.

Used by the AVS session (`avsclient.avs.manager`) to pace reconnects; it holds no AVS
knowledge, only delays and jitter fed random draws.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

__all__ = ["Backoff"]


# -- back-off ------------------------------------------------------------------------------


class Backoff:
    """The reconnect delay schedule: table entries in order, the last repeating, each jittered.

    Args:
        table: the delays; the AVS Device SDK uses 0.25, 1, 3, 5, 10, 20 s.
        jitter: (low, high): each delay is `entry * uniform(low, high)`.
        random: returns a float in [0, 1) (injected so tests can pin the draws).

    Raises:
        ValueError: an empty table, a negative delay, or jitter outside 0 < low <= high.
    """

    __slots__ = ("_high", "_low", "_random", "_table", "attempt")

    def __init__(
        self,
        table: Sequence[float],
        jitter: tuple[float, float],
        random: Callable[[], float],
    ) -> None:
        if not table or any(not (math.isfinite(d) and d >= 0) for d in table):
            raise ValueError("the back-off table needs at least one delay, all >= 0")
        low, high = jitter
        if not (0 < low <= high):
            raise ValueError("jitter must be (low, high) with 0 < low <= high")
        self._table = tuple(table)
        self._low = low
        self._high = high
        self._random = random
        self.attempt = 0  # failed attempts since the last success

    def next_delay(self) -> float:
        """Return the delay before the next attempt and count one more failure."""
        entry = self._table[min(self.attempt, len(self._table) - 1)]
        self.attempt += 1
        draw = min(max(self._random(), 0.0), 1.0)
        return entry * (self._low + (self._high - self._low) * draw)

    def reset(self) -> None:
        """A connect succeeded: the next failure waits the first table entry again."""
        self.attempt = 0
