"""Formats other than MP3 (AAC in ADTS or MP4/M4A, MPEG-TS segments of HLS, Ogg Vorbis and Opus,
FLAC, WAV) decoded progressively with PyAV while they stream in: the `media` extra.

PyAV bundles FFmpeg. It reads through a Python file object, so the bytes come from the
client's own HTTPS fetch (certificates verified by httpx; FFmpeg's own TLS is never used).

- `MediaDecoder` runs FFmpeg's demuxer and decoder on a worker thread. Its input is a file
  object whose `read()` blocks until bytes arrive; seeks are answered locally from what has
  arrived (an MP4 whose index sits at its end is read to the end first), never by a new HTTP
  request. What it keeps for seeking is bounded (`max_seekable`): an endless stream keeps only
  a bounded head and cannot be seeked beyond it.
- `MediaSink` adapts any `AudioSink` to accept such a stream, with backpressure, like
  `Mp3Sink`: PCM is resampled by FFmpeg to the sink's rate and channels.

Importing this module does not import PyAV; creating a decoder does, and a missing PyAV is an
`AudioError` naming the extra (`pip install 'avsclient[media]'`).
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable
from typing import Any

from avsclient.exceptions import AudioError

from ._decoding import DecoderThread, DecodingSink
from ._engines import import_engine
from .format import AudioFormat, SampleEncoding
from .sinks import AudioSink

__all__ = ["DEFAULT_MAX_SEEKABLE", "DEFAULT_MEDIA_QUEUE_BYTES", "MediaDecoder", "MediaSink"]

_log = logging.getLogger("avsclient.audio")

#: Input bytes queued ahead of the decoder before `MediaSink.write()` waits.
DEFAULT_MEDIA_QUEUE_BYTES = 256 * 1024
#: Bytes of a stream kept so that the demuxer's seeks can be answered locally.
DEFAULT_MAX_SEEKABLE = 32 * 1024 * 1024
# PyAV asks the file object for the stream size with this `whence` (FFmpeg's AVSEEK_SIZE).
_AVSEEK_SIZE = 0x10000
_LAYOUTS = {1: "mono", 2: "stereo"}


class _Input(io.RawIOBase):
    """FFmpeg's input: blocks in `read()` until bytes arrive; seeks within what arrived."""

    def __init__(self, decoder: MediaDecoder) -> None:
        super().__init__()
        self._decoder = decoder

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._decoder._read(size)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._decoder._seek(offset, whence)

    def tell(self) -> int:
        return self._decoder._pos


