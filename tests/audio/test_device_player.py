"""Music on the real device path: an AVSClient with a `Speaker` (PortAudio -> PulseAudio null
sink) plays an AudioPlayer stream from the simulator's HTTPS media server; the sink's monitor
hears the track's tone for about as long as the track lasts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from avsclient.audio import PLAYBACK_FORMAT, Speaker
from avsclient.auth import StaticTokenProvider
from avsclient.client import AVSClient
from avsclient.config import ClientConfig
from avsclient.simulator import Simulator, check_playback
from avsclient.simulator.playback import play
from avsclient.simulator.tracks import tone_mp3
from tests.audio.conftest import PulseServer, envelope, monitor_recording

pytestmark = pytest.mark.system


async def test_music_plays_through_the_pulseaudio_null_sink(
    pulse: PulseServer, tmp_path: Path
) -> None:
    raw = tmp_path / "recorded.raw"
    async with monitor_recording(pulse, raw):
        async with Simulator() as sim:
            url = sim.media.add("/tone.mp3", tone_mp3(2.0, freq=500.0))
            config = ClientConfig(endpoint=sim.url, ca_file=str(sim.ca_file))
            speaker = Speaker(PLAYBACK_FORMAT)
            try:
                async with AVSClient(
                    config, StaticTokenProvider(sim.add_token()), sink=speaker
                ) as client:
                    await client.wait_connected(20)
                    await sim.push_directive(play("tone", url, "REPLACE_ALL"))
                    finished = await sim.wait_for_event(
                        "AudioPlayer", "PlaybackFinished", timeout=30
                    )
                    await client.messenger.flush()
            finally:
                await speaker.aclose()
            assert check_playback(sim.events) == []
        await asyncio.sleep(0.3)
    assert 1900 <= finished.payload["offsetInMilliseconds"] <= 2100
    samples = np.frombuffer(raw.read_bytes(), dtype="<i2")
    levels = envelope(samples, 16000, frame_ms=50)
    loud = levels > levels.max() - 6
    assert 1.6 <= loud.sum() * 0.05 <= 2.4  # about two seconds heard
    first, last = np.flatnonzero(loud)[[0, -1]]
    heard = samples[first * 800 : (last + 1) * 800].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(heard))
    peak_hz = np.argmax(spectrum) * 16000 / len(heard)
    # The tone is 500 Hz left and 750 Hz right, mixed to mono by the recorder.
    assert peak_hz == pytest.approx(500, abs=10) or peak_hz == pytest.approx(750, abs=10)
