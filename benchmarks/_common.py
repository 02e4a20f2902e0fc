"""Shared helpers for the benchmark scripts: median-of-runs timing and markdown tables.

Timing is never asserted in the test suite (the machine is shared and noisy); the scripts in
this directory print medians and ratios instead, and say PASS or FAIL against their targets.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["Timing", "markdown_table", "measure", "measure_interleaved"]


@dataclass(frozen=True, slots=True)
class Timing:
    """Seconds per call of a measured function.

    Attributes:
        median: the median over the runs of (run time / calls in the run).
        best: the fastest run, per call.
        runs: how many timed runs there were.
        loops: calls per run (chosen so that one run lasts at least `min_time`).
    """

    median: float
    best: float
    runs: int
    loops: int


def measure(fn: Callable[[], object], *, runs: int = 7, min_time: float = 0.1) -> Timing:
    """Time `fn()`: one warm-up call, then `runs` runs of `loops` calls each.

    A run repeats the call until it has lasted at least `min_time` seconds (the loop count is
    chosen from the warm-up call), so that short workloads are not lost in timer noise. The
    garbage collector stays enabled, as it would be in an application, but is emptied before
    every run so that earlier runs' garbage is not charged to later ones.

    Args:
        fn: the work to time; its return value is ignored.
        runs: timed runs (the median is taken over them).
        min_time: seconds each run should last at least.

    Returns:
        The median and best time per call.
    """
    gc.collect()
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    loops = max(1, math.ceil(min_time / once))
    per_call: list[float] = []
    for _ in range(runs):
        gc.collect()
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        per_call.append((time.perf_counter() - start) / loops)
    return Timing(statistics.median(per_call), min(per_call), runs, loops)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Format rows as a GitHub markdown table, columns padded to line up in a terminal.

    The first column is left-aligned, the others right-aligned (they hold numbers).
    """
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join("-" * (w + 1) + ":" if i else ":" + "-" * (w + 1) for i, w in enumerate(widths))
        + "|"
    )
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def measure_interleaved(
    fns: Mapping[str, Callable[[], object]], *, runs: int = 7, min_time: float = 0.1
) -> dict[str, Timing]:
    """Time several functions like `measure`, taking their runs in turn.

    Run 1 of every function, then run 2 of every function, and so on: on a shared machine a
    slow spell then costs every contender a run, instead of all the runs of one of them.

    Args:
        fns: the work to time, by name; return values are ignored.
        runs: timed runs per function (the median is taken over them).
        min_time: seconds each run should last at least.

    Returns:
        The median and best time per call, by name.
    """
    loops: dict[str, int] = {}
    for name, fn in fns.items():
        gc.collect()
        start = time.perf_counter()
        fn()
        once = max(time.perf_counter() - start, 1e-7)
        loops[name] = max(1, math.ceil(min_time / once))
    per_call: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            count = loops[name]
            gc.collect()
            start = time.perf_counter()
            for _ in range(count):
                fn()
            per_call[name].append((time.perf_counter() - start) / count)
    return {
        name: Timing(statistics.median(times), min(times), runs, loops[name])
        for name, times in per_call.items()
    }
