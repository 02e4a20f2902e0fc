"""One conformance suite that every audio source and every audio sink runs."""

from __future__ import annotations

import asyncio
import threading
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest

from avsclient.audio import (
    AVS_FORMAT,
    AVS_FRAME_BYTES,
    ArraySource,
    AudioSink,
    AudioSource,
    CaptureBridge,
    EndpointedSource,
    Microphone,
    Mp3Sink,
    NullSink,
    Speaker,
    WavFileSink,
    WavFileSource,
    decode_mp3,
)
from avsclient.exceptions import AudioError
from tests.audio.conftest import write_wav

# One second of a 300 Hz tone at 16 kHz, the reference content of the finite sources.
TONE = (8000 * np.sin(2 * np.pi * 300 * np.arange(16000) / 16000)).astype("<i2")

SourceFactory = Callable[[], Awaitable[AudioSource]]


def _feed_from_thread(bridge: CaptureBridge) -> threading.Thread:
    def run() -> None:
        data = TONE.tobytes()
        for i in range(0, len(data), 441):  # blocks that split frames and samples anywhere
            bridge.push(data[i : i + 441])
        bridge.end()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


FINITE = ["wav", "wav-44k-stereo", "array", "array-float-48k", "bridge", "endpointed"]


@pytest.fixture(params=[*FINITE, "mic"])
async def make_source(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[str, SourceFactory]]:
    """A factory for each kind of source; finite ones hold TONE."""
    async for made in _sources(request, tmp_path):
        yield made


@pytest.fixture(params=FINITE)
async def make_finite_source(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[str, SourceFactory]]:
    """A factory for each source that holds TONE (not the microphone)."""
    async for made in _sources(request, tmp_path):
        yield made


async def _sources(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[str, SourceFactory]]:
    kind: str = request.param
    threads: list[threading.Thread] = []

    async def factory() -> AudioSource:
        if kind == "wav":
            return WavFileSource(write_wav(tmp_path / "t.wav", TONE, 16000))
        if kind == "wav-44k-stereo":
            t = np.arange(44100) / 44100
            x = (8000 * np.sin(2 * np.pi * 300 * t)).astype("<i2")
            return WavFileSource(write_wav(tmp_path / "s.wav", np.stack([x, x], axis=1), 44100))
        if kind == "array":
            return ArraySource(TONE, 16000)
        if kind == "array-float-48k":
            t = np.arange(48000) / 48000
            return ArraySource((8000 / 32768 * np.sin(2 * np.pi * 300 * t)).astype("f4"), 48000)
        if kind == "bridge":
            bridge = CaptureBridge()
            threads.append(_feed_from_thread(bridge))
            return bridge
        if kind == "endpointed":
            # A steady tone from the first frame is the room, not speech: nothing is cut.
            return EndpointedSource(ArraySource(TONE, 16000))
        request.getfixturevalue("pulse")
        return Microphone()

    yield kind, factory
    for thread in threads:
        thread.join()


async def test_source_yields_fixed_size_frames_in_its_format(
    make_source: tuple[str, SourceFactory],
) -> None:
    """Every frame has frame_bytes bytes of the declared format (AVS: 320)."""
    kind, factory = make_source
    async with await factory() as source:
        assert source.format == AVS_FORMAT
        assert source.frame_bytes == AVS_FRAME_BYTES
        frames = []
        async for frame in source:
            assert len(frame) == AVS_FRAME_BYTES
            frames.append(frame)
            if kind == "mic" and len(frames) == 30:  # the microphone never ends by itself
                break
    if kind != "mic":
        assert len(frames) == 100  # exactly one second


async def test_finite_sources_carry_the_audio_unchanged(
    make_finite_source: tuple[str, SourceFactory],
) -> None:
    """Converted sources deliver the same tone (the microphone's content: test_device.py)."""
    kind, factory = make_finite_source
    async with await factory() as source:
        samples = np.frombuffer(b"".join([f async for f in source]), "<i2").astype(float)
    error = np.abs(samples[100:-100] - TONE[100:-100]).max()
    assert error <= (1 if kind in ("wav", "array", "bridge", "endpointed") else 40)


async def test_source_ends_after_aclose_and_aclose_is_idempotent(
    make_source: tuple[str, SourceFactory],
) -> None:
    """After aclose() reading returns b"" and iteration stops; aclose() may repeat."""
    _, factory = make_source
    source = await factory()
    assert len(await source.read_frame()) == AVS_FRAME_BYTES
    await source.aclose()
    assert await source.read_frame() == b""
    assert [f async for f in source] == []
    await source.aclose()


