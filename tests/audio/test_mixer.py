"""The output mixer: lanes summed with ramped gains (no clicks), ducking and pausing heard on
the recorded mix, format conversion to the device's format, bounded buffers, stop, failures."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import numpy as np
import pytest

from avsclient.audio import AudioFormat, NullSink, WavFileSink
from avsclient.audio.convert import decode_samples, encode_samples
from avsclient.audio.mixer import Mixer, MixerCore
from avsclient.audio.sinks import AudioSink
from avsclient.exceptions import AudioError

DEVICE = AudioFormat(rate=24_000, channels=1, sample_width=2)


def dc(level: float, frames: int, channels: int = 1) -> np.ndarray:
    return np.full((frames, channels), level, dtype=np.float32)


def tone(seconds: float, fmt: AudioFormat, amplitude: float = 0.5, freq: float = 440.0) -> bytes:
    t = np.arange(int(seconds * fmt.rate)) / fmt.rate
    wave_ = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)[:, None]
    return encode_samples(np.repeat(wave_, fmt.channels, axis=1), fmt)


def rms_windows(path: Path, window_ms: int = 20) -> np.ndarray:
    with wave.open(str(path), "rb") as wav:
        fmt = AudioFormat(rate=wav.getframerate(), channels=wav.getnchannels(), sample_width=2)
        data = wav.readframes(wav.getnframes())
    samples = decode_samples(data, fmt)[:, 0]
    n = fmt.rate * window_ms // 1000
    usable = len(samples) - len(samples) % n
    return np.sqrt((samples[:usable].reshape(-1, n) ** 2).mean(axis=1))


def test_core_sums_lanes_and_counts_what_was_consumed() -> None:
    core = MixerCore(DEVICE)
    core.push("Dialog", dc(0.25, 100))
    core.push("Content", dc(0.5, 60))
    assert core.ready() == 100
    out = core.mix(100)
    assert np.allclose(out[:60], 0.75) and np.allclose(out[60:], 0.25)
    assert core.consumed("Dialog") == 100 and core.consumed("Content") == 60
    assert core.ready() == 0
    with pytest.raises(ValueError, match="do not fit"):
        core.push("Dialog", dc(0.1, 10, channels=2))


def test_gain_changes_are_linear_ramps_without_steps() -> None:
    """Ducking moves the gain by at most one ramp step per frame over ramp_ms."""
    core = MixerCore(DEVICE, ramp_ms=20)  # 480 frames for a full-scale change
    core.push("Content", dc(1.0, 2400))
    core.mix(240)
    core.set_duck("Content", True, 0.2)
    out = core.mix(960)[:, 0]
    steps = np.abs(np.diff(np.concatenate(([1.0], out))))
    assert steps.max() <= 1 / 480 + 1e-6
    assert out[0] < 1.0 and np.isclose(out[-1], 0.2)
    assert np.isclose(out[383], 0.2) and out[382] > 0.2  # (1.0 - 0.2) * 480 frames
    core.set_duck("Content", False)
    back = core.mix(960)[:, 0]
    assert np.isclose(back[-1], 1.0) and np.abs(np.diff(back)).max() <= 1 / 480 + 1e-6


def test_pause_fades_out_then_holds_the_queue_and_resume_fades_in() -> None:
    core = MixerCore(DEVICE, ramp_ms=10)  # 240 frames
    core.push("Content", dc(0.5, 2000))
    core.mix(100)
    core.pause("Content")
    assert core.paused("Content")
    faded = core.mix(500)[:, 0]
    assert np.isclose(faded[239], 0.0) and faded[0] > 0.4
    consumed = core.consumed("Content")
    assert consumed == 600 and core.ready() == 0  # paused: not consumed any more
    assert np.allclose(core.mix(50), 0.0) and core.consumed("Content") == consumed
    core.resume("Content")
    back = core.mix(480)[:, 0]
    assert back[0] < 0.01 and np.isclose(back[-1], 0.5)
    assert core.buffered("Content") == 2000 - 600 - 480


async def test_ducking_is_heard_in_the_recorded_mix(tmp_path: Path) -> None:
    """Music at 0.5 drops to a fifth while ducked, then returns; the WAV records the mix."""
    out = tmp_path / "mix.wav"
    sink = WavFileSink(out, DEVICE)
    mixer = Mixer(sink, ramp_ms=20)
    music = mixer.channel("Content", AudioFormat(rate=44_100, channels=2, sample_width=2))
    for ducked in (False, True, False):
        if ducked:
            mixer.duck("Content")
        else:
            mixer.duck("Content", False)
        await music.write(tone(0.5, music.format))
        await music.drain()
    await mixer.aclose()
    await sink.aclose()
    levels = rms_windows(out)
    loud = 0.5 / np.sqrt(2)
    assert len(levels) == pytest.approx(75, abs=2)  # 1.5 s at 24 kHz, converted from 44.1
    assert levels[5:20] == pytest.approx(np.full(15, loud), rel=0.05)
    assert levels[30:45] == pytest.approx(np.full(15, loud * 0.2), rel=0.08)
    assert levels[55:70] == pytest.approx(np.full(15, loud), rel=0.05)
    assert music.frames_played == pytest.approx(36_000, abs=100)


async def test_speech_over_music_is_summed_at_the_device_format(tmp_path: Path) -> None:
    """A 16 kHz speech lane and a 44.1 kHz stereo music lane meet in a 48 kHz stereo sink."""
    fmt = AudioFormat(rate=48_000, channels=2, sample_width=2)
    out = tmp_path / "mix.wav"
    sink = WavFileSink(out, fmt)
    mixer = Mixer(sink)
    music = mixer.channel("Content", AudioFormat(rate=44_100, channels=2, sample_width=2))
    speech = mixer.channel("Dialog", AudioFormat(rate=16_000, channels=1, sample_width=2))
    assert mixer.channel("Content") is music
    await asyncio.gather(
        music.write(tone(0.4, music.format, 0.3, 440.0)),
        speech.write(tone(0.4, speech.format, 0.3, 1000.0)),
    )
    await asyncio.gather(music.drain(), speech.drain())
    await sink.aclose()
    levels = rms_windows(out)
    both = np.sqrt(2 * (0.3 / np.sqrt(2)) ** 2)
    assert levels[3:17] == pytest.approx(np.full(14, both), rel=0.06)


async def test_a_paused_channel_bounds_its_buffer_and_its_writer_waits() -> None:
    sink = NullSink(DEVICE)
    mixer = Mixer(sink, buffer_ms=200)
    music = mixer.channel("Content")
    mixer.pause("Content")
    writer = asyncio.create_task(music.write(tone(1.0, DEVICE)))
    await asyncio.sleep(0.05)
    assert not writer.done() and music.buffered_ms == pytest.approx(1000)
    mixer.resume("Content")
    await asyncio.wait_for(writer, 5)
    await music.drain()
    assert sink.bytes_written == len(tone(1.0, DEVICE))


async def test_stop_discards_the_lane_and_silences_a_lone_output() -> None:
    sink = NullSink(DEVICE, realtime=True)
    mixer = Mixer(sink)
    speech = mixer.channel("Dialog")
    await speech.write(tone(0.3, DEVICE))
    await asyncio.sleep(0.05)  # the mix has started on the sink
    await speech.stop()
    assert speech.buffered_ms == 0 and sink.stops == 1
    await speech.aclose()
    with pytest.raises(AudioError, match="closed"):
        await speech.write(b"\0\0")


async def test_a_failing_sink_is_reported_to_writers() -> None:
    class Broken(NullSink):
        async def write(self, data: bytes | bytearray | memoryview) -> None:
            raise AudioError("device gone")

    sink: AudioSink = Broken(DEVICE)
    mixer = Mixer(sink, buffer_ms=50)
    lane = mixer.channel("Dialog")
    with pytest.raises(AudioError, match="device gone"):
        for _ in range(20):
            await lane.write(tone(0.1, DEVICE))
            await asyncio.sleep(0)
    assert not mixer.running
