"""Audio sources: async iterators of fixed-size PCM frames (microphone, WAV file, numpy array),
and a wrapper that ends a source at the end of speech."""

from __future__ import annotations

import abc
import asyncio
import collections
import contextlib
import logging
import os
import time
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from avsclient._resource import AsyncResource
from avsclient.exceptions import AudioError

from ._portaudio import load_sounddevice, map_device_error
from .convert import Framer, PcmConverter
from .endpointing import EndpointDetector, EndpointEvent, EndpointingConfig, EndpointState
from .format import AVS_FORMAT, AVS_FRAME_MS, AudioFormat, SampleEncoding
from .wavfile import open_error, read_wav_header

if TYPE_CHECKING:
    import numpy.typing as npt

    from .vad import Endpointer

__all__ = [
    "ArraySource",
    "AudioSource",
    "CaptureBridge",
    "ContinuousSource",
    "DEFAULT_QUEUE_FRAMES",
    "EndpointedSource",
    "Microphone",
    "WavFileSource",
]

_log = logging.getLogger("avsclient.audio")

#: Frames a capture queue holds before it drops: 3 s of 10 ms frames. AVS uploads run at
#: real time, so a consumer more than a few seconds behind has a stalled connection, and
#: holding more would only make the dialog later; the drops are counted and logged.
DEFAULT_QUEUE_FRAMES = 300

# File and array sources convert this much audio per step: small enough to keep the
# resampler's scratch arrays in cache, large enough to amortise numpy call overhead.
_BLOCK_MS = 100


def _silence_byte(fmt: AudioFormat) -> int:
    return 0x80 if fmt.encoding is SampleEncoding.UNSIGNED else 0


