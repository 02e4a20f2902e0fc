"""The parser on a body that never ends (the AVS downchannel): everything as soon as it can."""

from __future__ import annotations

import pytest

from avsclient.exceptions import ParserError, ParserLimitReached, ParserStateError
from avsclient.multipart import (
    Headers,
    MessageEnded,
    MultipartLimits,
    MultipartParser,
    PartData,
    PartEnded,
    PartStarted,
)

from .util import normalize, parse

DELIM = b"\r\n--------abcde123"


def test_part_ended_is_emitted_when_the_delimiter_completes() -> None:
    """PartEnded comes with the delimiter's last byte, before the CRLF that follows it."""
    parser = MultipartParser("------abcde123")
    assert normalize(parser.feed(b"--------abcde123\r\nContent-Type: application/json\r\n\r\n")) \
        == [("start", (("Content-Type", "application/json"),))]
    assert normalize(parser.feed(b'{"directive": 1}' + DELIM[:-1])) == [
        ("data", b'{"directive": 1}')
    ]
    assert normalize(parser.feed(DELIM[-1:])) == [("end",)]
    # The downchannel may now pause for minutes; the next directive then arrives.
    assert normalize(parser.feed(b"\r\nContent-Type: application/json\r\n\r\n{}")) == [
        ("start", (("Content-Type", "application/json"),)),
        ("data", b"{}"),
    ]


def test_content_is_emitted_at_once_except_a_possible_delimiter_prefix() -> None:
    """Only a tail that could begin a delimiter is held back, and released when it is not one."""
    parser = MultipartParser("------abcde123")
    parser.feed(b"--------abcde123\r\nA: 1\r\n\r\n")
    for tail in (b"\r", b"\r\n", b"\r\n-", b"\r\n--", b"\r\n--------abcde12"):
        events = parser.feed(b"audio" + tail)
        assert normalize(events) == [("data", b"audio")]
        events = parser.feed(b"Z")  # not a delimiter after all: the held tail comes out
        assert normalize(events) == [("data", tail + b"Z")]
    assert normalize(parser.feed(b"xyz\r")) == [("data", b"xyz")]
    assert normalize(parser.feed(b"y")) == [("data", b"\ry")]


def test_never_ending_body_streams_many_directives_without_close() -> None:
    """A downchannel that never sends its close delimiter still yields every part at once."""
    parser = MultipartParser("------abcde123")
    parser.feed(b"\r\n")
    for i in range(1000):
        payload = b'{"directive":{"n":%d}}' % i
        events = parser.feed(
            b"--------abcde123\r\nContent-Type: application/json\r\n\r\n" + payload + b"\r\n"
        )
        if i:
            assert isinstance(events[0], PartEnded)
            events = events[1:]
        assert normalize(events) == [
            ("start", (("Content-Type", "application/json"),)),
            ("data", payload),
        ]
    assert not parser.done


def test_an_open_body_may_have_no_part_yet_but_may_not_end_without_one() -> None:
    """The downchannel opens with delimiters and no part for minutes: no error while it lasts.
    Only a close delimiter before any part fails (RFC 2046: a body holds one part at least)."""
    parser = MultipartParser("------abcde123")
    assert parser.feed(b"\r\n--------abcde123\r\n") == []
    assert parser.feed(b"--------abcde123\r\n\r\n--------abcde123 \r\n") == []
    assert not parser.done
    with pytest.raises(ParserError, match=r"close delimiter before any part .*\(at byte 59\)"):
        parser.feed(b"--------abcde123--\r\n")
    # After a first part, later duplicate delimiters and the close delimiter are fine.
    parser = MultipartParser("------abcde123")
    parser.feed(b"--------abcde123\r\n--------abcde123\r\n")
    assert normalize(parser.feed(b"\r\n{}" + DELIM + b"\r\n" + DELIM[2:] + b"--")) == [
        ("start", ()), ("data", b"{}"), ("end",), ("done",)
    ]


def test_part_data_is_a_view_of_the_fed_bytes() -> None:
    """Content is handed out as memoryview slices of the caller's bytes object: no copy."""
    chunk = b"--b\r\nContent-ID: <x>\r\n\r\n" + b"A" * 10_000 + b"\r\n--b--"
    events = MultipartParser("b").feed(chunk)
    data = [e for e in events if isinstance(e, PartData)]
    assert len(data) == 1
    assert data[0].data.obj is chunk
    assert data[0].data.readonly
    assert isinstance(events[0], PartStarted) and events[0].headers.content_id == "x"
    assert isinstance(events[-1], MessageEnded)


def test_held_back_bytes_are_bounded_by_the_delimiter_length() -> None:
    """Streaming a large attachment keeps at most len(delimiter) - 1 bytes held back."""
    parser = MultipartParser("------abcde123")
    parser.feed(b"--------abcde123\r\nA: 1\r\n\r\n")
    block = (b"\r\n--------abcde12" * 64 + b"\x00" * 7)[:1021] + DELIM[:-1]
    for _ in range(200):
        parser.feed(block)
        assert len(parser._held) <= len(DELIM) - 1


