"""Audio benchmarks: CPU cost of capture-to-frames and MP3 decode-to-sink, capture latency.

Run: .venv/bin/python benchmarks/bench_audio.py [--repeat N]

CPU figures are process CPU time (all threads, `time.process_time`) per second of audio, as
a fraction of one core. Latency is the time from the capture thread's hand-off of a frame
(`CaptureBridge.push`, called from the PortAudio callback in `Microphone`) to the consumer
task reading it. The synthetic feeder thread stands in for PortAudio when there is no device;
the real PulseAudio device is measured too when `pactl info` answers.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import threading
import time
from pathlib import Path

import numpy as np

from avsclient.audio import (
    AVS_FORMAT,
    PLAYBACK_FORMAT,
    AudioFormat,
    CaptureBridge,
    Microphone,
    Mp3Sink,
    NullSink,
    PcmConverter,
    SampleEncoding,
)
from avsclient.exceptions import AudioError

ROOT = Path(__file__).resolve().parent.parent
MP3 = ROOT / "tests" / "data" / "audio" / "speech-24k-mono.mp3"

CPU_SECONDS = 20  # audio per CPU run: long enough to dwarf start-up costs, bounded
LATENCY_SECONDS = 3  # real-time runs


def _noise(rate: int, seconds: float, dtype: str) -> np.ndarray:
    x = np.random.default_rng(0).normal(0, 0.1, int(rate * seconds)).astype(np.float32)
    return x if dtype == "float32" else (x * 32767).astype("<i2")


async def cpu_capture(rate: int) -> float:
    """CPU per audio second: 10 ms blocks at `rate` pushed from a thread, framed for AVS."""
    direct = rate == 16000
    block = _noise(rate, CPU_SECONDS, "int16" if direct else "float32")
    step = rate // 100
    total_frames = CPU_SECONDS * 100
    bridge = CaptureBridge(queue_frames=total_frames + 10)
    converter = None
    if not direct:
        captured = AudioFormat(rate=rate, sample_width=4, encoding=SampleEncoding.FLOAT)
        converter = PcmConverter(captured, AVS_FORMAT)

    def feeder() -> None:
        for i in range(0, len(block), step):
            data = block[i : i + step].tobytes()
            bridge.push(converter.convert(data) if converter else data)
        bridge.end()

    start = time.process_time()
    thread = threading.Thread(target=feeder)
    thread.start()
    count = 0
    async for _ in bridge:
        count += 1
    thread.join()
    used = time.process_time() - start
    assert count >= total_frames - 1, count
    return used / CPU_SECONDS


async def cpu_mp3() -> float:
    """CPU per audio second: the MP3 fixture streamed in 1 KB pieces through Mp3Sink."""
    data = MP3.read_bytes()
    sink = NullSink(PLAYBACK_FORMAT)
    start = time.process_time()
    async with Mp3Sink(sink) as mp3:
        played = 0.0
        while played < CPU_SECONDS:
            for i in range(0, len(data), 1024):
                await mp3.write(data[i : i + 1024])
            await mp3.drain()
            played = sink.bytes_written / PLAYBACK_FORMAT.bytes_per_second
    return (time.process_time() - start) / played


async def latency_synthetic() -> list[float]:
    """Hand-off-to-read delays with a feeder thread pushing 10 ms blocks in real time."""
    bridge = CaptureBridge()
    block = _noise(16000, 0.01, "int16").tobytes()

    def feeder() -> None:
        due = time.perf_counter()
        for _ in range(LATENCY_SECONDS * 100):
            due += 0.01
            time.sleep(max(0.0, due - time.perf_counter()))
            bridge.push(block)
        bridge.end()

    thread = threading.Thread(target=feeder)
    thread.start()
    ages = []
    async for _ in bridge:
        ages.append(bridge.last_frame_age)
    thread.join()
    return ages


async def latency_device() -> tuple[list[float], float]:
    """Hand-off-to-read delays and CPU per second from the real default input device."""
    mic = Microphone()
    await mic.read_frame()  # the stream is running
    ages = []
    start_cpu, start = time.process_time(), time.perf_counter()
    while time.perf_counter() - start < LATENCY_SECONDS:
        await mic.read_frame()
        ages.append(mic.last_frame_age)
    cpu = (time.process_time() - start_cpu) / (time.perf_counter() - start)
    await mic.aclose()
    return ages, cpu


def pulse_available() -> bool:
    if shutil.which("pactl") is None:
        return False
    try:
        return subprocess.run(["pactl", "info"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q))


async def main(repeat: int) -> None:
    print(f"avsclient audio benchmarks (median of {repeat} runs; CPU = fraction of one core)")
    for label, run in (
        ("capture 16 kHz s16 -> 320 B frames", lambda: cpu_capture(16000)),
        ("capture 48 kHz f32 -> resample -> frames", lambda: cpu_capture(48000)),
        ("capture 44.1 kHz f32 -> resample -> frames", lambda: cpu_capture(44100)),
        ("MP3 24 kHz decode -> Mp3Sink -> NullSink", cpu_mp3),
    ):
        values = [await run() for _ in range(repeat)]
        print(f"  CPU  {label:45s} {statistics.median(values):.4f} core")

    p50, p99 = [], []
    for _ in range(repeat):
        ages = await latency_synthetic()
        p50.append(pct(ages, 50))
        p99.append(pct(ages, 99))
    print(
        f"  latency callback->consumer, synthetic feeder thread: "
        f"p50 {statistics.median(p50):.3f} ms  p99 {statistics.median(p99):.3f} ms"
    )
    if not pulse_available():
        print("  latency callback->consumer, PulseAudio device: n/a (no sound server answers)")
        return
    p50, p99, cpus = [], [], []
    try:
        for _ in range(repeat):
            ages, cpu = await latency_device()
            p50.append(pct(ages, 50))
            p99.append(pct(ages, 99))
            cpus.append(cpu)
    except AudioError as exc:
        print(f"  PulseAudio device: n/a ({exc})")
        return
    print(
        f"  latency callback->consumer, PulseAudio device:       "
        f"p50 {statistics.median(p50):.3f} ms  p99 {statistics.median(p99):.3f} ms"
    )
    print(f"  CPU  {'capture from the PulseAudio device (real time)':45s} "
          f"{statistics.median(cpus):.4f} core")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (default 5)")
    asyncio.run(main(parser.parse_args().repeat))
