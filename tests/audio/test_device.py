"""The real device path: PortAudio -> ALSA pulse plugin -> PulseAudio null sink, and errors."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from avsclient.audio import (
    AVS_FORMAT,
    PLAYBACK_FORMAT,
    Microphone,
    Mp3Sink,
    Speaker,
    decode_mp3,
)
from avsclient.audio._portaudio import map_device_error
from avsclient.exceptions import AudioError
from tests.audio.conftest import (
    SPEECH_MP3,
    PulseServer,
    best_alignment,
    envelope,
    monitor_recording,
    read_wav_as_avs,
)
from tests.helpers import require_executable

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[2]


async def capture_while(
    pulse: PulseServer, mics: list[Microphone], command: list[str]
) -> list[np.ndarray]:
    """Read every microphone while `command` runs, plus half a second."""
    captured: list[list[bytes]] = []
    for mic in mics:
        captured.append([await asyncio.wait_for(mic.read_frame(), 10)])  # capture is running

    async def reader(mic: Microphone, frames: list[bytes]) -> None:
        async for frame in mic:
            frames.append(frame)

    tasks = [asyncio.create_task(reader(m, f)) for m, f in zip(mics, captured, strict=True)]
    await asyncio.sleep(0.3)
    process = await asyncio.create_subprocess_exec(*command, env=pulse.env())
    assert await asyncio.wait_for(process.wait(), 30) == 0
    await asyncio.sleep(0.5)
    for mic in mics:
        await mic.aclose()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    return [np.frombuffer(b"".join(frames), dtype="<i2") for frames in captured]


async def test_microphone_hears_espeak_speech_played_into_the_null_sink(
    pulse: PulseServer, speech_wav: Path
) -> None:
    """Speech played with paplay comes back through Microphone with the same envelope, both
    when the device captures at 16 kHz and when it captures at 44.1 kHz and we resample."""
    paplay = require_executable("paplay")
    direct = Microphone()
    resampled = Microphone(capture_rate=44100)
    assert (direct.capture_rate, resampled.capture_rate) == (16000, 44100)
    reference = read_wav_as_avs(speech_wav)
    recordings = await capture_while(pulse, [direct, resampled], [paplay, str(speech_wav)])
    for name, mic, captured in zip(
        ["direct", "resampled"], [direct, resampled], recordings, strict=True
    ):
        assert len(captured) > len(reference), name
        corr, lag = best_alignment(envelope(reference, 16000), envelope(captured, 16000))
        assert corr > 0.9, f"{name}: envelope correlation {corr:.3f} at lag {lag * 10} ms"
        assert mic.dropped_frames == 0, name


async def test_speaker_plays_a_decoded_mp3_that_the_monitor_records(
    pulse: PulseServer, tmp_path: Path
) -> None:
    """An MP3 streamed through Mp3Sink into Speaker is recorded (parecord) intact."""
    raw = tmp_path / "recorded.raw"
    async with monitor_recording(pulse, raw):
        data = SPEECH_MP3.read_bytes()
        async with Mp3Sink(Speaker(PLAYBACK_FORMAT)) as sink:
            for i in range(0, len(data), 1024):  # an attachment arriving in pieces
                await sink.write(data[i : i + 1024])
            await asyncio.wait_for(sink.drain(), 30)
        await asyncio.sleep(0.5)
    recorded = np.frombuffer(raw.read_bytes(), dtype="<i2")
    reference = np.frombuffer(decode_mp3(data, AVS_FORMAT), dtype="<i2")
    corr, lag = best_alignment(envelope(reference, 16000), envelope(recorded, 16000))
    assert corr > 0.9, f"envelope correlation {corr:.3f} at lag {lag * 10} ms"


async def test_speaker_stop_cuts_playback_short(pulse: PulseServer) -> None:
    """stop() during playback silences the output at once (barge-in)."""
    mic = Microphone()
    frames = [await asyncio.wait_for(mic.read_frame(), 10)]  # capture is running

    async def reader() -> None:
        async for frame in mic:
            frames.append(frame)

    task = asyncio.create_task(reader())
    t = np.arange(PLAYBACK_FORMAT.rate * 4) / PLAYBACK_FORMAT.rate
    tone = (12000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()
    async with Speaker(PLAYBACK_FORMAT) as speaker:
        await asyncio.sleep(0.3)
        writer = asyncio.create_task(speaker.write(tone))  # waits on the 300 ms buffer
        await asyncio.sleep(0.6)
        await speaker.stop()
        await asyncio.wait_for(writer, 5)  # the waiting write gives up
        await asyncio.sleep(0.7)
    await mic.aclose()
    await task
    levels = envelope(np.frombuffer(b"".join(frames), dtype="<i2"), 16000)
    loud = levels > 50  # dB over 1 LSB²: the tone is at about 78
    assert loud.sum() > 20  # it played
    assert loud.sum() * 10 < 2000  # but far less than its 4 s
    assert not loud[-50:].any()  # and the end is silent


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_missing_portaudio_library_is_an_audio_error_and_import_still_works() -> None:
    """Without libportaudio, importing works and Microphone/Speaker say what to install."""
    result = run_python(
        """
        import asyncio, ctypes.util
        ctypes.util.find_library = lambda name: None   # as on a system without libportaudio2
        import avsclient, avsclient.audio
        from avsclient.audio import Microphone, Speaker
        from avsclient.exceptions import AudioError
        async def main():
            for cls in (Microphone, Speaker):
                try:
                    cls()
                except AudioError as exc:
                    print("AudioError:", exc)
        asyncio.run(main())
        """
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    for line in lines:
        assert line.startswith("AudioError: PortAudio is not available")
        assert "apt-get install libportaudio2" in line


def test_no_audio_device_at_all_is_an_audio_error() -> None:
    """With no sound card and no reachable sound server, the error says how to get a device."""
    result = run_python(
        """
        import asyncio, sounddevice
        from avsclient.audio import Microphone, Speaker
        from avsclient.exceptions import AudioError
        if len(sounddevice.query_devices()):
            print("HAS-DEVICES")
        async def main():
            for cls in (Microphone, Speaker):
                try:
                    cls()
                except AudioError as exc:
                    print("AudioError:", exc)
        asyncio.run(main())
        """,
        PULSE_SERVER="unix:/nonexistent",  # ALSA's pulse device then cannot open
    )
    assert result.returncode == 0, result.stderr
    if "HAS-DEVICES" in result.stdout:
        pytest.skip("this machine has sound hardware, so 'no device at all' cannot happen")
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stdout
    assert lines[0].startswith("AudioError: no usable input device")
    assert lines[1].startswith("AudioError: no usable output device")
    assert all("PulseAudio" in line for line in lines)


async def test_unknown_device_name_is_an_audio_error(pulse: PulseServer) -> None:
    """Asking for a device that does not exist names the device and the way out."""
    with pytest.raises(AudioError, match=r"no usable input device.*no-such-device"):
        Microphone(device="no-such-device")
    with pytest.raises(AudioError, match="no usable output device"):
        Speaker(device="no-such-device")


def test_portaudio_errors_map_to_messages_that_say_what_to_do() -> None:
    """Busy device, unsupported rate and bad format become specific AudioErrors."""
    sd = pytest.importorskip("sounddevice")
    busy = map_device_error(
        sd.PortAudioError("Device unavailable", -9985), kind="input", device=None, rate=16000
    )
    assert "busy" in str(busy)
    assert "close the program" in str(busy)
    rate = map_device_error(
        sd.PortAudioError("Invalid sample rate", -9997), kind="output", device=3, rate=11025
    )
    assert "does not support 11025 Hz" in str(rate)
    fmt = map_device_error(
        sd.PortAudioError("Invalid number of channels", -9998), kind="input", device=1, rate=1
    )
    assert "rejected the format" in str(fmt)
    other = map_device_error(OSError("boom"), kind="output", device=None, rate=16000)
    assert "boom" in str(other)
    assert isinstance(other, AudioError)


def test_importing_avsclient_does_not_load_portaudio() -> None:
    """`import avsclient.audio` leaves sounddevice (and so PortAudio) unloaded."""
    result = run_python(
        """
        import sys
        import avsclient, avsclient.audio
        print("sounddevice" in sys.modules, "_sounddevice" in sys.modules)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]
