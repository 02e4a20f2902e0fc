"""AudioPlayer through the simulator's scripted play dialogs and its media server: Speak then a
queue of tracks (MP3, AAC, HLS) recorded to a WAV file with consistent events, ducking heard on
the recorded mix, Stop and ClearQueue, faults (403, a truncated file, a playlist loop), the
access token only to the hosts named for it, metadata, and the media extra missing."""

from __future__ import annotations

import asyncio
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from avsclient.agents.audio_player import TOKEN_HOSTS, PlayerActivity, sends_token
from avsclient.audio import PLAYBACK_FORMAT, Id3TagReader, WavFileSink
from avsclient.simulator import Simulator, check_playback, play_reply
from avsclient.simulator.playback import clear_queue, play, stop
from avsclient.simulator.scenarios import ReceivedEvent, speech_asset
from avsclient.simulator.tracks import hls_segments, id3_tag, tone_media, tone_mp3

from .conftest import ClientFactory, tone_source
from .test_audio_player import names


class PacedWav(WavFileSink):
    """Records like a WAV file but takes as long as a device to accept audio."""

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        await super().write(data)
        await asyncio.sleep(self.format.duration_of(len(data)))


def player_events(sim: Simulator) -> list[ReceivedEvent]:
    return [e for e in sim.events if e.namespace == "AudioPlayer"]


