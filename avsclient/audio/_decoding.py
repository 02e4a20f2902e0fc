"""`DecodingSink`: what `Mp3Sink` and `MediaSink` share. Each makes an `AudioSink` accept a
compressed stream that a decoder turns into PCM on a worker thread; this base feeds the decoder
with backpressure, hands its PCM to the sink in the event loop, and ends (`drain()`) or
abandons (`stop()`) the stream. A subclass says how to make its decoder and when the decoder's
input queue is full.
"""

from __future__ import annotations

import abc
import asyncio
import threading
from collections.abc import Callable
from typing import ClassVar, Generic, Protocol, TypeVar

from avsclient._resource import AsyncResource
from avsclient.exceptions import AudioError

from .sinks import AudioSink

__all__ = ["DecodingSink", "StreamDecoder"]


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
