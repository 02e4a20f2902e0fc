"""End-of-speech detection for CLOSE_TALK and TAP recognitions: energy-based, no I/O.

With the CLOSE_TALK profile the device, not the cloud, ends the utterance (avs-protocol 5.2),
so the client must notice when the user has stopped talking. `EndpointDetector` measures the
energy of each 10 ms frame in dBFS, tracks the noise floor, and reports `VoiceStarted` once
enough frames rise above the floor, then `VoiceEnded` after a configurable run of quiet
frames (the hangover), when the utterance gets too long, or when nobody spoke at all.
"""

from __future__ import annotations

import collections
import enum
from dataclasses import dataclass

import numpy as np

from .format import AVS_FORMAT, AudioFormat, SampleEncoding

__all__ = [
    "EndReason",
    "EndpointDetector",
    "EndpointEvent",
    "EndpointState",
    "EndpointingConfig",
    "VoiceEnded",
    "VoiceStarted",
    "frame_energy_dbfs",
]

# The floor for a digital-silence frame, so that log10 never sees zero.
_SILENCE_DBFS = -100.0


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointingConfig:
    """Thresholds and timings of the end-of-speech detector.

    Attributes:
        threshold_db: how far above the noise floor a frame must be to count as voice.
            12 dB separates close-talk speech from room noise with margin.
        min_threshold_dbfs: voice must also exceed this absolute level, so that a perfectly
            silent input does not make its own faint noise "speech".
        start_ms: voiced audio needed (within `start_window_ms`) before speech is declared;
            shorter clicks and pops are ignored.
        start_window_ms: the window in which `start_ms` of voice must fall.
        hangover_ms: quiet audio after speech that ends the utterance. 700 ms tolerates the
            pauses between words of normal speech.
        no_speech_timeout_ms: end without speech after this long (0: never).
        max_speech_ms: end an utterance that runs this long (0: never). AVS stops listening
            after about 10 s anyway.
        noise_rise_db_per_s: how fast the noise floor estimate may rise (it falls at once),
            so that speech itself is not learned as noise.
        initial_noise_dbfs: the noise floor reported before any audio is measured (the
            first frame then replaces it).
    """

    threshold_db: float = 12.0
    min_threshold_dbfs: float = -50.0
    start_ms: int = 100
    start_window_ms: int = 200
    hangover_ms: int = 700
    no_speech_timeout_ms: int = 8000
    max_speech_ms: int = 10_000
    noise_rise_db_per_s: float = 3.0
    initial_noise_dbfs: float = -70.0

    def __post_init__(self) -> None:
        if self.threshold_db <= 0:
            raise ValueError("threshold_db must be positive")
        if not -100.0 < self.min_threshold_dbfs < 0.0:
            raise ValueError("min_threshold_dbfs must lie between -100 and 0 dBFS")
        if self.start_ms <= 0 or self.start_window_ms < self.start_ms:
            raise ValueError("need 0 < start_ms <= start_window_ms")
        if self.hangover_ms <= 0:
            raise ValueError("hangover_ms must be positive")
        if self.no_speech_timeout_ms < 0 or self.max_speech_ms < 0:
            raise ValueError("timeouts must be zero (never) or positive")
        if self.noise_rise_db_per_s < 0:
            raise ValueError("noise_rise_db_per_s must not be negative")


class EndReason(enum.Enum):
    """Why an utterance ended."""

    #: The speaker fell quiet for `hangover_ms`.
    SILENCE = "silence"
    #: Speech ran for `max_speech_ms`.
    MAX_DURATION = "max_duration"
    #: Nobody spoke within `no_speech_timeout_ms`.
    NO_SPEECH = "no_speech"