def test_bytearray_and_memoryview_input_are_copied_once_and_safe() -> None:
    """A mutable buffer is copied, so views handed out never see later changes."""
    buffer = bytearray(b"--b\r\n\r\nhello\r\n--b--")
    events = MultipartParser("b").feed(buffer)
    buffer[7:12] = b"XXXXX"
    assert normalize(events)[1] == ("data", b"hello")
    events = MultipartParser("b").feed(memoryview(b"--b\r\n\r\nhi\r\n--b--"))
    assert normalize(events)[1] == ("data", b"hi")


def test_epilogue_is_counted_and_ignored() -> None:
    """Bytes after the close delimiter produce no events and no error; close() succeeds."""
    parser = MultipartParser("b")
    assert normalize(parser.feed(b"--b\r\n\r\nx\r\n--b--")) == [
        ("start", ()), ("data", b"x"), ("end",), ("done",)
    ]
    assert parser.done
    assert parser.feed(b"\r\n--b\r\ngarbage") == []
    assert parser.bytes_received == 29
    parser.close()
    with pytest.raises(ParserStateError):
        parser.feed(b"x")
    with pytest.raises(ParserStateError):
        parser.close()


def test_empty_feed_is_a_no_op() -> None:
    """feed(b"") neither ends the body nor changes state."""
    parser = MultipartParser("b")
    assert parser.feed(b"") == []
    assert normalize(parser.feed(b"--b\r\nA: 1\r\n\r\n")) == [("start", (("A", "1"),))]
    assert parser.feed(b"") == []


@pytest.mark.parametrize("boundary", ["", "x" * 71, "a\r\nb", "caf\u00e9", b"\x00"])
def test_invalid_boundary_is_rejected(boundary: str | bytes) -> None:
    """A boundary that RFC 2046 forbids is a ValueError (API misuse), not a parse error."""
    with pytest.raises(ValueError, match="boundary"):
        MultipartParser(boundary)


def test_part_data_repr_shows_only_a_prefix() -> None:
    """Audio never floods a log: the repr shows a length and 20 bytes."""
    text = repr(PartData(data=memoryview(b"x" * 100_000)))
    assert text == "PartData(len=100000, data=b'xxxxxxxxxxxxxxxxxxxx'...)"


def test_a_remembered_header_block_still_obeys_each_parsers_limits() -> None:
    """Header blocks parsed once are reused, but a stricter parser still rejects them."""
    body = b"--b\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\nx\r\n--b--"
    lenient = MultipartParser("b").feed(body)
    again = MultipartParser("b").feed(body)
    assert normalize(again) == normalize(lenient)
    strict = MultipartParser("b", limits=MultipartLimits(max_headers=2))
    with pytest.raises(ParserLimitReached, match="more than 2 headers"):
        strict.feed(body)


def test_a_remembered_header_block_still_counts_toward_max_parts() -> None:
    """The parts limit holds for blocks taken from the memo too."""
    body = b"--b\r\nA: 1\r\n\r\nx\r\n--b\r\nA: 1\r\n\r\ny\r\n--b--"
    assert len(normalize(MultipartParser("b").feed(body))) == 7  # remembers "A: 1"
    strict = MultipartParser("b", limits=MultipartLimits(max_parts=1))
    with pytest.raises(ParserLimitReached, match=r"more than 1 parts \(at byte 29\)"):
        strict.feed(body)


def test_a_preamble_at_its_limit_with_the_first_delimiter_split_is_accepted() -> None:
    """Bytes held back as a possible delimiter do not count toward the preamble limit."""
    body = b"x" * 30 + b"\r\n--b\r\n\r\nhi\r\n--b--"
    limits = MultipartLimits(max_preamble_size=30)
    for cut in range(30, 36):
        assert parse("b", [body[:cut], body[cut:]], limits=limits) == [
            ("start", ()), ("data", b"hi"), ("end",), ("done",)
        ]
    with pytest.raises(ParserLimitReached, match="preamble longer than 29 bytes"):
        parse("b", [body[:33], body[33:]], limits=MultipartLimits(max_preamble_size=29))


def test_large_header_blocks_are_parsed_each_time_not_remembered() -> None:
    """Blocks over the memo's entry size are parsed afresh and still give equal events."""
    block = b"X-Big: " + b"v" * 600
    body = b"--b\r\n" + block + b"\r\n\r\nx\r\n--b--"
    first, second = MultipartParser("b").feed(body)[0], MultipartParser("b").feed(body)[0]
    assert isinstance(first, PartStarted)
    assert first == second
    assert first is not second
    assert first.headers["x-big"] == "v" * 600


@pytest.mark.parametrize(
    "limits",
    [{"max_header_size": 0}, {"max_headers": 0}, {"max_preamble_size": -1}, {"max_parts": 0}],
)
def test_limits_must_be_positive(limits: dict[str, int]) -> None:
    """A limit below 1 is a configuration error, raised at once."""
    with pytest.raises(ValueError, match="at least 1"):
        MultipartLimits(**limits)


def test_headers_repr_lists_fields() -> None:
    """Headers show their fields in received order."""
    assert repr(Headers((("A", "1"), ("b", "2")))) == "Headers([('A', '1'), ('b', '2')])"
