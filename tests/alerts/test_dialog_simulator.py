"""An alarm ringing when the user talks, against the simulator over TLS: the voice turn and its
Speak send the alarm to the background (AlertEnteredBackground; on the recorded mix the short
background tone, ducked, under the speech) and it comes back after the Speak
(AlertEnteredForeground; the full alarm sound again), events in order at the simulator."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from avsclient.agents import FocusChanged, SpeechStateChanged
from avsclient.agents.speech_synthesizer import SpeechActivity
from avsclient.audio import WavFileSource
from avsclient.auth import StaticTokenProvider
from avsclient.client import AVSClient, default_agents
from avsclient.config import ClientConfig
from avsclient.focus import FocusState
from avsclient.simulator import AlertLedger, Simulator
from avsclient.store import DeviceStore

from .kit import FMT, PacedSink

lameenc = pytest.importorskip("lameenc")

UTTERANCE = Path(__file__).resolve().parents[2] / "avsclient" / "assets" / "utterance.wav"
SPEECH_HZ = 300.0  # the Speak is a 300 Hz tone: apart from the alert tones' frequencies
ALARM_HZ = (880.0, 1320.0)  # the built-in alarm sound
BACKGROUND_HZ = (988.0,)  # the built-in background sound


def _speech_mp3(seconds: float) -> bytes:
    rate = 24_000
    t = np.arange(int(seconds * rate)) / rate
    pcm = (0.3 * 32767 * np.sin(2 * np.pi * SPEECH_HZ * t)).astype("<i2").tobytes()
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(64)
    encoder.set_in_sample_rate(rate)
    encoder.set_channels(1)
    encoder.set_quality(2)
    return bytes(encoder.encode(pcm) + encoder.flush())


def _band_peak(samples: np.ndarray, freqs: tuple[float, ...], width: float = 25.0) -> float:
    """Peak amplitude of `samples` within `width` Hz of `freqs` (an FFT band-pass)."""
    spectrum = np.fft.rfft(samples)
    bins = np.fft.rfftfreq(len(samples), 1 / FMT.rate)
    keep = np.zeros(len(bins), dtype=bool)
    for f in freqs:
        keep |= np.abs(bins - f) <= width
    return float(np.abs(np.fft.irfft(spectrum * keep, len(samples))).max())


async def test_a_speak_sends_the_ringing_alarm_to_the_background_and_back(
    tmp_path: Path,
) -> None:
    store = DeviceStore.open(tmp_path / "device.sqlite3")
    sink = PacedSink(FMT, speed=1.0)  # plays in real time and keeps every sample: the mix
    loop = asyncio.get_running_loop()
    alert_focus: list[tuple[float, FocusState]] = []
    speech: list[tuple[float, SpeechActivity]] = []

    def follow(event: object) -> None:
        if isinstance(event, FocusChanged) and event.channel == "Alert":
            alert_focus.append((loop.time(), event.state))
        elif isinstance(event, SpeechStateChanged):
            speech.append((loop.time(), event.activity))

    async with Simulator(tls=True) as sim:
        sim.script.recognize(speech=_speech_mp3(2.0))
        config = ClientConfig(endpoint=sim.url, ca_file=str(sim.ca_file))
        client = AVSClient(
            config,
            StaticTokenProvider(sim.add_token()),
            agents=default_agents(sink=sink, store=store),
            listener=follow,
        )
        async with client:
            await client.wait_connected(10)
            ledger = AlertLedger()
            message = ledger.set_alert("ALARM", time.time() + 1)  # rings until stopped
            token = message["directive"]["payload"]["token"]
            await sim.push_directive(message)
            await sim.wait_for_event("Alerts", "AlertStarted", timeout=10)
            await asyncio.sleep(1.0)  # a second of the alarm in the foreground
            dialog = await client.recognize(WavFileSource(UTTERANCE, realtime=True))
            await dialog.wait_finished()
            await sim.wait_for_event("Alerts", "AlertEnteredForeground", timeout=10)
            await asyncio.sleep(1.0)  # a second of it in the foreground again
            assert await client.alerts.stop()
            await sim.wait_for_event("Alerts", "AlertStopped", timeout=10)
            stopped_at = loop.time()
            await client.alerts.outbox.flush(5)
    store.close()

    # At the simulator: the lifecycle against the schedule, each messageId once, and the
    # background/foreground pair in order between AlertStarted and AlertStopped.
    assert ledger.problems(sim.events) == []
    names = [e.name for e in sim.events if e.namespace == "Alerts"]
    assert names == [
        "SetAlertSucceeded",
        "AlertStarted",
        "AlertEnteredBackground",
        "AlertEnteredForeground",
        "AlertStopped",
    ]
    assert all(e.payload["token"] == token for e in sim.events if e.namespace == "Alerts")
    assert any(e.name == "SpeechFinished" for e in sim.events)

    # On the device: background during the turn, foreground once the Speak had finished.
    states = [state for _, state in alert_focus]
    assert states == [
        FocusState.FOREGROUND,
        FocusState.BACKGROUND,
        FocusState.FOREGROUND,
        FocusState.NONE,
    ]  # NONE: stopped
    (went_back, _), (came_forward, _) = alert_focus[1:3]
    finished = [t for t, activity in speech if activity is SpeechActivity.FINISHED]
    assert finished and went_back < finished[0] <= came_forward

    # On the recorded mix.
    mix = np.frombuffer(bytes(sink.data), dtype=np.int16).astype(np.float64)
    times = np.array([t for t, _ in sink.writes])
    offsets = np.array([n for _, n in sink.writes]) // FMT.frame_size

    def window(start: float, end: float) -> np.ndarray:
        a, b = np.searchsorted(times, [start, end])
        return mix[offsets[a] : offsets[min(b, len(offsets) - 1)]]

    before = window(went_back - 0.8, went_back - 0.05)
    during = window(went_back + 0.06, came_forward - 0.05)
    after = window(came_forward + 0.1, stopped_at - 0.1)
    full = 0.35 * client.alerts.volume / 100 * 32767  # the alarm's peak at the alert volume
    for foreground in (before, after):
        assert _band_peak(foreground, ALARM_HZ) == pytest.approx(full, rel=0.2)
    assert _band_peak(during, (SPEECH_HZ,)) > 0.2 * 32767  # the Speak played
    assert _band_peak(during, ALARM_HZ) < 0.05 * full  # no full alarm under the speech
    ducked = _band_peak(during, BACKGROUND_HZ)  # the short background tone, ducked
    assert ducked == pytest.approx(full * 0.2, rel=0.3)
    assert ducked < 0.3 * _band_peak(before, ALARM_HZ)  # quieter on the mix
