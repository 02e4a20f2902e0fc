"""End-of-speech detection on espeak-ng speech, silence and noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from avsclient.audio import (
    AVS_FRAME_BYTES,
    ArraySource,
    AudioFormat,
    EndpointDetector,
    EndpointedSource,
    EndpointingConfig,
    EndpointState,
    EndReason,
    VoiceEnded,
    VoiceStarted,
    frame_energy_dbfs,
)
from tests.audio.conftest import read_wav_as_avs

RATE = 16000


def frames_of(samples: np.ndarray) -> list[bytes]:
    data = samples.astype("<i2").tobytes()
    return [data[i : i + AVS_FRAME_BYTES] for i in range(0, len(data), AVS_FRAME_BYTES)]


def noise(seconds: float, dbfs: float, seed: int = 1) -> np.ndarray:
    rms = 32768 * 10 ** (dbfs / 20)
    return np.random.default_rng(seed).normal(0, rms, int(RATE * seconds))


def run(detector: EndpointDetector, samples: np.ndarray) -> list[object]:
    events = []
    for frame in frames_of(samples):
        event = detector.feed(frame)
        if event is not None:
            events.append(event)
        if detector.state is EndpointState.ENDED:
            break
    return events


@pytest.fixture(scope="module")
def speech(speech_wav: Path) -> np.ndarray:
    """The espeak-ng utterance at 16 kHz, trimmed to where it is audible."""
    samples = read_wav_as_avs(speech_wav).astype(np.float64)
    loud = np.nonzero(np.abs(samples) > 500)[0]
    return samples[loud[0] : loud[-1] + 1]


def test_energy_of_silence_and_full_scale() -> None:
    """Digital silence is -100 dBFS; a full-scale square wave is 0 dBFS."""
    assert frame_energy_dbfs(bytes(320)) == -100.0
    assert frame_energy_dbfs(b"") == -100.0
    square = np.tile([32767, -32767], 80).astype("<i2").tobytes()
    assert frame_energy_dbfs(square) == pytest.approx(0.0, abs=0.01)


@pytest.mark.parametrize("noise_dbfs", [-200.0, -60.0, -45.0], ids=["silent", "quiet", "noisy"])
def test_recorded_speech_is_found_and_ends_after_the_hangover(
    speech: np.ndarray, noise_dbfs: float
) -> None:
    """Speech after 1 s of room noise starts near 1 s and ends near its real end."""
    lead, tail = 1.0, 2.0
    total = np.concatenate([np.zeros(int(RATE * lead)), speech, np.zeros(int(RATE * tail))])
    if noise_dbfs > -150:
        total = total + noise(len(total) / RATE, noise_dbfs)
    config = EndpointingConfig(hangover_ms=700)
    events = run(EndpointDetector(config), total)
    assert len(events) == 2, events
    started, ended = events
    assert isinstance(started, VoiceStarted)
    assert isinstance(ended, VoiceEnded)
    assert ended.reason is EndReason.SILENCE
    speech_end_ms = 1000 * (lead + len(speech) / RATE)
    assert abs(started.offset_ms - 1000 * lead) <= 100
    assert abs(ended.offset_ms - speech_end_ms) <= 200


def test_pauses_between_words_do_not_end_the_utterance(speech: np.ndarray) -> None:
    """A 400 ms pause is shorter than the 700 ms hangover: one utterance, not two."""
    pause = np.zeros(int(RATE * 0.4))
    total = np.concatenate([np.zeros(RATE // 2), speech, pause, speech, np.zeros(RATE)])
    events = run(EndpointDetector(), total)
    assert [type(e) for e in events] == [VoiceStarted, VoiceEnded]
    assert events[1].offset_ms > 500 + 2 * 1000 * len(speech) / RATE  # type: ignore[attr-defined]


@pytest.mark.parametrize("noise_dbfs", [-200.0, -55.0, -30.0])
def test_silence_or_steady_noise_times_out_without_speech(noise_dbfs: float) -> None:
    """No speech at all ends with NO_SPEECH at the timeout, whatever the steady noise level."""
    samples = np.zeros(RATE * 3) if noise_dbfs < -150 else noise(3.0, noise_dbfs)
    events = run(EndpointDetector(EndpointingConfig(no_speech_timeout_ms=2000)), samples)
    assert events == [VoiceEnded(offset_ms=2000, reason=EndReason.NO_SPEECH)]


def test_short_click_is_not_speech() -> None:
    """A 30 ms burst is shorter than start_ms and is ignored."""
    samples = np.zeros(RATE * 2)
    samples[RATE // 2 : RATE // 2 + 480] = 20000
    events = run(EndpointDetector(EndpointingConfig(no_speech_timeout_ms=1500)), samples)
    assert [e.reason for e in events] == [EndReason.NO_SPEECH]  # type: ignore[attr-defined]


def test_endless_speech_stops_at_max_duration() -> None:
    """Continuous loud audio after a quiet start ends with MAX_DURATION."""
    t = np.arange(RATE * 3) / RATE
    loud = 10000 * np.sin(2 * np.pi * 200 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    samples = np.concatenate([noise(0.3, -60), loud])
    events = run(EndpointDetector(EndpointingConfig(max_speech_ms=1500)), samples)
    assert events == [
        VoiceStarted(offset_ms=300),
        VoiceEnded(offset_ms=1800, reason=EndReason.MAX_DURATION),
    ]


def test_detector_is_terminal_after_the_end() -> None:
    """Feeding after the end is an error; a partial sample is refused."""
    detector = EndpointDetector(EndpointingConfig(no_speech_timeout_ms=10))
    assert detector.feed(bytes(320)) is not None
    with pytest.raises(RuntimeError, match="ended"):
        detector.feed(bytes(320))
    with pytest.raises(ValueError, match="partial"):
        EndpointDetector().feed(b"\x00")


@pytest.mark.parametrize(
    "kwargs",
    [{"threshold_db": 0}, {"min_threshold_dbfs": 3}, {"start_ms": 300}, {"hangover_ms": 0},
     {"no_speech_timeout_ms": -1}, {"noise_rise_db_per_s": -1}],
)
def test_config_rejects_bad_values(kwargs: dict[str, float]) -> None:
    """Impossible settings fail when the config is built."""
    with pytest.raises(ValueError, match=r"must|need"):
        EndpointingConfig(**kwargs)  # type: ignore[arg-type]


def test_detector_needs_16_bit_mono() -> None:
    """Other formats are refused up front."""
    with pytest.raises(ValueError, match="16-bit mono"):
        EndpointDetector(fmt=AudioFormat(rate=16000, channels=2))


@given(st.integers(min_value=-40, max_value=0), st.integers(min_value=0, max_value=3))
def test_any_loud_steady_tone_is_detected_as_speech(level_db: int, seed: int) -> None:
    """A tone well above a quiet floor always starts speech within the start window."""
    lead = noise(0.5, -70, seed)
    t = np.arange(RATE) / RATE
    tone = 32767 * 10 ** (level_db / 20) * np.sqrt(2) * np.sin(2 * np.pi * 300 * t)
    events = run(EndpointDetector(), np.concatenate([lead, tone, np.zeros(RATE)]))
    assert isinstance(events[0], VoiceStarted)
    assert 480 <= events[0].offset_ms <= 520


async def test_endpointed_source_stops_after_the_hangover(speech: np.ndarray) -> None:
    """Wrapped around a source, frames stop once the utterance has ended."""
    total = np.concatenate([np.zeros(RATE // 2), speech, np.zeros(RATE * 5)]).astype("<i2")
    async with EndpointedSource(ArraySource(total, RATE)) as source:
        count = len([frame async for frame in source])
    assert [type(e) for e in source.events] == [VoiceStarted, VoiceEnded]
    expected = (500 + 1000 * len(speech) / RATE + 700) / 10
    assert abs(count - expected) <= 25
    assert count < len(total) / 160
