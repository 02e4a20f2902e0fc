"""Source behaviour beyond the conformance suite: capture overflow, failures, bad files."""

from __future__ import annotations

import asyncio
import logging
import threading
import wave
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
        (None, "cannot read"),
        (b"RIFF\x00\x00\x00\x00WAVEjunk", "cannot read"),
        (b"just some text, not audio", "cannot read"),
    ],
    ids=["missing", "truncated-header", "not-wav"],
)
def test_unreadable_wav_files_are_audio_errors(
    tmp_path: Path, content: bytes | None, match: str
) -> None:
    """A missing or malformed file names itself in an AudioError."""
    path = tmp_path / "input.wav"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AudioError, match=match) as info:
        WavFileSource(path)
    assert str(path) in str(info.value)


def test_float_wav_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    """IEEE-float WAV files (format 3) are not integer PCM: AudioError, file closed."""
    path = tmp_path / "float.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(4)
        wav.setframerate(16000)
        wav.writeframes(np.zeros(160, dtype="<f4").tobytes())
    data = bytearray(path.read_bytes())
    data[20:22] = (3).to_bytes(2, "little")  # WAVE_FORMAT_IEEE_FLOAT
    path.write_bytes(bytes(data))
    with pytest.raises(AudioError, match=str(path)):
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
