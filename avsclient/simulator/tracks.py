"""Test tracks for the simulator's media server, made when asked (nothing is downloaded).

- `tone_mp3`: a stereo tone encoded to MP3 with lameenc, optionally behind an ID3v2 tag with
  a title (for StreamMetadataExtracted).
- `tone_media`: a tone encoded by PyAV (the `media` extra): AAC in ADTS, MP4/M4A or MPEG-TS,
  or Opus in Ogg.
- `hls_segments`: an AAC tone in MPEG-TS cut into HLS segments at packet boundaries.

The simulator's spoken MP3 assets (`speech_asset`) are espeak-ng speech made the same way.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from avsclient.audio.convert import encode_samples
from avsclient.audio.format import AudioFormat
from avsclient.simulator._extra import missing_extra

__all__ = ["hls_segments", "id3_tag", "tone_media", "tone_mp3"]

# MPEG-TS packets are 188 bytes (ISO/IEC 13818-1 2.4.3.2): segments are cut between them.
_TS_PACKET = 188


def _tone(seconds: float, rate: int, freq: float, sweep_to: float | None = None) -> Any:
    t = np.arange(int(seconds * rate)) / rate
    if sweep_to is None:
        phase = 2 * np.pi * freq * t
    else:  # a linear sweep: no two moments sound alike (offsets can be checked on the audio)
        phase = 2 * np.pi * (freq * t + (sweep_to - freq) * t * t / (2 * seconds))
    left = 0.4 * np.sin(phase)
    right = 0.4 * np.sin(1.5 * phase)
    return np.stack((left, right), axis=1).astype(np.float32)


def id3_tag(**frames: str) -> bytes:
    """An ID3v2.3 tag with text frames (`title`, `artist`, `album`), UTF-16 text."""
    ids = {"title": b"TIT2", "artist": b"TPE1", "album": b"TALB"}
    body = b""
    for name, value in frames.items():
        content = b"\x01" + value.encode("utf-16")
        body += ids[name] + len(content).to_bytes(4, "big") + b"\x00\x00" + content
    size = len(body)
    syncsafe = bytes((size >> shift) & 0x7F for shift in (21, 14, 7, 0))
    return b"ID3\x03\x00\x00" + syncsafe + body


def tone_mp3(
    seconds: float,
    *,
    freq: float = 440.0,
    rate: int = 44_100,
    kbps: int = 128,
    title: str | None = None,
    sweep_to: float | None = None,
) -> bytes:
    """A stereo tone (`freq` left, 1.5 x `freq` right) encoded to MP3 with lameenc, at a
    constant bitrate; `sweep_to`: the tone glides linearly from `freq` to that frequency.

    Raises:
        ImportError: lameenc is not installed (the `simulator` extra brings it).
    """
    try:
        import lameenc
    except ImportError as exc:
        raise missing_extra("lameenc") from exc
    fmt = AudioFormat(rate=rate, channels=2)
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(kbps)
    encoder.set_in_sample_rate(rate)
    encoder.set_channels(2)
    encoder.set_quality(5)
    pcm = encode_samples(_tone(seconds, rate, freq, sweep_to), fmt)
    mp3 = bytes(encoder.encode(pcm) + encoder.flush())
    return (id3_tag(title=title) if title else b"") + mp3


def tone_media(
    seconds: float,
    *,
    container: str = "adts",
    freq: float = 440.0,
    rate: int = 44_100,
    title: str | None = None,
) -> bytes:
    """A stereo tone encoded by PyAV: AAC in `adts`, `mp4` (M4A) or `mpegts`, or Opus in `ogg`.

    Raises:
        AudioError: PyAV is not installed (the `media` extra).
    """
    from avsclient.audio._engines import import_engine

    av = import_engine("av", "media")
    codec = "libopus" if container == "ogg" else "aac"
    rate = 48_000 if codec == "libopus" else rate
    samples = (_tone(seconds, rate, freq) * 32767).astype(np.int16)
    out = io.BytesIO()
    with av.open(out, "w", format=container) as muxer:
        if title:
            muxer.metadata["title"] = title
        stream = muxer.add_stream(codec, rate=rate, layout="stereo")
        block = 1024
        for start in range(0, len(samples), block):
            chunk = np.ascontiguousarray(samples[start : start + block].reshape(1, -1))
            frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="stereo")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                muxer.mux(packet)
        for packet in stream.encode(None):
            muxer.mux(packet)
    return out.getvalue()


def hls_segments(seconds: float, count: int, *, freq: float = 440.0) -> list[bytes]:
    """An AAC tone in MPEG-TS cut into `count` HLS segments (at 188-byte packet boundaries).

    Raises:
        AudioError: PyAV is not installed (the `media` extra).
    """
    ts = tone_media(seconds, container="mpegts", freq=freq)
    packets = len(ts) // _TS_PACKET
    per = -(-packets // count)
    return [
        ts[i * per * _TS_PACKET : min(len(ts), (i + 1) * per * _TS_PACKET)] for i in range(count)
    ]
