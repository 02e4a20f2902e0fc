"""The one retry schedule: table lookup, the jitter rule, limits, and the three real tables."""

from __future__ import annotations

from collections import deque
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from avsclient._retry import NO_JITTER, RetryPolicy
from avsclient.auth.lwa import LWA_RETRY
from avsclient.config import DEFAULT_BACKOFF, DEFAULT_BACKOFF_JITTER
from avsclient.gateway.config import GATEWAY_RETRY

# The connection manager's reconnect schedule, as `avs.manager.ConnectionManager` builds it.
RECONNECT = RetryPolicy(delays=DEFAULT_BACKOFF, jitter=DEFAULT_BACKOFF_JITTER)

_DRAW = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)


def test_retry_n_waits_the_nth_entry_and_the_last_repeats() -> None:
    """Retry n waits delays[n - 1]; past the table the last entry repeats."""
    policy = RetryPolicy(delays=(0.25, 1.0, 3.0))
    assert [policy.next_delay(n, lambda: 0.5) for n in range(1, 6)] == [0.25, 1.0, 3.0, 3.0, 3.0]
    assert policy.nominal(0) == 0.25  # a retry number below 1 counts as the first


def test_max_retries_ends_the_schedule_without_drawing() -> None:
    """After max_retries, next_delay says None and leaves the random source alone."""
    draws: list[float] = []

    def random() -> float:
        draws.append(0.5)
        return 0.5

    policy = RetryPolicy(delays=(1.0, 2.0), max_retries=2)
    assert policy.next_delay(2, random) == 2.0
    assert policy.next_delay(3, random) is None
    assert len(draws) == 1
    assert not policy.allows(3)
    assert RetryPolicy(delays=(1.0,), max_retries=0).next_delay(1, random) is None
    assert RetryPolicy(delays=(1.0,)).allows(10**9)  # None: for ever


@given(
    delays=st.lists(st.floats(min_value=0, max_value=1e4), min_size=1, max_size=8),
    low=st.floats(min_value=0, max_value=3),
    spread=st.floats(min_value=0, max_value=3),
    retry=st.integers(min_value=-2, max_value=50),
    draw=st.floats(allow_nan=False),
)
def test_every_delay_lies_in_the_jitter_range(
    delays: list[float], low: float, spread: float, retry: int, draw: float
) -> None:
    """Whatever the table, range, retry number or draw (even outside [0, 1)), the delay is
    within [low x entry, high x entry]."""
    policy = RetryPolicy(delays=tuple(delays), jitter=(low, low + spread))
    entry = policy.nominal(retry)
    delay = policy.delay(retry, draw)
    assert low * entry * (1 - 1e-12) <= delay <= (low + spread) * entry * (1 + 1e-12)


def test_a_misbehaving_random_is_clamped() -> None:
    """Draws outside [0, 1) cannot push a delay outside the range (reconnects relied on this)."""
    policy = RetryPolicy(delays=(1.0,), jitter=(0.5, 2.0))
    assert policy.next_delay(1, lambda: 7.0) == 2.0
    assert policy.next_delay(1, lambda: -3.0) == 0.5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"delays": ()}, "delays"),
        ({"delays": (1.0, -1.0)}, "delays"),
        ({"delays": (float("inf"),)}, "delays"),
        ({"delays": (float("nan"),)}, "delays"),
        ({"delays": (1.0,), "jitter": (2.0, 1.0)}, "jitter"),
        ({"delays": (1.0,), "jitter": (-0.1, 1.0)}, "jitter"),
        ({"delays": (1.0,), "jitter": (1.0, float("inf"))}, "jitter"),
        ({"delays": (1.0,), "max_retries": -1}, "max_retries"),
    ],
)
def test_bad_policies_are_refused(kwargs: dict[str, object], match: str) -> None:
    """A policy checks its fields when built."""
    with pytest.raises(ValueError, match=match):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_exponential_builds_a_capped_doubling_table() -> None:
    """exponential(first, factor, cap) is a table that grows to the cap, then repeats it."""
    policy = RetryPolicy.exponential(1.0, cap=10.0, max_retries=5)
    assert policy.delays == (1.0, 2.0, 4.0, 8.0, 10.0)
    assert RetryPolicy.exponential(0.5, factor=3.0, cap=0.5).delays == (0.5,)
    with pytest.raises(ValueError, match="first"):
        RetryPolicy.exponential(0.0, cap=1.0)
    with pytest.raises(ValueError, match="cap"):
        RetryPolicy.exponential(1.0, cap=0.5)
    with pytest.raises(ValueError, match="factor"):
        RetryPolicy.exponential(1.0, factor=1.0, cap=2.0)


# -- the three schedules of avsclient --------------------------------------------------------


@given(draws=st.lists(_DRAW, max_size=40))
def test_reconnect_matches_the_connection_managers_backoff(draws: list[float]) -> None:
    """The reconnect schedule, draw for draw: entry n of
    0.25, 1, 3, 5, 10, 20 s (the last for ever) times a factor in [0.667, 1.5]."""
    source = deque(draws)
    for failures in range(1, len(draws) + 1):
        entry = DEFAULT_BACKOFF[min(failures - 1, len(DEFAULT_BACKOFF) - 1)]
        draw = source[0]
        delay = RECONNECT.next_delay(failures, source.popleft)
        assert delay == entry * (0.667 + (1.5 - 0.667) * draw)
    assert RECONNECT.allows(10**6)


@given(retry=st.integers(min_value=1, max_value=7), draw=_DRAW)
def test_lwa_schedule_is_the_sdk_table_plus_minus_half(retry: int, draw: float) -> None:
    """LWA: 0, 1, 2, 4, 10, 30, 60 s, each within +/-50 %, seven retries then give up."""
    entry = (0.0, 1.0, 2.0, 4.0, 10.0, 30.0, 60.0)[retry - 1]
    delay = LWA_RETRY.next_delay(retry, lambda: draw)
    assert delay is not None
    assert 0.5 * entry <= delay <= 1.5 * entry
    assert LWA_RETRY.next_delay(8, lambda: draw) is None


@given(retry=st.integers(min_value=1, max_value=3), draw=_DRAW)
def test_gateway_schedule_only_lengthens(retry: int, draw: float) -> None:
    """Gateway: 1, 2, 4 s, lengthened by at most 25 %, never shortened; three retries."""
    entry = (1.0, 2.0, 4.0)[retry - 1]
    delay = GATEWAY_RETRY.next_delay(retry, lambda: draw)
    assert delay is not None
    assert entry <= delay <= 1.25 * entry
    assert GATEWAY_RETRY.next_delay(4, lambda: draw) is None


def test_no_jitter_gives_the_table_exactly() -> None:
    """With NO_JITTER every delay is its table entry, whatever the draw."""
    policy = replace(LWA_RETRY, jitter=NO_JITTER, max_retries=None)
    assert [policy.delay(n, 0.9) for n in range(1, 10)] == [
        *LWA_RETRY.delays,
        60.0,
        60.0,
    ]
