"""The mixer on the real device path: music through Mixer into Speaker (PortAudio -> PulseAudio
null sink), ducked for a while; the monitor hears the level drop by the duck gain and return."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from avsclient.audio import PLAYBACK_FORMAT, Mixer, Speaker
from avsclient.audio.convert import encode_samples
from tests.audio.conftest import PulseServer, envelope, monitor_recording

pytestmark = pytest.mark.system


async def test_ducked_music_is_heard_quieter_on_the_device(
    pulse: PulseServer, tmp_path: Path
) -> None:
    rate = PLAYBACK_FORMAT.rate
    t = np.arange(rate) / rate
    second = encode_samples(
        (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[:, None], PLAYBACK_FORMAT
    )
    raw = tmp_path / "recorded.raw"
    async with monitor_recording(pulse, raw):
        speaker = Speaker(PLAYBACK_FORMAT)
        try:
            mixer = Mixer(speaker)
            music = mixer.channel("Content")
            for ducked in (False, True, False):
                mixer.duck("Content", ducked)
                await music.write(second)
                await asyncio.wait_for(music.drain(), 30)
            await mixer.aclose()
        finally:
            await speaker.aclose()
        await asyncio.sleep(0.3)
    levels = envelope(np.frombuffer(raw.read_bytes(), dtype="<i2"), 16000, frame_ms=50)
    loud = levels > levels.max() - 3
    assert loud.sum() >= 20  # about two seconds at full level
    first, last = np.flatnonzero(loud)[[0, -1]]
    middle = levels[first:last]
    quiet = middle[middle < levels.max() - 10]
    # The ducked second: about 20*log10(0.2) = -14 dB under the rest.
    assert len(quiet) >= 12
    assert np.median(quiet) == pytest.approx(np.median(levels[loud]) - 14, abs=2.5)
