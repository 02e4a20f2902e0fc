"""AudioFormat validation and the numpy conversion core (formats, channels, resampling)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from avsclient.audio import (
    AVS_FORMAT,
    AVS_FORMAT_NAME,
    AVS_FRAME_BYTES,
    AudioFormat,
    Framer,
    PcmConverter,
    Resampler,
    SampleEncoding,
    decode_samples,
    encode_samples,
)

ALL_FORMATS = [
    AudioFormat(rate=16000, channels=1, sample_width=2, encoding=SampleEncoding.SIGNED),
    AudioFormat(rate=44100, channels=2, sample_width=3, encoding=SampleEncoding.SIGNED),
    AudioFormat(rate=48000, channels=2, sample_width=4, encoding=SampleEncoding.SIGNED),
    AudioFormat(rate=8000, channels=1, sample_width=1, encoding=SampleEncoding.UNSIGNED),
    AudioFormat(rate=22050, channels=1, sample_width=4, encoding=SampleEncoding.FLOAT),
    AudioFormat(rate=96000, channels=3, sample_width=8, encoding=SampleEncoding.FLOAT),
]


def tone(rate: int, seconds: float, freq: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_avs_format_is_16k_mono_s16le_with_320_byte_frames() -> None:
    """The upload format and its 10 ms frame match avs-protocol 1.5."""
    assert AudioFormat(rate=16000, channels=1, sample_width=2) == AVS_FORMAT
    assert AVS_FRAME_BYTES == 320
    assert AVS_FORMAT.bytes_per_second == 32000
    assert AVS_FORMAT_NAME == "AUDIO_L16_RATE_16000_CHANNELS_1"
    assert str(AVS_FORMAT) == "16000 Hz 1 ch s16le"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"rate": 16}, ValueError),
        ({"rate": 16000, "channels": 0}, ValueError),
        ({"rate": 16000, "sample_width": 1}, ValueError),
        ({"rate": 16000, "sample_width": 2, "encoding": SampleEncoding.FLOAT}, ValueError),
        ({"rate": 16000.0}, TypeError),
        ({"rate": 16000, "encoding": "signed"}, TypeError),
    ],
)
def test_audio_format_rejects_bad_fields(kwargs: dict[str, object], error: type) -> None:
    """Out-of-range or mistyped fields fail in the constructor."""
    with pytest.raises(error):
        AudioFormat(**kwargs)  # type: ignore[arg-type]


def test_audio_format_is_frozen() -> None:
    """Formats are immutable values."""
    with pytest.raises(AttributeError):
        AVS_FORMAT.rate = 8000  # type: ignore[misc]


def test_bytes_for_ms_rejects_empty_durations() -> None:
    """A duration that holds no sample frame is an error, not a zero-byte frame."""
    assert AVS_FORMAT.bytes_for_ms(20) == 640
    with pytest.raises(ValueError, match="no whole sample frame"):
        AVS_FORMAT.bytes_for_ms(0)


@pytest.mark.parametrize("fmt", ALL_FORMATS, ids=str)
def test_encode_then_decode_round_trips_within_one_step(fmt: AudioFormat) -> None:
    """Every encoding round-trips float samples to within its quantisation step."""
    rng = np.random.default_rng(7)
    samples = rng.uniform(-0.99, 0.99, size=(257, fmt.channels)).astype(np.float32)
    data = encode_samples(samples, fmt)
    assert len(data) == 257 * fmt.frame_size
    back = decode_samples(data, fmt)
    step = 2.0 ** -(8 * fmt.sample_width - 1) if fmt.encoding is not SampleEncoding.FLOAT else 1e-7
    assert np.max(np.abs(back - samples)) <= step


def test_encoding_clips_instead_of_wrapping() -> None:
    """Out-of-range floats saturate at full scale."""
    data = encode_samples(np.array([[1.5], [-1.5]], dtype=np.float32), AVS_FORMAT)
    assert np.frombuffer(data, "<i2").tolist() == [32767, -32768]


def test_decode_rejects_partial_frames() -> None:
    """Bytes that are not whole sample frames are refused."""
    with pytest.raises(ValueError, match="whole number"):
        decode_samples(b"\x00" * 3, AVS_FORMAT)


@pytest.mark.parametrize(("src", "dst"), [(48000, 16000), (44100, 16000), (22050, 16000),
                                          (16000, 48000), (24000, 16000)])
def test_resampler_keeps_in_band_tones_and_length(src: int, dst: int) -> None:
    """A 440 Hz tone comes out at the new rate intact, with ceil(n * dst / src) samples."""
    x = tone(src, 0.5)[:, None]
    r = Resampler(src, dst)
    out = np.concatenate([r.process(x), r.flush()])[:, 0]
    assert len(out) == -(-len(x) * dst // src)
    expected = tone(dst, len(out) / dst)[: len(out)]
    assert np.max(np.abs(out[64:-64] - expected[64:-64])) < 1e-3


def test_resampler_removes_tones_above_the_new_nyquist() -> None:
    """Downsampling filters out what the new rate cannot carry (no aliasing)."""
    x = tone(48000, 0.5, freq=11000)[:, None]
    r = Resampler(48000, 16000)
    out = np.concatenate([r.process(x), r.flush()])
    assert np.sqrt(np.mean(out[100:-100] ** 2)) < 1e-3


@given(st.lists(st.integers(min_value=1, max_value=900), min_size=1, max_size=40),
       st.sampled_from([(44100, 16000), (48000, 16000), (8000, 16000), (22050, 24000)]))
def test_resampler_output_does_not_depend_on_block_sizes(
    sizes: list[int], rates: tuple[int, int]
) -> None:
    """Resampling in blocks of any sizes gives exactly the one-block result."""
    src, dst = rates
    total = sum(sizes)
    x = np.random.default_rng(total).uniform(-1, 1, size=(total, 1)).astype(np.float32)
    whole = Resampler(src, dst)
    expected = np.concatenate([whole.process(x), whole.flush()])
    pieces = Resampler(src, dst)
    out, i = [], 0
    for n in sizes:
        out.append(pieces.process(x[i : i + n]))
        i += n
    out.append(pieces.flush())
    np.testing.assert_array_equal(np.concatenate(out), expected)


@given(st.lists(st.integers(min_value=0, max_value=700), min_size=1, max_size=30))
def test_converter_output_does_not_depend_on_chunk_splits(cuts: list[int]) -> None:
    """Chunks may split sample frames anywhere; the converted stream is the same."""
    src = AudioFormat(rate=44100, channels=2, sample_width=3)
    rng = np.random.default_rng(len(cuts))
    data = encode_samples(rng.uniform(-0.5, 0.5, size=(2000, 2)).astype(np.float32), src)
    whole = PcmConverter(src, AVS_FORMAT)
    expected = whole.convert(data) + whole.flush()
    conv = PcmConverter(src, AVS_FORMAT)
    out, pos = [], 0
    for cut in cuts:
        out.append(conv.convert(data[pos : pos + cut]))
        pos += cut
    out.append(conv.convert(data[pos:]))
    out.append(conv.flush())
    assert b"".join(out) == expected
    assert len(expected) == -(-2000 * 16000 // 44100) * 2


def test_converter_mixes_stereo_down_and_mono_up() -> None:
    """Stereo is averaged to mono; mono is copied to every channel."""
    stereo = AudioFormat(rate=16000, channels=2)
    left_right = np.array([[1000, 3000], [-2000, 0]], dtype="<i2").tobytes()
    mono = PcmConverter(stereo, AVS_FORMAT).convert(left_right)
    assert np.frombuffer(mono, "<i2").tolist() == [2000, -1000]
    up = PcmConverter(AVS_FORMAT, stereo).convert(mono)
    assert np.frombuffer(up, "<i2").tolist() == [2000, 2000, -1000, -1000]
    with pytest.raises(ValueError, match="cannot map"):
        PcmConverter(AudioFormat(rate=16000, channels=3), stereo)


def test_converter_passes_identical_formats_through_and_counts_discarded_bytes() -> None:
    """Same format: bytes untouched; a trailing partial frame is dropped and counted."""
    conv = PcmConverter(AVS_FORMAT, AVS_FORMAT)
    assert conv.passthrough
    assert conv.convert(b"\x01\x02\x03") == b"\x01\x02\x03"
    other = PcmConverter(AudioFormat(rate=16000, channels=2), AVS_FORMAT)
    assert other.convert(b"\x00" * 5) == b"\x00\x00"
    assert other.flush() == b""
    assert other.discarded_bytes == 1


def test_framer_cuts_fixed_frames_and_pads_the_last() -> None:
    """Frames are exactly frame_bytes; the tail is padded with the silence byte."""
    framer = Framer(4, silence=0x80)
    assert framer.push(b"abcdef") == [b"abcd"]
    assert framer.pending == 2
    assert framer.push(b"gh") == [b"efgh"]
    assert framer.push(b"i") == []
    assert framer.flush() == b"i\x80\x80\x80"
    assert framer.flush() is None
    with pytest.raises(ValueError, match="positive"):
        Framer(0)
