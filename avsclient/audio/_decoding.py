"""What `Mp3Sink` and `MediaSink` share, and what `Mp3Decoder` and `MediaDecoder` share.

Each sink makes an `AudioSink` accept a compressed stream that its decoder turns into PCM on a
worker thread. `DecoderThread` is that worker's lifecycle (start on the first input, cancel,
finish, join); `DecodingSink` feeds one decoder per stream with backpressure, hands its PCM to
the sink in the event loop, and ends (`drain()`) or abandons (`stop()`) the stream. A subclass
says how to make its decoder and when the decoder's input queue is full.
"""

from __future__ import annotations

import abc
import asyncio
import threading
from collections.abc import Callable
from typing import ClassVar, Generic, Protocol, TypeVar

from avsclient._resource import AsyncResource
from avsclient.exceptions import AudioError

from .format import AudioFormat
from .sinks import AudioSink

__all__ = ["DecoderThread", "DecodingSink", "StreamDecoder"]


class DecoderThread(abc.ABC):
    """A decoder's worker thread: `_run()` decodes and ends with `_finish()`.

    The input, guarded by `_cond`, is the subclass's; `feed()` calls `_start()` once input is
    there. `done` is set when the worker has finished (or was never needed).
    """

    #: The worker thread's name.
    _thread_name: ClassVar[str]

    def __init__(
        self,
        fmt: AudioFormat,
        on_pcm: Callable[[bytes], None],
        on_progress: Callable[[], None] | None,
    ) -> None:
        self.format = fmt
        self._on_pcm = on_pcm
        self._on_progress = on_progress
        self._cond = threading.Condition()
        self._ended = False
        self._cancelled = False
        self._thread: threading.Thread | None = None
        #: Set when the worker has finished (or was never needed).
        self.done = threading.Event()
        #: The failure, once `done` is set (None on success or cancellation).
        self.error: AudioError | None = None
        #: PCM bytes handed to `on_pcm`.
        self.pcm_bytes = 0

    @abc.abstractmethod
    def _run(self) -> None:
        """The worker: decode the input, hand PCM to `_on_pcm`, then `_finish()`."""

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
            self._thread.start()

    @abc.abstractmethod
    def _drop_input(self) -> None:
        """Forget queued input (called under `_cond` when cancelled)."""

    def cancel(self) -> None:
        """Abandon the stream: the worker stops before its next piece of PCM."""
        with self._cond:
            self._cancelled = True
            self._drop_input()
            self._cond.notify()
        if self._thread is None:
            self._finish()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker thread to exit; once `done` is set this returns at once.

        Returns:
            True when no worker thread is left running.
        """
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _finish(self) -> None:
        self.done.set()
        if self._on_progress is not None:
            self._on_progress()


class StreamDecoder(Protocol):
    """A decoder working on a thread of its own (`Mp3Decoder`, `MediaDecoder`)."""

    #: Set when the worker has finished (or was never needed).
    done: threading.Event
    #: The failure, once `done` is set.
    error: AudioError | None

    def feed(self, data: bytes | bytearray | memoryview) -> None: ...

    def end(self) -> None: ...

    def cancel(self) -> None: ...

    def join(self, timeout: float | None = None) -> bool: ...


D = TypeVar("D", bound=StreamDecoder)


class DecodingSink(AsyncResource, Generic[D]):
    """Feeds one decoder per stream and plays its PCM through `sink`.

    `write()` feeds the decoder and waits while its input queue is full; `drain()` ends the
    stream and waits until it has been played, ready for the next stream; `stop()` abandons
    it at once.
    """

    #: The class name that errors give.
    _name: ClassVar[str]

    def __init__(self, sink: AudioSink) -> None:
        self.sink = sink
        self._decoder: D | None = None
        self._progress = asyncio.Event()
        self._closed = False

    @property
    def decoder(self) -> D | None:
        """The decoder of the stream in progress, if any."""
        return self._decoder

    @abc.abstractmethod
    def _make_decoder(
        self,
        loop: asyncio.AbstractEventLoop,
        on_pcm: Callable[[bytes], None],
        on_progress: Callable[[], None],
    ) -> D:
        """A new decoder for `sink.format` calling `on_pcm` and `on_progress` (thread-safe)."""

    @abc.abstractmethod
    def _backlogged(self, decoder: D) -> bool:
        """True while `write()` must wait for the decoder to take what is queued."""

    def _feed(self, decoder: D, data: bytes | bytearray | memoryview) -> None:
        decoder.feed(data)

    def _new_decoder(self) -> D:
        loop = asyncio.get_running_loop()
        sink, progress = self.sink, self._progress

        def on_pcm(pcm: bytes) -> None:
            asyncio.run_coroutine_threadsafe(sink.write(pcm), loop).result()

        def on_progress() -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(progress.set)

        return self._make_decoder(loop, on_pcm, on_progress)

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Feed stream bytes; waits while the decoder's input queue is full.

        Raises:
            AudioError: the adapter is closed, or decoding or the sink failed.
        """
        if self._closed:
            raise AudioError(f"{self._name} is closed")
        decoder = self._decoder
        if decoder is None:
            decoder = self._decoder = self._new_decoder()
        self._feed(decoder, data)
        while self._backlogged(decoder) and not decoder.done.is_set():
            self._progress.clear()
            await self._progress.wait()
        if decoder.error is not None:
            raise decoder.error

    async def _wait_done(self, decoder: D) -> None:
        while not decoder.done.is_set():
            self._progress.clear()
            if decoder.done.is_set():
                break
            await self._progress.wait()
        # `done` is the worker's last act, so this join is short; it leaves no thread behind.
        await asyncio.to_thread(decoder.join)

    async def drain(self) -> None:
        """End the stream, then wait until all of it has been played.

        Raises:
            AudioError: the stream could not be decoded or played.
        """
        decoder = self._decoder
        if decoder is None:
            return
        decoder.end()
        # The decoder stays attached until it is done: if this wait is cancelled (a barge-in
        # cancelling the playing task), stop() must still find it to cut it off.
        await self._wait_done(decoder)
        if self._decoder is decoder:
            self._decoder = None
        if decoder.error is not None:
            raise decoder.error
        await self.sink.drain()

    async def stop(self) -> None:
        """Abandon the stream and stop the sink at once (barge-in)."""
        decoder, self._decoder = self._decoder, None
        if decoder is not None:
            decoder.cancel()
            await self.sink.stop()  # releases a write the worker may be waiting on
            await self._wait_done(decoder)
        await self.sink.stop()  # and silences anything written meanwhile

    async def aclose(self) -> None:
        """Stop, then close the wrapped sink. Idempotent."""
        if not self._closed:
            self._closed = True
            try:
                await self.stop()
            finally:
                await self.sink.aclose()
