"""MP3: the frame splitter at every split point, progressive decoding, the sink adapter."""

from __future__ import annotations

import asyncio
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from avsclient.audio import (
    AVS_FORMAT,
    PLAYBACK_FORMAT,
    AudioFormat,
    Mp3Decoder,
    Mp3FrameSplitter,
    Mp3Sink,
    NullSink,
    decode_mp3,
)
from avsclient.exceptions import AudioError
from tests.audio.conftest import SPEECH_MP3, STEREO_ID3_MP3

SPEECH = SPEECH_MP3.read_bytes()
STEREO = STEREO_ID3_MP3.read_bytes()


def split_all(data: bytes, sizes: list[int]) -> tuple[list[bytes], Mp3FrameSplitter]:
    splitter = Mp3FrameSplitter()
    frames: list[bytes] = []
    pos = 0
    for size in sizes:
        frames += splitter.feed(data[pos : pos + size])
        pos += size
    frames += splitter.feed(data[pos:])
    splitter.close()
    return frames, splitter


def test_splitter_finds_every_frame_of_a_clean_stream() -> None:
    """MPEG-2 layer III at 24 kHz mono: frames tile the file exactly."""
    frames, splitter = split_all(SPEECH, [])
    assert b"".join(frames) == SPEECH
    assert splitter.skipped_bytes == 0
    assert (splitter.sample_rate, splitter.channels, splitter.samples_per_frame) == (24000, 1, 576)
    assert splitter.frames == len(frames) > 100


def test_splitter_skips_an_id3v2_tag() -> None:
    """MPEG-1 stereo between ID3v2 and ID3v1 tags: the tags are skipped, the frames kept."""
    frames, splitter = split_all(STEREO, [])
    assert STEREO.startswith(b"ID3")
    assert (splitter.sample_rate, splitter.channels, splitter.samples_per_frame) == (44100, 2, 1152)
    joined = b"".join(frames)
    tag_v2 = 10 + int.from_bytes(bytes(b & 0x7F for b in STEREO[6:10]), "big")
    assert STEREO[tag_v2:].startswith(joined)
    assert STEREO[-128:].startswith(b"TAG")  # ID3v1, skipped as non-frame bytes
    assert splitter.skipped_bytes == len(STEREO) - len(joined)


@pytest.mark.parametrize("data", [SPEECH[:3000], STEREO[:3000]], ids=["mono", "id3"])
def test_splitter_gives_the_same_frames_at_every_split_point(data: bytes) -> None:
    """Splitting the input in two anywhere, or byte by byte, changes nothing."""
    expected, _ = split_all(data, [])
    for cut in range(len(data) + 1):
        assert split_all(data, [cut])[0] == expected
    assert split_all(data, [1] * len(data))[0] == expected


@given(st.lists(st.integers(min_value=0, max_value=2000), max_size=40))
def test_splitter_gives_the_same_frames_for_random_splits(sizes: list[int]) -> None:
    """Random chunkings (Hypothesis) give the one-chunk result."""
    assert split_all(STEREO, sizes)[0] == split_all(STEREO, [])[0]


def test_splitter_resynchronises_after_garbage() -> None:
    """Garbage between frames (including fake sync bytes) is skipped and counted."""
    frames, _ = split_all(SPEECH, [])
    garbage = b"\xff\xfe\x00junk\xff" * 7
    stream = frames[0] + frames[1] + garbage + b"".join(frames[2:10])
    out, splitter = split_all(stream, [])
    assert out == frames[:10]
    assert splitter.skipped_bytes == len(garbage)


def test_splitter_reports_a_truncated_last_frame() -> None:
    """A stream cut inside a frame keeps the whole frames; close() counts the rest."""
    splitter = Mp3FrameSplitter()
    frames = splitter.feed(SPEECH[:1000])
    assert splitter.close() == 1000 - sum(map(len, frames))


def test_decode_mp3_decodes_a_whole_file_at_the_requested_format() -> None:
    """Whole-buffer decoding yields about the stream's duration in the given format."""
    pcm = decode_mp3(SPEECH, AVS_FORMAT)
    seconds = len(pcm) / AVS_FORMAT.bytes_per_second
    frames, _ = split_all(SPEECH, [])
    assert abs(seconds - len(frames) * 576 / 24000) < 0.1
    with pytest.raises(AudioError, match="MP3"):
        decode_mp3(b"not an mp3 at all" * 100, AVS_FORMAT)


def run_decoder(chunks: list[bytes], fmt: AudioFormat) -> tuple[bytes, Mp3Decoder]:
    out: list[bytes] = []
    decoder = Mp3Decoder(fmt, out.append)
    for chunk in chunks:
        decoder.feed(chunk)
    decoder.end()
    assert decoder.done.wait(10)
    return b"".join(out), decoder


@pytest.mark.parametrize("fmt", [PLAYBACK_FORMAT, AVS_FORMAT, AudioFormat(rate=48000, channels=2)],
                         ids=str)
def test_progressive_decoding_matches_whole_file_decoding(fmt: AudioFormat) -> None:
    """Fed in small uneven chunks, the decoder produces exactly what decode_mp3 does."""
    chunks = [SPEECH[i : i + 777] for i in range(0, len(SPEECH), 777)]
    pcm, decoder = run_decoder(chunks, fmt)
    assert decoder.error is None
    assert pcm == decode_mp3(SPEECH, fmt)


