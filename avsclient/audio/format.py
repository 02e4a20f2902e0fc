"""Audio formats: the `AudioFormat` description of linear PCM, and the AVS upload format."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "AVS_FORMAT",
    "AVS_FORMAT_NAME",
    "AVS_FRAME_BYTES",
    "AVS_FRAME_MS",
    "AudioFormat",
    "SampleEncoding",
]

# Rates outside this range are either not audio devices can play or not speech; rejecting them
# early turns a typo (16 instead of 16000) into a clear ValueError instead of a device error.
_MIN_RATE = 4_000
_MAX_RATE = 384_000
_MAX_CHANNELS = 32


class SampleEncoding(enum.Enum):
    """How one sample is stored. All multi-byte encodings are little-endian."""

    #: Two's complement signed integers (WAV 16/24/32-bit PCM, AVS L16).
    SIGNED = "signed"
    #: Offset-binary unsigned integers (WAV 8-bit PCM).
    UNSIGNED = "unsigned"
    #: IEEE 754 floating point, nominal range -1.0 .. 1.0.
    FLOAT = "float"


# Legal (encoding, sample width) pairs.
_WIDTHS: dict[SampleEncoding, frozenset[int]] = {
    SampleEncoding.SIGNED: frozenset({2, 3, 4}),
    SampleEncoding.UNSIGNED: frozenset({1}),
    SampleEncoding.FLOAT: frozenset({4, 8}),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioFormat:
    """A linear PCM format: interleaved little-endian samples.

    Attributes:
        rate: sample frames per second (Hz).
        channels: interleaved channels per sample frame.
        sample_width: bytes per sample (one channel).
        encoding: how a sample is stored.

    Raises:
        ValueError: (from the constructor) a field is out of range, or the width does not
            exist for the encoding (signed 16/24/32, unsigned 8, float 32/64 bits).
    """

    rate: int
    channels: int = 1
    sample_width: int = 2
    encoding: SampleEncoding = SampleEncoding.SIGNED

    def __post_init__(self) -> None:
        for name in ("rate", "channels", "sample_width"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"AudioFormat.{name} must be an int, not {value!r}")
        if not isinstance(self.encoding, SampleEncoding):
            raise TypeError(f"AudioFormat.encoding must be a SampleEncoding: {self.encoding!r}")
        if not _MIN_RATE <= self.rate <= _MAX_RATE:
            raise ValueError(f"rate {self.rate} Hz is outside {_MIN_RATE}..{_MAX_RATE} Hz")
        if not 1 <= self.channels <= _MAX_CHANNELS:
            raise ValueError(f"channels {self.channels} is outside 1..{_MAX_CHANNELS}")
        if self.sample_width not in _WIDTHS[self.encoding]:
            widths = sorted(_WIDTHS[self.encoding])
            raise ValueError(
                f"{self.encoding.value} samples are {widths} bytes wide, not {self.sample_width}"
            )

    @property
    def frame_size(self) -> int:
        """Bytes per sample frame (one sample of every channel)."""
        return self.sample_width * self.channels

    @property
    def bytes_per_second(self) -> int:
        """Bytes of audio per second."""
        return self.frame_size * self.rate

    def bytes_for_ms(self, milliseconds: int) -> int:
        """Bytes in `milliseconds` of audio, rounded down to whole sample frames.

        Raises:
            ValueError: the duration is not positive or holds no whole sample frame.
        """
        frames = self.rate * milliseconds // 1000
        if milliseconds <= 0 or frames == 0:
            raise ValueError(f"{milliseconds} ms holds no whole sample frame at {self.rate} Hz")
        return frames * self.frame_size

    def duration_of(self, nbytes: int) -> float:
        """Seconds of audio in `nbytes` bytes."""
        return nbytes / self.bytes_per_second

    @property
    def numpy_dtype(self) -> str:
        """The numpy dtype string of one sample (3-byte samples have none: '' is returned)."""
        if self.encoding is SampleEncoding.FLOAT:
            return f"<f{self.sample_width}"
        if self.encoding is SampleEncoding.UNSIGNED:
            return "u1"
        return "" if self.sample_width == 3 else f"<i{self.sample_width}"

    def __str__(self) -> str:
        kind = {SampleEncoding.SIGNED: "s", SampleEncoding.UNSIGNED: "u", SampleEncoding.FLOAT: "f"}
        return f"{self.rate} Hz {self.channels} ch {kind[self.encoding]}{self.sample_width * 8}le"


#: The AVS upload format: 16 kHz, mono, signed 16-bit little-endian LPCM (avs-protocol 1.5).
AVS_FORMAT = AudioFormat(rate=16_000, channels=1, sample_width=2, encoding=SampleEncoding.SIGNED)
#: The `format` value of a Recognize event carrying `AVS_FORMAT` audio.
AVS_FORMAT_NAME = "AUDIO_L16_RATE_16000_CHANNELS_1"
#: AVS frames are 10 ms long (avs-protocol 1.5) ...
AVS_FRAME_MS = 10
#: ... which is 320 bytes of `AVS_FORMAT`, the suggested DATA frame size.
AVS_FRAME_BYTES = AVS_FORMAT.bytes_for_ms(AVS_FRAME_MS)