class AudioSource(AsyncResource):
    """An async iterator of fixed-size PCM frames in `format`.

    Every frame is exactly `frame_bytes` long (a file's last frame is padded with silence).
    Iteration ends at the end of the audio, or once `aclose()` has been called (from any
    task); frames not yet read are then discarded. Use it as `async with source: ...`.
    """

    __slots__ = ()

    @property
    @abc.abstractmethod
    def format(self) -> AudioFormat:
        """The PCM format of the frames."""

    @property
    @abc.abstractmethod
    def frame_bytes(self) -> int:
        """The length of every frame."""

    @abc.abstractmethod
    async def read_frame(self) -> bytes:
        """Return the next frame, or b"" at the end of the audio or after `aclose()`.

        Raises:
            AudioError: the device or file failed; the error is sticky.
        """

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Stop producing frames and release the device or file. Idempotent."""

    def __aiter__(self) -> AudioSource:
        return self

    async def __anext__(self) -> bytes:
        frame = await self.read_frame()
        if not frame:
            raise StopAsyncIteration
        return frame


# -- sources that convert a stream read in blocks ------------------------------------------


class _BlockSource(AudioSource):
    """Shared machinery: read raw blocks, convert to `format`, cut frames, pace if asked."""

    def __init__(self, src: AudioFormat, fmt: AudioFormat, frame_ms: int, realtime: bool):
        self._format = fmt
        self._frame_bytes = fmt.bytes_for_ms(frame_ms)
        self._frame_seconds = self._frame_bytes / fmt.bytes_per_second
        self._src = src
        self._converter = PcmConverter(src, fmt)
        self._framer = Framer(self._frame_bytes, silence=_silence_byte(fmt))
        self._ready: collections.deque[bytes] = collections.deque()
        self._block_frames = max(1, src.rate * _BLOCK_MS // 1000)
        self._realtime = realtime
        self._start: float | None = None
        self._sent = 0
        self._eof = False
        self._closed = False

    @property
    def format(self) -> AudioFormat:
        return self._format

    @property
    def frame_bytes(self) -> int:
        return self._frame_bytes

    @abc.abstractmethod
    def _read_block(self, frames: int) -> bytes:
        """Up to `frames` raw sample frames of the source format; b"" at the end."""

    def _release(self) -> None:
        """Release the underlying file, if any (the default has none)."""
        return

    async def read_frame(self) -> bytes:
        while not self._ready:
            if self._closed or self._eof:
                return b""
            block = self._read_block(self._block_frames)
            if block:
                self._ready.extend(self._framer.push(self._converter.convert(block)))
            else:
                self._eof = True
                self._release()
                self._ready.extend(self._framer.push(self._converter.flush()))
                last = self._framer.flush()
                if last is not None:
                    self._ready.append(last)
        frame = self._ready.popleft()
        await self._pace()
        return frame

    async def _pace(self) -> None:
        if not self._realtime:
            await asyncio.sleep(0)  # stay cooperative when reading a long file at full speed
            return
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        delay = self._start + self._sent * self._frame_seconds - loop.time()
        self._sent += 1
        await asyncio.sleep(max(0.0, delay))

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._ready.clear()
            self._release()


class WavFileSource(_BlockSource):
    """Frames from a WAV file of any rate, channel count and sample format (integer PCM of
    8 to 32 bits, float of 32 or 64 bits), converted to `format`.

    The file is read and converted in 100 ms blocks, so memory stays small for long files.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fmt: AudioFormat = AVS_FORMAT,
        *,
        frame_ms: int = AVS_FRAME_MS,
        realtime: bool = False,
    ) -> None:
        """Open a WAV file.

        Args:
            path: the file.
            fmt: the format of the frames produced (default: the AVS upload format).
            frame_ms: frame duration in milliseconds.
            realtime: deliver frames no faster than real time, like a microphone.

        Raises:
            AudioError: the file is missing, unreadable, not a WAV file, or holds samples of
                another kind (compressed audio); the message says which.
        """
        self.path = path
        try:
            file = open(path, "rb")  # noqa: SIM115 - closed at the end or by aclose()
        except OSError as exc:
            raise open_error(path, exc) from exc
        try:
            info = read_wav_header(file, str(path), os.fstat(file.fileno()).st_size)
            file.seek(info.data_offset)
            super().__init__(info.format, fmt, frame_ms, realtime)
        except (AudioError, OSError, ValueError) as exc:
            file.close()
            if isinstance(exc, AudioError):
                raise
            raise AudioError(f"{path}: cannot read it as WAV: {exc}") from exc
        self._file: BinaryIO | None = file
        self._remaining = info.data_bytes

    def _read_block(self, frames: int) -> bytes:
        if self._file is None:
            return b""
        want = min(frames * self._src.frame_size, self._remaining)
        try:
            data = self._file.read(want) if want else b""
        except OSError as exc:
            self._release()
            raise AudioError(f"{self.path}: read failed: {exc}") from exc
        self._remaining -= len(data)
        return data

    def _release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


_ARRAY_FORMATS: dict[str, tuple[SampleEncoding, int]] = {
    "int16": (SampleEncoding.SIGNED, 2),
    "int32": (SampleEncoding.SIGNED, 4),
    "uint8": (SampleEncoding.UNSIGNED, 1),
    "float32": (SampleEncoding.FLOAT, 4),
    "float64": (SampleEncoding.FLOAT, 8),
}


class ArraySource(_BlockSource):
    """Frames from a numpy array of samples, converted to `format`."""

    def __init__(
        self,
        samples: npt.ArrayLike,
        rate: int,
        fmt: AudioFormat = AVS_FORMAT,
        *,
        frame_ms: int = AVS_FRAME_MS,
        realtime: bool = False,
    ) -> None:
        """Wrap an array.

        Args:
            samples: shaped (frames,) for mono or (frames, channels); int16, int32, uint8,
                float32 or float64 (floats in -1.0 .. 1.0). The array is copied.
            rate: the sample rate of `samples`.
            fmt: the format of the frames produced.
            frame_ms: frame duration in milliseconds.
            realtime: deliver frames no faster than real time.

        Raises:
            ValueError: the array's shape or dtype is not supported.
        """
        array = np.asarray(samples)
        if array.ndim == 1:
            array = array.reshape(-1, 1)
        if array.ndim != 2:
            raise ValueError(f"samples must be 1-D or 2-D, not shaped {array.shape}")
        kind = _ARRAY_FORMATS.get(array.dtype.name)
        if kind is None:
            supported = list(_ARRAY_FORMATS)
            raise ValueError(f"unsupported sample dtype {array.dtype}; use one of {supported}")
        src = AudioFormat(
            rate=rate, channels=array.shape[1], sample_width=kind[1], encoding=kind[0]
        )
        super().__init__(src, fmt, frame_ms, realtime)
        self._data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
        self._offset = 0

    def _read_block(self, frames: int) -> bytes:
        size = frames * self._src.frame_size
        block = self._data[self._offset : self._offset + size]
        self._offset += len(block)
        return block


