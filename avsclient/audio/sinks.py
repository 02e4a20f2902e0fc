"""Audio sinks: where PCM goes to be played (speaker, WAV file, nowhere)."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import threading
import wave
import weakref
from typing import IO, TYPE_CHECKING, Any

from avsclient._resource import AsyncResource
from avsclient.exceptions import AudioError

from ._portaudio import load_sounddevice, map_device_error
from .convert import PcmConverter
from .format import AVS_FORMAT, AudioFormat, SampleEncoding

if TYPE_CHECKING:
    import os

__all__ = [
    "AudioSink",
    "DEFAULT_SPEAKER_BUFFER_MS",
    "NullSink",
    "PLAYBACK_FORMAT",
    "Speaker",
    "WavFileSink",
]

_log = logging.getLogger("avsclient.audio")

#: A good format for speech playback: AVS speech (AUDIO_MPEG) is typically 24 kHz mono.
PLAYBACK_FORMAT = AudioFormat(rate=24_000, channels=1, sample_width=2)

#: Audio a `Speaker` accepts ahead of the device. Writes wait beyond it, which is what lets
#: playback throttle a streaming attachment, while 300 ms absorbs network jitter.
DEFAULT_SPEAKER_BUFFER_MS = 300


class AudioSink(AsyncResource):
    """Accepts PCM in `format`, plays it, and can wait for the end or cut it short.

    `write()` takes chunks of any length (a sample frame may be split across chunks) and
    waits while the sink's buffer is full. `drain()` waits until everything written has been
    played; `stop()` discards what is queued and silences the output at once (barge-in).
    A sink can be reused after `drain()` or `stop()`. Writing after `aclose()` raises
    `AudioError`.
    """

    __slots__ = ()

    @property
    @abc.abstractmethod
    def format(self) -> AudioFormat:
        """The PCM format `write()` expects."""

    @abc.abstractmethod
    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue PCM for playback; waits while the buffer is full.

        Raises:
            AudioError: the sink is closed or its device failed.
        """

    @abc.abstractmethod
    async def drain(self) -> None:
        """Wait until everything written so far has been played."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Discard queued audio and stop playing at once."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Stop and release the device or file. Idempotent."""


def _closed_error(sink: AudioSink) -> AudioError:
    return AudioError(f"{type(sink).__name__} is closed")


class NullSink(AudioSink):
    """Discards audio, counting it; optionally takes as long as playing it would."""

    def __init__(self, fmt: AudioFormat = AVS_FORMAT, *, realtime: bool = False) -> None:
        """Create a sink.

        Args:
            fmt: the PCM format accepted.
            realtime: `drain()` waits for the playing time of what was written, like a
                device, and `stop()` keeps only what had "played" by then.
        """
        self._format = fmt
        self._realtime = realtime
        self._closed = False
        self._play_start: float | None = None
        self._queued = 0.0  # seconds written since playback (re)started
        #: Bytes accepted by `write()` since creation.
        self.bytes_written = 0
        #: Bytes counted as played: everything drained, plus what had played before a stop.
        self.bytes_played = 0
        #: How many times `stop()` cut playback short.
        self.stops = 0

    @property
    def format(self) -> AudioFormat:
        return self._format

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise _closed_error(self)
        if self._play_start is None:
            self._play_start = asyncio.get_running_loop().time()
        self.bytes_written += len(data)
        self._queued += self._format.duration_of(len(data))
        await asyncio.sleep(0)

    async def drain(self) -> None:
        if self._play_start is not None and self._realtime:
            end = self._play_start + self._queued
            await asyncio.sleep(max(0.0, end - asyncio.get_running_loop().time()))
        self.bytes_played += round(self._queued * self._format.bytes_per_second)
        self._play_start = None
        self._queued = 0.0

    async def stop(self) -> None:
        if self._play_start is not None:
            self.stops += 1
            played = self._queued
            if self._realtime:
                played = min(played, asyncio.get_running_loop().time() - self._play_start)
            self.bytes_played += round(played * self._format.bytes_per_second)
        self._play_start = None
        self._queued = 0.0

    async def aclose(self) -> None:
        if not self._closed:
            await self.stop()
            self._closed = True


def _finish_wav(wav: wave.Wave_write, file: IO[bytes]) -> None:
    """Complete a WAV file whose sink was never closed (garbage collection or exit)."""
    with contextlib.suppress(OSError, ValueError, wave.Error):
        wav.close()  # patches the header with the final length
    with contextlib.suppress(OSError, ValueError):
        file.close()