class MediaDecoder(DecoderThread):
    """Decodes one compressed audio stream progressively on a worker thread (PyAV).

    `feed()` never blocks; PCM in `fmt` goes to `on_pcm` on the worker thread, which may block
    for backpressure. `end()` after the last byte, `cancel()` to abandon; `done` is set when the
    worker has finished, and `error` then holds a failure. Tags the container carries (`title`,
    `artist`, ...) go once to `on_metadata`.
    """

    _thread_name = "avsclient-media"

    def __init__(
        self,
        fmt: AudioFormat,
        on_pcm: Callable[[bytes], None],
        *,
        on_progress: Callable[[], None] | None = None,
        on_metadata: Callable[[dict[str, str]], None] | None = None,
        max_seekable: int = DEFAULT_MAX_SEEKABLE,
    ) -> None:
        """Create a decoder; the worker starts with the first bytes.

        Raises:
            AudioError: PyAV is not installed (extra `media`).
            ValueError: `fmt` is not 16-bit signed PCM in mono or stereo.
        """
        if fmt.encoding is not SampleEncoding.SIGNED or fmt.sample_width != 2:
            raise ValueError(f"MediaDecoder produces 16-bit signed PCM, not {fmt}")
        if fmt.channels not in _LAYOUTS:
            raise ValueError(f"MediaDecoder produces mono or stereo, not {fmt.channels} channels")
        self._av = import_engine("av", "media")
        super().__init__(fmt, on_pcm, on_progress)
        self._on_metadata = on_metadata
        self._max_seekable = max_seekable
        # Every byte received, while the stream is short enough to keep (`max_seekable`);
        # past that only the unread tail is kept and seeking fails.
        self._data = bytearray()
        self._base = 0  # stream offset of _data[0]
        self._pos = 0  # FFmpeg's read position
        self._received = 0
        #: True while the demuxer waits in a seek for bytes that have not arrived.
        self.seeking = False

    @property
    def pending_bytes(self) -> int:
        """Input bytes received and not yet read by the demuxer."""
        return self._received - self._pos

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add stream bytes (any split). Never blocks.

        Raises:
            RuntimeError: called after `end()` or `cancel()`.
        """
        if self._ended or self._cancelled:
            raise RuntimeError("MediaDecoder.feed() after end() or cancel()")
        if not len(data):
            return
        with self._cond:
            self._data += data
            self._received += len(data)
            self._cond.notify()
        self._start()

    def end(self) -> None:
        """No more input: decode what is queued, then finish. Idempotent."""
        with self._cond:
            self._ended = True
            self._cond.notify()
        if self._thread is None and not self.done.is_set():
            self.error = AudioError("the media stream is empty")
            self._finish()

    def _drop_input(self) -> None:
        pass  # once cancelled, `_read()` ends the stream whatever arrived

    # The worker thread ---------------------------------------------------------------------

    def _read(self, size: int) -> bytes:
        with self._cond:
            while self._pos >= self._received and not self._ended and not self._cancelled:
                self._cond.wait()
            if self._cancelled:
                return b""
            start = self._pos - self._base
            end = len(self._data) if size < 0 else min(len(self._data), start + size)
            chunk = bytes(self._data[start:end])
            self._pos += len(chunk)
            if self._received > self._max_seekable:
                # Too long to keep: drop what was read (seeking back is no longer possible).
                del self._data[: self._pos - self._base]
                self._base = self._pos
        if self._on_progress is not None:
            self._on_progress()
        return chunk

    def _seek(self, offset: int, whence: int) -> int:
        with self._cond:
            if whence & _AVSEEK_SIZE:
                # The size is known once the stream has ended; until then it is not (-1).
                return self._received if self._ended else -1
            # While a seek waits for bytes ahead, the producer must not wait for the decoder
            # (`seeking`): it would wait for ever.
            if whence == io.SEEK_END:
                # An index at the end of the file: wait for all of it (bounded by
                # max_seekable, beyond which the seek fails).
                self._wake_producer()
                while not self._ended and not self._cancelled:
                    if self._received > self._max_seekable:
                        self.seeking = False
                        raise OSError("cannot seek to the end of an unbounded stream")
                    self._cond.wait()
                target = self._received + offset
            elif whence == io.SEEK_CUR:
                target = self._pos + offset
            else:
                target = offset
            if target > self._received:
                self._wake_producer()
            while target > self._received and not self._ended and not self._cancelled:
                if self._received > self._max_seekable:
                    self.seeking = False
                    raise OSError("cannot seek that far ahead in a stream")
                self._cond.wait()
            self.seeking = False
            if target < self._base or target > self._received or target < 0:
                raise OSError(f"cannot seek to {target} in a stream (kept {self._base}..)")
            self._pos = target
            return target

    def _wake_producer(self) -> None:
        self.seeking = True
        if self._on_progress is not None:
            self._on_progress()

    def _run(self) -> None:
        av = self._av
        fmt = self.format
        container = None
        try:
            container = av.open(_Input(self), mode="r")
            streams = container.streams.audio
            if not streams:
                raise AudioError("the media stream has no audio")
            stream = streams[0]
            self._tell_metadata({**container.metadata, **stream.metadata})
            resampler = av.AudioResampler(
                format="s16", layout=_LAYOUTS[fmt.channels], rate=fmt.rate
            )
            for packet in container.demux(stream):
                if self._cancelled:
                    break
                for frame in packet.decode():
                    if not self._deliver(resampler.resample(frame)):
                        return
            if not self._cancelled:
                self._deliver(resampler.resample(None))
        except AudioError as exc:
            if not self._cancelled:
                self.error = exc
        except Exception as exc:  # FFmpeg's errors, or the sink failed
            if not self._cancelled:
                self.error = AudioError(f"media decoding failed: {exc}")
                self.error.__cause__ = exc
        finally:
            if container is not None:
                try:
                    container.close()
                except Exception:  # closing a broken demuxer must not hide the real error
                    _log.debug("closing the demuxer failed", exc_info=True)
            self._finish()

    def _deliver(self, frames: list[Any]) -> bool:
        for frame in frames:
            if self._cancelled:
                return False
            pcm = frame.to_ndarray().tobytes()
            if pcm:
                self.pcm_bytes += len(pcm)
                self._on_pcm(pcm)
        return True

    def _tell_metadata(self, tags: dict[str, Any]) -> None:
        if self._on_metadata is None:
            return
        clean = {k.lower(): str(v) for k, v in tags.items() if isinstance(v, (str, int, float))}
        if clean:
            self._on_metadata(clean)


class MediaSink(DecodingSink[MediaDecoder]):
    """Makes an `AudioSink` accept a compressed stream decoded by `MediaDecoder` (PyAV).

    `write()` feeds the decoder and waits while `queue_bytes` are waiting for it; `drain()`
    ends the stream and waits until it has been played; `stop()` abandons it at once.
    """

    _name = "MediaSink"

    def __init__(
        self,
        sink: AudioSink,
        *,
        queue_bytes: int = DEFAULT_MEDIA_QUEUE_BYTES,
        on_metadata: Callable[[dict[str, str]], None] | None = None,
    ) -> None:
        """Wrap a sink.

        Args:
            sink: where decoded PCM goes, in `sink.format` (16-bit, mono or stereo).
            queue_bytes: input bytes held ahead of the decoder before `write()` waits.
            on_metadata: receives the stream's tags (in the event loop).

        Raises:
            AudioError: PyAV is not installed (extra `media`).
        """
        if queue_bytes <= 0:
            raise ValueError("queue_bytes must be positive")
        import_engine("av", "media")  # fail here, before any byte is fetched
        super().__init__(sink)
        self._max = queue_bytes
        self._on_metadata = on_metadata

    @property
    def pending(self) -> bool:
        """True while input waits to be decoded."""
        return self._decoder is not None and self._decoder.pending_bytes > 0

    def _make_decoder(
        self,
        loop: asyncio.AbstractEventLoop,
        on_pcm: Callable[[bytes], None],
        on_progress: Callable[[], None],
    ) -> MediaDecoder:
        on_metadata = self._on_metadata

        def tags(found: dict[str, str]) -> None:
            if on_metadata is not None and not loop.is_closed():
                loop.call_soon_threadsafe(on_metadata, found)

        return MediaDecoder(self.sink.format, on_pcm, on_progress=on_progress, on_metadata=tags)

    def _backlogged(self, decoder: MediaDecoder) -> bool:
        # While the demuxer seeks ahead it waits for bytes: the producer must not wait too.
        return decoder.pending_bytes > self._max and not decoder.seeking