# -- capture from a foreign thread ---------------------------------------------------------


class CaptureBridge(AudioSource):
    """Hands PCM captured on a foreign thread (an audio callback) to asyncio, as frames.

    The capture thread calls `push()`; frames hop onto the event loop with
    `loop.call_soon_threadsafe` into a bounded queue. When the queue is full, new frames are
    dropped, counted in `dropped_frames` and logged: never silently. Capture-side overruns
    reported by the driver are counted in `input_overflows`.
    """

    def __init__(
        self,
        fmt: AudioFormat = AVS_FORMAT,
        *,
        frame_ms: int = AVS_FRAME_MS,
        queue_frames: int = DEFAULT_QUEUE_FRAMES,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """Create a bridge bound to the running event loop.

        Args:
            fmt: the format of pushed data and of the frames.
            frame_ms: frame duration in milliseconds.
            queue_frames: frames held for the consumer before new ones are dropped.
            loop: the loop to deliver to (default: the running loop).

        Raises:
            RuntimeError: no loop was given and none is running.
            ValueError: `queue_frames` is not positive.
        """
        if queue_frames <= 0:
            raise ValueError("queue_frames must be positive")
        self._format = fmt
        self._frame_bytes = fmt.bytes_for_ms(frame_ms)
        self._loop = loop or asyncio.get_running_loop()
        self._framer = Framer(self._frame_bytes, silence=_silence_byte(fmt))
        self._queue: collections.deque[tuple[bytes, float]] = collections.deque()
        self._max = queue_frames
        self._waiter: asyncio.Future[None] | None = None
        self._ended = False
        self._error: BaseException | None = None
        self._closed = False
        self._dropping = False
        self._overflowing = False
        #: Frames dropped because the consumer fell `queue_frames` behind.
        self.dropped_frames = 0
        #: Capture blocks the driver reported as overrun (audio lost before it reached us).
        self.input_overflows = 0
        #: Seconds between the capture thread's hand-off of the last frame read and its read.
        self.last_frame_age = 0.0

    @property
    def format(self) -> AudioFormat:
        return self._format

    @property
    def frame_bytes(self) -> int:
        return self._frame_bytes

    # Called on the capture thread. -------------------------------------------------------

    def push(self, data: bytes | bytearray | memoryview, *, input_overflow: bool = False) -> None:
        """Add captured PCM (any length); call from the capture thread only."""
        frames = self._framer.push(data)
        if frames or input_overflow:
            self._call(self._deliver, frames, input_overflow, time.perf_counter())

    def end(self) -> None:
        """The capture ended normally: frames already pushed are still delivered."""
        self._call(self._on_end, None)

    def fail(self, error: BaseException) -> None:
        """The capture broke: frames already pushed are delivered, then `error` is raised."""
        self._call(self._on_end, error)

    def _call(self, callback: Any, *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop has nobody left to read
            self._loop.call_soon_threadsafe(callback, *args)

    # Runs on the event loop. -------------------------------------------------------------

    def _deliver(self, frames: list[bytes], overflow: bool, stamp: float) -> None:
        if self._closed:
            return
        if overflow:
            self.input_overflows += 1
            if not self._overflowing:
                _log.warning(
                    "capture overrun reported by the audio driver (%d so far): audio was lost",
                    self.input_overflows,
                )
            self._overflowing = True
        elif frames:
            self._overflowing = False
        queue = self._queue
        for frame in frames:
            if len(queue) >= self._max:
                self.dropped_frames += 1
                if not self._dropping:
                    _log.warning(
                        "capture queue full (%d frames): dropping audio, the consumer is too slow"
                        " (%d dropped so far)",
                        self._max,
                        self.dropped_frames,
                    )
                self._dropping = True
            else:
                queue.append((frame, stamp))
                self._dropping = False
        self._wake()

    def _on_end(self, error: BaseException | None) -> None:
        self._ended = True
        if error is not None and self._error is None:
            self._error = error
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def read_frame(self) -> bytes:
        while True:
            if self._closed:
                return b""
            if self._queue:
                frame, stamp = self._queue.popleft()
                self.last_frame_age = time.perf_counter() - stamp
                return frame
            if self._error is not None:
                raise self._error
            if self._ended:
                return b""
            if self._waiter is not None:
                raise RuntimeError("another task is already reading this source")
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def aclose(self) -> None:
        self._closed = True
        self._queue.clear()
        self._wake()


class Microphone(CaptureBridge):
    """Captures from a PortAudio input device (sounddevice) as frames of `format`.

    The stream opens at `format` directly when the device supports it; otherwise (or when
    `capture_rate` is given) it captures at the device's rate and resamples with numpy on
    the callback thread. Capture starts when the object is created; `aclose()` stops it.
    """

    def __init__(
        self,
        fmt: AudioFormat = AVS_FORMAT,
        *,
        device: int | str | None = None,
        frame_ms: int = AVS_FRAME_MS,
        capture_rate: int | None = None,
        queue_frames: int = DEFAULT_QUEUE_FRAMES,
        latency: str | float = "low",
    ) -> None:
        """Open the device and start capturing.

        Args:
            fmt: the format of the frames (default: the AVS upload format).
            device: a PortAudio device index or name substring (default: the default input).
            frame_ms: frame duration in milliseconds.
            capture_rate: capture at this rate and resample (default: `format.rate` when
                the device supports it, else the device's default rate).
            queue_frames: frames held for a slow consumer before new ones are dropped.
            latency: PortAudio's suggested latency ("low", "high" or seconds).

        Raises:
            AudioError: PortAudio is missing, there is no such device, it is busy, or it
                supports neither rate.
            RuntimeError: called outside a running event loop.
        """
        super().__init__(fmt, frame_ms=frame_ms, queue_frames=queue_frames)
        sd = load_sounddevice()
        self.device = device
        self._closing = False
        self._released: asyncio.Future[None] | None = None
        channels = fmt.channels
        direct = (
            capture_rate in (None, fmt.rate)
            and fmt.encoding is SampleEncoding.SIGNED
            and fmt.sample_width == 2
        )
        rate = capture_rate or fmt.rate
        try:
            info = sd.query_devices(device, kind="input")
            channels = min(channels, max(1, int(info["max_input_channels"])))
            direct = direct and channels == fmt.channels
            if direct:
                try:
                    sd.check_input_settings(
                        device=device, channels=channels, dtype="int16", samplerate=rate
                    )
                except sd.PortAudioError:
                    direct = False
                    rate = int(info["default_samplerate"])
        except (sd.PortAudioError, ValueError, OSError) as exc:
            raise map_device_error(exc, kind="input", device=device, rate=rate) from exc
        self.capture_rate = rate
        self._converter: PcmConverter | None = None
        if not direct:
            captured = AudioFormat(
                rate=rate, channels=channels, sample_width=4, encoding=SampleEncoding.FLOAT
            )
            self._converter = PcmConverter(captured, fmt)
        self._callback_abort = sd.CallbackAbort
        try:
            self._stream = sd.InputStream(
                samplerate=rate,
                blocksize=rate * frame_ms // 1000,
                device=device,
                channels=channels,
                dtype="int16" if direct else "float32",
                latency=latency,
                callback=self._callback,
                finished_callback=self._finished,
            )
        except (sd.PortAudioError, ValueError, OSError) as exc:
            raise map_device_error(exc, kind="input", device=device, rate=rate) from exc
        try:
            self._stream.start()
        except (sd.PortAudioError, ValueError, OSError) as exc:
            self._closing = True  # the stream never ran: its end is no failure to report
            self._stream.close()
            raise map_device_error(exc, kind="input", device=device, rate=rate) from exc
        mode = "direct" if direct else "resampled"
        _log.debug("microphone open: %s at %d Hz (%s)", device, rate, mode)

    def _callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        # PortAudio's thread: convert and hand over, nothing that can block.
        try:
            data = indata.tobytes()
            if self._converter is not None:
                data = self._converter.convert(data)
            self.push(data, input_overflow=bool(status.input_overflow))
        except Exception as exc:
            # sounddevice would only print it; the reader must see it, and not as a device
            # that went away.
            self._closing = True
            error = AudioError(f"capture from {self.device!r} failed in its callback: {exc!r}")
            error.__cause__ = exc
            self.fail(error)
            raise self._callback_abort from exc

    def _finished(self) -> None:
        if not self._closing:
            self.fail(AudioError(f"capture from {self.device!r} stopped: the device went away"))

    async def aclose(self) -> None:
        await super().aclose()
        if self._released is None:
            self._closing = True
            # abort() drops pending buffers; close() waits for PortAudio's thread: keep both
            # off the event loop, and finish them even if this task is cancelled meanwhile.
            release = asyncio.to_thread(_abort_and_close, self._stream)
            self._released = asyncio.ensure_future(release)
        # A second aclose() (another task) also returns only once the device is released.
        await asyncio.shield(self._released)


def _abort_and_close(stream: Any) -> None:
    try:
        stream.abort()
    finally:
        stream.close()


# -- end of speech -------------------------------------------------------------------------


class _PassThroughSource(AudioSource):
    """Frames of another source, `source`, in its format and frame size."""

    source: AudioSource

    @property
    def format(self) -> AudioFormat:
        return self.source.format

    @property
    def frame_bytes(self) -> int:
        return self.source.frame_bytes

    async def aclose(self) -> None:
        await self.source.aclose()


class EndpointedSource(_PassThroughSource):
    """Passes frames of another source through until the endpointer ends the utterance.

    Frames stop right after the one that completes the hangover (so the upload includes
    the trailing quiet the cloud expects), or at the timeout. `events` records what the
    endpointer reported.
    """

    def __init__(
        self,
        source: AudioSource,
        config: EndpointingConfig | None = None,
        *,
        endpointer: Endpointer | None = None,
    ) -> None:
        """Wrap `source`, whose format must be signed 16-bit mono.

        Args:
            source: the audio.
            config: timings of the default energy endpointer (ignored with `endpointer`).
            endpointer: the end-of-speech decision (default: an energy `EndpointDetector`);
                see `avsclient.audio.create_endpointer` for the WebRTC VAD one.

        Raises:
            ValueError: the source's format is not signed 16-bit mono.
        """
        self.source = source
        self.detector: Endpointer = (
            endpointer if endpointer is not None else EndpointDetector(config, source.format)
        )
        #: Events reported so far, in order.
        self.events: list[EndpointEvent] = []

    async def read_frame(self) -> bytes:
        if self.detector.state is EndpointState.ENDED:
            return b""
        frame = await self.source.read_frame()
        if not frame:
            return b""
        event = self.detector.feed(frame)
        if event is not None:
            self.events.append(event)
        return frame


class ContinuousSource(_PassThroughSource):
    """Another source, then silence for ever: a recording that stands in for a microphone.

    After `source` ends, frames of digital silence follow, paced in real time, until
    `aclose()`; the always-on path then sees a stream that goes on as a device's does.
    `source` should itself be paced (e.g. `WavFileSource(..., realtime=True)`).
    """

    def __init__(self, source: AudioSource) -> None:
        self.source = source
        self._silence = bytes([_silence_byte(source.format)]) * source.frame_bytes
        self._frame_seconds = source.frame_bytes / source.format.bytes_per_second
        self._next: float | None = None  # when the next silent frame is due
        self._closed = False
        #: True once `source` has ended and silence is being produced.
        self.exhausted = False

    async def read_frame(self) -> bytes:
        if self._closed:
            return b""
        if not self.exhausted:
            frame = await self.source.read_frame()
            if frame or self._closed:
                return frame
            self.exhausted = True
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._next is None:
            self._next = now
        await asyncio.sleep(max(0.0, self._next - now))
        self._next += self._frame_seconds
        return b"" if self._closed else self._silence

    async def aclose(self) -> None:
        self._closed = True
        await super().aclose()
