"""AudioPlayer streaming from an HTTPS media server on loopback: a track plays; a 404, a 500,
a redirect loop and a truncated file fail with the right MEDIA_ERROR and the queue goes on."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from avsclient.agents.audio_player import PlayerActivity, parse_playlist
from avsclient.audio import PLAYBACK_FORMAT
from avsclient.simulator import Simulator
from avsclient.simulator.media import MediaServer
from avsclient.simulator.scenarios import speech_asset

from .conftest import ClientFactory
from .test_audio_player import PacedSink, names, play


@pytest.fixture
def media(sim: Simulator) -> MediaServer:
    """The simulator's media server (its certificate from the simulator's CA)."""
    return sim.media


@pytest.fixture
async def foreign_media() -> AsyncIterator[MediaServer]:
    """A media server with a CA of its own, which the client does not trust."""
    server = MediaServer()
    await server.start()
    yield server
    await server.aclose()


async def test_https_streams_and_their_faults(
    sim: Simulator, make_client: ClientFactory, media: MediaServer
) -> None:
    track = speech_asset("hello")
    urls = {
        "gone": media.add("/gone.mp3", b"no such track", status=404),
        "broken": media.add("/broken.mp3", b"oops", status=500),
        "loop": media.add("/loop.mp3", redirect="/loop.mp3", status=302),
        "cut": media.add("/cut.mp3", track, truncate_at=len(track) // 2),
        "aac": media.add("/track.m4a", b"not mp3", content_type="audio/mp4"),
        "good": media.add("/good.mp3", track),
    }
    client = make_client()
    async with client:
        await client.wait_connected(20)
        await sim.push_directive(
            play("expired", media.url("/good.mp3"), expiryTime="2024-03-01T08:30:00+0000")
        )
        for token, url in urls.items():
            await sim.push_directive(play(token, url))
        await sim.wait_for_event("AudioPlayer", "PlaybackFinished", timeout=30)
        await client.messenger.flush()
    failed = {
        e.payload["token"]: e.payload["error"] for e in sim.events if e.name == "PlaybackFailed"
    }
    assert failed["gone"]["type"] == "MEDIA_ERROR_INVALID_REQUEST"
    assert "404" in failed["gone"]["message"] and "no such track" in failed["gone"]["message"]
    assert failed["broken"]["type"] == "MEDIA_ERROR_INTERNAL_SERVER_ERROR"
    assert failed["loop"]["type"] == "MEDIA_ERROR_INVALID_REQUEST"
    assert "redirect" in failed["loop"]["message"]
    assert failed["cut"]["type"] == "MEDIA_ERROR_SERVICE_UNAVAILABLE"
    # PyAV (the media extra) reads M4A: bytes that are none fail to decode.
    assert failed["aac"]["type"] == "MEDIA_ERROR_INTERNAL_DEVICE_ERROR"
    assert "media decoding failed" in failed["aac"]["message"]
    assert failed["expired"]["type"] == "MEDIA_ERROR_INVALID_REQUEST"
    assert "expired" in failed["expired"]["message"]
    assert media.requests["/good.mp3"] == 1  # the expired URL was never fetched
    assert media.requests["/loop.mp3"] == 6  # the first request and five redirects
    finished = [e.payload["token"] for e in sim.events if e.name == "PlaybackFinished"]
    assert finished == ["good"]
    assert names(sim)[-1] == "PlaybackFinished"


async def test_an_untrusted_certificate_is_refused(
    sim: Simulator, make_client: ClientFactory, foreign_media: MediaServer
) -> None:
    """Without trusting the media server's CA the stream fails: certificates are verified."""
    url = foreign_media.add("/good.mp3", speech_asset("hello"))
    client = make_client()
    async with client:
        await client.wait_connected(20)
        await sim.push_directive(play("t", url, "REPLACE_ALL"))
        failed = await sim.wait_for_event("AudioPlayer", "PlaybackFailed", timeout=20)
    assert failed.payload["error"]["type"] == "MEDIA_ERROR_SERVICE_UNAVAILABLE"
    assert "certificate" in failed.payload["error"]["message"].lower()


