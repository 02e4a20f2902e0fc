"""Wake-word detection on generated speech: one conformance suite run for every engine, the
start estimate's error, no false wakes on near-miss speech, and the Recognize window."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from avsclient.agents.speech_recognizer import wake_word_initiator
from avsclient.audio import (
    DEFAULT_PREROLL_SAMPLES,
    ArraySource,
    MicroWakeWordDetector,
    PcmRing,
    RecognizeWindow,
    RingCapture,
    RingReader,
    WakeWordDetection,
    WakeWordDetector,
    WebRtcVadEndpointer,
    create_wake_word_detector,
    recognize_window,
    refine_start,
)
from avsclient.exceptions import AudioError
from avsclient.simulator.scenarios import check_wake_word
from tests.helpers import require_executable

from .wake_corpus import VOICES, WakeClip, frames, negative_clip, positive_clip

ENGINES: dict[str, Callable[[], WakeWordDetector]] = {
    "micro": lambda: create_wake_word_detector("micro"),
}

MS = 16  # samples per millisecond


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_executable("espeak-ng")
    return tmp_path_factory.mktemp("wake-corpus")


@pytest.fixture(scope="session")
def positives(corpus_dir: Path) -> list[WakeClip]:
    return [positive_clip(v, corpus_dir, noisy=n) for n in (False, True) for v in VOICES]


@pytest.fixture(scope="session")
def negative(corpus_dir: Path) -> np.ndarray:
    return negative_clip(corpus_dir)


def run(detector: WakeWordDetector, samples: np.ndarray, ring: PcmRing | None = None) -> list[Any]:
    found: list[tuple[WakeWordDetection, WakeWordDetection]] = []
    for frame in frames(samples):
        if ring is not None:
            ring.append(frame)
        for d in detector.feed(frame):
            found.append((d, refine_start(ring, d) if ring is not None else d))
    return found


# -- conformance: every engine ------------------------------------------------------------


@pytest.fixture(params=sorted(ENGINES))
def detector(request: pytest.FixtureRequest) -> WakeWordDetector:
    return ENGINES[request.param]()


def test_detects_the_word_once_in_every_voice(
    detector: WakeWordDetector, positives: list[WakeClip]
) -> None:
    for clip in positives:
        detector.reset()
        base = detector.position
        found = run(detector, clip.samples)
        assert len(found) == 1, f"{clip.voice} noisy={clip.noisy}: {found}"
        d = found[0][0]
        assert d.wake_word == "ALEXA"
        assert 0.0 <= d.probability <= 1.0
        # positions are stream positions: the detection lies after the word's end, within 0.5 s
        assert 0 <= d.fired - base - clip.end <= 500 * MS
        assert d.start < d.end <= d.fired


def test_positions_count_every_sample_fed(detector: WakeWordDetector) -> None:
    before = detector.position
    detector.feed(b"\x00\x00" * 160)
    detector.feed(b"\x00\x00" * 37)
    assert detector.position == before + 197
    with pytest.raises(ValueError, match="partial"):
        detector.feed(b"\x00")


def test_no_false_wake_on_near_miss_speech(
    detector: WakeWordDetector, negative: np.ndarray
) -> None:
    assert len(negative) > 90 * 16000  # at least 1.5 minutes of speech
    assert run(detector, negative) == []


def test_silence_and_noise_do_not_wake(detector: WakeWordDetector) -> None:
    rng = np.random.default_rng(1)
    noise = (rng.standard_normal(16000 * 10) * 800).astype(np.int16)
    assert run(detector, np.zeros(16000 * 5, dtype=np.int16)) == []
    assert run(detector, noise) == []


# -- the start estimate --------------------------------------------------------------------


def test_start_estimate_error_is_small(positives: list[WakeClip]) -> None:
    """The latency-based estimate is within 150 ms; refined by the visible onset, 50 ms."""
    raw: list[float] = []
    refined: list[float] = []
    for clip in positives:
        ring = PcmRing(capacity_ms=3000)
        ((d, r),) = run(MicroWakeWordDetector(), clip.samples, ring)
        raw.append(abs(d.start - clip.start) / MS)
        refined.append(abs(r.start - clip.start) / MS)
    assert max(raw) <= 150, raw
    assert max(refined) <= 50, refined
    assert float(np.median(refined)) <= 20, refined


def test_refine_keeps_the_estimate_without_a_visible_onset() -> None:
    ring = PcmRing(capacity_ms=3000)
    rng = np.random.default_rng(2)
    ring.append((rng.standard_normal(32000) * 3000).astype("<i2").tobytes())  # no pause at all
    d = WakeWordDetection("ALEXA", 20000, 28000, 32000, 0.95)
    assert refine_start(ring, d) == d


# -- the Recognize window --------------------------------------------------------------------


def test_recognize_window_with_full_preroll() -> None:
    d = WakeWordDetection("ALEXA", start=40000, end=47500, fired=51000, probability=0.97)
    w = recognize_window(d, oldest=10000)
    assert w.reader_start == 32000
    assert (w.start_index, w.end_index) == (DEFAULT_PREROLL_SAMPLES, 8000 + 7500)
    assert w.wake_word == "ALEXA"
    assert w.full_preroll


def test_recognize_window_with_short_history() -> None:
    d = WakeWordDetection("ALEXA", start=40000, end=47500, fired=51000, probability=0.97)
    w = recognize_window(d, oldest=37000)
    assert (w.reader_start, w.start_index, w.end_index) == (37000, 3000, 10500)
    assert not w.full_preroll
    # the word's start itself was overwritten: the window starts at the oldest sample
    w = recognize_window(d, oldest=41000)
    assert (w.reader_start, w.start_index, w.end_index) == (41000, 0, 6500)
    with pytest.raises(ValueError, match="preroll"):
        recognize_window(d, oldest=0, preroll_samples=-1)


def test_wake_word_indices_go_only_with_a_full_preroll() -> None:
    """avs-protocol 11.1: with less than 500 ms before the word the Recognize still says
    WAKEWORD and the word, but carries no indices the cloud could not trust."""
    d = WakeWordDetection("ALEXA", start=40000, end=47500, fired=51000, probability=0.97)
    full = wake_word_initiator(recognize_window(d, oldest=10000))
    assert full == {
        "type": "WAKEWORD",
        "payload": {
            "wakeWord": "ALEXA",
            "wakeWordIndices": {"startIndexInSamples": 8000, "endIndexInSamples": 15500},
        },
    }
    short = wake_word_initiator(recognize_window(d, oldest=37000))
    assert short == {"type": "WAKEWORD", "payload": {"wakeWord": "ALEXA"}}
    assert check_wake_word({"initiator": short}, audio_bytes=2 * 20000) is not None
    assert check_wake_word({"initiator": short}, audio_bytes=2 * 20000).problems == ()  # type: ignore[union-attr]


def test_recognize_window_from_a_real_ring(positives: list[WakeClip]) -> None:
    clip = positives[0]
    ring = PcmRing(capacity_ms=2500)
    detector = MicroWakeWordDetector()
    found: list[WakeWordDetection] = []
    for frame in frames(clip.samples):  # as the always-on path does: stop at the detection
        ring.append(frame)
        found = detector.feed(frame)
        if found:
            break
    d = refine_start(ring, found[0])
    w = recognize_window(d, ring.oldest)
    assert w.start_index == 8000
    audio = ring.read(w.reader_start, w.end_index)
    word = np.frombuffer(audio, dtype="<i2")[w.start_index :]
    assert np.abs(word[: 50 * MS].astype(np.int32)).max() > 600  # the word starts there


# -- engines are optional ---------------------------------------------------------------


def test_a_missing_engine_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pymicro_wakeword", None)  # import then raises ImportError
    monkeypatch.setitem(sys.modules, "webrtcvad", None)
    with pytest.raises(AudioError, match=r"avsclient\[wakeword\]"):
        MicroWakeWordDetector()
    with pytest.raises(AudioError, match=r"avsclient\[vad\]"):
        WebRtcVadEndpointer()


def test_unknown_engine_and_model_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown wake-word engine"):
        create_wake_word_detector("nope")
    with pytest.raises(ValueError, match="known: "):
        MicroWakeWordDetector("computer")


async def test_always_on_path_hands_a_recognize_reader_with_preroll(
    positives: list[WakeClip],
) -> None:
    """Source -> ring -> detector in the pump; at the detection, a reader 500 ms before the
    word delivers the history and then the command that follows, without a gap."""
    clip = positives[0]
    detector = MicroWakeWordDetector()
    source = ArraySource(clip.samples, 16000, realtime=False)
    readers: list[tuple[RecognizeWindow, RingReader]] = []
    # the file is pumped faster than real time and read after it ends: hold all of it
    assert len(clip.samples) < 6 * 16000
    async with RingCapture(source, capacity_ms=6000) as capture:

        def on_frame(frame: bytes, position: int) -> None:
            for d in detector.feed(frame):
                window = recognize_window(refine_start(capture.ring, d), capture.ring.oldest)
                readers.append((window, capture.reader_from(window.reader_start)))

        capture.add_listener(on_frame)
        await capture.wait_closed(10)
        ((window, reader),) = readers
        async with asyncio.timeout(5):
            audio = b"".join([f async for f in reader])
    assert window.start_index == DEFAULT_PREROLL_SAMPLES
    assert abs(window.reader_start + window.start_index - clip.start) <= 50 * MS
    expected = clip.samples[window.reader_start :].astype("<i2").tobytes()
    assert audio[: len(expected)] == expected
