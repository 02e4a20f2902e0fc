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

A body whose close delimiter comes before any part is an error, not an empty message: RFC 2046
requires one part, and a byte glued to the first delimiter (`x--b`, a stray CR or LF) makes
everything up to the close delimiter a preamble, so the body's directives would vanish without
a word. A body that has not ended (the downchannel between directives) may have no part yet.

Errors are sticky: after a `MultipartError` every later call raises `ParserStateError`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from avsclient.exceptions import ParserError, ParserLimitReached, ParserStateError
from avsclient.multipart.events import (
    MessageEnded,
    MultipartEvent,
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


class _State(enum.IntEnum):
    # IntEnum: its members hash and compare in C, which the per-chunk paths feel.
    PREAMBLE = enum.auto()
    DELIMITER = enum.auto()  # after a delimiter: "--", or padding then CRLF
    HEADERS = enum.auto()
    BODY = enum.auto()
    DONE = enum.auto()  # close delimiter read; the epilogue is ignored
    CLOSED = enum.auto()  # close() was called after DONE
    FAILED = enum.auto()


# Module-level aliases: a global lookup is cheaper than an enum class attribute.
_PREAMBLE = _State.PREAMBLE
_DELIMITER = _State.DELIMITER
_HEADERS = _State.HEADERS
_BODY = _State.BODY
_DONE = _State.DONE
_CLOSED = _State.CLOSED
_FAILED = _State.FAILED

# Shared instances: these events carry no data (or always the same), so one serves every part.
_PART_ENDED = PartEnded()
_MESSAGE_ENDED = MessageEnded()
_NO_HEADERS = Headers()

# Hot path: a frozen dataclass's __init__ goes through object.__setattr__ (about 290 ns);
# allocating the same object and filling its slot directly costs about 110 ns.
_new = object.__new__
_set_part_data = PartData.__dict__["data"].__set__

# Parsed header blocks, by their bytes: AVS repeats the same few blocks (`Content-Type:
# application/json; charset=UTF-8`) on every part of every response. Parsing is a pure function
# of the block and the results are immutable, so one memo serves every parser. It is bounded in
# entries and entry size, so a hostile stream of distinct blocks costs at most 128 KiB, and each
# parser still applies its own `max_headers` to a remembered block.
# Each entry holds the event and its number of header fields.
_HEADER_MEMO: dict[bytes, tuple[PartStarted, int]] = {}
_HEADER_MEMO_ENTRIES = 256
_HEADER_MEMO_BLOCK_SIZE = 512

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

# One step of the state machine: (parser, buffer, position, absolute offset of buffer[0],
# events, stop) -> the position where the next step starts, or -1 when the buffer is used up.
_Step = Callable[["MultipartParser", bytes, int, int, list[MultipartEvent], int], int]


class MultipartParser:
    """Parses one multipart body fed in chunks; see the module docstring.

    Args:
        boundary: the boundary parameter of the body's Content-Type (see
            `boundary_from_content_type`), without the leading "--".
        limits: bounds on headers, preamble and parts.

    Raises:
        ValueError: the boundary is empty, longer than 70 characters, or not printable ASCII.
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
        "boundary",
    )

    def __init__(self, boundary: str | bytes, *, limits: MultipartLimits = DEFAULT_LIMITS):
        # Printable ASCII, 1 to 70 characters. str methods check it in C (a min() and max()
        # over the bytes cost most of the constructor, once per response).
        text = boundary if isinstance(boundary, str) else bytes(boundary).decode("latin-1")
        if not (text.isascii() and text.isprintable() and 1 <= len(text) <= 70):
            raise ValueError(f"invalid multipart boundary {boundary!r}")
        raw = text.encode("ascii")
        self.boundary = text
        self._dash_boundary = b"--" + raw
        self._delimiter = b"\r\n--" + raw
        self._limits = limits
        self._state = _PREAMBLE
        # The body acts as if it began with CRLF, so that a first delimiter at offset 0 is an
        # ordinary delimiter. These two bytes sit at offsets -2 and -1.
        self._held = b"\r\n"
        self._received = 0  # bytes fed so far, from the caller's first byte
        self._padding = 0  # padding bytes after the current delimiter
        self._parts = 0

    @property
    def done(self) -> bool:
        """True once the close delimiter has been read."""
        return self._state is _DONE or self._state is _CLOSED

    @property
    def bytes_received(self) -> int:
        """How many bytes have been fed so far."""
        return self._received

    def feed(self, data: Buffer) -> list[MultipartEvent]:
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
        chunk = data if type(data) is bytes else bytes(data)
        size = len(chunk)
        state = self._state
        held = self._held
        events: list[MultipartEvent] = []
        start = 0  # where the state machine starts in the chunk
        if state is _BODY and size:
            # Fast path, the bulk of an attachment: a chunk with no delimiter in it gives one
            # view of itself, less a tail that may be the start of a delimiter.
            delimiter = self._delimiter
            fast: list[MultipartEvent] | None = events
            if held:
                # `held` is a proper prefix of the delimiter, whose only CR is its first
                # byte: a delimiter can only start at held[0].
                rest = delimiter[len(held) :]
                if chunk.startswith(rest):
                    fast = None  # the part ends: the general path below
                elif size < len(rest) and rest.startswith(chunk):
                    self._held = held + chunk  # still only a possible delimiter
                    self._received += size
                    return []
                else:
                    event = _new(PartData)
                    _set_part_data(event, memoryview(held))
                    events.append(event)
                    held = self._held = b""
            if fast is not None:
                index = chunk.find(delimiter)
                if index < 0:
                    end = size
                    # A negative start counts from the end and stops at 0, like a slice.
                    cr = chunk.rfind(b"\r", 1 - len(delimiter))
                    if cr >= 0 and chunk.endswith(delimiter[: size - cr]):
                        self._held = chunk[cr:]
                        end = cr
                    self._received += size
                    if end:
                        view = memoryview(chunk)
                        event = _new(PartData)
                        _set_part_data(event, view[:end] if end < size else view)
                        events.append(event)
                    return events
                # The part ends in this chunk: its last content, then the state machine from
                # the end of the delimiter, which is not searched for a second time.
                if index:
                    event = _new(PartData)
                    _set_part_data(event, memoryview(chunk)[:index])
                    events.append(event)
                events.append(_PART_ENDED)
                self._state = _DELIMITER
                self._padding = 0
                start = index + len(delimiter)
        elif state is _FAILED:
            raise ParserStateError("the parser failed earlier and cannot continue")
        elif state is _CLOSED:
            raise ParserStateError("feed() after close()")
        elif not size or state is _DONE:
            self._received += size
            return events
        try:
            if not held:
                self._run(chunk, start, self._received, events, size)
            else:
                self._held = b""
                self._resume(held, chunk, events)
        except (ParserError, ParserLimitReached):
            self._state = _FAILED
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
        if state is _DONE:
            self._state = _CLOSED
            return
        if state is _FAILED:
            raise ParserStateError("the parser failed earlier and cannot continue")
        if state is _CLOSED:
            raise ParserStateError("close() called twice")
        self._state = _FAILED
        where = "inside a part" if state is _BODY else f"in {state.name.lower()}"
        raise ParserError(f"body truncated {where}", offset=self._received)

    # -- driving the state machine ---------------------------------------------------------

    def _resume(self, held: bytes, chunk: bytes, events: list[MultipartEvent]) -> None:
        """Continue with bytes held back from the last chunk in front of a new chunk.

        Joining them would copy the whole chunk, so this never happens for big chunks.
        """
        received = self._received
        state = self._state
        size = len(chunk)
        if state is _BODY or state is _PREAMBLE:
            # `held` is a proper prefix of the delimiter, whose only CR is its first byte:
            # a delimiter can only start at held[0], and the chunk completes it or not. (In
            # BODY, `feed` comes here only when it does.)
            rest = self._delimiter[len(held) :]
            if chunk.startswith(rest):
                if state is _BODY:
                    events.append(_PART_ENDED)
                elif received > self._limits.max_preamble_size:  # else it is shorter still
                    self._check_preamble(received - len(held))
                self._state = _DELIMITER
                self._padding = 0
                self._run(chunk, len(rest), received, events, size)
                return
            if size < len(rest) and rest.startswith(chunk):
                self._held = held + chunk  # still only a possible delimiter
                return
            self._run(chunk, 0, received, events, size)  # the held bytes were preamble
            return
        # In the other states the held bytes are the start of a delimiter line or a header
        # block: parse them joined with as much of the chunk as that line or block may need,
        # then go on in the chunk itself.
        if state is _DELIMITER:
            need = 2
        else:
            need = max(self._limits.max_header_size + 4, len(self._delimiter)) + 1 - len(held)
        base = received - len(held)
        if size <= need:
            joined = held + chunk
            self._run(joined, 0, base, events, len(joined))
            return
        probe = held + chunk[:need]
        pos = self._run(probe, 0, base, events, len(held))
        if pos >= 0:
            self._run(chunk, pos - len(held), received, events, size)
        elif self._state is not _DONE:  # pragma: no cover - a state needed more than `need`
            raise AssertionError("multipart parser probe was too short")

    def _run(self, buf: bytes, pos: int, base: int, events: list[MultipartEvent], stop: int) -> int:
        """Step through `buf` from `pos`; return the first position >= `stop`, or -1 when
        the buffer is used up (a possible partial delimiter is then in `self._held`)."""
        delimiter = self._delimiter
        limits = self._limits
        while pos < stop:
            # The common case of every state is inline: a call per step was most of the fixed
            # cost of a message. Anything else (a first sight of a header block, padding,
            # duplicate delimiters, a preamble, errors, input that ends mid-line) goes to the
            # state's step, which handles it in full from the same position.
            state = self._state
            if state is _BODY:
                index = buf.find(delimiter, pos)
                end = index if index >= 0 else self._release(buf, pos)
                if end > pos:
                    event = _new(PartData)
                    _set_part_data(event, memoryview(buf)[pos:end])
                    events.append(event)
                if index < 0:
                    return -1
                events.append(_PART_ENDED)
                self._state = _DELIMITER
                self._padding = 0
                pos = index + len(delimiter)
                continue
            if state is _HEADERS:
                # A header block sent before (AVS repeats a few), when it is here whole.
                first = buf[pos]
                if first != 0x2D and first != 0x0D:
                    end = buf.find(b"\r\n\r\n", pos, pos + limits.max_header_size + 4)
                    remembered = _HEADER_MEMO.get(buf[pos:end]) if end >= 0 else None
                    max_parts = limits.max_parts
                    if (
                        remembered is not None
                        and remembered[1] <= limits.max_headers
                        and (max_parts is None or self._parts < max_parts)
                    ):
                        self._parts += 1
                        events.append(remembered[0])
                        self._state = _BODY
                        pos = end + 4
                        continue
            elif state is _DELIMITER:
                if buf.startswith(b"\r\n", pos):
                    self._state = _HEADERS
                    pos += 2
                    continue
                if self._parts and self._padding == 0 and buf.startswith(b"--", pos):
                    events.append(_MESSAGE_ENDED)
                    self._state = _DONE
                    return -1
            # A step that reaches DONE (or needs more input) returns -1, so the state here
            # always has a step.
            pos = _STEPS[state](self, buf, pos, base, events, stop)
            if pos < 0:
                return -1
        return pos if pos < len(buf) else -1

    # -- the states ------------------------------------------------------------------------

    def _release(self, buf: bytes, pos: int) -> int:
        """With no delimiter in `buf[pos:]`, hold back a tail that may start one; return
        where that tail starts (the end of the bytes that can be released)."""
        delimiter = self._delimiter
        end = len(buf)
        # The delimiter holds one CR, its first byte (the boundary has none), so the only
        # candidate for a partial delimiter is the last CR in the final len - 1 bytes.
        cr = buf.rfind(b"\r", max(pos, end - len(delimiter) + 1))
        if cr >= 0 and buf.endswith(delimiter[: end - cr]):
            self._held = buf[cr:]
            return cr
        return end

    def _check_preamble(self, preamble_size: int) -> None:
        limit = self._limits.max_preamble_size
        if preamble_size > limit:
            raise ParserLimitReached(f"preamble longer than {limit} bytes", offset=limit)

    def _step_preamble(
        self, buf: bytes, pos: int, base: int, events: list[MultipartEvent], stop: int
    ) -> int:
        delimiter = self._delimiter
        index = buf.find(delimiter, pos)
        if index < 0:
            end = self._release(buf, pos)
            self._check_preamble(base + end)
            return -1
        self._check_preamble(base + index)
        self._state = _DELIMITER
        self._padding = 0
        return index + len(delimiter)

    def _step_delimiter(
        self, buf: bytes, pos: int, base: int, events: list[MultipartEvent], stop: int
    ) -> int:
        # Not CRLF at `pos`: `_run` takes that, the usual case, itself.
        size = len(buf)
        byte = buf[pos]
        if self._padding == 0 and byte == 0x2D:  # "-": the close delimiter's "--"?
            if pos + 1 >= size:
                self._held = buf[pos:]
                return -1
            if buf[pos + 1] != 0x2D:
                raise ParserError("expected '--' or CRLF after a delimiter", offset=base + pos)
            # A close delimiter after a part is taken by `_run` itself; here it comes first.
            # RFC 2046 5.1.1: a body holds at least one part. A close delimiter first is a
            # garbled body (a byte glued to the first delimiter turns the whole message into
            # preamble), never a message to accept as empty. The dash-boundary ends at `pos`
            # (no padding before the dashes): its start is the offset to report.
            raise ParserError(
                "close delimiter before any part (the first delimiter is missing or garbled)",
                offset=base + pos - len(self._dash_boundary),
            )
        start = pos
        while pos < size and buf[pos] in (0x20, 0x09):  # transport padding
            pos += 1
        padding = self._padding = self._padding + pos - start
        if padding > _MAX_PADDING:
            first_padding_byte = base + pos - padding
            raise ParserLimitReached(
                f"more than {_MAX_PADDING} bytes of padding after a delimiter",
                offset=first_padding_byte + _MAX_PADDING,
            )
        if pos >= size:
            return -1
        byte = buf[pos]
        if byte == 0x0D:
            if pos + 1 >= size:
                self._held = buf[pos:]
                return -1
            if buf[pos + 1] == 0x0A:
                self._state = _HEADERS
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
        self, buf: bytes, pos: int, base: int, events: list[MultipartEvent], stop: int
    ) -> int:
        first = buf[pos]
        if first == 0x2D or first == 0x0D:  # "-" or CR: maybe a duplicate delimiter
            # A duplicate delimiter where a header block should start (an AVS downchannel
            # quirk), with or without its own CRLF.
            for candidate in (self._dash_boundary, self._delimiter):
                head = buf[pos : pos + len(candidate)]
                if candidate.startswith(head):
                    if len(head) < len(candidate):  # cannot tell yet
                        self._held = buf[pos:]
                        return -1
                    self._state = _DELIMITER
                    self._padding = 0
                    return pos + len(candidate)
        limit = self._limits.max_header_size
        if first == 0x0D and buf.startswith(b"\r\n", pos):
            started = _NO_HEADERS_STARTED
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
            block = buf[pos:end]
            remembered = _HEADER_MEMO.get(block)
            if remembered is None or remembered[1] > self._limits.max_headers:
                headers = self._parse_headers(block, base + pos)
                started = PartStarted(headers=headers)
                memo_full = len(_HEADER_MEMO) >= _HEADER_MEMO_ENTRIES
                if len(block) <= _HEADER_MEMO_BLOCK_SIZE and not memo_full:
                    _HEADER_MEMO[block] = (started, len(headers.raw))
            else:
                started = remembered[0]
            pos = end + 4
        self._parts += 1
        max_parts = self._limits.max_parts
        if max_parts is not None and self._parts > max_parts:
            raise ParserLimitReached(f"more than {max_parts} parts", offset=base + pos)
        events.append(started)
        self._state = _BODY
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


_NO_HEADERS_STARTED = PartStarted(headers=_NO_HEADERS)
# The states that consume input, each with its step (BODY's is inline in `_run`); the others
# end `_run`.
_STEPS: dict[_State, _Step] = {
    _DELIMITER: MultipartParser._step_delimiter,
    _HEADERS: MultipartParser._step_headers,
    _PREAMBLE: MultipartParser._step_preamble,
}


def _decode_value(raw: bytes) -> str:
    """Header values are ASCII in practice; UTF-8 is accepted, other bytes read as Latin-1."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
