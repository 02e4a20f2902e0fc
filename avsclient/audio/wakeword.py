"""Wake-word detection: a pluggable detector interface, the microWakeWord engine, and the
arithmetic a WAKEWORD Recognize needs (pre-roll start and wake-word indices).

Detectors are sans-IO: `feed(frame)` takes 16 kHz 16-bit mono PCM and returns the detections
that frame completed, each with stream positions in samples (counted from the first sample
fed) and the engine's probability. Engines are imported only when a detector is created; a
missing engine raises `AudioError` naming the extra that installs it.

Word boundaries. microWakeWord reports only *when* it fired. The estimate is:

    end   = fired - latency_ms          (the engine fires 220-270 ms after the word ends)
    start = end - word_ms               (a typical "Alexa" lasts about 470 ms)

and `refine_start()` then moves the start to the speech onset visible in the ring history
(the end of the last pause of at least 120 ms before the word), when one lies within
`max_word_ms` of the estimated end. The error on generated speech is measured by
tests/audio/test_wakeword.py and benchmarks/bench_wakeword.py.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ._engines import import_engine
from .format import AVS_FORMAT, AudioFormat, SampleEncoding

if TYPE_CHECKING:
    from .ring import PcmRing

__all__ = [
    "DEFAULT_PREROLL_SAMPLES",
    "MicroWakeWordDetector",
    "RecognizeWindow",
    "WakeWordDetection",
    "WakeWordDetector",
    "create_wake_word_detector",
    "recognize_window",
    "refine_start",
]

#: The pre-roll AVS wants before the wake word: 500 ms at 16 kHz (protocol section 5.2).
DEFAULT_PREROLL_SAMPLES = 8000


@dataclass(frozen=True, slots=True)
class WakeWordDetection:
    """One detection.

    Attributes:
        wake_word: the word as AVS expects it in the Recognize ("ALEXA").
        start: estimated position of the word's first sample.
        end: estimated position one past the word's last sample.
        fired: the position at which the engine fired (end of the frame that completed it).
        probability: the engine's score at firing, 0..1.
    """

    wake_word: str
    start: int
    end: int
    fired: int
    probability: float


class WakeWordDetector(abc.ABC):
    """Feed PCM frames, get detections with stream positions (no I/O).

    Positions count samples from the first sample fed. After a detection the detector is
    deaf for `refractory_ms` of audio, so one utterance yields one detection.
    """

    format: AudioFormat = AVS_FORMAT
    wake_word: str = ""

    @abc.abstractmethod
    def feed(self, frame: bytes | bytearray | memoryview) -> list[WakeWordDetection]:
        """Analyse the next frame (whole samples, any length); return completed detections.

        Raises:
            ValueError: the frame holds a partial sample.
        """

    @property
    @abc.abstractmethod
    def position(self) -> int:
        """Samples fed so far."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Forget the audio fed so far (positions keep counting)."""


class MicroWakeWordDetector(WakeWordDetector):
    """The microWakeWord engine (pymicro-wakeword: TFLite runtime and models in the wheel)."""

    def __init__(
        self,
        model: str = "alexa",
        *,
        probability_cutoff: float | None = None,
        latency_ms: float = 240.0,
        word_ms: float = 470.0,
        refractory_ms: float = 2000.0,
    ) -> None:
        """Load a built-in model.

        Args:
            model: a built-in model name ("alexa", "hey_jarvis", "okay_nabu", "hey_mycroft").
            probability_cutoff: override the model's own cutoff (0.9 for "alexa").
            latency_ms: how long after the word's end the engine fires, for the end estimate.
            word_ms: the typical spoken length of the word, for the start estimate.
            refractory_ms: audio after a detection in which no new detection is reported.

        Raises:
            AudioError: pymicro-wakeword is not installed (extra `wakeword`).
            ValueError: unknown model.
        """
        mww = import_engine("pymicro_wakeword", "wakeword")
        try:
            which = mww.Model(model)
        except ValueError:
            names = ", ".join(m.value for m in mww.Model)
            raise ValueError(f"unknown microWakeWord model {model!r} (known: {names})") from None
        self._engine = mww.MicroWakeWord.from_builtin(which)
        self._features = mww.MicroWakeWordFeatures()
        if probability_cutoff is not None:
            self._engine.probability_cutoff = probability_cutoff
        self.wake_word = str(self._engine.wake_word).upper()
        self._rate = AVS_FORMAT.rate
        self._latency = round(latency_ms * self._rate / 1000)
        self._word = round(word_ms * self._rate / 1000)
        self._refractory = round(refractory_ms * self._rate / 1000)
        self._position = 0
        self._deaf_until = 0

    @property
    def position(self) -> int:
        return self._position

    def feed(self, frame: bytes | bytearray | memoryview) -> list[WakeWordDetection]:
        if len(frame) % 2:
            raise ValueError("frame holds a partial 16-bit sample")
        self._position += len(frame) // 2
        found: list[WakeWordDetection] = []
        for features in self._features.process_streaming(bytes(frame)):
            prob = self._engine.process_streaming_prob(features)
            if prob is None or prob <= self._engine.probability_cutoff:
                continue
            if self._position < self._deaf_until:
                continue
            fired = self._position
            end = max(0, fired - self._latency)
            found.append(
                WakeWordDetection(self.wake_word, max(0, end - self._word), end, fired, float(prob))
            )
            self._deaf_until = fired + self._refractory
        return found

    def reset(self) -> None:
        self._engine.reset()
        self._features.reset()


