"""Voice-turn latency, streaming CPU and per-session memory of `AVSClient` (issue 6 section 6).

Run it from the repository root (about two minutes)::

    .venv/bin/python benchmarks/bench_turn.py [--turns N] [--sessions N] [--cpu-seconds S]
        [--cpu-rounds R]

The simulator runs in a subprocess (`python -m avsclient.simulator`, h2c unless said) on
loopback, so `time.process_time()` and the RSS of this process count only the client. Three
figures:

- `turn`: N voice turns (CLOSE_TALK, 0.2 s of audio each; the simulator answers Speak as soon
  as the upload ends). Latency is the dialog trace's time from the last audio frame handed to
  the connection to the Speak directive dispatched to its handler, i.e. the client's share of
  the turn plus one loopback round trip and the simulator's reply. Targets: p50 <= 2 ms,
  p99 <= 10 ms.
- `cpu`: one Recognize streamed in real time (10 ms frames, paced like a microphone) for S
  seconds; client CPU seconds per second of audio, from the first frame to the last. The
  paced source's own cost (its 100 timer wake-ups a second, measured alone just before) is
  shown and subtracted: it stands for the microphone, not the client. R rounds, each the
  source alone then the client; the median of the per-round client shares is the figure.
  Target <= 2% of one core, judged on h2c like the other two figures. The same figure over
  TLS (the simulator's own CA, as against AVS) follows for reference, without a verdict:
  the difference is what TLS costs per 10 ms frame (OpenSSL's record write and asyncio's
  TLS layer).
- `sessions`: N clients in this process, each with its downchannel open and pinging every
  2 s, held for a few ping periods, each with a device store of its own (a file in a
  temporary directory, as every device has one). Memory per session is the RSS growth divided
  by N (with the garbage collected first). The device store's own share is measured in the
  same run (N stores opened alone, in a fresh process) and shown; the target, <= 100 KiB, is
  judged on the session without its store, the figure earlier runs measured (they had none).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from avsclient.audio import AVS_FORMAT, ArraySource, AudioFormat, AudioSource, NullSink
from avsclient.auth import StaticTokenProvider
from avsclient.client import AVSClient
from avsclient.config import ClientConfig

TOKEN = "bench-token"
TURN_P50_TARGET = 0.002
TURN_P99_TARGET = 0.010
CPU_TARGET = 0.02
SESSION_TARGET = 100 * 1024


@contextlib.contextmanager
def simulator(*, tls: bool = False) -> Any:
    """Start `python -m avsclient.simulator` (h2c, or TLS with its own CA); yield the client
    settings that reach it (`endpoint`, and `ca_file` over TLS)."""
    command = [sys.executable, "-m", "avsclient.simulator", "--token", TOKEN]
    if not tls:
        command.append("--h2c")
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        settings: dict[str, str] = {}
        for line in proc.stdout:
            if line.startswith("AVS simulator listening on "):
                settings["endpoint"] = line.split()[-1]
            elif line.startswith("CA file: "):
                if tls:
                    settings["ca_file"] = line.removeprefix("CA file: ").strip()
                break
        if "endpoint" not in settings or (tls and "ca_file" not in settings):
            raise RuntimeError("the simulator did not start")
        yield settings
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def tone(seconds: float) -> np.ndarray[Any, Any]:
    """A 16 kHz 16-bit tone."""
    t = np.arange(int(seconds * 16_000)) / 16_000
    return (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype(np.int16)


def client_for(sim: dict[str, str], store: Path | bool = False, **config: Any) -> AVSClient:
    """A client of the simulator that `simulator()` yielded `sim` for, with a throw-away
    device store (never the user's own) unless `store` names a file."""
    cfg = ClientConfig(**sim, **config)
    return AVSClient(cfg, StaticTokenProvider(TOKEN), sink=NullSink(), store=store)


_STORE_PROBE = """
import gc, os, sys
from pathlib import Path
from avsclient.store import DeviceStore
directory, count = Path(sys.argv[1]), int(sys.argv[2])
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
DeviceStore.open(directory / "warm.sqlite3").close()
gc.collect()
before = rss()
stores = [DeviceStore.open(directory / f"alone-{i}.sqlite3") for i in range(count)]
for store in stores:
    store.set("bench", "key", "value")
    store.get("bench", "key")
gc.collect()
print((rss() - before) // count)
"""


def store_rss(directory: Path, count: int) -> int:
    """RSS growth per device store, `count` opened alone (each written once and read), in a
    fresh process: memory freed by earlier work in this one would hide its cost. Most of it
    is SQLite's own per-connection allocator (lookaside), which Python cannot size."""
    done = subprocess.run(
        [sys.executable, "-c", _STORE_PROBE, str(directory), str(count)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return int(done.stdout.strip())


class CpuStampedSource(AudioSource):
    """Passes another source through, noting process CPU time at the first and last frame."""

    def __init__(self, inner: AudioSource) -> None:
        self.inner = inner
        self.cpu_start: float | None = None
        self.cpu_end: float | None = None
        self.wall_start: float | None = None
        self.wall_end: float | None = None
        self.frames = 0

    @property
    def format(self) -> AudioFormat:
        return self.inner.format

    @property
    def frame_bytes(self) -> int:
        return self.inner.frame_bytes

    async def read_frame(self) -> bytes:
        frame = await self.inner.read_frame()
        if self.cpu_start is None:
            self.cpu_start, self.wall_start = time.process_time(), time.perf_counter()
        if frame:
            self.frames += 1
        elif self.cpu_end is None:
            self.cpu_end, self.wall_end = time.process_time(), time.perf_counter()
        return frame

    async def aclose(self) -> None:
        await self.inner.aclose()


async def bench_turns(sim: dict[str, str], turns: int) -> tuple[list[float], list[float]]:
    """Per turn: seconds from the last audio frame sent to Speak dispatched, and the client's
    share of it (from the response's first part to Speak dispatched)."""
    audio = tone(0.2)
    latencies: list[float] = []
    client_share: list[float] = []
    async with client_for(sim) as client:
        await client.wait_connected(10)
        for _ in range(10):  # warm-up: imports, code paths, TCP windows
            dialog = await client.recognize(ArraySource(audio, 16_000), profile="CLOSE_TALK")
            await dialog.wait_finished()
        for _ in range(turns):
            dialog = await client.recognize(ArraySource(audio, 16_000), profile="CLOSE_TALK")
            await dialog.wait_finished()
            trace = dialog.trace
            speak = trace.directive_at("SpeechSynthesizer.Speak")
            if speak is None or trace.last_audio_sent_at is None:
                raise RuntimeError(f"turn without Speak: {dialog!r}")
            latencies.append(speak - trace.last_audio_sent_at)
            if trace.first_response_byte_at is not None:
                client_share.append(speak - trace.first_response_byte_at)
        await client.messenger.flush()
    return latencies, client_share


async def source_cpu(seconds: float) -> float:
    """CPU seconds per audio second of the real-time source alone (its pacing timer), read
    without sending: the part of the streaming cost a microphone's callbacks would cost."""
    source = CpuStampedSource(ArraySource(tone(seconds), 16_000, realtime=True))
    async for _ in source:
        pass
    assert source.cpu_start is not None
    assert source.cpu_end is not None
    return (source.cpu_end - source.cpu_start) / seconds


async def bench_cpu(sim: dict[str, str], seconds: float) -> tuple[float, float]:
    """(CPU seconds per audio second, audio seconds streamed) for one real-time Recognize."""
    async with client_for(sim) as client:
        await client.wait_connected(10)
        warm = await client.recognize(ArraySource(tone(0.2), 16_000), profile="CLOSE_TALK")
        await warm.wait_finished()
        source = CpuStampedSource(ArraySource(tone(seconds), 16_000, realtime=True))
        await client.recognize(source, profile="CLOSE_TALK")
    assert source.cpu_start is not None
    assert source.cpu_end is not None
    audio_seconds = source.frames * source.frame_bytes / AVS_FORMAT.bytes_per_second
    return (source.cpu_end - source.cpu_start) / audio_seconds, audio_seconds


def rss_bytes() -> int:
    """Resident set size of this process."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def bench_sessions(
    sim: dict[str, str], count: int, hold: float, directory: Path
) -> tuple[int, int]:
    """(RSS growth per session, sessions still connected after the hold)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # One warm client first, so that imports and first-use caches are not charged per session.
    async with client_for(sim, directory / "warm-client.sqlite3") as warm:
        await warm.wait_connected(10)
    gc.collect()
    before = rss_bytes()
    clients = [
        client_for(sim, directory / f"{i}.sqlite3", ping_interval=2.0, ping_timeout=10.0)
        for i in range(count)
    ]
    gate = asyncio.Semaphore(50)

    async def start(client: AVSClient) -> None:
        async with gate:
            await client.start()
            await client.wait_connected(60)

    try:
        await asyncio.gather(*(start(c) for c in clients))
        await asyncio.sleep(hold)
        connected = sum(1 for c in clients if c.status.name == "CONNECTED")
        gc.collect()
        after = rss_bytes()
    finally:
        await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)
    return (after - before) // count, connected


def quartiles(values: list[float]) -> tuple[float, float]:
    """The first and third quartiles (the values themselves when there are fewer than 4)."""
    if len(values) < 4:
        return min(values), max(values)
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


async def report_cpu(
    sim: dict[str, str], args: argparse.Namespace, transport: str, *, judged: bool
) -> bool:
    """Print the streaming CPU figure over `transport` (with a verdict when `judged`); True
    when it meets the target."""
    shares, totals, baselines = [], [], []
    audio_seconds = 0.0
    for _ in range(args.cpu_rounds):  # interleaved, so that drift hits both alike
        baseline = await source_cpu(args.cpu_seconds)
        cpu, audio_seconds = await bench_cpu(sim, args.cpu_seconds)
        baselines.append(baseline)
        totals.append(cpu)
        shares.append(cpu - baseline)
    share = statistics.median(shares)
    ok = share <= CPU_TARGET
    low, high = quartiles(shares)
    print(
        f"cpu ({transport}): {statistics.median(totals) * 100:.2f}% of a core per second of "
        f"audio streamed in real time ({args.cpu_rounds} x {audio_seconds:.1f} s, medians), "
        f"of which the paced source alone {statistics.median(baselines) * 100:.2f}%: client "
        f"{max(0.0, share) * 100:.2f}% (IQR {low * 100:.2f}-{high * 100:.2f}"
        + (f", target <= 2%)  {verdict(ok)}" if judged else ", for reference: no verdict)")
    )
    return ok


async def main(args: argparse.Namespace) -> int:
    failed = False
    with simulator() as sim:
        latencies, client_share = await bench_turns(sim, args.turns)
        latencies.sort()
        p50 = statistics.median(latencies)
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        ok = p50 <= TURN_P50_TARGET and p99 <= TURN_P99_TARGET
        failed |= not ok
        print(
            f"turn: {len(latencies)} turns, last audio byte -> Speak dispatched: "
            f"p50 {p50 * 1000:.2f} ms (target 2), p99 {p99 * 1000:.2f} ms (target 10), "
            f"max {latencies[-1] * 1000:.2f} ms  {verdict(ok)}"
        )
        print(
            f"      of which the client (first response part -> Speak dispatched): "
            f"p50 {statistics.median(client_share) * 1000:.2f} ms"
        )
        failed |= not await report_cpu(sim, args, "h2c", judged=True)
    with simulator(tls=True) as sim:
        await report_cpu(sim, args, "TLS", judged=False)
    with simulator() as sim, tempfile.TemporaryDirectory() as tmp:
        per_session, connected = await bench_sessions(sim, args.sessions, args.hold, Path(tmp))
        per_store = store_rss(Path(tmp), args.sessions)
        without_store = per_session - per_store
        ok = without_store <= SESSION_TARGET and connected == args.sessions
        failed |= not ok
        print(
            f"sessions: {connected}/{args.sessions} connected (downchannel + ping every 2 s, "
            f"held {args.hold:.0f} s), RSS {per_session / 1024:.1f} KiB per session, of which "
            f"its device store {per_store / 1024:.1f} KiB (measured alone): "
            f"{without_store / 1024:.1f} KiB without it (target <= 100)  {verdict(ok)}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--cpu-seconds", type=float, default=4.0)
    parser.add_argument("--cpu-rounds", type=int, default=5)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--hold", type=float, default=6.0)
    sys.exit(asyncio.run(main(parser.parse_args())))