async def test_a_stalling_server_makes_a_stutter_and_playback_goes_on(
    sim: Simulator, make_client: ClientFactory, media: MediaServer
) -> None:
    track = speech_asset("hello") * 3
    url = media.add("/slow.mp3", track, stall_after=4096, stall=1.5)
    client = make_client(sink=PacedSink(PLAYBACK_FORMAT))
    player = client.player
    async with client:
        await client.wait_connected(20)
        await sim.push_directive(play("slow", url, "REPLACE_ALL"))
        started = await sim.wait_for_event("AudioPlayer", "PlaybackStutterStarted", timeout=20)
        assert player.activity is PlayerActivity.BUFFER_UNDERRUN
        finished = await sim.wait_for_event("AudioPlayer", "PlaybackStutterFinished", timeout=20)
        await sim.wait_for_event("AudioPlayer", "PlaybackFinished", timeout=20)
    assert 200 <= finished.payload["stutterDurationInMilliseconds"] <= 1600
    assert started.payload["token"] == "slow"
    assert names(sim) == [
        "PlaybackStarted",
        "PlaybackStutterStarted",
        "PlaybackStutterFinished",
        "PlaybackNearlyFinished",
        "PlaybackFinished",
    ]


def test_playlists_are_parsed_to_absolute_urls() -> None:
    m3u = "#EXTM3U\n#EXTINF:10,One\none.mp3\n\nhttps://other.example/two.mp3\n"
    assert parse_playlist(m3u, "https://m.example/lists/a.m3u") == [
        "https://m.example/lists/one.mp3",
        "https://other.example/two.mp3",
    ]
    pls = "[playlist]\nNumberOfEntries=2\nFile1=https://s.example/live\nTitle1=x\nFile2=b.mp3\n"
    assert parse_playlist(pls, "https://m.example/p.pls") == [
        "https://s.example/live",
        "https://m.example/b.mp3",
    ]
    hls = "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:9.9,\nseg0.mp3\n#EXT-X-ENDLIST\n"
    assert parse_playlist(hls, "https://m.example/v/index.m3u8") == ["https://m.example/v/seg0.mp3"]


async def test_playlists_play_their_entries_and_loops_fail(
    sim: Simulator, make_client: ClientFactory, media: MediaServer
) -> None:
    """An M3U and a nested PLS play their MP3 entries as one stream (one Started, one
    Finished); a self-referencing playlist fails; the queue goes on."""
    track = speech_asset("hello")
    media.add("/a.mp3", track)
    media.add("/b.mp3", track)
    media.add("/inner.pls", b"[playlist]\nFile1=b.mp3\n", content_type="audio/x-scpls")
    m3u = media.add("/list.m3u", b"#EXTM3U\na.mp3\ninner.pls\n", content_type="audio/x-mpegurl")
    loop = media.add("/self.m3u", b"#EXTM3U\nself.m3u\n", content_type="audio/x-mpegurl")
    client = make_client()
    async with client:
        await client.wait_connected(20)
        await sim.push_directive(play("loop", loop))
        await sim.push_directive(play("list", m3u))
        await sim.wait_for_event("AudioPlayer", "PlaybackFinished", timeout=30)
        await client.messenger.flush()
    failed = [e.payload for e in sim.events if e.name == "PlaybackFailed"]
    assert [f["token"] for f in failed] == ["loop"]
    assert "loop" in failed[0]["error"]["message"]
    assert failed[0]["error"]["type"] == "MEDIA_ERROR_INVALID_REQUEST"
    events = [(e.name, e.payload["token"]) for e in sim.events if e.namespace == "AudioPlayer"]
    assert [n for n, t in events if t == "list"] == [
        "PlaybackStarted",
        "PlaybackNearlyFinished",
        "PlaybackFinished",
    ]
    assert media.requests["/a.mp3"] == 1 and media.requests["/b.mp3"] == 1
    assert media.requests["/self.m3u"] == 1


async def test_deeply_nested_playlists_fail(
    sim: Simulator, make_client: ClientFactory, media: MediaServer
) -> None:
    """Playlists nested more than four deep fail with INVALID_REQUEST; nothing hangs."""
    for level in range(6):
        media.add(f"/l{level}.m3u", f"l{level + 1}.m3u\n".encode(), content_type="audio/x-mpegurl")
    client = make_client()
    async with client:
        await client.wait_connected(20)
        await sim.push_directive(play("deep", media.url("/l0.m3u")))
        failed = await sim.wait_for_event("AudioPlayer", "PlaybackFailed", timeout=20)
    assert failed.payload["error"]["type"] == "MEDIA_ERROR_INVALID_REQUEST"
    assert "nested too deep" in failed.payload["error"]["message"]
    assert media.requests["/l4.m3u"] == 1 and "/l5.m3u" not in media.requests