def levels_db(path: Path, frame_ms: int = 50) -> np.ndarray:
    """RMS level per `frame_ms` of a 16-bit WAV file, in dB."""
    with wave.open(str(path)) as wav:
        rate, channels = wav.getframerate(), wav.getnchannels()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    mono = samples.reshape(-1, channels).astype(np.float64).mean(axis=1)
    n = rate * frame_ms // 1000
    frames = mono[: len(mono) // n * n].reshape(-1, n)
    return 10 * np.log10(np.mean(frames**2, axis=1) + 1.0)


async def test_a_play_dialog_plays_its_queue_after_the_speech(
    sim: Simulator, make_client: ClientFactory, tmp_path: Path
) -> None:
    """Speak, then three tracks (MP3, AAC in ADTS, HLS of TS segments) queued in the same
    dialog: the speech plays first, then each track in order, with consistent events and a
    final offset per track within 100 ms of the audio written for it."""
    media = sim.media
    seconds = 1.0
    media.add("/one.mp3", tone_mp3(seconds, freq=440, title="First Tone"))
    media.add("/two.aac", tone_media(seconds, freq=550), content_type="audio/aac")
    for n, segment in enumerate(hls_segments(seconds, 3, freq=660)):
        media.add(f"/hls/s{n}.ts", segment, content_type="video/mp2t")
    media.add_playlist("/hls/index.m3u8", ["s0.ts", "s1.ts", "s2.ts"], kind="hls")
    urls = [media.url(p) for p in ("/one.mp3", "/two.aac", "/hls/index.m3u8")]
    sim.script.recognize(lambda event: play_reply(event, speech_asset("hello"), urls))
    out = tmp_path / "mix.wav"
    sink = WavFileSink(out, PLAYBACK_FORMAT)
    client = make_client(sink=sink)
    async with client:
        await client.wait_connected(20)
        await client.recognize(tone_source(0.3))
        await sim.wait_for_event("AudioPlayer", "PlaybackFinished", nth=3, timeout=30)
        await client.messenger.flush()
        assert client.player.activity is PlayerActivity.IDLE
    await sink.aclose()
    events = player_events(sim)
    assert check_playback(sim.events) == []
    started = [e.payload["token"] for e in events if e.name == "PlaybackStarted"]
    assert started == ["track-1", "track-2", "track-3"]
    finished = [e for e in events if e.name == "PlaybackFinished"]
    assert [e.payload["token"] for e in finished] == started
    # Speech first: the first track starts after SpeechFinished was sent.
    order = [e.name for e in sim.events]
    assert order.index("SpeechFinished") < order.index("PlaybackStarted")
    metadata = [e.payload for e in events if e.name == "StreamMetadataExtracted"]
    assert {"token": "track-1", "metadata": {"title": "First Tone"}} in metadata
    with wave.open(str(out)) as wav:
        written_ms = wav.getnframes() * 1000 / wav.getframerate()
    speech_ms = client.synthesizer.mp3.sink.frames_played * 1000 / PLAYBACK_FORMAT.rate
    played = sum(e.payload["offsetInMilliseconds"] for e in finished)
    assert abs(played - (written_ms - speech_ms)) < 100
    for event in finished:  # each track is about one second long
        assert 900 <= event.payload["offsetInMilliseconds"] <= 1150


async def test_attenuated_music_is_heard_ducked_under_speech_on_the_recorded_mix(
    sim: Simulator, make_client: ClientFactory, tmp_path: Path
) -> None:
    """ATTENUATE music, then a Speak pushed on the downchannel: the recorded mix shows the
    music's level drop (by about the duck gain) while speech plays, and come back."""
    media = sim.media
    url = media.add("/long.mp3", tone_mp3(4.0, freq=300))
    out = tmp_path / "mix.wav"
    sink = PacedWav(out, PLAYBACK_FORMAT)
    client = make_client(sink=sink)
    async with client:
        await client.wait_connected(20)
        await sim.push_directive(play("m", url, "REPLACE_ALL", interruptedBehavior="ATTENUATE"))
        await sim.wait_for_event("AudioPlayer", "PlaybackStarted", timeout=10)
        await asyncio.sleep(1.0)
        # A silent Speak (MP3 of silence) makes the ducking audible on its own.
        silence = tone_mp3(0.8, freq=0.0)
        await sim.push_directive(
            {
                "directive": {
                    "header": {"namespace": "SpeechSynthesizer", "name": "Speak", "messageId": "s"},
                    "payload": {"url": "cid:quiet", "format": "AUDIO_MPEG", "token": "quiet"},
                }
            },
            attachments={"quiet": silence},
        )
        await sim.wait_for_event("AudioPlayer", "PlaybackFinished", timeout=30)
    await sink.aclose()
    assert "PlaybackPaused" not in names(sim)
    levels = levels_db(out)
    loud = np.median(levels[:10])
    quiet = levels[levels < loud - 8]
    assert len(quiet) >= 10  # about half a second ducked (the silent speech)
    assert np.median(quiet) == pytest.approx(loud - 14, abs=3)  # 20*log10(0.2)
    assert np.median(levels[-20:-2]) == pytest.approx(loud, abs=2)  # and back


async def test_stop_and_clear_queue_in_play_dialogs(
    sim: Simulator, make_client: ClientFactory
) -> None:
    """A queue of three long tracks; ClearQueue CLEAR_ENQUEUED keeps the current one, Stop
    ends it (PlaybackStopped) and nothing more plays."""
    media = sim.media
    urls = [media.add(f"/q{n}.mp3", tone_mp3(5.0, freq=300 + 100 * n)) for n in range(3)]
    sim.script.recognize(lambda event: play_reply(event, speech_asset("hello"), urls))
    client = make_client()
    async with client:
        await client.wait_connected(20)
        await client.recognize(tone_source(0.3))
        await sim.wait_for_event("AudioPlayer", "PlaybackStarted", timeout=20)
        await sim.push_directive(clear_queue("CLEAR_ENQUEUED"))
        await sim.wait_for_event("AudioPlayer", "PlaybackQueueCleared", timeout=10)
        assert client.player.activity is PlayerActivity.PLAYING
        await sim.push_directive(stop())
        await sim.wait_for_event("AudioPlayer", "PlaybackStopped", timeout=10)
        await client.messenger.flush()
    assert check_playback(sim.events) == []
    assert [e.payload["token"] for e in player_events(sim) if e.name == "PlaybackStarted"] == [
        "track-1"
    ]
    assert client.player.activity is PlayerActivity.STOPPED
    assert "/q1.mp3" not in media.requests


async def test_media_faults_fail_and_the_queue_goes_on(
    sim: Simulator, make_client: ClientFactory
) -> None:
    """403, a truncated file and a playlist that names itself each fail with their
    MEDIA_ERROR; the good track after them plays; the events stay consistent."""
    media = sim.media
    track = tone_mp3(0.5)
    media.add("/forbidden.mp3", b"denied", status=403)
    media.add("/cut.mp3", track, truncate_at=len(track) // 2)
    media.add_playlist("/loop.m3u", ["loop.m3u"])
    media.add("/good.mp3", track)
    urls = [media.url(p) for p in ("/forbidden.mp3", "/cut.mp3", "/loop.m3u", "/good.mp3")]
    sim.script.recognize(lambda event: play_reply(event, speech_asset("hello"), urls))
    client = make_client()
    async with client:
        await client.wait_connected(20)
        await client.recognize(tone_source(0.3))
        await sim.wait_for_event("AudioPlayer", "PlaybackFinished", timeout=30)
        await client.messenger.flush()
    assert check_playback(sim.events) == []
    failed = {
        e.payload["token"]: e.payload["error"]["type"]
        for e in player_events(sim)
        if e.name == "PlaybackFailed"
    }
    assert failed == {
        "track-1": "MEDIA_ERROR_INVALID_REQUEST",
        "track-2": "MEDIA_ERROR_SERVICE_UNAVAILABLE",
        "track-3": "MEDIA_ERROR_INVALID_REQUEST",
    }
    finished = [e.payload["token"] for e in player_events(sim) if e.name == "PlaybackFinished"]
    assert finished == ["track-4"]


async def test_the_access_token_goes_only_to_the_hosts_named_for_it(
    sim: Simulator, make_client: ClientFactory
) -> None:
    """By default no media host of the simulator gets the token; a host added to
    `token_hosts` gets it as a bearer token."""
    assert "avs-alexa-na.amazon.com" in TOKEN_HOSTS
    assert "alexa.eu.gateway.devices.a2z.com" in TOKEN_HOSTS
    assert not sends_token("https://evil-amazon.com/x.mp3", TOKEN_HOSTS)
    assert not sends_token("http://avs-alexa-na.amazon.com/x.mp3", TOKEN_HOSTS)
    assert sends_token("https://AVS-ALEXA-NA.amazon.com/x.mp3", TOKEN_HOSTS)
    media = sim.media
    track = tone_mp3(0.3)
    media.add("/a.mp3", track)
    media.add("/b.mp3", track)
    client = make_client()
    async with client:
        await client.wait_connected(20)
        await sim.push_directive(play("a", media.url("/a.mp3"), "REPLACE_ALL"))
        await sim.wait_for_event("AudioPlayer", "PlaybackFinished", timeout=20)
        client.player.token_hosts = frozenset({"127.0.0.1"})
        await sim.push_directive(play("b", media.url("/b.mp3"), "REPLACE_ALL"))
        await sim.wait_for_event("AudioPlayer", "PlaybackFinished", nth=2, timeout=20)
    assert media.authorizations["/a.mp3"] == [None]
    (bearer,) = media.authorizations["/b.mp3"]
    assert bearer is not None and bearer.startswith("Bearer sim-token-")


async def test_a_format_needing_the_missing_media_extra_fails_clearly(
    sim: Simulator, make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without PyAV an AAC stream fails with MEDIA_ERROR_INTERNAL_DEVICE_ERROR naming the
    extra; MP3 after it still plays."""
    media = sim.media
    media.add("/x.aac", tone_media(0.3), content_type="audio/aac")
    media.add("/y.mp3", tone_mp3(0.3))
    monkeypatch.setitem(sys.modules, "av", None)  # what `import av` sees when it is missing
    client = make_client()
    async with client:
        await client.wait_connected(20)
        await sim.push_directive(play("aac", media.url("/x.aac"), "REPLACE_ALL"))
        await sim.push_directive(play("mp3", media.url("/y.mp3")))
        await sim.wait_for_event("AudioPlayer", "PlaybackFinished", timeout=20)
        await client.messenger.flush()
    (failed,) = [e.payload for e in player_events(sim) if e.name == "PlaybackFailed"]
    assert failed["token"] == "aac"
    assert failed["error"]["type"] == "MEDIA_ERROR_INTERNAL_DEVICE_ERROR"
    assert "pip install 'avsclient[media]'" in failed["error"]["message"]
    assert check_playback(sim.events) == []


def test_the_consistency_check_finds_what_is_wrong() -> None:
    """check_playback reports a second start while playing, an offset going back, a
    finish without start, and a failure without an error type."""

    def ev(name: str, token: str, offset: int = 0, **extra: object) -> ReceivedEvent:
        payload = {"token": token, "offsetInMilliseconds": offset, **extra}
        return ReceivedEvent(
            namespace="AudioPlayer",
            name=name,
            message_id=name,
            dialog_request_id=None,
            header={},
            payload=payload,
            context=[],
            json={},
            audio=b"",
            stream_id=1,
        )

    problems = check_playback(
        [
            ev("PlaybackStarted", "a"),
            ev("ProgressReportDelayElapsed", "a", 500),
            ev("PlaybackStarted", "b"),
            ev("PlaybackPaused", "b", 100),
            ev("PlaybackResumed", "b", 50),
            ev("PlaybackFinished", "c", 10),
            ev("PlaybackFailed", "d"),
        ]
    )
    assert len(problems) == 5, problems
    assert "started while 'a' plays" in problems[0]
    assert "offset went back from 100 to 50" in problems[1]
    assert "'c' is not the stream playing" in problems[2]
    assert "no MEDIA_ERROR_* type" in problems[3]
    assert "no currentPlaybackState" in problems[4]


def test_id3_title_artist_and_album_are_read_from_the_stream_head() -> None:
    head = id3_tag(title="Tune", artist="Band", album="Record") + tone_mp3(0.1)
    reader = Id3TagReader()
    found = {}
    for i in range(0, len(head), 7):  # any split
        found.update(reader.feed(head[i : i + 7]))
    assert found == {"title": "Tune", "artist": "Band", "album": "Record"}
    assert reader.finished
    assert Id3TagReader().feed(tone_mp3(0.1)) == {}
