"""The built-in alert sounds: alarm, timer, reminder and the short background tone, synthesised
here with numpy (no recorded audio), in any PCM format.

AVS expects a device to carry its own alert sounds for when the directive's assets cannot be
fetched (offline, an expired URL) or were not sent (avs-protocol 16.2). Each sound is one
loop of its pattern; the player repeats it with the directive's `loopPauseInMilliSeconds`.
Every tone has a 5 ms raised-cosine attack and release, so the loops never click.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

from .convert import encode_samples
from .format import AudioFormat

__all__ = ["TONE_NAMES", "alert_tone"]

FloatArray = npt.NDArray[np.float32]

#: The built-in sounds: one per alert type, and `BACKGROUND`, the short tone played while a
#: dialog holds the foreground (16.5).
TONE_NAMES = ("ALARM", "TIMER", "REMINDER", "BACKGROUND", "NOTIFICATION")

# (frequencies in Hz summed, seconds of tone, seconds of silence after) per note.
_Note = tuple[tuple[float, ...], float, float]
_PATTERNS: dict[str, tuple[_Note, ...]] = {
    # Four urgent beeps (a fifth apart, 880 + 1320 Hz), twice, then a breath: about 2 s.
    "ALARM": tuple([((880.0, 1320.0), 0.12, 0.08)] * 4 + [((880.0, 1320.0), 0.12, 0.5)])
    + tuple([((880.0, 1320.0), 0.12, 0.08)] * 4),
    # A falling two-note chime (E6, C6), 1.2 s.
    "TIMER": (((1318.5,), 0.25, 0.05), ((1046.5,), 0.45, 0.45)),
    # A soft rising arpeggio (C5, E5, G5), 1.4 s.
    "REMINDER": (((523.3,), 0.2, 0.05), ((659.3,), 0.2, 0.05), ((784.0,), 0.5, 0.4)),
    # One short, quiet-ish double beep.
    "BACKGROUND": (((988.0,), 0.08, 0.06), ((988.0,), 0.08, 0.0)),
    # The notification chime: two short rising tones (A5, E6), 0.3 s.
    "NOTIFICATION": (((880.0,), 0.12, 0.0), ((1318.5,), 0.18, 0.0)),
}
_EDGE = 0.005  # attack and release, seconds
_LEVEL = 0.35  # peak amplitude of a note (full scale 1.0): loud but with headroom


def _note(freqs: tuple[float, ...], seconds: float, rate: int) -> FloatArray:
    t = np.arange(int(seconds * rate), dtype=np.float64) / rate
    wave = sum(np.sin(2 * np.pi * f * t) for f in freqs) / len(freqs)
    edge = max(1, int(_EDGE * rate))
    envelope = np.ones_like(t)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, edge))
    envelope[:edge] = ramp
    envelope[-edge:] = ramp[::-1]
    return np.asarray(wave * envelope * _LEVEL, dtype=np.float32)


@functools.lru_cache(maxsize=32)
def alert_tone(name: str, fmt: AudioFormat) -> bytes:
    """One loop of the built-in sound `name` as PCM in `fmt` (cached).

    Args:
        name: one of `TONE_NAMES` (an alert type, or `BACKGROUND`).
        fmt: the PCM format (a mixer's or a sink's).

    Raises:
        ValueError: `name` is not a built-in sound.
    """
    pattern = _PATTERNS.get(name)
    if pattern is None:
        raise ValueError(f"no built-in alert sound {name!r}; known: {', '.join(TONE_NAMES)}")
    parts: list[FloatArray] = []
    for freqs, seconds, gap in pattern:
        parts.append(_note(freqs, seconds, fmt.rate))
        parts.append(np.zeros(int(gap * fmt.rate), dtype=np.float32))
    mono = np.concatenate(parts)
    frames = np.repeat(mono[:, None], fmt.channels, axis=1)
    return encode_samples(frames, fmt)
