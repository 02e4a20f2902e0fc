"""Atheris fuzz target for `avsclient.multipart.MultipartParser`; run by hand, not by pytest.

Each input is decoded as a small configuration followed by a body (see `decode`): the first
bytes choose the boundary, the limits, the buffer type and where the body is split into
chunks. The body is then parsed twice, once in a single `feed()` and once in the chosen
chunks, and the target checks that:

- the only exceptions are `MultipartError` subclasses (anything else is a crash);
- a failed parser stays failed (`ParserStateError` on the next call);
- events come in a legal order (data only inside a part, nothing after `MessageEnded`), data
  events are non-empty read-only memoryviews, and `bytes_received` counts every byte fed;
- the bytes held back between chunks stay bounded by the limits;
- the whole-input and the split run agree: identical merged events, or the same error class
  at the same byte offset, and the same outcome at `close()`.

Usage (see tests/fuzz/README.md)::

    .venv/bin/python tests/fuzz/fuzz_multipart.py --write-seeds /tmp/mp-corpus
    .venv/bin/python tests/fuzz/fuzz_multipart.py -max_total_time=300 /tmp/mp-corpus
    .venv/bin/python tests/fuzz/fuzz_multipart.py -atheris_runs=200000
    .venv/bin/python tests/fuzz/fuzz_multipart.py crash-<sha1>      # replay one input

The file name does not match pytest's `test_*.py`, so the test suite never collects it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import atheris

with atheris.instrument_imports():
    from avsclient.exceptions import MultipartError, ParserStateError
    from avsclient.multipart import (
        DEFAULT_LIMITS,
        MessageEnded,
        MultipartEncoder,
        MultipartEvent,
        MultipartLimits,
        MultipartParser,
        PartData,
        PartEnded,
        PartStarted,
    )

# Boundaries the first byte can pick: one the fuzzer can type easily, AVS's documented one,
# one with a space and a "=" (legal bchars), and a fourth spelled out by the input itself.
BOUNDARIES = (b"b", b"------abcde123", b"==x y")
CUSTOM_BOUNDARY = 3

# Small limits (flag bit 2), so that every limit can be hit by short inputs.
TIGHT_LIMITS = MultipartLimits(max_header_size=64, max_headers=3, max_preamble_size=32, max_parts=4)

FLAG_TIGHT = 0x04  # tight limits
FLAG_BYTEWISE = 0x08  # split run feeds one byte at a time (bodies up to 2 KiB)
FLAG_BYTEARRAY = 0x10  # split run feeds bytearray chunks (the copying path)
FLAG_MEMORYVIEW = 0x20  # split run feeds memoryview chunks (the copying path)

# How far the held-back tail may grow: a header block at its limit, the transport padding
# limit, and a few delimiters (the parser's own bound, with room to spare).
_PADDING_ALLOWANCE = 1024


@dataclass(frozen=True)
class Case:
    """A decoded fuzz input."""

    boundary: bytes
    limits: MultipartLimits
    flags: int
    gaps: tuple[int, ...]  # chunk sizes for the split run; the rest is one last chunk
    body: bytes


def decode(data: bytes) -> Case | None:
    """Decode an input: [flags] [custom boundary: length, bytes] [n] [n gap bytes] body.

    flags bits 0-1 choose the boundary (3: custom, spelled by the next bytes, mapped into
    printable ASCII), bits 2-5 are the FLAG_* options. n (0-15) gap bytes give the sizes of
    the first chunks of the split run (0 is an empty chunk); the rest of the body is the last.
    """
    if len(data) < 2:
        return None
    flags = data[0]
    pos = 1
    kind = flags & 0x03
    if kind == CUSTOM_BOUNDARY:
        length = data[pos] % 70 + 1
        raw = data[pos + 1 : pos + 1 + length]
        if len(raw) < length:
            return None
        boundary = bytes(0x20 + byte % 95 for byte in raw)
        pos += 1 + length
    else:
        boundary = BOUNDARIES[kind]
    if pos >= len(data):
        return None
    count = data[pos] % 16
    gaps = tuple(data[pos + 1 : pos + 1 + count])
    pos += 1 + count
    limits = TIGHT_LIMITS if flags & FLAG_TIGHT else DEFAULT_LIMITS
    return Case(boundary, limits, flags, gaps, data[pos:])


def encode(case: Case) -> bytes:
    """The inverse of `decode` for the built-in boundaries (used to write seeds)."""
    kind = BOUNDARIES.index(case.boundary)
    flags = (case.flags & ~0x03) | kind
    return bytes([flags, len(case.gaps), *case.gaps]) + case.body


def chunks_of(case: Case) -> list[bytes]:
    body = case.body
    if case.flags & FLAG_BYTEWISE and len(body) <= 2048:
        return [body[i : i + 1] for i in range(len(body))]
    out: list[bytes] = []
    pos = 0
    for gap in case.gaps:
        out.append(body[pos : pos + gap])
        pos += gap
    out.append(body[pos:])
    return out


# A normalised event: ("start", raw headers), ("data", bytes), ("end",), ("done",).
Norm = tuple[object, ...]


@dataclass
class Outcome:
    """What one run produced: merged events, then the error of feed() or close() if any."""

    events: list[Norm]
    error: tuple[str, int] | None = None  # (exception class name, offset)
    close_error: str | None = None


class Checker:
    """Follows the event stream of one run and checks its order and data events."""

    def __init__(self) -> None:
        self.events: list[Norm] = []
        self.in_part = False
        self.ended = False

    def add(self, events: list[MultipartEvent]) -> None:
        assert isinstance(events, list), f"feed() returned {type(events)!r}"
        out = self.events
        for event in events:
            assert not self.ended, f"{event!r} after MessageEnded"
            if isinstance(event, PartData):
                assert self.in_part, "PartData outside a part"
                data = event.data
                assert isinstance(data, memoryview), f"PartData.data is {type(data)!r}"
                assert data.readonly, "PartData.data is writable"
                assert len(data) > 0, "empty PartData"
                if out and out[-1][0] == "data":
                    out[-1] = ("data", out[-1][1] + bytes(data))  # type: ignore[operator]
                else:
                    out.append(("data", bytes(data)))
            elif isinstance(event, PartStarted):
                assert not self.in_part, "PartStarted inside a part"
                self.in_part = True
                out.append(("start", event.headers.raw))
            elif isinstance(event, PartEnded):
                assert self.in_part, "PartEnded outside a part"
                self.in_part = False
                out.append(("end",))
            elif isinstance(event, MessageEnded):
                assert not self.in_part, "MessageEnded inside a part"
                self.ended = True
                out.append(("done",))
            else:
                raise AssertionError(f"unknown event {event!r}")


def held_bound(case: Case) -> int:
    delimiter = len(case.boundary) + 4
    return case.limits.max_header_size + _PADDING_ALLOWANCE + 4 * delimiter + 16


def run(case: Case, chunks: list[bytes], convert: type[bytes | bytearray | memoryview]) -> Outcome:
    parser = MultipartParser(case.boundary, limits=case.limits)
    checker = Checker()
    outcome = Outcome(checker.events)
    fed = 0
    bound = held_bound(case)
    for chunk in chunks:
        try:
            checker.add(parser.feed(convert(chunk)))
        except MultipartError as exc:
            outcome.error = (type(exc).__name__, exc.offset)
            try:
                parser.feed(b"x")
            except ParserStateError:
                pass
            else:
                raise AssertionError("feed() after an error did not raise ParserStateError")
            try:
                parser.close()
            except ParserStateError:
                pass
            else:
                raise AssertionError("close() after an error did not raise ParserStateError")
            return outcome
        fed += len(chunk)
        assert parser.bytes_received == fed, f"bytes_received {parser.bytes_received} != {fed}"
        held = len(getattr(parser, "_held", b""))  # white-box: the bytes held back
        assert held <= bound, f"{held} bytes held back (bound {bound})"
    done = parser.done
    assert done == checker.ended, f"parser.done is {done} but MessageEnded seen: {checker.ended}"
    try:
        parser.close()
    except MultipartError as exc:
        assert not done, "close() raised after the close delimiter"
        outcome.close_error = type(exc).__name__
    else:
        assert done, "close() accepted a body without a close delimiter"
    return outcome


def TestOneInput(data: bytes) -> None:
    case = decode(data)
    if case is None:
        return
    whole = run(case, [case.body], bytes)
    convert: type[bytes | bytearray | memoryview] = bytes
    if case.flags & FLAG_BYTEARRAY:
        convert = bytearray
    elif case.flags & FLAG_MEMORYVIEW:
        convert = memoryview
    split = run(case, chunks_of(case), convert)
    if whole.error is not None or split.error is not None:
        # Events before the error differ in granularity (a failing feed returns none of its
        # events), so compare the error only: same class at the same offset.
        assert whole.error == split.error, f"whole run {whole.error} != split run {split.error}"
        return
    assert whole.events == split.events, (
        f"events differ:\n whole {whole.events[:8]!r}\n split {split.events[:8]!r}"
    )
    assert whole.close_error == split.close_error, (whole.close_error, split.close_error)


# -- seeds ---------------------------------------------------------------------------------


def seed_bodies() -> list[Case]:
    """Valid and nearly valid bodies that reach every state, for a starting corpus."""
    b = BOUNDARIES[1]
    json_part = b'Content-Type: application/json; charset=UTF-8\r\n\r\n{"directive":{}}'
    audio = b"Content-Type: application/octet-stream\r\nContent-ID: <TTS_1>\r\n\r\n"
    avs = (
        b"\r\n--"
        + b
        + b"\r\n"
        + json_part
        + b"\r\n--"
        + b
        + b"\r\n"
        + audio
        + b"ID3\x04\r\n--"
        + b[:5]
        + b"\r\r\n\r\n--"
        + b
        + b"--\r\n"
    )
    downchannel = (
        b"--"
        + b
        + b"\r\n\r\n--"
        + b
        + b"\r\n--"
        + b
        + b" \t\r\n"
        + json_part
        + b"\r\n--"
        + b
        + b"\r\n"
    )
    folded = b"--" + b + b"\r\nX-A: 1\r\n  2\r\ncontent-id: <c>\r\n\r\nxyz\r\n--" + b + b"--"
    preamble = b"preamble\r\n--" + b + b"\r\n\r\nbody\r\n--" + b + b"--epilogue"
    bad = b"--" + b + b"\r\nNo colon\r\n\r\n\r\n--" + b + b"--\r\n"
    encoder = MultipartEncoder(boundary="b")
    form = encoder.metadata_part('{"event":{}}') + encoder.audio_part_start() + b"\x00" * 40
    form += encoder.end()
    bodies = (avs, downchannel, folded, preamble, bad)
    cases = [Case(b, DEFAULT_LIMITS, 0, (), body) for body in bodies]
    cases.append(Case(b, DEFAULT_LIMITS, 0, (7, 1, 1, 30), avs))
    cases.append(Case(b, TIGHT_LIMITS, FLAG_TIGHT, (), avs))
    cases.append(Case(b, DEFAULT_LIMITS, FLAG_BYTEWISE, (), downchannel))
    cases.append(Case(b"b", DEFAULT_LIMITS, FLAG_BYTEARRAY, (3, 9), form))
    cases.append(Case(b"b", DEFAULT_LIMITS, FLAG_MEMORYVIEW, (5,), form))
    return cases


def write_seeds(directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    for index, case in enumerate(seed_bodies()):
        with open(os.path.join(directory, f"seed-{index:02}"), "wb") as file:
            file.write(encode(case))
    print(f"wrote {len(seed_bodies())} seeds to {directory}")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--write-seeds":
        write_seeds(sys.argv[2])
        return
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
