"""WAV files as they come: the RIFF header read by hand, so that integer PCM of 8, 16, 24 and
32 bits, IEEE float of 32 and 64 bits and WAVE_FORMAT_EXTENSIBLE files all open (the standard
library's `wave` reads integer PCM only), and every refusal says plainly why."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import BinaryIO

from avsclient.exceptions import AudioError

from .format import AudioFormat, SampleEncoding

__all__ = ["SUPPORTED_WAV", "WavInfo", "open_error", "probe_wav", "read_wav_header"]

#: What `read_wav_header` accepts, in words (for error messages and help texts).
SUPPORTED_WAV = "WAV with integer PCM (8, 16, 24 or 32 bit) or float (32 or 64 bit) samples"

_PCM, _FLOAT, _EXTENSIBLE = 0x0001, 0x0003, 0xFFFE
_TAG_NAMES = {0x0002: "MS ADPCM", 0x0006: "A-law", 0x0007: "mu-law", 0x0011: "IMA ADPCM",
              0x0055: "MP3"}  # fmt: skip
# Chunks before `data` are skipped; this bounds how far a hostile file can make us seek.
_MAX_CHUNKS = 64


@dataclass(frozen=True, slots=True)
class WavInfo:
    """Where a WAV file's samples are and what they are.

    Attributes:
        format: the sample format.
        data_offset: the file offset of the first sample byte.
        data_bytes: the length of the sample data (trimmed to whole frames and to the file
            size, so a streaming writer's placeholder length reads to the end).
    """

    format: AudioFormat
    data_offset: int
    data_bytes: int


def _encoding(tag: int, width: int, name: str) -> SampleEncoding:
    if tag == _PCM:
        return SampleEncoding.UNSIGNED if width == 1 else SampleEncoding.SIGNED
    if tag == _FLOAT:
        return SampleEncoding.FLOAT
    what = _TAG_NAMES.get(tag, "an unknown encoding")
    raise AudioError(
        f"{name}: the WAV file holds {what} (format tag {tag:#06x}); use {SUPPORTED_WAV}"
    )


def read_wav_header(file: BinaryIO, name: str, size: int) -> WavInfo:
    """Read the header of the WAV file open in `file` (positioned at its start).

    Args:
        file: the file, opened for binary reading.
        name: how to name the file in errors.
        size: the file's size in bytes.

    Raises:
        AudioError: not a WAV file, or one whose samples are not supported; the message says
            which.
    """
    head = file.read(12)
    if not head:
        raise AudioError(f"{name}: the file is empty, not a WAV file")
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise AudioError(f"{name}: not a WAV file (it does not begin with RIFF....WAVE)")
    fmt: AudioFormat | None = None
    position = 12
    for _ in range(_MAX_CHUNKS):
        chunk = file.read(8)
        if len(chunk) < 8:
            break
        chunk_id, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        position += 8
        if chunk_id == b"fmt ":
            fmt = _read_fmt(file.read(min(length, 64)), name)
        elif chunk_id == b"data":
            if fmt is None:
                raise AudioError(f"{name}: the WAV data chunk comes before its fmt chunk")
            available = min(length, max(size - position, 0))
            return WavInfo(fmt, position, available - available % fmt.frame_size)
        position += length + (length & 1)  # chunks are padded to an even length
        file.seek(position)
    missing = "fmt and data chunks" if fmt is None else "data chunk"
    raise AudioError(f"{name}: the WAV file has no {missing} (is it truncated?)")


def _read_fmt(body: bytes, name: str) -> AudioFormat:
    if len(body) < 16:
        raise AudioError(f"{name}: the WAV fmt chunk is truncated")
    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == _EXTENSIBLE:
        if len(body) < 40:
            raise AudioError(f"{name}: the WAVE_FORMAT_EXTENSIBLE fmt chunk is truncated")
        tag = struct.unpack("<H", body[24:26])[0]  # the sub-format GUID's first two bytes
    if bits % 8:
        raise AudioError(f"{name}: {bits}-bit samples are not supported; use {SUPPORTED_WAV}")
    encoding = _encoding(tag, bits // 8, name)
    try:
        return AudioFormat(rate=rate, channels=channels, sample_width=bits // 8, encoding=encoding)
    except (ValueError, TypeError) as exc:
        raise AudioError(f"{name}: unsupported WAV format: {exc}; use {SUPPORTED_WAV}") from None


def probe_wav(path: str | os.PathLike[str]) -> AudioFormat:
    """The sample format of a WAV file, checking that it can be read (for argument checks).

    Raises:
        AudioError: the file is missing, unreadable, not a WAV file, or not supported; the
            message says which, in plain words.
    """
    try:
        with open(path, "rb") as file:
            return read_wav_header(file, str(path), os.fstat(file.fileno()).st_size).format
    except OSError as exc:
        raise open_error(path, exc) from None


def open_error(path: str | os.PathLike[str], exc: OSError) -> AudioError:
    """The plain-words error for a WAV file that cannot be opened."""
    if isinstance(exc, FileNotFoundError):
        return AudioError(f"{path}: no such file")
    if isinstance(exc, IsADirectoryError):
        return AudioError(f"{path}: is a directory, not a WAV file")
    return AudioError(f"{path}: cannot read it: {exc.strerror or exc}")
