"""Import cost: `import avsclient` against `import h2.connection`, each in a fresh interpreter.

Run it with::

    .venv/bin/python benchmarks/bench_import.py             # the full run, about 20 seconds
    .venv/bin/python benchmarks/bench_import.py --quick     # a smoke run, a few seconds

Every measurement is a new `python -c` process that reads `time.perf_counter()` right before
and right after the one import statement, so interpreter start-up is not counted and nothing
is cached in memory between runs (the OS file cache stays warm, as it is for a device that
runs the same program again). The statements take their runs in turn, round after round, so
that a slow spell on a shared machine costs each of them a run; the figures are medians.

Target: `import avsclient` costs at most 1.5x `import h2.connection`, the HTTP/2 library the
package is built on. The other rows are for reference: the sans-IO multipart parser alone,
what a program pays once it asks for the client, and numpy alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from _common import markdown_table

BASELINE = "import h2.connection"
JUDGED = ("import avsclient",)
REFERENCE = ("import avsclient.multipart", "from avsclient import AVSClient", "import numpy")
TARGET_RATIO = 1.5

_PROBE = """\
import json, sys, time
before = len(sys.modules)
start = time.perf_counter()
{statement}
elapsed = time.perf_counter() - start
print(json.dumps([elapsed, len(sys.modules) - before]))
"""


def run_once(statement: str) -> tuple[float, int]:
    """Import in a fresh interpreter; return (seconds, modules the import added)."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE.format(statement=statement)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    seconds, modules = json.loads(done.stdout)
    return float(seconds), int(modules)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21, help="runs per statement (default 21)")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run: 5 rounds")
    args = parser.parse_args()
    rounds = 5 if args.quick else args.rounds
    statements = (BASELINE, *JUDGED, *REFERENCE)

    for statement in statements:  # warm-up: fill the OS file cache and the bytecode cache
        run_once(statement)
    times: dict[str, list[float]] = {s: [] for s in statements}
    modules: dict[str, int] = {}
    for _ in range(rounds):
        for statement in statements:
            seconds, count = run_once(statement)
            times[statement].append(seconds)
            modules[statement] = count

    base = statistics.median(times[BASELINE])
    rows = []
    for statement in statements:
        median = statistics.median(times[statement])
        rows.append(
            [
                f"`{statement}`",
                f"{median * 1e3:.1f}",
                f"{min(times[statement]) * 1e3:.1f}",
                str(modules[statement]),
                f"{median / base:.2f}x",
            ]
        )
    print(f"Import cost, fresh interpreter per run, {rounds} interleaved rounds (medians)\n")
    print(markdown_table(["statement", "ms", "best ms", "modules", f"vs {BASELINE}"], rows))
    print()
    targets = [
        (
            f"`{statement}` <= {TARGET_RATIO}x `{BASELINE}`",
            statistics.median(times[statement]) <= TARGET_RATIO * base,
        )
        for statement in JUDGED
    ]
    print(markdown_table(["target", "result"], [[t, verdict(ok)] for t, ok in targets]))
    if args.quick:
        print("\n(--quick: fewer rounds; use the full run for figures)")
    return 0 if all(ok for _, ok in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
