"""Music playback benchmarks: CPU per second of MP3 decode + resample + mix, the first PCM
after a Play over loopback HTTPS, and the mixer's own cost with three active channels.

Run: .venv/bin/python benchmarks/bench_player.py [--repeat N]

CPU figures are process CPU time (all threads, `time.process_time`) per second of audio, as a
fraction of one core. Test tracks are made here (a tone encoded with lameenc), nothing is
downloaded.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import lameenc
import numpy as np

from avsclient.agents.audio_player import AudioItem, AudioPlayerAgent
from avsclient.audio import AudioFormat, Mixer, Mp3Sink, NullSink
from avsclient.audio.convert import encode_samples
from avsclient.audio.mixer import MixerCore
from avsclient.simulator.media import MediaServer

DEVICE = AudioFormat(rate=48_000, channels=2, sample_width=2)
MUSIC = AudioFormat(rate=44_100, channels=2, sample_width=2)


def tone_mp3(seconds: float, fmt: AudioFormat = MUSIC, kbps: int = 128) -> bytes:
    """A stereo tone encoded to MP3."""
    t = np.arange(int(seconds * fmt.rate)) / fmt.rate
    left = 0.4 * np.sin(2 * np.pi * 440 * t)
    right = 0.4 * np.sin(2 * np.pi * 660 * t)
    pcm = encode_samples(np.stack((left, right), axis=1).astype(np.float32), fmt)
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(kbps)
    encoder.set_in_sample_rate(fmt.rate)
    encoder.set_channels(fmt.channels)
    encoder.set_quality(5)
    return bytes(encoder.encode(pcm) + encoder.flush())


async def decode_mix_cpu(mp3: bytes, seconds: float) -> float:
    """CPU seconds per second of audio: MP3 -> device rate through the mixer into a sink."""
    sink = NullSink(DEVICE)
    mixer = Mixer(sink)
    player = Mp3Sink(mixer.channel("Content"))
    start = time.process_time()
    for i in range(0, len(mp3), 8192):
        await player.write(mp3[i : i + 8192])
    await player.drain()
    return (time.process_time() - start) / seconds


def mixer_cpu(seconds: float = 20.0) -> float:
    """CPU seconds per second of output for the sans-IO mix of three channels (one ducking)."""
    core = MixerCore(DEVICE)
    block = DEVICE.rate // 50
    chunk = np.full((block, 2), 0.1, dtype=np.float32)
    start = time.process_time()
    for n in range(int(seconds * 50)):
        for name in ("Dialog", "Alert", "Content"):
            core.push(name, chunk)
        if n % 50 == 0:
            core.set_duck("Content", n % 100 == 0)
        encode_samples(core.mix(block), DEVICE)
    return (time.process_time() - start) / seconds


class _FirstWrite(NullSink):
    def __init__(self) -> None:
        super().__init__(DEVICE)
        self.first: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self.first.done():
            self.first.set_result(time.perf_counter())
        await super().write(data)


async def first_pcm(media: MediaServer, url: str) -> float:
    """Seconds from opening a stream (connect, TLS, GET) to its first PCM reaching the sink."""

    sink = _FirstWrite()
    player = AudioPlayerAgent(Mixer(sink).channel("Content"), verify=media.ssl_context())
    item = AudioItem(token="t", url=url)
    started = time.perf_counter()
    mp3 = Mp3Sink(player.output)
    async for chunk in player._open(item):
        await mp3.write(chunk)
        if sink.first.done():
            break
    first = await asyncio.wait_for(sink.first, 10)
    await mp3.stop()
    await player.aclose()
    return first - started


async def main(repeat: int) -> None:
    seconds = 30.0
    mp3 = tone_mp3(seconds)
    cpu = [await decode_mix_cpu(mp3, seconds) for _ in range(repeat)]
    print(
        f"MP3 128 kbps stereo 44.1 kHz -> 48 kHz stereo, decode+resample+mix: "
        f"median {100 * statistics.median(cpu):.2f}% of a core "
        f"(min {100 * min(cpu):.2f}%, target <= 2%)"
    )
    mix = [mixer_cpu() for _ in range(repeat)]
    print(
        "mixer, three channels at 48 kHz stereo: "
        f"median {100 * statistics.median(mix):.2f}% of a core"
    )
    media = MediaServer()
    await media.start()
    url = media.add("/track.mp3", tone_mp3(5.0))
    try:
        times = [await first_pcm(media, url) for _ in range(max(5, repeat * 3))]
    finally:
        await media.aclose()
    times.sort()
    print(
        f"first PCM after Play over loopback HTTPS: p50 {1000 * statistics.median(times):.1f} ms, "
        f"max {1000 * times[-1]:.1f} ms (n={len(times)}, target p50 <= 150 ms)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    asyncio.run(main(parser.parse_args().repeat))
