"""Music playback benchmarks: CPU per second of MP3 and AAC playback (decode + resample + mix),
the first PCM after a Play over loopback HTTPS, and the mixer's cost with three active channels.

Run: .venv/bin/python benchmarks/bench_player.py [--repeat N]

CPU figures are process CPU time (all threads, `time.process_time`) per second of audio, as a
fraction of one core. Each figure is printed with a baseline measured in the same run: MP3 and
AAC playback against decoding the same file in one call (no streaming, no mixer), the first PCM
after a Play against the first byte of a bare HTTPS GET of the same track, three mixer
channels against one. Test tracks are made here (lameenc, PyAV), nothing is downloaded.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import httpx
import numpy as np

from avsclient.audio import AudioFormat, MediaSink, Mixer, Mp3Sink, NullSink, decode_mp3
from avsclient.audio.convert import encode_samples
from avsclient.audio.mixer import MixerCore
from avsclient.client import AVSClient
from avsclient.simulator import Simulator
from avsclient.simulator.playback import play, stop
from avsclient.simulator.tracks import tone_media, tone_mp3

DEVICE = AudioFormat(rate=48_000, channels=2, sample_width=2)
SECONDS = 30.0


async def playback_cpu(data: bytes, kind: str) -> float:
    """CPU seconds per second of audio: stream -> decoder -> mixer (48 kHz stereo) -> sink."""
    mixer = Mixer(NullSink(DEVICE))
    channel = mixer.channel("Content")
    player: Mp3Sink | MediaSink = Mp3Sink(channel) if kind == "mp3" else MediaSink(channel)
    start = time.process_time()
    for i in range(0, len(data), 8192):
        await player.write(data[i : i + 8192])
    await player.drain()
    return (time.process_time() - start) / SECONDS


def whole_decode_cpu(data: bytes, kind: str) -> float:
    """Baseline: CPU per second of audio to decode the file in one call, to the device rate."""
    start = time.process_time()
    if kind == "mp3":
        decode_mp3(data, DEVICE)
    else:
        import io

        import av

        with av.open(io.BytesIO(data)) as container:
            resampler = av.AudioResampler(format="s16", layout="stereo", rate=DEVICE.rate)
            for frame in container.decode(audio=0):
                resampler.resample(frame)
    return (time.process_time() - start) / SECONDS


def mixer_cpu(channels: int, seconds: float = 20.0) -> float:
    """CPU per second of output of the sans-IO mix of `channels` lanes (one ducking)."""
    core = MixerCore(DEVICE)
    block = DEVICE.rate // 50
    chunk = np.full((block, 2), 0.1, dtype=np.float32)
    names = ("Content", "Dialog", "Alert")[:channels]
    start = time.process_time()
    for n in range(int(seconds * 50)):
        for name in names:
            core.push(name, chunk)
        if n % 50 == 0:
            core.set_duck("Content", n % 100 == 0)
        encode_samples(core.mix(block), DEVICE)
    return (time.process_time() - start) / seconds


class _FirstWrite(NullSink):
    """Notes when the first PCM reaches the device (reset before each Play)."""

    def __init__(self) -> None:
        super().__init__(DEVICE)
        self.first: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    def reset(self) -> None:
        self.first = asyncio.get_running_loop().create_future()

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self.first.done():
            self.first.set_result(time.perf_counter())
        await super().write(data)


async def first_pcm(rounds: int) -> tuple[list[float], list[float]]:
    """Seconds from pushing a Play on the downchannel to its first PCM at the device, and
    (baseline) from a bare GET of the same track to its first body byte."""
    plays: list[float] = []
    gets: list[float] = []
    async with Simulator() as sim:
        url = sim.media.add("/track.mp3", tone_mp3(5.0))
        sink = _FirstWrite()
        async with AVSClient.for_simulator(sim, sink=sink, store=False) as client:
            await client.wait_connected(20)
            async with httpx.AsyncClient(verify=sim.media.ssl_context()) as http:
                for n in range(rounds):
                    sink.reset()
                    started = time.perf_counter()
                    await sim.push_directive(play(f"t{n}", url, "REPLACE_ALL"))
                    plays.append(await asyncio.wait_for(sink.first, 10) - started)
                    await sim.push_directive(stop())
                    await sim.wait_for_event("AudioPlayer", "PlaybackStopped", nth=n + 1)
                    started = time.perf_counter()
                    async with http.stream("GET", url) as response:
                        async for _ in response.aiter_bytes():
                            gets.append(time.perf_counter() - started)
                            break
    return plays, gets


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


async def main(repeat: int) -> None:
    tracks = {
        "mp3": tone_mp3(SECONDS),
        "aac": tone_media(SECONDS, container="adts"),
    }
    print("CPU per second of audio (44.1 kHz stereo -> 48 kHz stereo), % of one core:")
    for kind, data in tracks.items():
        full = [await playback_cpu(data, kind) for _ in range(repeat)]
        base = [whole_decode_cpu(data, kind) for _ in range(repeat)]
        median, baseline = statistics.median(full), statistics.median(base)
        target = " (target <= 2%: " + ("PASS" if median <= 0.02 else "FAIL") + ")"
        print(
            f"  {kind.upper()} streamed decode+resample+mix: median {_pct(median)}"
            f"{target if kind == 'mp3' else ''}; whole-file decode {_pct(baseline)}; "
            f"ratio {median / baseline:.2f}x"
        )
    one = statistics.median(mixer_cpu(1) for _ in range(repeat))
    three = statistics.median(mixer_cpu(3) for _ in range(repeat))
    print(
        f"mixer at 48 kHz stereo: three channels {_pct(three)}, one channel {_pct(one)} "
        f"(ratio {three / one:.2f}x)"
    )
    plays, gets = await first_pcm(max(7, repeat * 3))
    p50, base = statistics.median(plays), statistics.median(gets)
    print(
        f"first PCM after Play over loopback HTTPS: p50 {1000 * p50:.1f} ms, "
        f"max {1000 * max(plays):.1f} ms (n={len(plays)}, target p50 <= 150 ms: "
        f"{'PASS' if p50 <= 0.150 else 'FAIL'}); bare GET first byte p50 {1000 * base:.1f} ms "
        f"(ratio {p50 / base:.1f}x)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    asyncio.run(main(parser.parse_args().repeat))
