"""Every vector parsed whole, byte by byte, at every split point and at random splits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from avsclient.exceptions import MultipartError, ParserError, ParserStateError
from avsclient.multipart import MultipartParser

from .util import every_split, parse, split_at
from .vectors import BAD_VECTORS, VECTORS, BadVector, Vector


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.name)
def test_vector_parses_identically_at_every_split(vector: Vector) -> None:
    """Whole, byte by byte and cut at every offset, the events are the expected ones."""
    for pieces in every_split(vector.body):
        assert parse(vector.boundary, pieces) == vector.expected


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.name)
@given(cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=40))
def test_vector_parses_identically_at_random_splits(vector: Vector, cuts: list[int]) -> None:
    """Hypothesis-chosen splits give the expected events."""
    assert parse(vector.boundary, split_at(vector.body, cuts)) == vector.expected


def _error_for(vector: BadVector, pieces: list[bytes]) -> MultipartError:
    parser = MultipartParser(vector.boundary, limits=vector.limits)
    with pytest.raises(MultipartError) as info:
        for piece in pieces:
            parser.feed(piece)
        parser.close()
    # The failure is sticky: every later call raises a state error.
    with pytest.raises(ParserStateError):
        parser.feed(b"more")
    with pytest.raises(ParserStateError):
        parser.close()
    return info.value


@pytest.mark.parametrize("vector", BAD_VECTORS, ids=lambda v: v.name)
def test_bad_vector_raises_the_same_error_at_every_split(vector: BadVector) -> None:
    """Malformed input raises its MultipartError subclass, with the same offset, however split."""
    for pieces in every_split(vector.body) if vector.body else [[b""]]:
        error = _error_for(vector, pieces)
        assert type(error) is vector.error, (pieces, error)
        if vector.offset is not None:
            assert error.offset == vector.offset, (pieces, error)
            assert f"at byte {vector.offset}" in str(error)


@pytest.mark.parametrize("vector", BAD_VECTORS, ids=lambda v: v.name)
@given(cuts=st.lists(st.integers(min_value=0, max_value=2500), max_size=30))
def test_bad_vector_raises_at_random_splits(vector: BadVector, cuts: list[int]) -> None:
    """Hypothesis-chosen splits raise the same error type."""
    assert type(_error_for(vector, split_at(vector.body, cuts))) is vector.error


def test_truncated_body_error_says_where() -> None:
    """close() on a body cut inside a part names the state and offset."""
    parser = MultipartParser("b")
    parser.feed(b"--b\r\n\r\nabc")
    with pytest.raises(ParserError, match=r"truncated inside a part \(at byte 10\)"):
        parser.close()
