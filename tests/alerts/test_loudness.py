"""How an alert sounds on the recorded mix (a real WAV file): paced to the clock even into a
sink that does not pace itself, at least as loud as the music it interrupts (avs-protocol
16.5), and with Alerts 1.4's ASCENDING alarm volume ramp rising from quiet to its volume."""

from __future__ import annotations

import asyncio
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from avsclient.agents.alerts import RING_LEAD
from avsclient.audio import AudioFormat, Mixer, WavFileSink, alert_tone
from avsclient.audio.convert import encode_samples
from avsclient.exceptions import StateError
from avsclient.focus import ContentType, FocusManager, FocusState

from .kit import FMT, Clock, RecordingSender, directive, make_agent, played_like, set_alert


class TimedWavSink(WavFileSink):
    """The real WAV sink, noting (wall time, bytes written so far) at each write."""

    def __init__(self, path: Path, fmt: AudioFormat) -> None:
        super().__init__(path, fmt)
        self.written = 0
        self.times: list[tuple[float, int]] = []

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        await super().write(data)
        self.written += len(data)
        self.times.append((time.monotonic(), self.written))


def recorded(path: Path) -> bytes:
    with wave.open(str(path), "rb") as wav:
        return wav.readframes(wav.getnframes())


async def test_an_endless_alert_into_a_wav_file_follows_the_clock(tmp_path: Path) -> None:
    """An alarm with no loopCount (an hour of sound) into a WAV file, which takes audio as
    fast as it comes: the audio written stays within the ring's lead of the wall time, at
    every write, and what was written is the alarm sound."""
    clock, sender = Clock(), RecordingSender()
    sink = TimedWavSink(tmp_path / "mix.wav", FMT)
    agent, store, mixer = make_agent(tmp_path / "d.sqlite3", clock, sender, sink=sink)
    agent.start()
    await agent.handlers()["SetAlert"](set_alert("a", clock.now, "ALARM"))
    await sender.wait_for("AlertStarted")
    began = time.monotonic()
    await asyncio.sleep(2.0)
    rang = time.monotonic() - began
    assert await agent.stop()
    await agent.aclose()
    await mixer.aclose()
    await sink.aclose()
    seconds = FMT.duration_of(sink.written)
    assert rang - 0.3 < seconds < rang + RING_LEAD + 0.3  # not an hour: about the wall time
    for at, written in sink.times:  # and at every moment, not only at the end
        assert FMT.duration_of(written) <= at - began + RING_LEAD + 0.25
    tone = alert_tone("ALARM", FMT)
    assert played_like(recorded(tmp_path / "mix.wav"), tone, agent.volume / 100)
    store.close()


def _music(seconds: float) -> bytes:
    t = np.arange(int(seconds * FMT.rate)) / FMT.rate
    wave_ = (0.5 * np.sin(2 * np.pi * 300.0 * t)).astype(np.float32)
    return encode_samples(wave_[:, None], FMT)


async def test_an_alert_plays_at_least_as_loud_as_the_music_it_interrupts(
    tmp_path: Path,
) -> None:
    """Music at gain 0.8, the alert volume 30: over the music the alarm rings at 0.8 (the
    music pauses under it); once the music is gone the next alarm rings at 0.3. Checked
    sample by sample on the WAV file."""
    clock, sender = Clock(), RecordingSender()
    focus = FocusManager()
    path = tmp_path / "mix.wav"
    sink = WavFileSink(path, FMT)
    agent, store, mixer = make_agent(tmp_path / "d.sqlite3", clock, sender, sink=sink, focus=focus)
    await agent.set_volume(30)
    music_out = mixer.channel("Content")
    mixer.set_gain("Content", 0.8)

    class Music:
        async def focus_changed(self, channel: str, state: FocusState) -> None:
            if state is FocusState.BACKGROUND:
                mixer.pause("Content")  # NONMIXABLE: it pauses under the alert

    music = Music()
    await focus.acquire("Content", music, ContentType.NONMIXABLE)
    song = _music(0.3)
    await music_out.write(song)
    await music_out.drain()
    agent.start()
    await agent.handlers()["SetAlert"](set_alert("over-music", clock.now, "ALARM", loopCount=1))
    await sender.wait_for("AlertStopped")
    await focus.release("Content", music)
    await agent.handlers()["SetAlert"](set_alert("alone", clock.now, "ALARM", loopCount=1))
    await sender.wait_for("AlertStopped", 2)
    await agent.aclose()
    await mixer.aclose()
    await sink.aclose()

    mix = recorded(path)
    tone = alert_tone("ALARM", FMT)
    assert len(mix) == len(song) + 2 * len(tone)
    assert played_like(mix[: len(song)], song, 0.8)  # the music, at its volume
    first = mix[len(song) : len(song) + len(tone)]
    assert played_like(first, tone, 0.8)  # raised to the music's volume
    assert played_like(mix[len(song) + len(tone) :], tone, 0.3)  # its own volume again
    assert mixer.volume("Alert") == pytest.approx(0.3)
    store.close()


