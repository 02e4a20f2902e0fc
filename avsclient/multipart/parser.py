"""A zero-copy, streaming `multipart/*` parser (RFC 2046, RFC 2387). Sans-IO: no I/O here.

Theory of operation
-------------------
The parser is fed chunks of a body as they arrive and returns events. Part content comes out as
`memoryview` slices of the chunks that were fed, so attachment bytes are never copied; only a
tail that may be the start of a delimiter is held back (copied, at most `len(delimiter)` - 1
bytes) until the next chunk says whether it is one.

Everything happens as soon as it can: content is emitted the moment it arrives, and `PartEnded`
the moment the delimiter after a part is complete, without waiting for the bytes that follow.
That matters for the AVS downchannel, a `multipart/related` body that never ends and may pause
for minutes right after a delimiter.

The body is read as a small state machine::

    PREAMBLE --delimiter--> DELIMITER --CRLF--> HEADERS --blank line--> BODY --delimiter--+
                              |  ^                |  (a duplicate delimiter: back to       |
                              |  +----------------+   DELIMITER, no part)                  |
                              |  ^-----------------------------------------------------------+
                              +--"--"--> DONE (MessageEnded; the epilogue is ignored)

A delimiter is CRLF "--" boundary. The first one may stand at the very start of the body: the
parser acts as if the body began with a CRLF (RFC 2046 5.1.1 makes the CRLF part of the
delimiter, and puts none before the first). Quirks accepted on purpose:
- an optional preamble, such as a lone CRLF before the first delimiter;
- transport padding (spaces, tabs) after a delimiter;
- consecutive duplicate delimiters, which AVS sends on the downchannel: `--b CRLF --b CRLF`
  and `--b CRLF CRLF --b CRLF` both yield no empty part and no error;
- a close delimiter with no CRLF after it.

Errors are sticky: after a `MultipartError` every later call raises `ParserStateError`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from avsclient.exceptions import ParserError, ParserLimitReached, ParserStateError
from avsclient.multipart.events import (
    Event,
    MessageEnded,
    PartData,
    PartEnded,
    PartStarted,
)
from avsclient.multipart.headers import Headers

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "DEFAULT_LIMITS",
    "MultipartLimits",
    "MultipartParser",
]

# Transport padding after a delimiter (RFC 2046 5.1.1 "transport-padding"). No sender needs
# more than a few bytes; a kilobyte bounds a hostile stream of spaces.
_MAX_PADDING = 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class MultipartLimits:
    """Bounds on what one body may make the parser hold or do.

    Attributes:
        max_header_size: bytes in one part's header block. AVS part headers are under 200
            bytes; 8 KiB is the per-header limit of common HTTP servers and bounds the only
            buffer that grows with the input.
        max_headers: header fields in one part. AVS sends two or three.
        max_preamble_size: bytes before the first delimiter. AVS sends at most a CRLF; a body
            that never reaches a delimiter is rejected instead of being scanned forever.
        max_parts: parts in one body, or None for no limit. The downchannel is one body that
            lasts as long as the connection, so the default is no limit.
    """

    max_header_size: int = 8 * 1024
    max_headers: int = 32
    max_preamble_size: int = 16 * 1024
    max_parts: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_header_size", "max_headers", "max_preamble_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_parts is not None and self.max_parts < 1:
            raise ValueError("max_parts must be at least 1 or None")


DEFAULT_LIMITS = MultipartLimits()


class _State(enum.Enum):
    PREAMBLE = enum.auto()
    DELIMITER = enum.auto()  # after a delimiter: "--", or padding then CRLF
    HEADERS = enum.auto()
    BODY = enum.auto()
    DONE = enum.auto()  # close delimiter read; the epilogue is ignored
    CLOSED = enum.auto()  # close() was called after DONE
    FAILED = enum.auto()


# Shared instances: these events carry no data, so one of each serves every part.
_PART_ENDED = PartEnded()
_MESSAGE_ENDED = MessageEnded()
_NO_HEADERS = Headers()

# Header names as sent by AVS and our own encoder, mapped to str without validating again.
_KNOWN_NAMES: dict[bytes, str] = {
    name.encode(): name
    for name in (
        "Content-Type",
        "content-type",
        "Content-ID",
        "Content-Id",
        "content-id",
        "Content-Disposition",
        "content-disposition",
        "Content-Transfer-Encoding",
    )
}
# RFC 9110 token characters, allowed in a header field name.
_OWS = b" \t"
_TCHAR = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")

# One step of the state machine: (buffer, position, absolute offset of buffer[0], events,
# stop) -> the position where the next step starts, or -1 when the buffer is used up.
_Step = Callable[[bytes, int, int, list[Event], int], int]


class MultipartParser:
    """Parses one multipart body fed in chunks; see the module docstring.

    Args:
        boundary: the boundary parameter of the body's Content-Type (see
            `boundary_from_content_type`), without the leading "--".
        limits: bounds on headers, preamble and parts.

    Raises:
        ValueError: the boundary is empty, longer than 70 characters, or not ASCII without
            CR and LF.
    """

    __slots__ = (
        "_dash_boundary",
        "_delimiter",
        "_held",
        "_limits",
        "_padding",
        "_parts",
        "_received",
        "_state",
        "_steps",
        "boundary",
    )

    def __init__(self, boundary: str | bytes, *, limits: MultipartLimits = DEFAULT_LIMITS):
        raw = boundary.encode("latin-1", "replace") if isinstance(boundary, str) else boundary
        if isinstance(boundary, str) and not boundary.isascii():
            raw = b""  # rejected below
        if not 1 <= len(raw) <= 70 or min(raw) < 0x20 or max(raw) > 0x7E:
            raise ValueError(f"invalid multipart boundary {boundary!r}")
        self.boundary = raw.decode("ascii")
        self._dash_boundary = b"--" + raw
        self._delimiter = b"\r\n--" + raw
        self._limits = limits
        self._state = _State.PREAMBLE
        # The body acts as if it began with CRLF, so that a first delimiter at offset 0 is an
        # ordinary delimiter. These two bytes sit at offsets -2 and -1.
        self._held = b"\r\n"
        self._received = 0  # bytes fed so far, from the caller's first byte
        self._padding = 0  # padding bytes after the current delimiter
        self._parts = 0
        self._steps: dict[_State, _Step] = {
            _State.BODY: self._step_body,
            _State.DELIMITER: self._step_delimiter,
            _State.HEADERS: self._step_headers,
            _State.PREAMBLE: self._step_preamble,
        }

    @property
    def done(self) -> bool:
        """True once the close delimiter has been read."""
        return self._state in (_State.DONE, _State.CLOSED)

    @property
    def bytes_received(self) -> int:
        """How many bytes have been fed so far."""
        return self._received

    def feed(self, data: Buffer) -> list[Event]:
        """Parse the next chunk of the body and return the events it completes.

        `bytes` input is never copied: `PartData` events are views of it. Other buffers are
        copied once, since a `bytearray` may change after the call. An empty chunk does
        nothing; the end of the body is signalled with `close()`. Bytes after the close
        delimiter (the epilogue) are ignored.

        Raises:
            ParserError: the input is malformed (bad delimiter line, bad header line, bare CR
                or LF where CRLF is required, non-token header name).
            ParserLimitReached: a `MultipartLimits` bound was exceeded.
            ParserStateError: the parser failed earlier, or `close()` was called.
        """
        state = self._state
        if state is _State.FAILED:
            raise ParserStateError("the parser failed earlier and cannot continue")
        if state is _State.CLOSED:
            raise ParserStateError("feed() after close()")
        chunk = data if type(data) is bytes else bytes(data)
        size = len(chunk)
        if not size or state is _State.DONE:
            self._received += size
            return []
        events: list[Event] = []
        try:
            held = self._held
            if not held:
                self._run(chunk, 0, self._received, events, size)
            else:
                self._held = b""
                self._resume(held, chunk, events)
        except (ParserError, ParserLimitReached):
            self._state = _State.FAILED
            raise
        self._received += size
        return events

    def close(self) -> None:
        """Declare the end of the body.

        Raises:
            ParserError: the body ended before its close delimiter (truncated input).
            ParserStateError: the parser failed earlier, or was closed already.
        """
        state = self._state
        if state is _State.DONE:
            self._state = _State.CLOSED
            return
        if state is _State.FAILED:
            raise ParserStateError("the parser failed earlier and cannot continue")
        if state is _State.CLOSED:
            raise ParserStateError("close() called twice")
        self._state = _State.FAILED
        where = "inside a part" if state is _State.BODY else f"in {state.name.lower()}"
        raise ParserError(f"body truncated {where}", offset=self._received)

    # -- driving the state machine ---------------------------------------------------------

    def _resume(self, held: bytes, chunk: bytes, events: list[Event]) -> None:
        """Continue with bytes held back from the last chunk in front of a new chunk.

        Joining them would copy the whole chunk. Instead only a probe (the held bytes plus as
        much of the chunk as the held state can need) is joined and parsed until the state
        machine reaches a position inside the chunk; from there the chunk itself is parsed.
        """
        base = self._received - len(held)
        state = self._state
        if state is _State.BODY or state is _State.PREAMBLE:
            # A delimiter that starts in the held tail ends within len(delimiter) bytes.
            need = len(self._delimiter)
        else:
            need = self._limits.max_header_size + _MAX_PADDING + 2 * len(self._delimiter) + 8
        if len(chunk) <= need:
            joined = held + chunk
            self._run(joined, 0, base, events, len(joined))
            return
        probe = held + chunk[:need]
        pos = self._run(probe, 0, base, events, len(held))
        if pos >= 0:
            self._run(chunk, pos - len(held), self._received, events, len(chunk))
        elif self._state is not _State.DONE:
            # The probe was used up without reaching the chunk proper: only possible when a
            # state needed more than its estimate. Correct, if not zero-copy, fallback.
            rest = self._held + chunk[need:]
            self._held = b""
            self._run(rest, 0, self._received + len(chunk) - len(rest), events, len(rest))

    def _run(self, buf: bytes, pos: int, base: int, events: list[Event], stop: int) -> int:
        """Step through `buf` from `pos`; return the first position >= `stop`, or -1 when
        the buffer is used up (a possible partial delimiter is then in `self._held`)."""
        steps = self._steps
        while pos < stop:
            state = self._state
            if state is _State.DONE:
                return -1
            pos = steps[state](buf, pos, base, events, stop)
            if pos < 0:
                return -1
        return pos if pos < len(buf) else -1

    # -- the states ------------------------------------------------------------------------

    def _find_delimiter(self, buf: bytes, pos: int, stop: int) -> tuple[int, int]:
        """Find the next delimiter; return (its index or -1, end of the bytes to release).

        Without a delimiter, everything before `stop` is released except a tail that may be
        the start of one; that tail is held for the next chunk.
        """
        delimiter = self._delimiter
        index = buf.find(delimiter, pos)
        if index >= 0 and index < stop:
            return index, index
        if stop < len(buf):  # probing: the rest is parsed from the chunk itself
            return -1, stop
        # The delimiter holds one CR, its first byte (the boundary has none), so the only
        # candidate for a partial delimiter is the last CR in the final len - 1 bytes.
        end = len(buf)
        cr = buf.rfind(b"\r", max(pos, end - len(delimiter) + 1))
        if cr >= 0 and buf.endswith(delimiter[: end - cr]):
            self._held = buf[cr:]
            return -1, cr
        return -1, end

    def _step_preamble(
        self, buf: bytes, pos: int, base: int, events: list[Event], stop: int
    ) -> int:
        index, end = self._find_delimiter(buf, pos, stop)
        if base + end > self._limits.max_preamble_size:
            raise ParserLimitReached(
                f"preamble longer than {self._limits.max_preamble_size} bytes", offset=base + end
            )
        if index < 0:
            return end if end == stop and stop < len(buf) else -1
        self._state = _State.DELIMITER
        self._padding = 0
        return index + len(self._delimiter)

    def _step_body(self, buf: bytes, pos: int, base: int, events: list[Event], stop: int) -> int:
        index, end = self._find_delimiter(buf, pos, stop)
        if end > pos:
            events.append(PartData(data=memoryview(buf)[pos:end]))
        if index < 0:
            return end if end == stop and stop < len(buf) else -1
        events.append(_PART_ENDED)
        self._state = _State.DELIMITER
        self._padding = 0
        return index + len(self._delimiter)

    def _step_delimiter(
        self, buf: bytes, pos: int, base: int, events: list[Event], stop: int
    ) -> int:
        size = len(buf)
        if self._padding == 0 and buf[pos] == 0x2D:  # "-": the close delimiter's "--"?
            if pos + 1 >= size:
                self._held = buf[pos:]
                return -1
            if buf[pos + 1] != 0x2D:
                raise ParserError("expected '--' or CRLF after a delimiter", offset=base + pos)
            events.append(_MESSAGE_ENDED)
            self._state = _State.DONE
            return -1
        start = pos
        while pos < size and buf[pos] in (0x20, 0x09):  # transport padding
            pos += 1
        self._padding += pos - start
        if self._padding > _MAX_PADDING:
            raise ParserLimitReached(
                f"more than {_MAX_PADDING} bytes of padding after a delimiter", offset=base + pos
            )
        if pos >= size:
            return -1
        byte = buf[pos]
        if byte == 0x0D:
            if pos + 1 >= size:
                self._held = buf[pos:]
                return -1
            if buf[pos + 1] == 0x0A:
                self._state = _State.HEADERS
                return pos + 2
            raise ParserError("bare CR after a delimiter", offset=base + pos)
        if byte == 0x0A:
            raise ParserError("bare LF after a delimiter (CRLF required)", offset=base + pos)
        raise ParserError(
            f"unexpected byte {bytes([byte])!r} after a delimiter (the boundary occurs in "
            "the content, or the line is garbled)",
            offset=base + pos,
        )

    def _step_headers(
        self, buf: bytes, pos: int, base: int, events: list[Event], stop: int
    ) -> int:
        # A duplicate delimiter where a header block should start (an AVS downchannel quirk).
        for candidate in (self._dash_boundary, self._delimiter):
            head = buf[pos : pos + len(candidate)]
            if candidate.startswith(head):
                if len(head) < len(candidate):  # cannot tell yet
                    self._held = buf[pos:]
                    return -1
                self._state = _State.DELIMITER
                self._padding = 0
                return pos + len(candidate)
        limit = self._limits.max_header_size
        if buf.startswith(b"\r\n", pos):
            headers = _NO_HEADERS
            pos += 2
        else:
            end = buf.find(b"\r\n\r\n", pos, pos + limit + 4)
            if end < 0:
                if len(buf) - pos > limit + 3:
                    raise ParserLimitReached(
                        f"part header block longer than {limit} bytes", offset=base + pos + limit
                    )
                self._held = buf[pos:]
                return -1
            headers = self._parse_headers(buf[pos:end], base + pos)
            pos = end + 4
        self._parts += 1
        max_parts = self._limits.max_parts
        if max_parts is not None and self._parts > max_parts:
            raise ParserLimitReached(f"more than {max_parts} parts", offset=base + pos)
        events.append(PartStarted(headers=headers))
        self._state = _State.BODY
        return pos

    def _parse_headers(self, block: bytes, offset: int) -> Headers:
        """Parse a header block (CRLF-separated lines, without the final blank line)."""
        fields: list[tuple[str, str]] = []
        max_headers = self._limits.max_headers
        for line in block.split(b"\r\n"):
            if b"\r" in line or b"\n" in line:
                raise ParserError("bare CR or LF in a part header", offset=offset)
            if line[:1] in (b" ", b"\t"):  # obsolete line folding (RFC 5322 2.2.3)
                if not fields:
                    raise ParserError("header block starts with a folded line", offset=offset)
                name, value = fields[-1]
                fields[-1] = (name, value + " " + _decode_value(line.strip(_OWS)))
                offset += len(line) + 2
                continue
            raw_name, colon, raw_value = line.partition(b":")
            if not colon:
                raise ParserError(f"header line without a colon: {line[:40]!r}", offset=offset)
            known = _KNOWN_NAMES.get(raw_name)
            if known is not None:
                name = known
            else:
                if not raw_name or not _TCHAR.issuperset(raw_name):
                    raise ParserError(f"invalid header name {raw_name[:40]!r}", offset=offset)
                name = raw_name.decode("ascii")
            fields.append((name, _decode_value(raw_value.strip(_OWS))))
            if len(fields) > max_headers:
                raise ParserLimitReached(f"more than {max_headers} headers", offset=offset)
            offset += len(line) + 2
        return Headers(tuple(fields))


def _decode_value(raw: bytes) -> str:
    """Header values are ASCII in practice; UTF-8 is accepted, other bytes read as Latin-1."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
