"""Write latency of `avsclient.store.DeviceStore`: one settings write, one alert upsert, one
outbox append and one outbox remove, each its own committed transaction.

Run it with::

    .venv/bin/python benchmarks/bench_store.py                 # 2,000 writes per figure
    .venv/bin/python benchmarks/bench_store.py --quick         # 200 writes per figure
    .venv/bin/python benchmarks/bench_store.py --dir /data     # on the device's own disk

Every write is timed on its own (`time.perf_counter` around the call), so the figures are
what a caller waits for, fsync included: the median and the 99th percentile, for
`synchronous=FULL` (the default: one WAL fsync per commit, so a returned write survives a
power cut) and `NORMAL` (no fsync per commit in WAL mode). CPU time per write is printed too;
the gap between wall time and CPU time is the disk. The store lives in a temporary directory
under `--dir` (default: the system's temporary directory), so pick the disk that matters.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import markdown_table

from avsclient.store import Alert, DeviceStore, StoreConfig

TARGET = 1e-3  # an asyncio caller may call the store directly when a write takes under 1 ms


def _time_each(fn: Callable[[int], object], count: int) -> tuple[list[float], float]:
    """Seconds per call, call by call, and the CPU seconds per call."""
    fn(-1)  # warm-up: statement cache, first page allocations
    samples: list[float] = []
    cpu_start = time.process_time()
    for n in range(count):
        start = time.perf_counter()
        fn(n)
        samples.append(time.perf_counter() - start)
    return samples, (time.process_time() - cpu_start) / count


def _p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98]


def _run(directory: Path, synchronous: str, count: int) -> list[list[str]]:
    config = StoreConfig(synchronous=synchronous, outbox_max_events=count * 4)  # type: ignore[arg-type]
    rows: list[list[str]] = []
    with DeviceStore.open(directory / f"bench-{synchronous}.sqlite3", config=config) as store:
        payload = {
            "token": "amzn1.as-ct.v1.ThirdPartySdkSpeechlet#ACRI#ValidToken",
            "type": "ALARM",
            "scheduledTime": "2027-01-15T07:00:00+0000",
            "assets": [{"assetId": "a", "url": "https://example.com/alarm.mp3"}],
        }
        event = {
            "event": {
                "header": {"namespace": "Alerts", "name": "SetAlertSucceeded", "messageId": ""},
                "payload": {"token": payload["token"]},
            }
        }
        ids = itertools.count()
        appended: list[str] = []

        def setting(n: int) -> None:
            store.set("SpeechRecognizer", "wakeWordConfirmation", "TONE" if n % 2 else "NONE")

        def alert(n: int) -> None:
            store.upsert_alert(
                Alert(
                    token=f"t{n % 20}",
                    type="ALARM",
                    scheduled_at=1.8e9 + n,
                    payload=payload,
                    state="SET",
                )
            )

        def append(n: int) -> None:
            message_id = f"m{next(ids)}"
            appended.append(message_id)
            store.outbox_append(message_id, event)

        def remove(n: int) -> None:
            store.outbox_remove(appended.pop(0))

        for name, fn in (
            ("settings write", setting),
            ("alert upsert", alert),
            ("outbox append", append),
            ("outbox remove", remove),
        ):
            samples, cpu = _time_each(fn, count)
            median = statistics.median(samples)
            rows.append(
                [
                    f"{name} ({synchronous})",
                    f"{median * 1e6:,.0f}",
                    f"{_p99(samples) * 1e6:,.0f}",
                    f"{cpu * 1e6:,.0f}",
                    "yes" if median < TARGET else "no",
                ]
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 writes per figure")
    parser.add_argument("--dir", type=Path, default=None, help="directory on the disk to test")
    args = parser.parse_args()
    count = 200 if args.quick else 2000
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        rows = _run(Path(tmp), "FULL", count) + _run(Path(tmp), "NORMAL", count)
    print(f"DeviceStore write latency, {count} writes per figure, in {args.dir or 'tmp'}")
    print(
        markdown_table(
            ["operation", "median µs", "p99 µs", "CPU µs", "median < 1 ms"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