def test_decoding_output_starts_before_the_input_is_complete() -> None:
    """PCM comes out while most of the MP3 has not arrived yet (playback starts early)."""
    got_pcm = threading.Event()
    out: list[bytes] = []

    def on_pcm(pcm: bytes) -> None:
        out.append(pcm)
        got_pcm.set()

    decoder = Mp3Decoder(PLAYBACK_FORMAT, on_pcm)
    decoder.feed(SPEECH[: len(SPEECH) // 5])
    assert got_pcm.wait(10), "no PCM before the end of the input"
    assert not decoder.done.is_set()
    early = sum(map(len, out))
    assert early > 0
    decoder.feed(SPEECH[len(SPEECH) // 5 :])
    decoder.end()
    assert decoder.done.wait(10)
    assert sum(map(len, out)) > 3 * early


def test_decoder_reports_a_stream_without_frames() -> None:
    """Input with no MP3 frame at all fails with AudioError, not silence."""
    _, decoder = run_decoder([b"\x00garbage" * 300], AVS_FORMAT)
    assert isinstance(decoder.error, AudioError)
    assert "no MP3 frames" in str(decoder.error)


def test_decoder_cancel_stops_the_worker() -> None:
    """cancel() ends the worker even while it waits for input; feed() is then refused."""
    decoder = Mp3Decoder(AVS_FORMAT, lambda pcm: None)
    decoder.feed(SPEECH[:2000])
    decoder.cancel()
    assert decoder.done.wait(10)
    assert decoder.error is None
    with pytest.raises(RuntimeError, match="after end"):
        decoder.feed(SPEECH[2000:3000])


async def test_mp3_sink_plays_while_the_attachment_streams_in() -> None:
    """Through Mp3Sink, the sink receives PCM before the attachment has fully arrived."""
    sink = NullSink(PLAYBACK_FORMAT)
    async with Mp3Sink(sink) as mp3:
        half = len(SPEECH) // 2
        for i in range(0, half, 500):
            await mp3.write(SPEECH[i : min(i + 500, half)])
        for _ in range(500):
            if sink.bytes_written:
                break
            await asyncio.sleep(0.01)
        assert sink.bytes_written > 0
        await mp3.write(SPEECH[half:])
        await mp3.drain()
    assert sink.bytes_written == len(decode_mp3(SPEECH, PLAYBACK_FORMAT))


class SlowSink(NullSink):
    """Takes 20 ms per write, like a device buffer that is full."""

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        await super().write(data)
        await asyncio.sleep(0.02)


async def test_mp3_sink_applies_backpressure_from_a_slow_sink() -> None:
    """A slow sink throttles writes: queued MP3 frames stay within the bound."""
    slow = SlowSink(PLAYBACK_FORMAT)
    async with Mp3Sink(slow, queue_frames=5) as mp3:
        for i in range(0, 6000, 400):
            await mp3.write(SPEECH[i : i + 400])
            assert mp3.decoder is not None
            assert mp3.decoder.pending_frames <= 5 + 400 // 96 + 1
        await mp3.stop()


async def test_stop_after_a_cancelled_drain_still_cuts_the_stream_off() -> None:
    """Barge-in cancels the task draining a Speak; stop() then silences it for good."""
    slow = SlowSink(PLAYBACK_FORMAT)
    async with Mp3Sink(slow, queue_frames=1000) as mp3:  # the whole attachment has arrived
        await mp3.write(SPEECH)
        decoder = mp3.decoder
        assert decoder is not None
        drain = asyncio.create_task(mp3.drain())
        await asyncio.sleep(0.1)  # the drain is under way: the stream is being played
        assert not drain.done()
        drain.cancel()
        with pytest.raises(asyncio.CancelledError):
            await drain
        await mp3.stop()
        assert decoder.done.is_set()
        assert decoder.join(0)  # the worker thread is gone
        written = slow.bytes_written
        await asyncio.sleep(0.2)
        assert slow.bytes_written == written  # nothing more reached the sink
        assert written < len(decode_mp3(SPEECH, PLAYBACK_FORMAT))


async def test_mp3_sink_stop_abandons_the_stream_and_accepts_a_new_one() -> None:
    """stop() mid-stream cuts it off; the next stream plays from its start."""
    sink = NullSink(PLAYBACK_FORMAT)
    async with Mp3Sink(sink) as mp3:
        await mp3.write(SPEECH[:3000])
        await mp3.stop()
        assert mp3.decoder is None
        before = sink.bytes_written
        await mp3.write(STEREO)
        await mp3.drain()
        assert sink.bytes_written - before == len(decode_mp3(STEREO, PLAYBACK_FORMAT))


async def test_mp3_sink_reports_undecodable_input() -> None:
    """Garbage instead of MP3 surfaces as AudioError from drain()."""
    async with Mp3Sink(NullSink(PLAYBACK_FORMAT)) as mp3:
        await mp3.write(b"<html>not audio</html>" * 50)
        with pytest.raises(AudioError, match="no MP3 frames"):
            await mp3.drain()


async def test_mp3_sink_refuses_writes_after_aclose() -> None:
    """A closed adapter raises AudioError and closes its sink."""
    sink = NullSink(PLAYBACK_FORMAT)
    mp3 = Mp3Sink(sink)
    await mp3.aclose()
    with pytest.raises(AudioError, match="closed"):
        await mp3.write(SPEECH[:100])
    with pytest.raises(AudioError, match="closed"):
        await sink.write(b"\x00\x00")