async def test_aclose_from_another_task_ends_a_pending_read(
    make_source: tuple[str, SourceFactory],
) -> None:
    """Closing while another task iterates ends that iteration (StopCapture's path)."""
    _, factory = make_source
    source = await factory()
    started = asyncio.Event()
    count = 0

    async def consume() -> None:
        nonlocal count
        async for _ in source:
            count += 1
            started.set()
            await asyncio.sleep(0.001)

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), 5)
    await source.aclose()
    await asyncio.wait_for(task, 5)
    assert 1 <= count < 100


# -- sinks ----------------------------------------------------------------------------------

SinkFactory = Callable[[], Awaitable[AudioSink]]


@pytest.fixture(params=["null", "null-realtime", "wav", "speaker"])
async def make_sink(
    request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[str, SinkFactory, Path]:
    """A factory for each kind of sink."""
    kind: str = request.param
    path = tmp_path / "out.wav"

    async def factory() -> AudioSink:
        if kind == "null":
            return NullSink()
        if kind == "null-realtime":
            return NullSink(realtime=True)
        if kind == "wav":
            return WavFileSink(path)
        request.getfixturevalue("pulse")
        return Speaker(AVS_FORMAT)

    return kind, factory, path


async def test_sink_accepts_chunks_of_any_size_then_drains(
    make_sink: tuple[str, SinkFactory, Path],
) -> None:
    """Chunks that split samples are accepted; drain() returns once all was played."""
    kind, factory, path = make_sink
    data = TONE[:3200].tobytes()  # 200 ms
    async with await factory() as sink:
        assert sink.format == AVS_FORMAT
        for i in range(0, len(data), 333):
            await sink.write(data[i : i + 333])
        loop = asyncio.get_running_loop()
        start = loop.time()
        await sink.drain()
        elapsed = loop.time() - start
        await sink.drain()  # nothing new: returns at once
        if isinstance(sink, NullSink):
            assert sink.bytes_written == len(data)
            assert sink.bytes_played == len(data)
    if kind == "wav":
        with wave.open(str(path)) as wav:
            assert wav.getframerate() == 16000
            assert wav.readframes(10_000) == data
    if kind in ("null-realtime", "speaker"):
        assert elapsed > 0.05  # it waited for playback, not just for the buffer


async def test_sink_stop_discards_queued_audio_and_sink_stays_usable(
    make_sink: tuple[str, SinkFactory, Path],
) -> None:
    """stop() releases a write waiting for room and cuts playback short; the sink then
    plays again."""
    kind, factory, path = make_sink
    ten_seconds = np.tile(TONE, 10).tobytes()
    async with await factory() as sink:
        writer = asyncio.create_task(sink.write(ten_seconds))
        await asyncio.sleep(0.2)
        await sink.stop()
        # A device sink holds 300 ms: without stop() this write would take about 10 s.
        await asyncio.wait_for(writer, 5)
        await sink.stop()
        if kind == "null-realtime":
            assert isinstance(sink, NullSink)
            assert sink.stops == 1
            assert sink.bytes_played < len(ten_seconds) // 10  # about 0.2 s "played"
        await sink.write(TONE[:1600].tobytes())
        await asyncio.wait_for(sink.drain(), 5)
    if kind == "wav":  # a file keeps what was written; the sink went on writing after stop()
        with wave.open(str(path)) as wav:
            assert wav.getnframes() == len(ten_seconds) // 2 + 1600


async def test_sink_write_after_aclose_raises_audio_error(
    make_sink: tuple[str, SinkFactory, Path],
) -> None:
    """A closed sink refuses writes with AudioError; aclose() may repeat."""
    _, factory, _ = make_sink
    sink = await factory()
    await sink.aclose()
    await sink.aclose()
    with pytest.raises(AudioError, match="closed"):
        await sink.write(b"\x00\x00")


async def test_mp3_adapter_runs_on_every_sink(
    make_sink: tuple[str, SinkFactory, Path],
) -> None:
    """Every sink accepts AUDIO_MPEG through Mp3Sink and drains it."""
    from tests.audio.conftest import SPEECH_MP3

    kind, factory, path = make_sink
    data = SPEECH_MP3.read_bytes()[:4000]
    inner = await factory()
    async with Mp3Sink(inner) as sink:
        for i in range(0, len(data), 700):
            await sink.write(data[i : i + 700])
        await asyncio.wait_for(sink.drain(), 10)
        assert sink.bytes_fed == len(data)
    # The frames that arrived whole are decoded: as much PCM as decoding the whole prefix.
    expected = len(decode_mp3(data, AVS_FORMAT))
    if isinstance(inner, NullSink):
        assert inner.bytes_written == inner.bytes_played == expected
    if kind == "wav":
        with wave.open(str(path)) as wav:
            assert wav.getnframes() * 2 == expected
