"""The real device path of hands-free turns: PortAudio capturing a PulseAudio null sink's
monitor, into which espeak-ng's "Alexa ..." is played, starts a WAKEWORD Recognize."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from avsclient.agents import WakeWordListener
from avsclient.audio import Microphone
from avsclient.auth import StaticTokenProvider
from avsclient.client import AVSClient
from avsclient.config import ClientConfig
from avsclient.simulator import Simulator
from tests.helpers import require_executable

from .conftest import PulseServer, espeak

pytestmark = pytest.mark.system


async def test_alexa_played_into_the_null_sink_starts_a_wake_word_turn(
    pulse: PulseServer, tmp_path: Path
) -> None:
    paplay = require_executable("paplay")
    wav = espeak(tmp_path / "alexa.wav", "Alexa, what is the weather like today?")
    async with Simulator() as sim:
        config = ClientConfig(endpoint=sim.url, ca_file=str(sim.ca_file))
        async with AVSClient(config, StaticTokenProvider(sim.add_token())) as client:
            await client.wait_connected(20)
            mic = Microphone()
            async with WakeWordListener(client.recognizer, mic) as listener:
                ring = listener.capture.ring
                async with asyncio.timeout(10):  # a second of room tone before the word
                    while ring.end < 16000:
                        await asyncio.sleep(0.05)
                player = await asyncio.create_subprocess_exec(paplay, str(wav), env=pulse.env())
                assert await asyncio.wait_for(player.wait(), 30) == 0
                recognize = await sim.wait_for_event("SpeechRecognizer", "Recognize", timeout=20)
                assert listener.error is None
            assert mic.dropped_frames == 0
    assert listener.detections == 1
    assert recognize.payload["initiator"]["type"] == "WAKEWORD"
    check = recognize.wake_word
    assert check is not None and check.problems == (), check
    assert check.preroll_ms == 500.0
