"""MP3 (the AUDIO_MPEG of Speak) decoded progressively with miniaudio while it streams in.

Three layers:

- `Mp3FrameSplitter` (no I/O) cuts the byte stream into whole MPEG audio frames, skipping
  ID3v2 tags and garbage between frames.
- `Mp3Decoder` runs miniaudio's stream decoder on a worker thread. miniaudio pulls input
  through a read callback that must block until data arrives (dr_mp3 treats a short read as
  the end of the stream, and a partial frame at the end of its buffer as garbage to skip), so
  the callback hands over exactly one whole frame per call and waits when none is ready.
  PCM therefore comes out frame by frame as the attachment arrives.
- `Mp3Sink` adapts any `AudioSink` to accept MP3 chunks, with backpressure: when the sink is
  full, the decoder waits, its input queue fills, and `write()` waits.

`Mp3SeekIndex` (no I/O) says where a time lies in an MP3 stream from its first frames, so that
a start position can be fetched with an HTTP range instead of being downloaded and discarded:
exactly for a constant bitrate (frames of one size), through the table of contents of a Xing
or VBRI header for a variable one (to about 1 % of the duration, as every player seeking that
way).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import miniaudio

from avsclient.exceptions import AudioError

from ._decoding import DecoderThread, DecodingSink
from .format import AudioFormat, SampleEncoding
from .sinks import AudioSink

__all__ = [
    "DEFAULT_MP3_QUEUE_FRAMES",
    "Id3TagReader",
    "Mp3Decoder",
    "Mp3FrameSplitter",
    "Mp3SeekIndex",
    "Mp3Sink",
    "decode_mp3",
    "id3v2_length",
    "leading_frames_dropped",
]

_log = logging.getLogger("avsclient.audio")

#: MP3 frames queued ahead of the decoder (about 1.3 s at 24 kHz) before `Mp3Sink.write()`
#: waits. The decoder itself waits on the sink, so this bounds the memory between the
#: network and the speaker.
DEFAULT_MP3_QUEUE_FRAMES = 50

# PCM is handed to the sink in pieces of this length: short enough that playback starts
# within one piece of the first frame, long enough to keep per-call overhead low.
_CHUNK_MS = 40

# How much of the stream's start stays replayable for miniaudio's seeks (see _handed).
_REPLAYABLE_BYTES = 64 * 1024

# -- frame headers (ISO/IEC 11172-3 2.4.1.3, ISO/IEC 13818-3 2.4.1.3) ----------------------

_BITRATES_KBPS: dict[tuple[bool, int], tuple[int, ...]] = {
    # (MPEG-1?, layer) -> bitrate by index 0..14 (0 is "free format", unsupported here)
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
_HEADER_SIZE = 4
_ID3_HEADER_SIZE = 10


def _parse_header(b: bytes | bytearray) -> tuple[int, tuple[int, int, int], int, int] | None:
    """(frame length, (version, layer, rate), channels, samples) of a valid header, or None."""
    if b[0] != 0xFF or (b[1] & 0xE0) != 0xE0:
        return None
    version = (b[1] >> 3) & 3  # 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5, 1: reserved
    layer = 4 - ((b[1] >> 1) & 3)  # bits 11/10/01 are layers 1/2/3; 00 is reserved
    bitrate_index = b[2] >> 4
    rate_index = (b[2] >> 2) & 3
    if version == 1 or layer == 4 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    mpeg1 = version == 3
    bitrate = _BITRATES_KBPS[(mpeg1, layer)][bitrate_index] * 1000
    rate = _RATES[version][rate_index]
    padding = (b[2] >> 1) & 1
    if layer == 1:
        length, samples = (12 * bitrate // rate + padding) * 4, 384
    elif layer == 2 or mpeg1:
        length, samples = 144 * bitrate // rate + padding, 1152
    else:
        length, samples = 72 * bitrate // rate + padding, 576
    channels = 1 if (b[3] >> 6) == 3 else 2
    return length, (version, layer, rate), channels, samples


class Mp3FrameSplitter:
    """Cuts an MPEG audio byte stream into whole frames (no I/O).

    The first valid header fixes the stream's version, layer and rate; later headers must
    match, which keeps random bytes that look like a sync word from being taken as frames.
    Bytes that are not part of a frame (ID3v2 tags, an ID3v1 tag, garbage) are skipped and
    counted in `skipped_bytes`.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._skip = 0  # bytes of an ID3v2 tag still to skip
        self._signature: tuple[int, int, int] | None = None
        #: Sample rate of the stream, known after the first frame.
        self.sample_rate: int | None = None
        #: Channels of the stream, known after the first frame.
        self.channels: int | None = None
        #: PCM samples per channel in each frame, known after the first frame.
        self.samples_per_frame: int | None = None
        #: Bytes skipped because they were not part of a frame.
        self.skipped_bytes = 0
        #: Whole frames returned so far.
        self.frames = 0

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Add stream bytes; returns every frame they complete, in order."""
        buf = self._buf
        if self._skip:
            n = min(self._skip, len(data))
            self._skip -= n
            self.skipped_bytes += n
            data = memoryview(data)[n:]
        buf += data
        frames: list[bytes] = []
        pos = 0
        size = len(buf)
        while size - pos >= _HEADER_SIZE:
            if buf[pos] != 0xFF:
                if buf[pos : pos + 3] == b"ID3":
                    if size - pos < _ID3_HEADER_SIZE:
                        break
                    tag = self._id3_length(buf, pos)
                    if tag is not None:
                        skip = min(tag, size - pos)
                        self._skip = tag - skip
                        self.skipped_bytes += skip
                        pos += skip
                        continue
                nxt = buf.find(b"\xff", pos + 1)
                skipped_to = size if nxt < 0 else nxt
                self.skipped_bytes += skipped_to - pos
                pos = skipped_to
                continue
            header = _parse_header(buf[pos : pos + _HEADER_SIZE])
            if header is None or (self._signature not in (None, header[1])):
                self.skipped_bytes += 1
                pos += 1
                continue
            length = header[0]
            if size - pos < length:
                break
            if self._signature is None:
                self._signature = header[1]
                self.sample_rate = header[1][2]
                self.channels = header[2]
                self.samples_per_frame = header[3]
            frames.append(bytes(buf[pos : pos + length]))
            pos += length
        del buf[:pos]
        self.frames += len(frames)
        return frames

    @staticmethod
    def _id3_length(buf: bytearray, pos: int) -> int | None:
        """Total length of the ID3v2 tag at `pos` (header, body, footer), or None if invalid."""
        return id3v2_length(buf[pos : pos + _ID3_HEADER_SIZE]) or None

    def close(self) -> int:
        """End of stream: returns (and counts as skipped) the bytes of a truncated last frame."""
        leftover = len(self._buf)
        self.skipped_bytes += leftover
        self._buf.clear()
        return leftover


# ID3v2 text frames read as stream metadata (id3.org id3v2.3.0 4.2.1, id3v2.4.0-frames 4.2).
_ID3_TEXT_FRAMES = {b"TIT2": "title", b"TPE1": "artist", b"TALB": "album"}
_ID3_ENCODINGS = ("latin-1", "utf-16", "utf-16-be", "utf-8")


def _syncsafe(b: bytes | bytearray) -> int:
    value = 0
    for byte in b:
        value = (value << 7) | (byte & 0x7F)
    return value


class Id3TagReader:
    """Reads the text tags (title, artist, album) of the ID3v2 tag that may open an MP3 stream
    (no I/O). Feed the stream's first bytes; once the tag is complete `feed` returns its tags
    and `finished` is set. A stream without a tag, or one larger than `limit`, yields nothing.
    """

    def __init__(self, limit: int = _REPLAYABLE_BYTES) -> None:
        self.limit = limit
        self._buf = bytearray()
        #: True once the tag was read (or there is none to read).
        self.finished = False

    def feed(self, data: bytes | bytearray | memoryview) -> dict[str, str]:
        """Add stream bytes; returns the tags found when the tag completes, else `{}`."""
        if self.finished:
            return {}
        buf = self._buf
        buf += memoryview(data)[: max(0, self.limit - len(buf))]
        if len(buf) < _ID3_HEADER_SIZE:
            return {}
        total = id3v2_length(buf)  # 0: no tag, or a size field that is not syncsafe
        if not total or buf[3] not in (3, 4) or total > self.limit:
            self.finished = True
            return {}
        if len(buf) < total:
            return {}
        self.finished = True
        body_end = total - (_ID3_HEADER_SIZE if buf[5] & 0x10 else 0)  # a footer is no frame
        tags = self._frames(bytes(buf[_ID3_HEADER_SIZE:body_end]), buf[3], buf[5])
        buf.clear()
        return tags

    @staticmethod
    def _frames(body: bytes, version: int, flags: int) -> dict[str, str]:
        if flags & 0x80:  # unsynchronised tags are rare in streams: not read
            return {}
        pos = 0
        if flags & 0x40:  # extended header: v2.4 counts itself, v2.3 does not
            size = _syncsafe(body[:4]) if version == 4 else int.from_bytes(body[:4], "big") + 4
            pos = size
        tags: dict[str, str] = {}
        while pos + 10 <= len(body) and body[pos] != 0:
            frame_id = body[pos : pos + 4]
            raw = body[pos + 4 : pos + 8]
            size = _syncsafe(raw) if version == 4 else int.from_bytes(raw, "big")
            content = body[pos + 10 : pos + 10 + size]
            pos += 10 + size
            name = _ID3_TEXT_FRAMES.get(frame_id)
            if name is None or not content or content[0] >= len(_ID3_ENCODINGS):
                continue
            try:
                value = content[1:].decode(_ID3_ENCODINGS[content[0]])
            except UnicodeDecodeError:
                continue
            value = value.split("\x00")[0].strip()
            if value:
                tags[name] = value
        return tags


# -- seeking ---------------------------------------------------------------------------------


def id3v2_length(head: bytes | bytearray) -> int:
    """Bytes of the ID3v2 tag opening a stream (header, body, footer); 0 without one. Needs
    the first 10 bytes."""
    if len(head) < _ID3_HEADER_SIZE or head[:3] != b"ID3" or any(b & 0x80 for b in head[6:10]):
        return 0
    footer = 10 if head[5] & 0x10 else 0
    return _ID3_HEADER_SIZE + _syncsafe(head[6:10]) + footer


def _frame_at(data: bytes | bytearray, pos: int) -> tuple[int, int, int, int, int] | None:
    """(length, version, layer, rate, bitrate) of a frame header at `pos`, else None."""
    if len(data) - pos < _HEADER_SIZE:
        return None
    header = _parse_header(data[pos : pos + _HEADER_SIZE])
    if header is None:
        return None
    length, (version, layer, rate), _, _ = header
    bitrate = _BITRATES_KBPS[(version == 3, layer)][data[pos + 2] >> 4]
    return length, version, layer, rate, bitrate


def _find_frames(data: bytes | bytearray, start: int = 0, limit: int = 8192) -> int | None:
    """The first position at or after `start` (within `limit` bytes) where a frame header is
    followed by another of the same version, layer and rate: a real frame boundary, not a
    sync word inside a frame. None if there is none."""
    for pos in range(start, min(len(data), start + limit)):
        if data[pos] != 0xFF:
            continue
        first = _frame_at(data, pos)
        if first is None:
            continue
        second = _frame_at(data, pos + first[0])
        if second is not None and second[1:4] == first[1:4]:
            return pos
    return None


@dataclass(frozen=True, slots=True)
class Mp3SeekIndex:
    """Where a time lies in an MP3 stream (byte offsets from the stream's first byte).

    Build it with `from_head`; `byte_for(seconds)` is the byte to fetch from, and
    `locate(data, at)` finds the first frame in bytes fetched from offset `at` and the time
    it starts at.
    """

    #: Offset of the first audio frame (after an ID3v2 tag and a Xing/Info/VBRI frame).
    audio_start: int
    rate: int
    samples_per_frame: int
    #: Constant bitrate: bytes per frame on average (padding spreads the fraction).
    frame_bytes: float | None = None
    #: Variable bitrate: (seconds, byte offset) points in order, from a Xing or VBRI table.
    points: tuple[tuple[float, int], ...] = ()

    @property
    def exact(self) -> bool:
        """True when times are exact to a frame (constant bitrate)."""
        return self.frame_bytes is not None

    @classmethod
    def from_head(
        cls, head: bytes | bytearray, start: int = 0, total: int | None = None
    ) -> Mp3SeekIndex | None:
        """The index of a stream whose bytes from offset `start` (the end of its ID3v2 tag)
        are `head` (a few KiB: the first frames). `total`: the stream's length, if known.
        None when no index can be made: not MP3, or a variable bitrate without a table.
        """
        pos = _find_frames(head)
        if pos is None:
            return None
        first = _frame_at(head, pos)
        assert first is not None
        length, version, _, rate, _ = first
        samples = _parse_header(head[pos : pos + _HEADER_SIZE])[3]  # type: ignore[index]
        mono = (head[pos + 3] >> 6) == 3
        side = (17 if mono else 32) if version == 3 else (9 if mono else 17)
        tag_at = pos + _HEADER_SIZE + side
        tag = bytes(head[tag_at : tag_at + 4])
        vbri_at = pos + _HEADER_SIZE + 32
        audio = start + pos
        if tag in (b"Xing", b"Info"):
            audio += length
            if tag == b"Xing":
                return cls._xing(head, tag_at, audio, rate, samples, total)
        elif head[vbri_at : vbri_at + 4] == b"VBRI":
            return cls._vbri(head, vbri_at, audio + length, rate, samples)
        # No header: a constant bitrate if the frames read all have the same one.
        rates, at = set(), pos
        while (frame := _frame_at(head, at)) is not None:
            rates.add(frame[4])
            at += frame[0]
        if len(rates) != 1 or at - pos < 4 * length:
            return None
        bitrate = rates.pop() * 1000
        return cls(audio, rate, samples, frame_bytes=samples / 8 * bitrate / rate)

    @classmethod
    def _xing(
        cls,
        head: bytes | bytearray,
        at: int,
        audio: int,
        rate: int,
        samples: int,
        total: int | None,
    ) -> Mp3SeekIndex | None:
        # Xing header: flags, then frames (1), bytes (2), TOC (4): 100 entries, each the
        # position at that percentage of the duration in 1/256 of the stream's bytes.
        flags = int.from_bytes(head[at + 4 : at + 8], "big")
        pos = at + 8
        frames = size = None
        if flags & 1:
            frames = int.from_bytes(head[pos : pos + 4], "big")
            pos += 4
        if flags & 2:
            size = int.from_bytes(head[pos : pos + 4], "big")
            pos += 4
        if size is None and total is not None:
            size = total - audio
        if not flags & 4 or not frames or not size or len(head) < pos + 100:
            return None
        duration = frames * samples / rate
        toc = head[pos : pos + 100]
        points = [(duration * i / 100, audio + toc[i] * size // 256) for i in range(100)]
        points.append((duration, audio + size))
        return cls(audio, rate, samples, points=_monotonic(points))

    @classmethod
    def _vbri(
        cls, head: bytes | bytearray, at: int, audio: int, rate: int, samples: int
    ) -> Mp3SeekIndex | None:
        # VBRI header (Fraunhofer): version, delay, quality, bytes, frames, entries, scale,
        # entry size, frames per entry, then the table: bytes of each run of frames.
        fields = head[at + 4 : at + 26]
        if len(fields) < 22:
            return None
        entries = int.from_bytes(fields[14:16], "big")
        scale = int.from_bytes(fields[16:18], "big")
        width = int.from_bytes(fields[18:20], "big")
        per_entry = int.from_bytes(fields[20:22], "big")
        table = head[at + 26 : at + 26 + entries * width]
        if not entries or not per_entry or width not in (1, 2, 3, 4):
            return None
        if len(table) < entries * width:
            return None
        points, pos, frame = [(0.0, audio)], audio, 0
        for i in range(entries):
            pos += int.from_bytes(table[i * width : (i + 1) * width], "big") * scale
            frame += per_entry
            points.append((frame * samples / rate, pos))
        return cls(audio, rate, samples, points=_monotonic(points))

    def byte_for(self, seconds: float) -> int:
        """The byte to fetch from to play from `seconds` on: the start of the frame holding
        it (constant bitrate), or the table's estimate (variable bitrate)."""
        if self.frame_bytes is not None:
            frame = int(seconds * self.rate) // self.samples_per_frame
            return self.audio_start + int(frame * self.frame_bytes)
        return round(_interpolate(self.points, seconds, 0, 1))

    def locate(self, data: bytes | bytearray, at: int) -> tuple[int, float] | None:
        """In `data` fetched from byte `at`: (offset of its first whole frame in `data`, the
        time that frame starts at). None if `data` holds no frame boundary."""
        pos = _find_frames(data)
        if pos is None:
            return None
        where = at + pos - self.audio_start
        if self.frame_bytes is not None:
            frame = round(where / self.frame_bytes)
            return pos, frame * self.samples_per_frame / self.rate
        return pos, _interpolate(self.points, at + pos, 1, 0)


def _monotonic(points: list[tuple[float, int]]) -> tuple[tuple[float, int], ...]:
    # A broken table must not make positions go back.
    out: list[tuple[float, int]] = []
    for t, b in points:
        if not out or (t >= out[-1][0] and b >= out[-1][1]):
            out.append((t, b))
    return tuple(out)


def _interpolate(points: tuple[tuple[float, int], ...], x: float, key: int, value: int) -> float:
    """Linear interpolation in `points` from column `key` to column `value` (clamped)."""
    if x <= points[0][key]:
        return float(points[0][value])
    for a, b in itertools.pairwise(points):
        if x <= b[key]:
            span = b[key] - a[key]
            share = 0.0 if span == 0 else (x - a[key]) / span
            return a[value] + share * (b[value] - a[value])
    return float(points[-1][value])


def leading_frames_dropped(frames: bytes, rate: int, channels: int, samples: int) -> int:
    """How many of the first frames of `frames` (whole MP3 frames cut from the middle of a
    stream) the decoder drops: Layer III frames whose bit reservoir lies before the cut give
    no audio. Found by decoding them (the same decoder that will play them).

    Raises:
        AudioError: `frames` is not decodable MP3.
    """
    count = len(Mp3FrameSplitter().feed(frames))
    pcm = decode_mp3(frames, AudioFormat(rate=rate, channels=channels))
    return max(0, count - len(pcm) // (2 * channels * samples))


# -- decoding --------------------------------------------------------------------------------

_SAMPLE_FORMATS: dict[tuple[SampleEncoding, int], Any] = {
    (SampleEncoding.UNSIGNED, 1): miniaudio.SampleFormat.UNSIGNED8,
    (SampleEncoding.SIGNED, 2): miniaudio.SampleFormat.SIGNED16,
    (SampleEncoding.SIGNED, 3): miniaudio.SampleFormat.SIGNED24,
    (SampleEncoding.SIGNED, 4): miniaudio.SampleFormat.SIGNED32,
    (SampleEncoding.FLOAT, 4): miniaudio.SampleFormat.FLOAT32,
}


def _sample_format(fmt: AudioFormat) -> Any:
    try:
        return _SAMPLE_FORMATS[(fmt.encoding, fmt.sample_width)]
    except KeyError:
        raise ValueError(f"miniaudio cannot decode to {fmt}") from None


def decode_mp3(data: bytes, fmt: AudioFormat) -> bytes:
    """Decode a whole MP3 held in memory to PCM of `fmt` (resampled and mixed by miniaudio).

    Raises:
        AudioError: `data` is not a decodable MP3 stream.
        ValueError: miniaudio has no output for `fmt` (64-bit float).
    """
    sample_format = _sample_format(fmt)
    try:
        decoded = miniaudio.decode(
            data,
            output_format=sample_format,
            nchannels=fmt.channels,
            sample_rate=fmt.rate,
        )
    except miniaudio.MiniaudioError as exc:
        raise AudioError(f"MP3 decoding failed: {exc}") from exc
    return bytes(decoded.samples.tobytes())


class _FrameSource(miniaudio.StreamableSource):  # type: ignore[misc]
    """miniaudio's input: one whole frame per read, blocking until one is available."""

    def __init__(self, decoder: Mp3Decoder) -> None:
        self._decoder = decoder

    def read(self, num_bytes: int) -> bytes:
        return self._decoder._next_input(num_bytes)

    def seek(self, offset: int, origin: miniaudio.SeekOrigin) -> bool:
        return self._decoder._seek_input(offset, origin)


class Mp3Decoder(DecoderThread):
    """Decodes an MP3 byte stream progressively on a worker thread.

    `feed()` never blocks; each decoded piece of PCM (in `fmt`) is passed to `on_pcm` on the
    worker thread, which may block to apply backpressure. Call `end()` after the last byte,
    or `cancel()` to abandon the stream; `done` is set when the worker has finished, and
    `error` then holds a decoding failure, if any.
    """

    _thread_name = "avsclient-mp3"

    def __init__(
        self,
        fmt: AudioFormat,
        on_pcm: Callable[[bytes], None],
        *,
        on_progress: Callable[[], None] | None = None,
    ) -> None:
        """Create a decoder; the worker starts with the first whole frame.

        Args:
            fmt: the PCM format to produce (miniaudio resamples and mixes as needed).
            on_pcm: receives each piece of PCM, on the worker thread.
            on_progress: called on the worker thread whenever it takes a frame from the
                queue or finishes (to wake a producer waiting for room).

        Raises:
            ValueError: miniaudio has no output for `fmt`.
        """
        self._sample_format = _sample_format(fmt)
        super().__init__(fmt, on_pcm, on_progress)
        self._splitter = Mp3FrameSplitter()
        self._frames: collections.deque[bytes] = collections.deque()
        self._partial = b""  # the rest of a frame miniaudio asked for only part of
        # Everything handed to miniaudio so far, while short: its decoder peeks at the start
        # of the stream (for an ID3 tag) and seeks back, so that much must be replayable.
        self._handed: bytearray | None = bytearray()

    @property
    def splitter(self) -> Mp3FrameSplitter:
        """The frame splitter (stream rate, channels and skipped-byte counts)."""
        return self._splitter

    @property
    def pending_frames(self) -> int:
        """MP3 frames queued and not yet taken by the decoder."""
        return len(self._frames)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add MP3 bytes (any split). Never blocks.

        Raises:
            RuntimeError: called after `end()` or `cancel()`.
        """
        if self._ended or self._cancelled:
            raise RuntimeError("Mp3Decoder.feed() after end() or cancel()")
        frames = self._splitter.feed(data)
        if not frames:
            return
        with self._cond:
            self._frames.extend(frames)
            self._cond.notify()
        self._start()

    def end(self) -> None:
        """No more input: decode what is queued, then finish. Idempotent."""
        if self._ended:
            return
        truncated = self._splitter.close()
        if truncated:
            _log.warning("MP3 stream ended inside a frame: %d bytes not decoded", truncated)
        with self._cond:
            self._ended = True
            self._cond.notify()
        if self._thread is None:
            if self._splitter.frames == 0:
                self.error = AudioError(
                    f"no MP3 frames in the stream ({self._splitter.skipped_bytes} bytes skipped)"
                )
            self._finish()

    def _drop_input(self) -> None:
        self._frames.clear()

    # The worker thread ---------------------------------------------------------------------

    def _next_input(self, num_bytes: int) -> bytes:
        with self._cond:
            if not self._partial:
                while not self._frames and not self._ended and not self._cancelled:
                    self._cond.wait()
                if self._cancelled or not self._frames:
                    return b""  # the end of the stream, as miniaudio understands it
                self._partial = self._frames.popleft()
            chunk, self._partial = self._partial[:num_bytes], self._partial[num_bytes:]
            if self._handed is not None:
                self._handed += chunk
                if len(self._handed) > _REPLAYABLE_BYTES:
                    self._handed = None
        if self._on_progress is not None:
            self._on_progress()
        return chunk

    def _seek_input(self, offset: int, origin: miniaudio.SeekOrigin) -> bool:
        with self._cond:
            handed = self._handed
            if handed is None:
                return False
            if origin == miniaudio.SeekOrigin.CURRENT:
                offset += len(handed)
            elif origin != miniaudio.SeekOrigin.START:
                return False  # the length of a stream still arriving is unknown
            if not 0 <= offset <= len(handed):
                return False
            self._partial = bytes(handed[offset:]) + self._partial
            del handed[offset:]
            return True

    def _run(self) -> None:
        fmt = self.format
        stream = None
        try:
            stream = miniaudio.stream_any(
                _FrameSource(self),
                source_format=miniaudio.FileFormat.MP3,
                output_format=self._sample_format,
                nchannels=fmt.channels,
                sample_rate=fmt.rate,
                frames_to_read=max(1, fmt.rate * _CHUNK_MS // 1000),
            )
            for samples in stream:
                if self._cancelled:
                    break
                pcm = samples.tobytes()
                self.pcm_bytes += len(pcm)
                self._on_pcm(pcm)
        except miniaudio.MiniaudioError as exc:
            if not self._cancelled:
                self.error = AudioError(f"MP3 decoding failed: {exc}")
        except AudioError as exc:
            if not self._cancelled:
                self.error = exc
        except Exception as exc:  # the sink failed: report it, the thread must not die silently
            if not self._cancelled:
                self.error = AudioError(f"MP3 playback failed: {exc!r}")
                self.error.__cause__ = exc
        finally:
            if stream is not None:
                stream.close()
            self._finish()


class Mp3Sink(DecodingSink[Mp3Decoder]):
    """Makes an `AudioSink` accept MP3 chunks (a Speak attachment as it streams in).

    Each `write()` feeds the decoder; decoded PCM goes to `sink` as soon as each frame is
    decoded. `drain()` ends the current MP3 stream, waits until it has been decoded and
    played, and makes the adapter ready for the next stream; `stop()` abandons the stream and
    stops the sink at once. `write()` waits while `queue_frames` frames are waiting to be
    decoded.
    """

    _name = "Mp3Sink"

    def __init__(self, sink: AudioSink, *, queue_frames: int = DEFAULT_MP3_QUEUE_FRAMES) -> None:
        """Wrap a sink.

        Args:
            sink: where decoded PCM goes, in `sink.format`.
            queue_frames: MP3 frames held ahead of the decoder before `write()` waits.

        Raises:
            ValueError: `queue_frames` is not positive.
        """
        if queue_frames <= 0:
            raise ValueError("queue_frames must be positive")
        super().__init__(sink)
        self._max = queue_frames
        #: MP3 bytes accepted since creation.
        self.bytes_fed = 0

    def _make_decoder(
        self,
        loop: asyncio.AbstractEventLoop,
        on_pcm: Callable[[bytes], None],
        on_progress: Callable[[], None],
    ) -> Mp3Decoder:
        return Mp3Decoder(self.sink.format, on_pcm, on_progress=on_progress)

    def _backlogged(self, decoder: Mp3Decoder) -> bool:
        return decoder.pending_frames > self._max

    def _feed(self, decoder: Mp3Decoder, data: bytes | bytearray | memoryview) -> None:
        self.bytes_fed += len(data)
        decoder.feed(data)
