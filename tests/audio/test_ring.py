"""The always-on capture ring: positions, history, bounded memory, overruns, the asyncio pump."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from avsclient.audio import ArraySource, PcmRing, RingCapture, RingOverrun, RingReader


def ramp(start: int, n: int) -> bytes:
    """Samples whose value is their position (mod 2**15), to check every sample's place."""
    return (np.arange(start, start + n) % 32768).astype("<i2").tobytes()


def test_positions_and_history_are_sample_accurate() -> None:
    ring = PcmRing(capacity_ms=100)  # 1600 samples
    assert ring.capacity == 1600
    pos = 0
    for n in (160, 37, 1000, 999, 160, 3):
        assert ring.append(ramp(pos, n)) == pos
        pos += n
    assert ring.end == pos
    assert ring.oldest == pos - 1600
    assert ring.read(ring.oldest, 1600) == ramp(ring.oldest, 1600)
    assert ring.read(pos - 10, 100) == ramp(pos - 10, 10)  # clipped to the end
    with pytest.raises(RingOverrun):
        ring.read(ring.oldest - 1, 10)


def test_an_append_longer_than_the_ring_keeps_its_tail() -> None:
    ring = PcmRing(capacity_ms=10)
    ring.append(ramp(0, 50))
    ring.append(ramp(50, 1000))
    assert (ring.oldest, ring.end) == (1050 - 160, 1050)
    assert ring.read(ring.oldest, 160) == ramp(890, 160)


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="capacity_ms"):
        PcmRing(capacity_ms=5)
    ring = PcmRing()
    with pytest.raises(ValueError, match="partial sample"):
        ring.append(b"\x00")
    ring.close()
    with pytest.raises(RuntimeError):
        ring.append(b"\x00\x00")


def test_memory_stays_bounded_when_nobody_reads() -> None:
    ring = PcmRing(capacity_ms=2500)
    size = len(ring._buf)
    for i in range(3000):  # 30 s
        ring.append(ramp(i * 160, 160))
    assert len(ring._buf) == size == 2500 * 16 * 2
    assert ring.end == 3000 * 160


async def test_reader_delivers_history_then_ends_at_close() -> None:
    ring = PcmRing(capacity_ms=1000)
    ring.append(ramp(0, 16000))
    reader = RingReader(ring, 8000)
    ring.close()
    got = [f async for f in reader]
    assert b"".join(got) == ramp(8000, 8000)
    assert all(len(f) == 320 for f in got)
    with pytest.raises(ValueError, match="beyond"):
        RingReader(ring, 16001)


async def test_stalled_reader_overrun_is_counted_and_reported() -> None:
    ring = PcmRing(capacity_ms=100)
    ring.append(ramp(0, 1600))
    reader = RingReader(ring, 0)
    assert await reader.read_frame() == ramp(0, 160)
    ring.append(ramp(1600, 800))  # the reader at 160 is now behind oldest = 800
    with pytest.raises(RingOverrun) as info:
        await reader.read_frame()
    assert (info.value.position, info.value.oldest) == (160, 800)
    assert ring.overruns == 640
    with pytest.raises(RingOverrun):  # asking again does not count the same loss twice
        await reader.read_frame()
    assert ring.overruns == 640
    assert reader.resync() == 640
    assert reader.overrun_samples == 640
    assert await reader.read_frame() == ramp(800, 160)
    with pytest.raises(RingOverrun):
        RingReader(ring, 0)


async def test_capture_pump_feeds_listeners_and_live_readers() -> None:
    samples = (np.arange(48000) % 32768).astype(np.int16)
    source = ArraySource(samples, 16000, realtime=False)
    seen: list[int] = []
    async with RingCapture(source, capacity_ms=3000) as capture:
        capture.add_listener(lambda frame, pos: seen.append(pos))
        reader = capture.reader_from(0)
        got = b""
        async with asyncio.timeout(5):
            async for frame in reader:
                got += frame
        await capture.wait_closed(5)
    # the reader started at 0 before the pump ran, so it saw the whole stream
    assert got == samples.astype("<i2").tobytes()
    assert seen == list(range(0, 48000, 160))
    assert capture.ring.end == 48000


async def test_a_failing_listener_ends_the_capture_with_its_error() -> None:
    source = ArraySource(np.zeros(16000, dtype=np.int16), 16000, realtime=False)
    capture = RingCapture(source)

    def broken(frame: bytes, position: int) -> None:
        raise RuntimeError("listener failed")

    capture.add_listener(broken)
    async with capture:
        reader = capture.reader_from(0)
        async with asyncio.timeout(5):
            got = [f async for f in reader]
        await capture.wait_closed(5)
    assert isinstance(capture.error, RuntimeError)
    assert capture.ring.closed
    assert len(got) == 1  # the frame appended before the listener failed is still delivered


async def test_a_live_reader_keeps_up_with_a_source_faster_than_real_time() -> None:
    samples = (np.arange(160000) % 32768).astype(np.int16)  # 10 s through a 100 ms ring
    source = ArraySource(samples, 16000, realtime=False)
    async with RingCapture(source, capacity_ms=100) as capture:
        reader = capture.reader_from(0)
        async with asyncio.timeout(10):
            got = b"".join([f async for f in reader])
    assert got == samples.astype("<i2").tobytes()
    assert capture.ring.overruns == 0
