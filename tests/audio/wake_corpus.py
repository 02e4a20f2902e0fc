"""A generated wake-word corpus: espeak-ng speech with "Alexa" at known positions, with and
without pink noise mixed in, and a long negative clip of near-miss words. Made on demand into a
directory (the tests use a session temp dir; the benchmark its own); nothing is downloaded."""

from __future__ import annotations

import asyncio
import collections
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avsclient.audio import AVS_FORMAT, AudioFormat, AudioSource, PcmConverter

RATE = AVS_FORMAT.rate

#: espeak-ng voices shipped with the Debian package (no mbrola voices needed).
VOICES = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us+f3")

COMMAND = "what is the weather like today"

NEGATIVE_SENTENCES = (
    "Alexander wrote a lexicon of electric terms.",
    "The electric kettle is in the kitchen next to Alex's desk.",
    "Look it up in a lexicon, Alexander said.",
    "Alexandra and Alexis took the electric train to Lexington.",
    "Please select the next election results in the text.",
    "A lexical analysis of the Alexandrian library.",
    "Her necklace and a Lexus were left by the exit.",
    "Electricity prices rose again, Alexander complained.",
    "The dyslexia study collected a lexicon of examples.",
    "Relax, said Alex, the electrician is on his way.",
)


@dataclass(frozen=True)
class WakeClip:
    """One positive clip: `samples` (int16, 16 kHz) with the word at [start, end)."""

    voice: str
    noisy: bool
    samples: np.ndarray
    start: int
    end: int


def espeak_pcm(text: str, voice: str, workdir: Path) -> np.ndarray:
    """`text` spoken by espeak-ng in `voice`, as int16 samples at 16 kHz."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise FileNotFoundError("espeak-ng")
    path = workdir / "tmp-espeak.wav"
    subprocess.run([exe, "-v", voice, "-w", str(path), text], check=True, capture_output=True)
    with wave.open(str(path), "rb") as w:
        src = AudioFormat(rate=w.getframerate(), channels=w.getnchannels())
        raw = w.readframes(w.getnframes())
    converter = PcmConverter(src, AVS_FORMAT)
    pcm = converter.convert(raw) + converter.flush()
    return np.frombuffer(pcm, dtype="<i2").copy()


def trim(samples: np.ndarray, threshold: float = 0.02) -> np.ndarray:
    """Cut leading and trailing near-silence (below `threshold` of full scale)."""
    loud = np.flatnonzero(np.abs(samples.astype(np.float64)) > threshold * 32768)
    if not len(loud):
        return samples
    return samples[loud[0] : loud[-1] + 1]


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS pink (1/f) noise, by shaping white noise in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    noise = np.fft.irfft(spectrum / np.sqrt(f), n)
    return noise / np.sqrt(np.mean(noise**2))


def mix_noise(samples: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    """Mix pink noise at `snr_db` below the speech's RMS (measured over its loud part)."""
    x = samples.astype(np.float64)
    loud = x[np.abs(x) > 0.02 * 32768]
    rms = np.sqrt(np.mean(loud**2)) if len(loud) else 1000.0
    noise = pink_noise(len(x), np.random.default_rng(seed)) * rms / 10 ** (snr_db / 20)
    return np.clip(x + noise, -32768, 32767).astype(np.int16)


def silence(ms: int) -> np.ndarray:
    return np.zeros(RATE * ms // 1000, dtype=np.int16)


def positive_clip(
    voice: str, workdir: Path, *, lead_ms: int = 1500, noisy: bool = False, snr_db: float = 15.0
) -> WakeClip:
    """`lead_ms` of silence, "Alexa", a 300 ms pause, a command, then 1.5 s of silence."""
    word = trim(espeak_pcm("Alexa", voice, workdir))
    command = trim(espeak_pcm(COMMAND, voice, workdir))
    lead = silence(lead_ms)
    samples = np.concatenate([lead, word, silence(300), command, silence(1500)])
    if noisy:
        samples = mix_noise(samples, snr_db, seed=len(voice))
    return WakeClip(voice, noisy, samples, len(lead), len(lead) + len(word))


def negative_clip(workdir: Path, voices: tuple[str, ...] = VOICES) -> np.ndarray:
    """Every negative sentence in every voice, 400 ms apart (about 2 minutes)."""
    parts: list[np.ndarray] = []
    for voice in voices:
        for sentence in NEGATIVE_SENTENCES:
            parts.append(trim(espeak_pcm(sentence, voice, workdir)))
            parts.append(silence(400))
    return np.concatenate(parts)


def frames(samples: np.ndarray, frame_samples: int = 160) -> list[bytes]:
    """Whole 10 ms frames of `samples` (a partial tail is padded with silence)."""
    pad = (-len(samples)) % frame_samples
    data = np.concatenate([samples, np.zeros(pad, dtype=np.int16)]).astype("<i2").tobytes()
    step = frame_samples * 2
    return [data[i : i + step] for i in range(0, len(data), step)]


def wake_utterance(voice: str, workdir: Path, command: str = COMMAND) -> tuple[np.ndarray, int]:
    """ "Alexa", a 300 ms pause and `command` in `voice`; returns the samples and the word's
    length in samples (the word starts at sample 0)."""
    word = trim(espeak_pcm("Alexa", voice, workdir))
    rest = trim(espeak_pcm(command, voice, workdir))
    return np.concatenate([word, silence(300), rest]), len(word)


class LiveSource(AudioSource):
    """A stand-in microphone: 10 ms frames paced at `speed` times real time, silence unless
    something was queued with `say()`; it runs until closed. `position` counts the samples
    delivered, so a test knows where in the stream each utterance started."""

    def __init__(self, speed: float = 1.0) -> None:
        self.speed = speed
        self._queued: collections.deque[bytes] = collections.deque()
        self._next: float | None = None
        self._closed = False
        self.position = 0

    @property
    def format(self) -> AudioFormat:
        return AVS_FORMAT

    @property
    def frame_bytes(self) -> int:
        return 320

    def say(self, samples: np.ndarray) -> int:
        """Queue `samples` after what is queued; returns the stream position it starts at."""
        start = self.position + 160 * len(self._queued)
        self._queued.extend(frames(samples))
        return start

    async def read_frame(self) -> bytes:
        if self._closed:
            return b""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._next is None:
            self._next = now
        await asyncio.sleep(max(0.0, self._next - now))
        self._next += 0.01 / self.speed
        if self._closed:
            return b""
        self.position += 160
        return self._queued.popleft() if self._queued else bytes(320)

    async def aclose(self) -> None:
        self._closed = True