async def test_the_ascending_alarm_volume_ramp(tmp_path: Path) -> None:
    """Alerts 1.4: SetAlarmVolumeRamp ASCENDING (AlarmVolumeRampReport) makes an alarm start
    at a fifth of its volume and rise to it over a second, on the recorded mix; a local
    change sends AlarmVolumeRampChanged; other values are ignored; 1.3 has no ramp."""
    clock, sender = Clock(), RecordingSender()
    path = tmp_path / "mix.wav"
    sink = WavFileSink(path, FMT)
    agent, store, mixer = make_agent(
        tmp_path / "d.sqlite3",
        clock,
        sender,
        sink=sink,
        version="1.4",
        ascending_ramp=(0.2, 1.0),
    )
    agent.start()
    assert agent.capability().version == "1.4"
    h = agent.handlers()
    await h["SetAlarmVolumeRamp"](directive("SetAlarmVolumeRamp", {"alarmVolumeRamp": "LOUD"}))
    assert agent.alarm_volume_ramp == "NONE"
    await h["SetAlarmVolumeRamp"](directive("SetAlarmVolumeRamp", {"alarmVolumeRamp": "ASCENDING"}))
    await sender.wait_for("AlarmVolumeRampReport")
    assert sender.accepted[-1]["event"]["payload"] == {"alarmVolumeRamp": "ASCENDING"}
    await h["SetAlert"](set_alert("wake", clock.now, "ALARM", loopCount=2))
    await sender.wait_for("AlertStopped")
    await agent.set_alarm_volume_ramp("NONE")
    await sender.wait_for("AlarmVolumeRampChanged")
    with pytest.raises(ValueError, match="alarm volume ramp"):
        await agent.set_alarm_volume_ramp("SOMETIMES")
    await agent.aclose()
    await mixer.aclose()
    await sink.aclose()

    # The gain at each sample where the tone is loud: the recording over the tone's samples.
    mix = np.frombuffer(recorded(path), dtype=np.int16).astype(np.float64)
    tone = np.frombuffer(alert_tone("ALARM", FMT), dtype=np.int16).astype(np.float64)
    reference = np.tile(tone, 2) * agent.volume / 100
    assert len(mix) == len(reference)
    loud = np.abs(reference) > 0.3 * np.abs(reference).max()
    gain = mix[loud] / reference[loud]
    at = np.flatnonzero(loud) / FMT.rate  # seconds into the sound
    assert np.allclose(gain[at < RING_LEAD - 0.05], 0.2, atol=0.02)  # starts at a fifth
    assert np.allclose(gain[at > RING_LEAD + 1.15], 1.0, atol=0.02)  # full after a second
    assert np.all(np.diff(gain) > -0.01)  # and only ever rises
    store.close()

    old, store13, mixer13 = make_agent(tmp_path / "e.sqlite3", clock, RecordingSender())
    assert "SetAlarmVolumeRamp" not in old.handlers()
    with pytest.raises(StateError):
        await old.set_alarm_volume_ramp("ASCENDING")
    await mixer13.aclose()
    store13.close()


async def test_mixer_volume_reads_what_was_set() -> None:
    """Mixer.volume(): 1.0 for a channel never set, else the last set_gain (not the duck)."""
    from avsclient.audio import NullSink

    mixer = Mixer(NullSink(FMT))
    assert mixer.volume("Content") == 1.0
    mixer.set_gain("Content", 0.4)
    mixer.duck("Content")
    assert mixer.volume("Content") == pytest.approx(0.4)
