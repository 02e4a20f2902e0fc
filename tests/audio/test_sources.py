"""Source behaviour beyond the conformance suite: capture overflow, failures, bad files."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

import numpy as np
import pytest

from avsclient.audio import AVS_FRAME_BYTES, CaptureBridge, Microphone, WavFileSource
from avsclient.exceptions import AudioError
from tests.audio.conftest import PulseServer


def push_from_thread(bridge: CaptureBridge, *chunks: bytes, overflow: bool = False) -> None:
    """Push `chunks` from a foreign thread, as an audio callback does, and wait for it."""

    def run() -> None:
        for chunk in chunks:
            bridge.push(chunk, input_overflow=overflow)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()


async def settle() -> None:
    """Let the loop run the callbacks the capture thread scheduled."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_full_capture_queue_drops_new_frames_counts_and_logs_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A consumer that falls behind loses the newest frames, counted and logged once."""
    caplog.set_level(logging.WARNING, logger="avsclient.audio")
    bridge = CaptureBridge(queue_frames=5)
    frames = [bytes([n]) * AVS_FRAME_BYTES for n in range(12)]
    push_from_thread(bridge, *frames)
    await settle()
    assert bridge.dropped_frames == 7
    got = [await bridge.read_frame() for _ in range(5)]
    assert got == frames[:5]  # the oldest are kept, in order
    warnings = [r for r in caplog.records if "capture queue full" in r.getMessage()]
    assert len(warnings) == 1  # one warning per run of drops, not one per frame
    # Once there is room again, frames flow and a new run of drops is reported again.
    push_from_thread(bridge, *frames[:7])
    await settle()
    assert bridge.dropped_frames == 9
    assert len([r for r in caplog.records if "capture queue full" in r.getMessage()]) == 2
    await bridge.aclose()


async def test_driver_overruns_are_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Audio lost before it reached us (PortAudio's input_overflow) is never silent."""
    caplog.set_level(logging.WARNING, logger="avsclient.audio")
    bridge = CaptureBridge()
    push_from_thread(bridge, bytes(AVS_FRAME_BYTES), bytes(AVS_FRAME_BYTES), overflow=True)
    await settle()
    assert bridge.input_overflows == 2
    assert bridge.dropped_frames == 0
    assert any("capture overrun" in r.getMessage() for r in caplog.records)
    assert len(await bridge.read_frame()) == AVS_FRAME_BYTES
    await bridge.aclose()


async def test_capture_failure_is_raised_after_the_frames_already_pushed() -> None:
    """fail() delivers what was captured, then raises the error on every later read."""
    bridge = CaptureBridge()

    def run() -> None:
        bridge.push(b"\x01" * (AVS_FRAME_BYTES + 100))
        bridge.fail(AudioError("device unplugged"))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert await asyncio.wait_for(bridge.read_frame(), 5) == b"\x01" * AVS_FRAME_BYTES
    for _ in range(2):  # sticky
        with pytest.raises(AudioError, match="unplugged"):
            await bridge.read_frame()
    await bridge.aclose()
    assert await bridge.read_frame() == b""


async def test_two_concurrent_readers_are_refused() -> None:
    """A source has one consumer: a second task reading at the same time is misuse."""
    bridge = CaptureBridge()
    first = asyncio.create_task(bridge.read_frame())
    await settle()
    with pytest.raises(RuntimeError, match="another task"):
        await bridge.read_frame()
    await bridge.aclose()
    assert await first == b""


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, "no such file"),
        (b"", "the file is empty, not a WAV file"),
        (b"RIFF\x00\x00\x00\x00WAVEjunk", r"has no fmt and data chunks \(is it truncated\?\)"),
        (b"just some text, not audio", r"not a WAV file \(it does not begin with RIFF"),
    ],
    ids=["missing", "empty", "truncated-header", "not-wav"],
)
def test_unreadable_wav_files_say_why(tmp_path: Path, content: bytes | None, match: str) -> None:
    """A missing or malformed file names itself and the reason in an AudioError, and the
    same words come from `probe_wav` (the command line's argument check)."""
    from avsclient.audio.wavfile import probe_wav

    path = tmp_path / "input.wav"
    if content is not None:
        path.write_bytes(content)
    for opener in (WavFileSource, probe_wav):
        with pytest.raises(AudioError, match=match) as info:
            opener(path)
        assert str(info.value).startswith(f"{path}: ")


def _wav_bytes(tag: int, channels: int, rate: int, width: int, data: bytes) -> bytes:
    import struct

    fmt = struct.pack(
        "<HHIIHH", tag, channels, rate, rate * channels * width, channels * width, width * 8
    )
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"LIST" + struct.pack("<I", 5) + b"extra\x00"  # an odd chunk, padded
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize(
    ("tag", "width", "dtype"),
    [(3, 4, "<f4"), (3, 8, "<f8"), (1, 3, "int24"), (1, 4, "<i4"), (1, 1, "u1")],
    ids=["float32", "float64", "int24", "int32", "uint8"],
)
async def test_float_and_24_bit_wav_files_are_read_and_converted(
    tmp_path: Path, tag: int, width: int, dtype: str
) -> None:
    """A 48 kHz stereo file of any supported sample kind becomes AVS frames with the same
    tone (resampled to 16 kHz, mixed to mono)."""
    t = np.arange(4800) / 48_000
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    stereo = np.repeat(tone[:, None], 2, axis=1)
    if dtype == "int24":
        ints = np.round(stereo * (2**23 - 1)).astype("<i4").reshape(-1)
        data = b"".join(int(v).to_bytes(3, "little", signed=True) for v in ints)
    elif dtype == "u1":
        data = np.round(stereo * 127 + 128).astype("u1").tobytes()
    elif dtype == "<i4":
        data = np.round(stereo * (2**31 - 1)).astype("<i4").tobytes()
    else:
        data = stereo.astype(dtype).tobytes()
    path = tmp_path / "tone.wav"
    path.write_bytes(_wav_bytes(tag, 2, 48_000, width, data))
    source = WavFileSource(path)
    got = b"".join([frame async for frame in source])
    samples = np.frombuffer(got, dtype="<i2").astype(np.float64) / 32768
    assert len(samples) >= 1600  # 100 ms at 16 kHz (the last frame padded)
    middle = samples[200:1400]  # away from the resampler's edges
    expected = 0.5 * np.sin(2 * np.pi * 440 * (np.arange(1600) / 16_000))[200:1400]
    tolerance = 0.02 if width > 1 else 0.03
    assert np.max(np.abs(middle - expected)) < tolerance


def test_compressed_wav_is_refused_with_what_is_supported(tmp_path: Path) -> None:
    """An ADPCM file: the error names the encoding and what would work; the file is closed."""
    path = tmp_path / "adpcm.wav"
    path.write_bytes(_wav_bytes(2, 1, 16_000, 2, b"\x00" * 64))
    with pytest.raises(AudioError, match=r"MS ADPCM \(format tag 0x0002\); use WAV with integer"):
        WavFileSource(path)


async def test_microphone_callback_failure_reaches_the_reader(pulse: PulseServer) -> None:
    """An exception on PortAudio's thread ends capture with an AudioError, not a hang."""

    class BrokenConverter:
        def convert(self, data: bytes) -> bytes:
            raise ValueError("converter broke")

    mic = Microphone(capture_rate=44100)
    mic._converter = BrokenConverter()  # type: ignore[assignment]
    try:
        with pytest.raises(AudioError, match="converter broke"):
            async with asyncio.timeout(10):
                while await mic.read_frame():
                    pass
    finally:
        await mic.aclose()
