"""Always-on capture with history: a bounded ring of PCM with absolute stream positions.

`PcmRing` is the sans-IO core: frames are appended, every sample has an absolute position
(samples since the capture started), and the last `capacity` samples stay readable. Readers
(`RingReader`) start anywhere inside the history, deliver it as fast as they are read, then
follow live audio. `RingCapture` is the thin asyncio pump from any `AudioSource` into a ring.

Overrun policy: the ring never grows. A reader whose next sample has already been overwritten
raises `RingOverrun` from `read_frame()` (the gap is counted in `PcmRing.overruns` and in the
reader's `overrun_samples`); audio with a hole in it must not be sent to a recogniser as if it
were continuous, so the caller decides (drop the turn, or call `resync()` to skip to the
oldest sample still held and go on).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from avsclient.exceptions import AudioError

from .format import AVS_FORMAT, AVS_FRAME_MS, AudioFormat
from .sources import AudioSource

__all__ = [
    "DEFAULT_RING_MS",
    "PcmRing",
    "RingCapture",
    "RingOverrun",
    "RingReader",
]

_log = logging.getLogger("avsclient.audio")

_Listener = Callable[[bytes, int], None]

#: History the ring holds by default: 3 s covers the 500 ms pre-roll, a long wake word and
#: the detector's latency with a margin.
DEFAULT_RING_MS = 3000


class RingOverrun(AudioError):
    """A ring reader fell behind: the audio it needed next was overwritten.

    Attributes:
        position: the reader's position (the first sample it missed).
        oldest: the oldest sample the ring still holds.
    """

    def __init__(self, position: int, oldest: int) -> None:
        super().__init__(
            f"ring reader overrun: sample {position} was overwritten "
            f"(oldest held is {oldest}, {oldest - position} samples lost)"
        )
        self.position = position
        self.oldest = oldest


class PcmRing:
    """A bounded ring of 16-bit-aligned PCM with absolute sample positions (no I/O).

    Positions count samples (sample frames, all channels) since the first append. The ring
    holds samples [`oldest`, `end`); `end - oldest <= capacity`.
    """

    def __init__(
        self, fmt: AudioFormat = AVS_FORMAT, *, capacity_ms: int = DEFAULT_RING_MS
    ) -> None:
        """Create an empty ring.

        Args:
            fmt: the PCM format of the audio.
            capacity_ms: history held, in milliseconds (at least one 10 ms frame).

        Raises:
            ValueError: `capacity_ms` is too small.
        """
        if capacity_ms < AVS_FRAME_MS:
            raise ValueError(f"capacity_ms must be at least {AVS_FRAME_MS}")
        self.format = fmt
        self._width = fmt.sample_width * fmt.channels
        self.capacity = fmt.rate * capacity_ms // 1000
        self._buf = bytearray(self.capacity * self._width)
        self._end = 0
        #: Samples readers lost to overwrites, summed over all readers.
        self.overruns = 0
        #: Set when the producer has finished (no more audio will come).
        self.closed = False

    @property
    def end(self) -> int:
        """The position one past the newest sample."""
        return self._end

    @property
    def oldest(self) -> int:
        """The position of the oldest sample still held."""
        return max(0, self._end - self.capacity)

    def samples_for_ms(self, ms: float) -> int:
        """Samples in `ms` milliseconds at the ring's rate."""
        return round(self.format.rate * ms / 1000)

    def append(self, pcm: bytes | bytearray | memoryview) -> int:
        """Append whole samples; return the position of the first one.

        Raises:
            ValueError: `pcm` holds a partial sample.
            RuntimeError: the ring is closed.
        """
        if self.closed:
            raise RuntimeError("the ring is closed")
        data = memoryview(pcm).cast("B")
        if len(data) % self._width:
            raise ValueError("PCM holds a partial sample")
        first = self._end
        n = len(data) // self._width
        if n >= self.capacity:
            data = data[(n - self.capacity) * self._width :]
        size = len(self._buf)
        at = ((first + n - len(data) // self._width) % self.capacity) * self._width
        head = min(len(data), size - at)
        self._buf[at : at + head] = data[:head]
        if head < len(data):
            self._buf[: len(data) - head] = data[head:]
        self._end = first + n
        return first

    def read(self, start: int, count: int) -> bytes:
        """Return samples [start, start + count) clipped to `end`.

        Raises:
            RingOverrun: `start` is older than `oldest` (it was overwritten).
            ValueError: `start` is negative or `count` is negative.
        """
        if start < 0 or count < 0:
            raise ValueError("start and count must not be negative")
        if start < self.oldest:
            raise RingOverrun(start, self.oldest)
        stop = min(start + count, self._end)
        if stop <= start:
            return b""
        w = self._width
        at = (start % self.capacity) * w
        length = (stop - start) * w
        size = len(self._buf)
        if at + length <= size:
            return bytes(self._buf[at : at + length])
        return bytes(self._buf[at:]) + bytes(self._buf[: length - (size - at)])

    def close(self) -> None:
        """Mark the end of the audio: readers deliver what is held, then end."""
        self.closed = True


class RingReader(AudioSource):
    """An `AudioSource` of fixed-size frames read from a `PcmRing` from a given position.

    History is returned without waiting; at the live edge `read_frame()` waits for the
    producer (`RingCapture` wakes readers on every append). The reader owns nothing: closing
    it does not stop the capture.
    """

    def __init__(
        self,
        ring: PcmRing,
        start: int,
        *,
        frame_ms: int = AVS_FRAME_MS,
        wakeup: asyncio.Condition | None = None,
    ) -> None:
        """Create a reader.

        Args:
            ring: the ring to read.
            start: the first position to deliver; it must still be held.
            frame_ms: frame length in milliseconds.
            wakeup: the condition the producer notifies on append (None: poll-free reads of
                history only; reaching the live edge then ends the reader).

        Raises:
            RingOverrun: `start` is no longer held.
            ValueError: `start` lies in the future.
        """
        if start > ring.end:
            raise ValueError(f"start {start} lies beyond the ring's end {ring.end}")
        if start < ring.oldest:
            raise RingOverrun(start, ring.oldest)
        self._ring = ring
        self.start = start
        self.position = start
        self._frame_samples = ring.format.rate * frame_ms // 1000
        self._frame_bytes = ring.format.bytes_for_ms(frame_ms)
        self._wakeup = wakeup
        self._closed = False
        #: Samples this reader lost to overruns (after `resync()`).
        self.overrun_samples = 0
        self._counted = start  # overrun samples already added to the ring's count end here

    @property
    def format(self) -> AudioFormat:
        return self._ring.format

    @property
    def frame_bytes(self) -> int:
        return self._frame_bytes

    def resync(self) -> int:
        """Skip to the oldest sample still held after an overrun; return the samples skipped."""
        lost = max(0, self._ring.oldest - self.position)
        self.position += lost
        self.overrun_samples += lost
        return lost

    def _take(self) -> bytes | None:
        ring = self._ring
        if self.position < ring.oldest:
            if self._counted < ring.oldest:  # count each lost sample once, however often asked
                ring.overruns += ring.oldest - max(self._counted, self.position)
                self._counted = ring.oldest
            raise RingOverrun(self.position, ring.oldest)
        if ring.end - self.position >= self._frame_samples:
            frame = ring.read(self.position, self._frame_samples)
            self.position += self._frame_samples
            return frame
        return None

    async def read_frame(self) -> bytes:
        while not self._closed:
            frame = self._take()
            if frame is not None:
                return frame
            if self._ring.closed or self._wakeup is None:
                return b""
            async with self._wakeup:
                await self._wakeup.wait_for(
                    lambda: (
                        self._closed
                        or self._ring.closed
                        or self._ring.end - self.position >= self._frame_samples
                    )
                )
        return b""

    async def aclose(self) -> None:
        self._closed = True
        if self._wakeup is not None:
            async with self._wakeup:
                self._wakeup.notify_all()


class RingCapture:
    """The asyncio pump: reads an `AudioSource` into a `PcmRing` and wakes readers.

    Listeners (the wake-word detector, typically) are called with every frame and its
    position, in the pump task, so they must be fast (a few ms per frame at most).
    Use as `async with RingCapture(mic) as capture: ...`.
    """

    def __init__(self, source: AudioSource, *, capacity_ms: int = DEFAULT_RING_MS) -> None:
        self.source = source
        self.ring = PcmRing(source.format, capacity_ms=capacity_ms)
        self._wakeup = asyncio.Condition()
        self._listeners: list[_Listener] = []
        self._task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None

    def add_listener(self, listener: _Listener) -> None:
        """Call `listener(frame, position)` for every frame appended from now on."""
        self._listeners.append(listener)

    def reader_from(self, position: int, *, frame_ms: int = AVS_FRAME_MS) -> RingReader:
        """A reader that starts at `position` (inside the history) and follows live audio."""
        return RingReader(self.ring, position, frame_ms=frame_ms, wakeup=self._wakeup)

    async def __aenter__(self) -> RingCapture:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def start(self) -> None:
        """Start the pump task (idempotent)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._pump())

    async def _pump(self) -> None:
        try:
            async for frame in self.source:
                position = self.ring.append(frame)
                for listener in self._listeners:
                    listener(frame, position)
                async with self._wakeup:
                    self._wakeup.notify_all()
                # let woken readers run even when the source never waits (a file read
                # faster than real time), so a reader that keeps up is never overrun
                await asyncio.sleep(0)
        except Exception as exc:  # a failing device or listener ends the capture, visibly
            self.error = exc
            _log.warning("capture ended: %r", exc)
        finally:
            self.ring.close()
            async with self._wakeup:
                self._wakeup.notify_all()

    async def wait_closed(self, timeout: float) -> None:
        """Wait until the source has ended (at most `timeout` seconds)."""
        if self._task is not None:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)

    async def aclose(self) -> None:
        """Stop the source and the pump; readers then end after the history they still hold."""
        await self.source.aclose()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.ring.close()