class WavFileSink(AudioSink):
    """Writes audio to a WAV file (integer PCM formats only).

    Close it (`aclose()` or `async with`) to complete the file. One that is never closed is
    completed when it is garbage-collected or at exit, quietly: the file's header still gets
    its length, and no error is printed.
    """

    def __init__(self, path: str | os.PathLike[str], fmt: AudioFormat = AVS_FORMAT) -> None:
        """Create the file.

        Args:
            path: the file to create or replace.
            fmt: the PCM format accepted and stored.

        Raises:
            ValueError: `fmt` is a float format (the WAV writer stores integers only).
            AudioError: the file cannot be created.
        """
        if fmt.encoding is SampleEncoding.FLOAT:
            raise ValueError("WavFileSink stores integer PCM; convert float audio first")
        self.path = path
        self._format = fmt
        self._pending = b""
        try:
            self._file = open(path, "wb")  # noqa: SIM115 - closed by aclose()
        except OSError as exc:
            raise AudioError(f"{path}: cannot create WAV file: {exc}") from exc
        try:
            wav = wave.open(self._file, "wb")  # noqa: SIM115 - closed by aclose()
            wav.setnchannels(fmt.channels)
            wav.setsampwidth(fmt.sample_width)
            wav.setframerate(fmt.rate)
        except (OSError, wave.Error) as exc:
            self._file.close()
            raise AudioError(f"{path}: cannot create WAV file: {exc}") from exc
        self._wav: wave.Wave_write | None = wav
        # Holds the writer and the file, so both are still open when it runs: without it the
        # file could be collected first and Wave_write.__del__ would fail on a closed file.
        self._finalizer = weakref.finalize(self, _finish_wav, wav, self._file)

    @property
    def format(self) -> AudioFormat:
        return self._format

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._wav is None:
            raise _closed_error(self)
        data = self._pending + bytes(data)
        whole = len(data) - len(data) % self._format.frame_size
        self._pending = data[whole:]
        try:
            self._wav.writeframesraw(data[:whole])
        except OSError as exc:
            raise AudioError(f"{self.path}: write failed: {exc}") from exc
        await asyncio.sleep(0)

    async def drain(self) -> None:
        """A file has "played" what was written: this flushes it to the OS."""
        if self._wav is not None:
            try:
                self._file.flush()
            except OSError as exc:
                raise AudioError(f"{self.path}: write failed: {exc}") from exc

    async def stop(self) -> None:
        """Keeps what was written (a file cannot be unplayed); drops a partial sample frame."""
        self._pending = b""

    async def aclose(self) -> None:
        if self._wav is not None:
            wav, self._wav = self._wav, None
            self._finalizer.detach()
            try:
                wav.close()  # patches the header with the final length
            except OSError as exc:
                raise AudioError(f"{self.path}: close failed: {exc}") from exc
            finally:
                self._file.close()  # wave leaves a file object it was given open


