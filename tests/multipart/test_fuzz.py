"""Fuzzing with Hypothesis: arbitrary and mutated bodies raise MultipartError or nothing, the
parser terminates, and what it holds stays bounded by its limits."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from avsclient.exceptions import MultipartError, ParserStateError
from avsclient.multipart import MultipartLimits, MultipartParser

from . import strategies as sts
from .util import normalize, split_at
from .vectors import BAD_VECTORS, VECTORS

LIMITS = MultipartLimits(max_header_size=256, max_headers=8, max_preamble_size=512, max_parts=64)
BOUNDARY = "------abcde123"
# The most the parser may hold between feeds: a header block at its limit plus its terminator.
MAX_HELD = LIMITS.max_header_size + 4 + len(BOUNDARY) + 4
SEEDS = [v.body for v in VECTORS if v.boundary == BOUNDARY] + [
    v.body for v in BAD_VECTORS if v.boundary == BOUNDARY
]


def _run(body: bytes, cuts: list[int], *, close: bool = True) -> list[object] | MultipartError:
    """Feed the body in pieces; return the normalised events or the error raised."""
    parser = MultipartParser(BOUNDARY, limits=LIMITS)
    events = []
    try:
        for piece in split_at(body, cuts):
            events.extend(parser.feed(piece))
            assert len(parser._held) <= MAX_HELD
        if close:
            parser.close()
    except MultipartError as error:
        try:
            parser.feed(b"x")
        except ParserStateError:
            return error
        raise AssertionError("a failed parser accepted more input") from error
    return list(normalize(events))


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid body with a few bytes flipped, inserted or deleted."""
    body = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        if not body:
            break
        pos = draw(st.integers(min_value=0, max_value=len(body) - 1))
        op = draw(st.sampled_from(["flip", "insert", "delete", "crlf"]))
        if op == "flip":
            body[pos] = draw(st.integers(min_value=0, max_value=255))
        elif op == "insert":
            body[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del body[pos : pos + draw(st.integers(min_value=1, max_value=8))]
        else:
            body[pos:pos] = draw(st.sampled_from([b"\r\n", b"\r", b"\n", b"\r\n--------abcde123"]))
    return bytes(body)


bodies = st.one_of(
    st.binary(max_size=2000),
    mutated(),
    st.lists(
        st.sampled_from([b"\r\n", b"--", b"--------abcde123", b"A: 1", b":", b" ", b"\r", b"\n",
                         b"--------abcde123--", b"\x00", b"\xff"]),
        max_size=60,
    ).map(b"".join),
)


@given(body=bodies, cuts=sts.splits(2000))
@example(body=b"--------abcde123\r\n" + b"A" * 10_000, cuts=[17, 5000])
@example(body=b"\r\n--------abcde123" * 100, cuts=[])
def test_arbitrary_input_raises_only_multipart_errors(body: bytes, cuts: list[int]) -> None:
    """No IndexError, ValueError or UnicodeError escapes; a failure is sticky."""
    _run(body, cuts)


@given(body=bodies, cuts=sts.splits(2000))
def test_outcome_does_not_depend_on_how_input_is_split(body: bytes, cuts: list[int]) -> None:
    """The same events, or the same error type, whether fed whole or in pieces."""
    whole, pieces = _run(body, []), _run(body, cuts)
    if isinstance(whole, MultipartError):
        assert type(pieces) is type(whole)
    else:
        assert pieces == whole


@given(body=mutated())
def test_never_ending_body_fed_byte_by_byte_stays_bounded(body: bytes) -> None:
    """Fed one byte at a time without close, the held state never exceeds its bound."""
    _run(body, list(range(len(body))), close=False)
