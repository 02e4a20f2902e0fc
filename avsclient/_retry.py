"""The one retry schedule of avsclient: a delay table, a jitter range and a retry limit; no I/O.

Three callers share it, each with its own instance: the connection manager's reconnect
back-off (the AVS Device SDK's 0.25, 1, 3, 5, 10, 20 s, jittered to [0.667 x, 1.5 x], for
ever), Login with Amazon (0, 1, 2, 4, 10, 30, 60 s, +/-50 %, one pass through the table) and
the event gateway (1, 2, 4 s, lengthened by up to 25 %, three retries). One jitter rule
covers all three: each delay is its table entry times a factor drawn uniformly from
`[low, high]`. "+/-50 %" is `(0.5, 1.5)`, "only ever longer" is `(1.0, 1.25)`, no jitter is
`(1.0, 1.0)`.

A `RetryPolicy` is a frozen value: it keeps no count. The caller counts its failures (it
reports the count anyway, in its `RetryScheduled` events) and asks `next_delay(retry,
random)`, which never sleeps and never reads a clock, so tests pass a fixed `random` and
compare numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["NO_JITTER", "RetryPolicy"]

#: The jitter range that leaves every delay at its table entry.
NO_JITTER: tuple[float, float] = (1.0, 1.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """When to retry after a failure, and when to stop.

    Retry `n` (1-based: the retry after the n-th consecutive failure) waits `delays[n - 1]`,
    or the last entry once the table runs out, times a factor drawn from `jitter`.

    Attributes:
        delays: seconds before retry 1, 2, ...; the last entry repeats. Finite and >= 0.
        jitter: `(low, high)` with 0 <= low <= high: each delay is scaled by a factor drawn
            uniformly from [low, high].
        max_retries: how many retries follow the first attempt; None retries for ever.

    Raises:
        ValueError: an empty table, a negative or infinite delay, a bad jitter range, or a
            negative `max_retries`.
    """

    delays: tuple[float, ...]
    jitter: tuple[float, float] = NO_JITTER
    max_retries: int | None = None

    def __post_init__(self) -> None:
        if not self.delays or any(not (math.isfinite(d) and d >= 0) for d in self.delays):
            raise ValueError("delays must be a non-empty table of finite seconds >= 0")
        low, high = self.jitter
        if not (math.isfinite(low) and math.isfinite(high) and 0.0 <= low <= high):
            raise ValueError(f"jitter must be (low, high) with 0 <= low <= high, not {self.jitter}")
        if self.max_retries is not None and self.max_retries < 0:
            raise ValueError("max_retries must be >= 0 or None")

    @classmethod
    def exponential(
        cls,
        first: float,
        *,
        factor: float = 2.0,
        cap: float,
        jitter: tuple[float, float] = NO_JITTER,
        max_retries: int | None = None,
    ) -> RetryPolicy:
        """A policy whose table starts at `first` and grows by `factor` up to `cap`.

        The table ends at the first entry that reaches `cap` (that entry is `cap`), which
        then repeats like the last entry of any table.

        Raises:
            ValueError: `first` <= 0, `factor` <= 1, or `cap` < `first`.
        """
        if not (math.isfinite(first) and first > 0):
            raise ValueError("first must be a finite delay > 0")
        if not (math.isfinite(factor) and factor > 1.0):
            raise ValueError("factor must be > 1")
        if not (math.isfinite(cap) and cap >= first):
            raise ValueError("cap must be a finite delay >= first")
        table = [first]
        while table[-1] < cap:
            table.append(min(table[-1] * factor, cap))
        return cls(delays=tuple(table), jitter=jitter, max_retries=max_retries)

    def nominal(self, retry: int) -> float:
        """The table entry for retry number `retry` (1-based), before jitter."""
        return self.delays[min(max(retry, 1), len(self.delays)) - 1]

    def delay(self, retry: int, draw: float) -> float:
        """The wait before retry number `retry`, for one random draw; ignores `max_retries`.

        Args:
            retry: 1 for the first retry; values below 1 count as 1.
            draw: a number in [0, 1) from the caller's random source. Values outside are
                clamped, so a misbehaving source cannot leave the jitter range.

        Returns:
            Seconds, within `[low x entry, high x entry]`.
        """
        low, high = self.jitter
        draw = min(max(draw, 0.0), 1.0)
        return self.nominal(retry) * (low + (high - low) * draw)

    def allows(self, retry: int) -> bool:
        """True when retry number `retry` (1-based) may still be made."""
        return self.max_retries is None or retry <= self.max_retries

    def next_delay(self, retry: int, random: Callable[[], float]) -> float | None:
        """The wait before retry number `retry`, or None when the policy allows no more.

        Draws from `random` only when a retry is allowed.

        Args:
            retry: 1 after the first failure, 2 after the second consecutive one, ...
            random: returns a float in [0, 1) (`random.random`, or a fixed value in tests).

        Returns:
            Seconds to wait, or None: give up.
        """
        if not self.allows(retry):
            return None
        return self.delay(retry, random())
