"""MediaSink (PyAV, the `media` extra): streams of AAC in ADTS, MP4 with its index at the end,
MPEG-TS and Ogg Opus decode progressively to the sink's format, longer than the input queue
(the demuxer's seeks are answered from what arrived, without deadlock), with their tags."""

from __future__ import annotations

import asyncio

import pytest

from avsclient.audio import AudioFormat, MediaSink, NullSink
from avsclient.exceptions import AudioError
from avsclient.simulator.tracks import tone_media

DEVICE = AudioFormat(rate=48_000, channels=2)


@pytest.mark.parametrize("container", ["adts", "mp4", "mpegts", "ogg"])
async def test_a_long_stream_decodes_to_the_sink_format(container: str) -> None:
    seconds = 20.0
    data = tone_media(seconds, container=container, title="Long Tone")
    sink = NullSink(DEVICE)
    tags: list[dict[str, str]] = []
    player = MediaSink(sink, queue_bytes=64 * 1024, on_metadata=tags.append)
    async with asyncio.timeout(60):
        for i in range(0, len(data), 4096):
            await player.write(data[i : i + 4096])
        await player.drain()
    assert sink.bytes_written / DEVICE.bytes_per_second == pytest.approx(seconds, abs=0.1)
    await asyncio.sleep(0)  # tags are handed over in the event loop
    if container in ("mp4", "ogg"):  # ADTS and MPEG-TS carry no title tag
        assert tags and tags[0]["title"] == "Long Tone"


async def test_bytes_that_are_no_media_fail_with_an_audio_error() -> None:
    player = MediaSink(NullSink(DEVICE))
    with pytest.raises(AudioError, match="media decoding failed"):
        await player.write(b"not audio at all" * 100)
        await player.drain()
