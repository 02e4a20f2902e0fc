"""Mp3SeekIndex: where a time lies in an MP3 stream (constant bitrate exactly, Xing and VBRI
tables), and decoding from the byte it names lands on the sample asked for."""

from __future__ import annotations

import numpy as np
import pytest

from avsclient.audio.format import AudioFormat
from avsclient.audio.mp3 import (
    Mp3FrameSplitter,
    Mp3SeekIndex,
    decode_mp3,
    id3v2_length,
    leading_frames_dropped,
)
from avsclient.simulator.tracks import tone_mp3

RATE = 44_100


def _column(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").reshape(-1, 2)[:, 0].astype(np.float64)


@pytest.mark.parametrize("target", [0.5, 2.77, 7.3])
def test_a_constant_bitrate_offset_decodes_from_the_exact_sample(target: float) -> None:
    track = tone_mp3(8.0, freq=200, sweep_to=3000, title="Sweep")
    tag = id3v2_length(track)
    assert tag > 0
    index = Mp3SeekIndex.from_head(track[tag : tag + 16384], tag, len(track))
    assert index is not None and index.exact and index.audio_start == tag
    fmt = AudioFormat(rate=RATE, channels=2)
    full = _column(decode_mp3(track, fmt))
    at = index.byte_for(target - 0.2)
    located = index.locate(track[at:], at)
    assert located is not None
    pos, seconds = located
    data = track[at + pos :]
    seconds += leading_frames_dropped(data[:8192], RATE, 2, index.samples_per_frame) * 1152 / RATE
    part = _column(decode_mp3(data, fmt))
    skip = round((target - seconds) * RATE)
    want = full[round(target * RATE) : round(target * RATE) + 4000]
    assert np.allclose(part[skip : skip + 4000], want, atol=2)


def _xing_frame(frames: int, size: int, toc: bytes) -> bytes:
    # MPEG-1 Layer III, 128 kbps, 44.1 kHz, stereo: 417 bytes; Xing at 4 + 32.
    header = bytes([0xFF, 0xFB, 0x90, 0x00])
    body = b"Xing" + (7).to_bytes(4, "big") + frames.to_bytes(4, "big") + size.to_bytes(4, "big")
    frame = header + bytes(32) + body + toc
    return frame + bytes(417 - len(frame))


def test_a_xing_table_maps_times_to_bytes_and_back() -> None:
    audio = tone_mp3(2.0)
    toc = bytes(min(255, i * 256 // 100) for i in range(100))
    xing = _xing_frame(1000, 1_000_000, toc)
    head = xing + audio
    index = Mp3SeekIndex.from_head(head, 0, None)
    assert index is not None and not index.exact
    assert index.audio_start == 417
    duration = 1000 * 1152 / RATE
    assert index.byte_for(duration / 2) == pytest.approx(417 + 500_000, abs=4000)
    assert index.byte_for(0) == 417
    # and back: a frame found at a byte gets the table's time for it
    located = index.locate(audio, 417)
    assert located is not None and located[1] == pytest.approx(0.0, abs=0.01)


def test_a_vbri_table_maps_times_to_bytes() -> None:
    header = bytes([0xFF, 0xFB, 0x90, 0x00])
    entries = 10
    fields = (
        (1).to_bytes(2, "big")  # version
        + (0).to_bytes(2, "big")  # delay
        + (75).to_bytes(2, "big")  # quality
        + (100_000).to_bytes(4, "big")  # bytes
        + (500).to_bytes(4, "big")  # frames
        + entries.to_bytes(2, "big")
        + (1).to_bytes(2, "big")  # scale
        + (2).to_bytes(2, "big")  # entry size
        + (50).to_bytes(2, "big")  # frames per entry
    )
    table = b"".join((10_000).to_bytes(2, "big") for _ in range(entries))
    frame = header + bytes(32) + b"VBRI" + fields + table
    frame += bytes(417 - len(frame))
    index = Mp3SeekIndex.from_head(frame + tone_mp3(1.0), 0, None)
    assert index is not None and not index.exact
    per_entry_s = 50 * 1152 / RATE
    assert index.byte_for(3 * per_entry_s) == 417 + 30_000


def test_no_index_without_frames_or_for_an_unannounced_variable_bitrate() -> None:
    assert Mp3SeekIndex.from_head(b"\x00" * 4096) is None
    mixed = tone_mp3(0.5, kbps=128) + tone_mp3(0.5, kbps=192)
    frames = Mp3FrameSplitter().feed(mixed)
    assert len({len(f) // 100 for f in frames}) > 1
    assert Mp3SeekIndex.from_head(mixed) is None
