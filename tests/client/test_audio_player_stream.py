"""AudioPlayer streams against the simulator's HTTPS media server: a Play offset reached with an
HTTP range (and still reached when the server ignores or refuses ranges), live HLS playlists
reloaded as they grow (and ended when they stop growing), an endless stream played in bounded
memory and stopped at once, and the player's state after a failure."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import numpy as np
import pytest

from avsclient.agents.audio_player import PlayerActivity
from avsclient.audio import PLAYBACK_FORMAT, Mp3Sink, WavFileSink
from avsclient.audio.mp3 import DEFAULT_MP3_QUEUE_FRAMES, decode_mp3
from avsclient.simulator import Simulator, check_playback, directive
from avsclient.simulator.tracks import tone_mp3

from .conftest import ClientFactory
from .test_audio_player import names, play

RATE = PLAYBACK_FORMAT.rate


def recorded(path: Path) -> np.ndarray:
    with wave.open(str(path)) as wav:
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        return samples.reshape(-1, wav.getnchannels())[:, 0].astype(np.float64)


def shift_ms(heard: np.ndarray, track: np.ndarray, offset_ms: int) -> float:
    """Where (ms, relative to `offset_ms`) the first 200 ms heard best match the track."""
    n, at = RATE // 5, RATE * offset_ms // 1000
    piece = heard[RATE // 50 : RATE // 50 + n]  # past the fade-in of the first block
    best, where = None, 0
    for lag in range(-RATE // 20, RATE // 20):
        start = at + RATE // 50 + lag
        err = float(np.mean((track[start : start + n] - piece) ** 2))
        if best is None or err < best:
            best, where = err, lag
    return where * 1000 / RATE


@pytest.mark.parametrize("ranges", ["bytes", "ignore", "refuse"])
async def test_an_offset_is_fetched_with_a_range_and_played_from_there(
    sim: Simulator, make_client: ClientFactory, tmp_path: Path, ranges: str
) -> None:
    """A 60 s offset into a 64 s MP3: with ranges only the head and the last seconds are
    fetched; a server ignoring (200) or refusing (416) ranges sends it all; each time the
    audio heard starts at the offset (checked against the decoded track, within 5 ms)."""
    track = tone_mp3(64.0, freq=200, sweep_to=2000, title="Sweep")
    url = sim.media.add("/long.mp3", track, ranges=ranges)
    out = tmp_path / "mix.wav"
    sink = WavFileSink(out, PLAYBACK_FORMAT)
    client = make_client(sink=sink)
    async with client:
        await client.wait_connected(20)
        await sim.push_directive(play("t", url, "REPLACE_ALL", offsetInMilliseconds=60_000))
        finished = await sim.wait_for_event("AudioPlayer", "PlaybackFinished", timeout=30)
        await client.messenger.flush()
        assert client.player.activity is PlayerActivity.IDLE
    await sink.aclose()
    assert check_playback(sim.events) == []
    assert names(sim) == [
        "PlaybackStarted",
        "StreamMetadataExtracted",
        "PlaybackNearlyFinished",
        "PlaybackFinished",
    ]
    sent = sim.media.sent["/long.mp3"]
    print(f"ranges={ranges}: {sent} of {len(track)} bytes sent, requests {sim.media.ranges}")
    if ranges == "bytes":
        assert sent < len(track) * 0.1  # the head, and about 4 s of 64
    else:
        assert sent >= len(track)
    heard = recorded(out)
    full = np.frombuffer(decode_mp3(track, PLAYBACK_FORMAT), dtype="<i2")
    full = full.reshape(-1, PLAYBACK_FORMAT.channels)[:, 0].astype(np.float64)
    assert abs(shift_ms(heard, full, 60_000)) <= 5
    # The offset reported is the Play offset plus what was played.
    assert abs(finished.payload["offsetInMilliseconds"] - (60_000 + len(heard) * 1000 / RATE)) < 50


async def test_decoder_seeks_are_answered_locally(
    sim: Simulator, make_client: ClientFactory
) -> None:
    """miniaudio's probe seeks to the end of an MP3 and FFmpeg to the index at the end of an
    M4A: both are answered from the bytes received, never by a range request, so a server
    that answers every range with 416 plays both."""
    from avsclient.simulator.tracks import tone_media

    media = sim.media
    media.add("/a.mp3", tone_mp3(1.0), ranges="refuse")
    media.add("/b.m4a", tone_media(1.0, container="mp4"), content_type="audio/mp4", ranges="refuse")
    client = make_client()
    async with client:
        await client.wait_connected(20)
        await sim.push_directive(play("a", media.url("/a.mp3")))
        await sim.push_directive(play("b", media.url("/b.m4a")))
        await sim.wait_for_event("AudioPlayer", "PlaybackFinished", nth=2, timeout=30)
    assert [e.name for e in sim.events if e.name == "PlaybackFailed"] == []
    assert media.ranges == {"/a.mp3": [None], "/b.m4a": [None]}


async def test_after_a_failure_the_state_returns_to_idle(
    sim: Simulator, make_client: ClientFactory
) -> None:
    """A URL that fails before any byte arrives: PlaybackFailed alone (no PlaybackStarted, as
    the SDK sends it only once its media player began), carrying the activity the failure
    found (IDLE, nothing had played); then, with nothing queued, PlaybackState says IDLE
    (the current SDK, 14.4)."""
    url = sim.media.add("/gone.mp3", b"missing", status=404)
    client = make_client()
    async with client:
        await client.wait_connected(20)
        await sim.push_directive(play("gone", url, "REPLACE_ALL"))
        failed = await sim.wait_for_event("AudioPlayer", "PlaybackFailed", timeout=20)
        for _ in range(100):
            if client.player.activity is PlayerActivity.IDLE:
                break
            await asyncio.sleep(0.02)
        state = client.player.context_states()[0].payload
    assert failed.payload["currentPlaybackState"]["playerActivity"] == "IDLE"
    assert failed.payload["error"]["type"] == "MEDIA_ERROR_INVALID_REQUEST"
    assert [e.name for e in sim.events if e.name == "PlaybackStarted"] == []
    assert state["playerActivity"] == "IDLE" and state["token"] == "gone"


async def test_a_live_hls_playlist_is_reloaded_as_it_grows(
    sim: Simulator, make_client: ClientFactory, tmp_path: Path
) -> None:
    """A live playlist (no EXT-X-ENDLIST, a sliding window of two segments) gains a segment
    per load until EXT-X-ENDLIST: reloaded at the target duration, each segment played once,
    in order, as one stream (one Started, one Finished)."""
    from avsclient.simulator.tracks import hls_segments

    media = sim.media
    for n, segment in enumerate(hls_segments(4.0, 4, freq=500)):
        media.add(f"/live/s{n}.ts", segment, content_type="video/mp2t")
    url = media.add_live_hls(
        "/live/index.m3u8", [f"s{n}.ts" for n in range(4)], target=1, first=2, window=2
    )
    sink = WavFileSink(tmp_path / "live.wav", PLAYBACK_FORMAT)
    client = make_client(sink=sink)
    loop = asyncio.get_running_loop()
    async with client:
        await client.wait_connected(20)
        began = loop.time()
        await sim.push_directive(play("live", url, "REPLACE_ALL"))
        finished = await sim.wait_for_event("AudioPlayer", "PlaybackFinished", timeout=30)
        took = loop.time() - began
        await client.messenger.flush()
    await sink.aclose()
    assert check_playback(sim.events) == []
    started = [e for e in sim.events if e.name == "PlaybackStarted"]
    assert len(started) == 1 and finished.payload["token"] == "live"
    assert media.requests["/live/index.m3u8"] == 3  # two segments, then one more per load
    assert all(media.requests[f"/live/s{n}.ts"] == 1 for n in range(4))
    assert 2.0 <= took < 10  # two reloads, a target duration apart
    assert abs(finished.payload["offsetInMilliseconds"] - 4000) < 150


async def test_a_live_playlist_that_stops_growing_fails_after_bounded_reloads(
    sim: Simulator, make_client: ClientFactory
) -> None:
    """A live playlist that never grows: reloaded every half target duration, and after
    three target durations without a new segment the stream fails (it has no end, and the
    reference's PlaybackFinished is for a natural end only); the queue goes on."""
    from avsclient.simulator.tracks import hls_segments

    media = sim.media
    for n, segment in enumerate(hls_segments(2.0, 2, freq=500)):
        media.add(f"/stuck/s{n}.ts", segment, content_type="video/mp2t")
    url = media.add_live_hls("/stuck/index.m3u8", ["s0.ts", "s1.ts"], target=1, first=2, end=False)
    after = media.add("/after.mp3", tone_mp3(0.5))
    client = make_client()
    async with client:
        await client.wait_connected(20)
        await sim.push_directive(play("stuck", url, "REPLACE_ALL"))
        await sim.push_directive(play("after", after))
        failed = await sim.wait_for_event("AudioPlayer", "PlaybackFailed", timeout=30)
        await sim.wait_for_event("AudioPlayer", "PlaybackFinished", timeout=30)
        await client.messenger.flush()
    assert failed.payload["token"] == "stuck"
    assert failed.payload["error"]["type"] == "MEDIA_ERROR_SERVICE_UNAVAILABLE"
    assert "did not grow" in failed.payload["error"]["message"]
    assert 4 <= media.requests["/stuck/index.m3u8"] <= 8
    assert [e.payload["token"] for e in sim.events if e.name == "PlaybackFinished"] == ["after"]
    assert check_playback(sim.events) == []


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


#: Seconds of an endless stream played (faster than real time) while memory is watched.
ENDLESS_AUDIO_S = 300
#: What the player may grow by over them: far below the stream (about 4.8 MB of MP3 and
#: 14 MB of PCM) should any of it be kept.
ENDLESS_RSS_BOUND = 8 * 1024 * 1024


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs /proc (Linux)")
async def test_an_endless_stream_plays_in_bounded_memory_and_stops_at_once(
    sim: Simulator, make_client: ClientFactory
) -> None:
    """A server that streams without end (no length, a 1 s MP3 repeated): five minutes of it
    played faster than real time through a sink that does not pace; the buffers between the
    network and the sink stay at their bounds, the process grows by less than
    ENDLESS_RSS_BOUND, and a Stop ends it within a second."""
    from avsclient.audio import NullSink

    media = sim.media
    url = media.add("/radio.mp3", tone_mp3(1.0, freq=330), repeat=100_000)
    client = make_client(sink=NullSink(PLAYBACK_FORMAT))
    player = client.player
    loop = asyncio.get_running_loop()
    peaks = {"mixer_ms": 0.0, "mp3_frames": 0}
    async with client:
        await client.wait_connected(20)
        await sim.push_directive(play("radio", url, "REPLACE_ALL"))
        await sim.wait_for_event("AudioPlayer", "PlaybackStarted", timeout=10)
        deadline = loop.time() + 120
        baseline: int | None = None
        began = loop.time()
        while player.offset_ms < ENDLESS_AUDIO_S * 1000:
            assert loop.time() < deadline, f"only {player.offset_ms} ms played"
            await asyncio.sleep(0.02)
            if baseline is None and player.offset_ms >= 10_000:
                baseline = _rss()  # after the first seconds: buffers and caches warmed up
            peaks["mixer_ms"] = max(peaks["mixer_ms"], player.output.buffered_ms)
            mp3 = player.decoder
            if isinstance(mp3, Mp3Sink) and mp3.decoder is not None:
                peaks["mp3_frames"] = max(peaks["mp3_frames"], mp3.decoder.pending_frames)
        took = loop.time() - began
        grown = _rss() - (baseline or 0)
        stopped_at = loop.time()
        await sim.push_directive(directive("AudioPlayer", "Stop", {}))
        await sim.wait_for_event("AudioPlayer", "PlaybackStopped", timeout=5)
        stop_s = loop.time() - stopped_at
        assert player.activity is PlayerActivity.STOPPED
    print(
        f"endless: {ENDLESS_AUDIO_S} s in {took:.1f} s, RSS grew {grown / 1e6:.2f} MB, "
        f"peaks {peaks}, sent {media.sent['/radio.mp3']} bytes, stop in {stop_s * 1000:.0f} ms"
    )
    assert grown < ENDLESS_RSS_BOUND
    assert peaks["mixer_ms"] <= 600
    # The queue bound, plus the frames of one network read (at most 64 KiB).
    assert peaks["mp3_frames"] <= DEFAULT_MP3_QUEUE_FRAMES + 65536 // 417
    assert stop_s < 1.0


def test_live_hls_reload_schedule_sliding_window_and_stuck_playlist() -> None:
    """LiveHls (no I/O): new segments by media sequence through a sliding window, reloads a
    target duration after a change and half of one otherwise, stuck after three target
    durations without growth."""
    from avsclient.agents.audio_player import LiveHls, _Failed

    def playlist(seq: int, names: list[str], end: bool = False) -> str:
        lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:2", f"#EXT-X-MEDIA-SEQUENCE:{seq}"]
        lines += [x for n in names for x in ("#EXTINF:2.0,", n)]
        return "\n".join([*lines, "#EXT-X-ENDLIST"] if end else lines)

    live = LiveHls("https://m.example/live/index.m3u8")
    assert live.load(playlist(5, ["a.ts", "b.ts"]), 0.0) == [
        "https://m.example/live/a.ts",
        "https://m.example/live/b.ts",
    ]
    assert live.reload_at == 2.0 and not live.ended
    assert live.load(playlist(6, ["b.ts", "c.ts"]), 2.0) == ["https://m.example/live/c.ts"]
    assert live.load(playlist(6, ["b.ts", "c.ts"]), 4.0) == []
    assert live.reload_at == 5.0  # unchanged: half a target duration
    assert live.load(playlist(7, ["c.ts", "d.ts"], end=True), 5.0) == [
        "https://m.example/live/d.ts"
    ]
    assert live.ended
    stuck = LiveHls("https://m.example/s.m3u8")
    stuck.load(playlist(0, ["a.ts"]), 0.0)
    for now in (2.0, 3.0, 4.0, 5.0):
        assert stuck.load(playlist(0, ["a.ts"]), now) == []
    with pytest.raises(_Failed, match="did not grow"):
        stuck.load(playlist(0, ["a.ts"]), 6.0)