class Speaker(AudioSink):
    """Plays audio on a PortAudio output device (sounddevice OutputStream).

    PCM is queued in a bounded buffer that PortAudio's callback thread drains; the stream
    opens at `format` when the device supports it, otherwise at the device's default rate
    with numpy resampling. Gaps where the buffer ran dry mid-stream are counted in
    `underruns`.
    """

    def __init__(
        self,
        fmt: AudioFormat = PLAYBACK_FORMAT,
        *,
        device: int | str | None = None,
        buffer_ms: int = DEFAULT_SPEAKER_BUFFER_MS,
        latency: str | float = "low",
    ) -> None:
        """Open the device (playback starts with the first write).

        Args:
            fmt: the PCM format accepted by `write()`.
            device: a PortAudio device index or name substring (default: the default output).
            buffer_ms: audio accepted ahead of the device before `write()` waits.
            latency: PortAudio's suggested latency ("low", "high" or seconds).

        Raises:
            AudioError: PortAudio is missing, there is no such device, it is busy, or it
                supports neither rate.
            RuntimeError: called outside a running event loop.
        """
        self._loop = asyncio.get_running_loop()
        self._format = fmt
        sd = load_sounddevice()
        self.device = device
        rate = fmt.rate
        try:
            info = sd.query_devices(device, kind="output")
            channels = fmt.channels if fmt.channels <= int(info["max_output_channels"]) else 1
            try:
                sd.check_output_settings(
                    device=device, channels=channels, dtype="int16", samplerate=rate
                )
            except sd.PortAudioError:
                rate = int(info["default_samplerate"])
        except (sd.PortAudioError, ValueError, OSError) as exc:
            raise map_device_error(exc, kind="output", device=device, rate=rate) from exc
        self._device_format = AudioFormat(rate=rate, channels=channels, sample_width=2)
        self._converter = PcmConverter(fmt, self._device_format)
        self._capacity = self._device_format.bytes_for_ms(buffer_ms)
        self._frame_size = self._device_format.frame_size
        # Shared with the callback thread, always under _lock.
        self._lock = threading.Lock()
        self._buf = bytearray()
        self._playing = False  # written to since the last drain/stop
        self._draining = False
        self._end_time = 0.0  # stream time at which the last queued sample reaches the DAC
        # Loop side only.
        self._space: asyncio.Event = asyncio.Event()
        self._empty: asyncio.Event = asyncio.Event()
        self._closed = False
        self._stream_should_run = False
        self._generation = 0  # bumped by stop(), so that waiting writes give up
        self._error: AudioError | None = None
        #: Callbacks that found the buffer dry mid-stream, or reported an output underflow.
        self.underruns = 0
        try:
            self._stream = sd.OutputStream(
                samplerate=rate,
                device=device,
                channels=channels,
                dtype="int16",
                latency=latency,
                callback=self._callback,
                finished_callback=self._finished,
            )
        except (sd.PortAudioError, ValueError, OSError) as exc:
            raise map_device_error(exc, kind="output", device=device, rate=rate) from exc
        self._sd = sd

    @property
    def format(self) -> AudioFormat:
        return self._format

    @property
    def device_rate(self) -> int:
        """The rate the device stream runs at (differs from `format.rate` when resampling)."""
        return self._device_format.rate

    # PortAudio's thread ------------------------------------------------------------------

    def _callback(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        need = frames * self._frame_size
        out = memoryview(outdata).cast("B")
        with self._lock:
            buf = self._buf
            n = min(need, len(buf))
            out[:n] = buf[:n]
            del buf[:n]
            starved = self._playing and n < need and not self._draining
            if n:
                # When the last queued sample reaches the DAC, in stream time.
                dac = time_info.outputBufferDacTime or self._stream.time + self._stream.latency
                self._end_time = dac + (n // self._frame_size) / self._device_format.rate
            finished = self._draining and not buf
        if n < need:
            out[n:] = bytes(need - n)
        if starved or status.output_underflow:
            self._call(self._count_underrun)
        if n:
            self._call(self._space.set)
        if finished:
            self._call(self._empty.set)

    def _finished(self) -> None:
        self._call(self._on_finished)

    def _call(self, callback: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            self._loop.call_soon_threadsafe(callback)

    # The event loop ----------------------------------------------------------------------

    def _count_underrun(self) -> None:
        self.underruns += 1
        if self.underruns == 1 or self.underruns % 100 == 0:
            _log.warning("speaker ran dry mid-stream (%d underruns so far)", self.underruns)

    def _on_finished(self) -> None:
        if not self._closed and self._stream_should_run:
            self._error = AudioError(f"playback on {self.device!r} stopped: the device went away")
            self._space.set()
            self._empty.set()

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise _closed_error(self)
        if self._error is not None:
            raise self._error
        pcm = memoryview(self._converter.convert(data))
        generation = self._generation
        while pcm:
            with self._lock:
                room = self._capacity - len(self._buf)
                room -= room % self._frame_size
                take = pcm[: max(0, room)]
                self._buf += take
                self._playing = True
                self._draining = False
                self._space.clear()
            pcm = pcm[len(take) :]
            self._start()
            if pcm:
                await self._space.wait()
                if self._closed:
                    raise _closed_error(self)
                if self._error is not None:
                    raise self._error
                if self._generation != generation:
                    return  # stop() was called meanwhile: the rest is discarded too

    def _start(self) -> None:
        if not self._stream_should_run:
            self._stream_should_run = True
            try:
                self._stream.start()
            except self._sd.PortAudioError as exc:
                self._stream_should_run = False
                raise map_device_error(
                    exc, kind="output", device=self.device, rate=self.device_rate
                ) from exc

    async def drain(self) -> None:
        if self._closed:
            return
        tail = self._converter.flush()
        if tail:
            await self.write(tail)
        generation = self._generation
        # The callback sets `_empty` through the loop, so a set left over from an earlier
        # drain can arrive after this one started: trust only the buffer, read under the lock.
        while True:
            with self._lock:
                if not self._playing or self._generation != generation:
                    return  # nothing was playing, or stop() cut it short meanwhile
                self._draining = True
                if not self._buf:
                    break
                self._empty.clear()
            await self._empty.wait()
            if self._error is not None:
                raise self._error
        # The buffer is empty; wait until its last samples have left the DAC.
        with self._lock:
            remaining = self._end_time - self._stream.time
            self._playing = False
        if remaining > 0:
            await asyncio.sleep(remaining)

    async def stop(self) -> None:
        self._generation += 1
        with self._lock:
            self._buf.clear()
            self._playing = False
            self._draining = False
        self._converter = PcmConverter(self._format, self._device_format)
        self._space.set()
        self._empty.set()
        if self._stream_should_run:
            # abort() also drops what PortAudio and the host have buffered: silence now.
            self._stream_should_run = False
            await asyncio.to_thread(self._stream.abort)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self.stop()
        finally:
            # Release the device even when stopping failed or this task is being cancelled.
            await asyncio.shield(asyncio.to_thread(self._stream.close))