def create_wake_word_detector(engine: str = "micro", **options: Any) -> WakeWordDetector:
    """Create a detector by engine name ("micro": microWakeWord, the default)."""
    if engine == "micro":
        return MicroWakeWordDetector(**options)
    raise ValueError(f"unknown wake-word engine {engine!r} (known: micro)")


def refine_start(
    ring: PcmRing,
    detection: WakeWordDetection,
    *,
    max_word_ms: float = 1200.0,
    min_pause_ms: float = 120.0,
    min_word_ms: float = 300.0,
    threshold_db: float = 12.0,
) -> WakeWordDetection:
    """Move the start estimate to the speech onset visible in the ring, when there is one.

    Looks back from the estimated end over at most `max_word_ms` of 10 ms frames for the last
    run of `min_pause_ms` quiet frames (below the 10th-percentile level of the history plus
    `threshold_db`); the word starts after it. A pause that would leave less than
    `min_word_ms` of word is taken as a weak consonant inside the word and passed. Without
    such a pause (the word ran on from earlier speech, or the history is too short) the
    detection is returned unchanged.
    """
    fmt = ring.format
    if fmt.encoding is not SampleEncoding.SIGNED or fmt.sample_width != 2 or fmt.channels != 1:
        raise ValueError(f"refine_start needs signed 16-bit mono, not {fmt}")
    step = fmt.rate // 100
    lo = max(ring.oldest, detection.end - ring.samples_for_ms(max_word_ms + 1000))
    hi = min(detection.end, ring.end)
    if hi - lo < 4 * step:
        return detection
    pcm = np.frombuffer(ring.read(lo, hi - lo), dtype="<i2").astype(np.float64)
    n = len(pcm) // step
    frames = pcm[len(pcm) - n * step :].reshape(n, step)
    level = 10 * np.log10(np.mean(frames * frames, axis=1) / (32768.0**2) + 1e-10)
    voiced = level > np.percentile(level, 10) + threshold_db
    base = hi - n * step
    need = max(1, round(min_pause_ms / 10))
    limit = max(0, n - round(max_word_ms / 10))
    min_word = ring.samples_for_ms(min_word_ms)
    quiet = 0
    seen_voice = False  # the end estimate may lie in the pause after the word: skip it
    for i in range(n - 1, limit - 1, -1):
        if not voiced[i]:
            quiet += 1
            if seen_voice and quiet == need:
                start = base + (i + quiet) * step
                if detection.end - start >= min_word:
                    return WakeWordDetection(
                        detection.wake_word,
                        start,
                        detection.end,
                        detection.fired,
                        detection.probability,
                    )
                # a pause inside the word (a weak consonant in noise): look further back
        else:
            quiet = 0
            seen_voice = True
    return detection


@dataclass(frozen=True, slots=True)
class RecognizeWindow:
    """What a WAKEWORD Recognize needs from a detection.

    Attributes:
        reader_start: the ring position the uploaded audio starts at.
        start_index: the wake word's first sample, relative to `reader_start`.
        end_index: one past the wake word's last sample, relative to `reader_start`.
        wake_word: the word, e.g. "ALEXA".
        full_preroll: the whole pre-roll asked for precedes the word; only then may a
            Recognize carry `wakeWordIndices` (avs-protocol 11.1).
    """

    reader_start: int
    start_index: int
    end_index: int
    wake_word: str
    full_preroll: bool = True


def recognize_window(
    detection: WakeWordDetection,
    oldest: int,
    *,
    preroll_samples: int = DEFAULT_PREROLL_SAMPLES,
) -> RecognizeWindow:
    """The pre-roll start and the wake-word indices for a Recognize.

    Args:
        detection: the detection (positions in the ring's stream).
        oldest: the oldest position the ring still holds (`PcmRing.oldest`).
        preroll_samples: audio wanted before the word (8000: 500 ms at 16 kHz).

    Returns:
        A window whose `reader_start` is `preroll_samples` before the word's start, or the
        oldest held sample when there is less history (then `start_index` is smaller).
    """
    if preroll_samples < 0:
        raise ValueError("preroll_samples must not be negative")
    start = max(detection.start, oldest)
    reader_start = max(oldest, start - preroll_samples)
    return RecognizeWindow(
        reader_start=reader_start,
        start_index=start - reader_start,
        end_index=max(start, detection.end) - reader_start,
        wake_word=detection.wake_word,
        full_preroll=start - reader_start >= preroll_samples,
    )
