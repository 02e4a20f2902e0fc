"""AudioPlayer against the simulator: a queue of cid: streams played into a WAV sink with its
events in order and offsets from the samples played, Stop, ClearQueue, expectedPreviousToken,
bad URLs, and music pausing under a Speak (focus)."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path
from typing import Any

from avsclient.agents import FocusChanged
from avsclient.agents.audio_player import (
    AudioItem,
    AudioPlayerAgent,
    PlaybackMonitor,
    PlayerActivity,
    PlayQueue,
)
from avsclient.audio import PLAYBACK_FORMAT, MixerChannel, NullSink, WavFileSink
from avsclient.audio.mixer import DEFAULT_DUCK_GAIN
from avsclient.client import AVSClient
from avsclient.simulator import Simulator, directive
from avsclient.simulator.scenarios import speech_asset

from .conftest import ClientFactory, tone_source


def play(token: str, url: str, behavior: str = "ENQUEUE", **stream: Any) -> dict[str, Any]:
    return directive(
        "AudioPlayer",
        "Play",
        {
            "playBehavior": behavior,
            "audioItem": {"audioItemId": token, "stream": {"url": url, "token": token, **stream}},
        },
    )


def player_for(client: AVSClient) -> AudioPlayerAgent:
    """The client's own AudioPlayer (a default agent), playing on its mixer's Content channel."""
    player = client.player
    assert isinstance(player.output, MixerChannel) and player.output.mixer is client.mixer
    return player


class PacedSink(NullSink):
    """Takes as long to accept audio as a device takes to play it (write back-pressure)."""

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        await super().write(data)
        await asyncio.sleep(self.format.duration_of(len(data)))

    async def drain(self) -> None:
        self.bytes_played = self.bytes_written


def names(sim: Simulator) -> list[str]:
    return [e.name for e in sim.events if e.namespace == "AudioPlayer"]


def test_play_queue_behaviors_and_expected_previous_token() -> None:
    q = PlayQueue(max_queue=3)
    a, c = (AudioItem(token=t, url="https://x/" + t) for t in "ac")
    assert q.play(a, "REPLACE_ALL") == (True, [])
    assert q.next() is a
    wrong = AudioItem(token="w", url="https://x/w", expected_previous="zz")
    assert q.play(wrong, "ENQUEUE") == (False, [])
    right = AudioItem(token="b", url="https://x/b", expected_previous="a")
    assert q.play(right, "ENQUEUE")[0] and q.play(c, "ENQUEUE")[0]
    accepted, dropped = q.play(AudioItem(token="d", url="https://x/d"), "REPLACE_ENQUEUED")
    assert accepted and dropped == [right, c] and q.current is a
    assert [i.token for i in q.clear()] == ["d"]


async def test_a_queue_plays_in_order_with_offsets_from_the_samples_played(
    sim: Simulator, make_client: ClientFactory, tmp_path: Path
) -> None:
    out = tmp_path / "music.wav"
    sink = WavFileSink(out, PLAYBACK_FORMAT)
    client = make_client(sink=sink)
    player = player_for(client)
    async with client:
        await client.wait_connected(20)
        await sim.push_directive(
            play("t1", "cid:m1", "REPLACE_ALL"), attachments={"m1": speech_asset("hello")}
        )
        await sim.push_directive(
            play("t2", "cid:m2", expectedPreviousToken="t1"),
            attachments={"m2": speech_asset("hello")},
        )
        await sim.wait_for_event("AudioPlayer", "PlaybackFinished", nth=2, timeout=20)
        states = {f"{s['header']['name']}": s for s in client.messenger.context()}
    await sink.aclose()
    assert names(sim) == [
        "PlaybackStarted",
        "PlaybackNearlyFinished",
        "PlaybackFinished",
        "PlaybackStarted",
        "PlaybackNearlyFinished",
        "PlaybackFinished",
    ]
    events = [e for e in sim.events if e.namespace == "AudioPlayer"]
    assert [e.payload["token"] for e in events] == ["t1"] * 3 + ["t2"] * 3
    with wave.open(str(out), "rb") as wav:
        written_ms = wav.getnframes() * 1000 / wav.getframerate()
    first, second = (
        events[2].payload["offsetInMilliseconds"],
        events[5].payload["offsetInMilliseconds"],
    )
    assert abs(first + second - written_ms) < 100
    assert events[0].payload["offsetInMilliseconds"] == 0
    assert states["PlaybackState"]["payload"]["token"] == "t2"
    assert player.activity is PlayerActivity.IDLE


async def test_stop_clear_queue_and_a_non_https_url(
    sim: Simulator, make_client: ClientFactory
) -> None:
    client = make_client()
    player = player_for(client)
    async with client:
        await client.wait_connected(20)
        await sim.push_directive(play("bad", "http://media.invalid/x.mp3", "REPLACE_ALL"))
        failed = await sim.wait_for_event("AudioPlayer", "PlaybackFailed", timeout=10)
        await sim.push_directive(
            play("long", "cid:m1", "REPLACE_ALL"), attachments={"m1": speech_asset("hello") * 20}
        )
        # The refused URL never started: the first PlaybackStarted is the second stream's.
        await sim.wait_for_event("AudioPlayer", "PlaybackStarted", timeout=10)
        await sim.push_directive(
            directive("AudioPlayer", "ClearQueue", {"clearBehavior": "CLEAR_ENQUEUED"})
        )
        await sim.wait_for_event("AudioPlayer", "PlaybackQueueCleared", timeout=10)
        assert player.activity is PlayerActivity.PLAYING
        await sim.push_directive(directive("AudioPlayer", "Stop", {}))
        stopped = await sim.wait_for_event("AudioPlayer", "PlaybackStopped", timeout=10)
    assert failed.payload["token"] == "bad"
    assert failed.payload["error"]["type"] == "MEDIA_ERROR_INVALID_REQUEST"
    started = [e.payload["token"] for e in sim.events if e.name == "PlaybackStarted"]
    assert started == ["long"]
    assert stopped.payload["token"] == "long"
    assert player.activity is PlayerActivity.STOPPED


async def test_music_pauses_under_a_dialog_and_resumes_with_its_offset(
    sim: Simulator, make_client: ClientFactory
) -> None:
    """Default (PAUSE) music: a voice turn pauses it (PlaybackPaused), it resumes when the
    dialog ends (PlaybackResumed) at the offset where it paused."""
    sink = PacedSink(PLAYBACK_FORMAT)
    client = make_client(sink=sink)
    player = player_for(client)
    async with client:
        await client.wait_connected(20)
        await sim.push_directive(
            play("m", "cid:m1", "REPLACE_ALL"), attachments={"m1": speech_asset("hello") * 20}
        )
        await sim.wait_for_event("AudioPlayer", "PlaybackStarted", timeout=10)
        await asyncio.sleep(0.5)
        await client.recognize(tone_source(0.3))
        paused = await sim.wait_for_event("AudioPlayer", "PlaybackPaused", timeout=10)
        assert player.activity is PlayerActivity.PAUSED
        await sim.wait_for_event("SpeechSynthesizer", "SpeechFinished", timeout=20)
        for _ in range(100):
            if player.activity is PlayerActivity.PLAYING:
                break
            await asyncio.sleep(0.02)
        assert player.activity is PlayerActivity.PLAYING
        await client.messenger.flush()
    focus_events = [n for n in names(sim) if n in ("PlaybackPaused", "PlaybackResumed")]
    # The Recognize and then the Speak each take the Dialog channel: paused under both.
    assert focus_events[0] == "PlaybackPaused" and focus_events[-1] == "PlaybackResumed"
    assert focus_events == ["PlaybackPaused", "PlaybackResumed"] * (len(focus_events) // 2)
    resumed = [e for e in sim.events if e.name == "PlaybackResumed"][-1]
    pause_at = paused.payload["offsetInMilliseconds"]
    assert pause_at >= 300
    # Paused while the voice turn ran: at most the gap between Recognize and Speak played.
    assert 0 <= resumed.payload["offsetInMilliseconds"] - pause_at < 500


async def test_attenuated_music_ducks_under_speech_and_comes_back(
    sim: Simulator, make_client: ClientFactory
) -> None:
    """ATTENUATE music keeps playing ducked (no PlaybackPaused) and returns to full gain."""
    sink = PacedSink(PLAYBACK_FORMAT)
    client = make_client(sink=sink)
    player = player_for(client)
    gains: list[float] = []
    mixer = player.output.mixer

    def watch(event: object) -> None:
        if isinstance(event, FocusChanged) and event.channel == "Content":
            gains.append(mixer.core._lane("Content").duck)

    client.add_listener(watch)
    async with client:
        await client.wait_connected(20)
        await sim.push_directive(
            play("m", "cid:m1", "REPLACE_ALL", interruptedBehavior="ATTENUATE"),
            attachments={"m1": speech_asset("hello") * 20},
        )
        await sim.wait_for_event("AudioPlayer", "PlaybackStarted", timeout=10)
        await asyncio.sleep(0.3)
        await client.recognize(tone_source(0.3))
        await sim.wait_for_event("SpeechSynthesizer", "SpeechFinished", timeout=20)
        for _ in range(100):
            if mixer.core.gain("Content") == 1.0:
                break
            await asyncio.sleep(0.02)
        assert player.activity is PlayerActivity.PLAYING
        assert mixer.core.gain("Content") == 1.0
    assert DEFAULT_DUCK_GAIN in gains and gains[-1] == 1.0
    assert "PlaybackPaused" not in names(sim)


def test_progress_reports_follow_the_track_position() -> None:
    """Delay once (never when the Play offset is past it); interval at each multiple of it,
    counted from the stream start (offset 10 s, interval 20 s: at 20 s, 40 s)."""
    item = AudioItem(token="t", url="cid:x", offset_ms=10_000)
    item.report_delay_ms, item.report_interval_ms = 15_000, 20_000
    watch = PlaybackMonitor(item)
    seen = {}
    for position in range(10_000, 45_001, 50):
        for name, _ in watch.update(position, queued=True, reading=True, now=0.0):
            seen.setdefault(name, []).append(position)
    assert seen == {
        "ProgressReportDelayElapsed": [15_000],
        "ProgressReportIntervalElapsed": [20_000, 40_000],
    }
    late = AudioItem(token="t", url="cid:x", offset_ms=30_000, report_delay_ms=20_000)
    assert PlaybackMonitor(late).update(31_000, queued=True, reading=True, now=0.0) == []


def test_a_stutter_starts_after_an_empty_stretch_and_reports_its_duration() -> None:
    watch = PlaybackMonitor(AudioItem(token="t", url="cid:x"), stutter_ms=200)
    assert watch.update(1000, queued=False, reading=True, now=10.0) == []
    assert watch.update(1000, queued=False, reading=True, now=10.1) == []
    assert watch.update(1000, queued=False, reading=True, now=10.25) == [
        ("PlaybackStutterStarted", {})
    ]
    assert watch.update(1000, queued=True, reading=True, now=11.0) == [
        ("PlaybackStutterFinished", {"stutterDurationInMilliseconds": 1000})
    ]
    # The end of the stream (nothing more to read) is not a stutter.
    assert watch.update(2000, queued=False, reading=False, now=12.0) == []
    assert watch.update(2000, queued=False, reading=False, now=13.0) == []