class EndpointState(enum.Enum):
    """Where the detector is."""

    WAITING = "waiting"  # no speech yet
    SPEAKING = "speaking"
    ENDED = "ended"  # terminal


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointEvent:
    """Base class of detector events; `offset_ms` is measured from the first frame fed."""

    offset_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class VoiceStarted(EndpointEvent):
    """Speech began at `offset_ms` (the first voiced frame of the start window)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class VoiceEnded(EndpointEvent):
    """The utterance ended; `offset_ms` is the end of the last voiced frame.

    For `EndReason.NO_SPEECH` it is the moment the timeout expired.
    """

    reason: EndReason


def frame_energy_dbfs(frame: bytes | bytearray | memoryview) -> float:
    """RMS level of signed 16-bit PCM in dB relative to full scale (-100 for silence)."""
    samples = np.frombuffer(frame, dtype="<i2").astype(np.float64)
    if samples.size == 0:
        return _SILENCE_DBFS
    mean_square = float(np.dot(samples, samples)) / samples.size / (32768.0 * 32768.0)
    if mean_square <= 0.0:
        return _SILENCE_DBFS
    return max(_SILENCE_DBFS, 10.0 * float(np.log10(mean_square)))


class EndpointDetector:
    """Energy-based voice start and end detection over 16-bit PCM frames (no I/O).

    Theory of operation: every frame is voiced when its level exceeds both the noise floor
    plus `threshold_db` and `min_threshold_dbfs`. The noise floor follows quiet frames down
    at once and rises at most `noise_rise_db_per_s`. In WAITING, `start_ms` of voiced frames
    within `start_window_ms` move to SPEAKING (VoiceStarted); no start within
    `no_speech_timeout_ms` moves to ENDED (VoiceEnded NO_SPEECH). In SPEAKING, a run of
    `hangover_ms` unvoiced frames, or `max_speech_ms` of speech, moves to ENDED. ENDED is
    terminal: feeding more frames is an error.
    """

    def __init__(
        self, config: EndpointingConfig | None = None, fmt: AudioFormat = AVS_FORMAT
    ) -> None:
        """Create a detector.

        Args:
            config: thresholds and timings (default: `EndpointingConfig()`).
            fmt: the PCM format of the frames; must be signed 16-bit mono.

        Raises:
            ValueError: `fmt` is not signed 16-bit mono.
        """
        if fmt.encoding is not SampleEncoding.SIGNED or fmt.sample_width != 2 or fmt.channels != 1:
            raise ValueError(f"EndpointDetector needs signed 16-bit mono, not {fmt}")
        self.config = config or EndpointingConfig()
        self.format = fmt
        self.state = EndpointState.WAITING
        self.noise_floor_dbfs = self.config.initial_noise_dbfs
        self._ms = 0.0  # audio fed so far
        # (start ms, duration, voiced) of the frames inside the start window
        self._recent: collections.deque[tuple[float, float, bool]] = collections.deque()
        self._speech_start = 0.0
        self._last_voice_end = 0.0
        self._seeded = False

    @property
    def elapsed_ms(self) -> int:
        """Milliseconds of audio fed so far."""
        return round(self._ms)

    def feed(self, frame: bytes | bytearray | memoryview) -> EndpointEvent | None:
        """Analyse the next frame (any whole number of samples, typically 10 ms).

        Returns:
            `VoiceStarted` or `VoiceEnded` when this frame changes the state, else None.

        Raises:
            RuntimeError: the detector has already ended.
            ValueError: the frame holds a partial sample.
        """
        if self.state is EndpointState.ENDED:
            raise RuntimeError("the endpoint detector has ended; create a new one")
        if len(frame) % 2:
            raise ValueError("frame holds a partial 16-bit sample")
        cfg = self.config
        start = self._ms
        duration = 1000.0 * (len(frame) // 2) / self.format.rate
        self._ms += duration
        level = frame_energy_dbfs(frame)
        if not self._seeded:
            # The first frame is taken as the room: users do not speak within 10 ms of the
            # microphone opening, and this adapts at once to a loud or a silent input.
            self.noise_floor_dbfs = level
            self._seeded = True
        threshold = max(self.noise_floor_dbfs + cfg.threshold_db, cfg.min_threshold_dbfs)
        voiced = level > threshold
        self._track_noise(level, duration)
        if self.state is EndpointState.WAITING:
            return self._waiting(start, duration, voiced)
        return self._speaking(start, duration, voiced)

    def _track_noise(self, level: float, duration: float) -> None:
        if level < self.noise_floor_dbfs:
            self.noise_floor_dbfs = level
        else:
            rise = self.config.noise_rise_db_per_s * duration / 1000.0
            self.noise_floor_dbfs = min(level, self.noise_floor_dbfs + rise)

    def _waiting(self, start: float, duration: float, voiced: bool) -> EndpointEvent | None:
        cfg = self.config
        recent = self._recent
        recent.append((start, duration, voiced))
        while recent and recent[0][0] + recent[0][1] <= self._ms - cfg.start_window_ms:
            recent.popleft()
        voiced_ms = sum(d for _, d, v in recent if v)
        if voiced_ms >= cfg.start_ms:
            self.state = EndpointState.SPEAKING
            self._speech_start = next(s for s, _, v in recent if v)
            self._last_voice_end = self._ms
            recent.clear()
            return VoiceStarted(offset_ms=round(self._speech_start))
        if cfg.no_speech_timeout_ms and self._ms >= cfg.no_speech_timeout_ms:
            self.state = EndpointState.ENDED
            return VoiceEnded(offset_ms=round(self._ms), reason=EndReason.NO_SPEECH)
        return None

    def _speaking(self, start: float, duration: float, voiced: bool) -> EndpointEvent | None:
        cfg = self.config
        if voiced:
            self._last_voice_end = self._ms
        if self._ms - self._last_voice_end >= cfg.hangover_ms:
            self.state = EndpointState.ENDED
            return VoiceEnded(offset_ms=round(self._last_voice_end), reason=EndReason.SILENCE)
        if cfg.max_speech_ms and self._ms - self._speech_start >= cfg.max_speech_ms:
            self.state = EndpointState.ENDED
            return VoiceEnded(offset_ms=round(self._ms), reason=EndReason.MAX_DURATION)
        return None
