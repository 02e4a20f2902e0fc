"""The form-data encoder, and the round-trip property: the parser reads back what it wrote."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from avsclient.exceptions import LocalProtocolError
from avsclient.multipart import MultipartEncoder, boundary_from_content_type, encode_event

from . import strategies as sts
from .util import parse, split_at


def test_event_with_audio_has_the_documented_shape() -> None:
    """Metadata part, audio part head, streamed frames, close delimiter (avs-protocol 3.4)."""
    encoder = MultipartEncoder("avs-demo-4f7a9c")
    frames = [b"\x01\x00" * 160, b"\x02\x00" * 160]
    body = (
        encoder.metadata_part({"event": {"header": {"name": "Recognize"}}})
        + encoder.audio_part_start()
        + b"".join(frames)
        + encoder.end()
    )
    assert body == (
        b"--avs-demo-4f7a9c\r\n"
        b'Content-Disposition: form-data; name="metadata"\r\n'
        b"Content-Type: application/json; charset=UTF-8\r\n\r\n"
        b'{"event":{"header":{"name":"Recognize"}}}\r\n'
        b"--avs-demo-4f7a9c\r\n"
        b'Content-Disposition: form-data; name="audio"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + b"".join(frames) + b"\r\n"
        b"--avs-demo-4f7a9c--\r\n"
    )
    assert encoder.content_type == "multipart/form-data; boundary=avs-demo-4f7a9c"


def test_random_boundaries_carry_128_bits_and_never_repeat() -> None:
    """Default boundaries are valid RFC 2046 boundaries with 32 random hex digits."""
    seen = set()
    for _ in range(1000):
        encoder = MultipartEncoder()
        match = re.fullmatch(r"avsclient-([0-9a-f]{32})", encoder.boundary)
        assert match is not None
        assert boundary_from_content_type(encoder.content_type) == encoder.boundary
        seen.add(match.group(1))
    assert len(seen) == 1000


def test_encode_event_one_shot() -> None:
    """encode_event returns the content type and a complete body that parses back."""
    event = {"event": {"header": {"namespace": "System", "name": "SynchronizeState"}}}
    content_type, body = encode_event(event)
    boundary = boundary_from_content_type(content_type)
    events = parse(boundary, [body])
    assert events[0] == (
        "start",
        (("Content-Disposition", 'form-data; name="metadata"'),
         ("Content-Type", "application/json; charset=UTF-8")),
    )
    assert json.loads(events[1][1]) == event  # type: ignore[arg-type]
    assert events[2:] == [("end",), ("done",)]
    assert encode_event(b"{}", boundary="x")[1].startswith(b"--x\r\n")


@pytest.mark.parametrize(
    ("name", "value"),
    [("X-Evil", "a\r\nInjected: 1"), ("X-Evil", "a\nb"), ("Bad:Name", "v"), ("", "v"),
     ("Bad Name", "v")],
)
def test_header_injection_is_refused(name: str, value: str) -> None:
    """Names and values that would break the header block raise LocalProtocolError."""
    with pytest.raises(LocalProtocolError):
        MultipartEncoder().part_head([(name, value)])


def test_encoder_state_errors() -> None:
    """Content holding the delimiter, parts after end, end twice or with no part all raise."""
    encoder = MultipartEncoder("b")
    with pytest.raises(LocalProtocolError, match="at least one part"):
        encoder.end()
    with pytest.raises(LocalProtocolError, match="contains the multipart delimiter"):
        encoder.part([], b"xx\r\n--b\r\n")
    encoder.part([], b"ok")
    encoder.end()
    for call in (encoder.end, encoder.audio_part_start, lambda: encoder.metadata_part("{}")):
        with pytest.raises(LocalProtocolError, match="already ended"):
            call()


@pytest.mark.parametrize("boundary", ["", "x" * 71, "bad\r\n", "ends in space "])
def test_encoder_rejects_invalid_boundaries(boundary: str) -> None:
    """A caller-chosen boundary must be a valid RFC 2046 boundary."""
    with pytest.raises(ValueError, match="boundary"):
        MultipartEncoder(boundary)


@given(data=st.data())
def test_round_trip(data: st.DataObject) -> None:
    """Whatever the encoder writes, the parser reads back exactly, however it is split."""
    encoder = MultipartEncoder(
        data.draw(st.one_of(st.none(), st.sampled_from(["b", "------abcde123", "x y.z"])))
    )
    parts = data.draw(
        st.lists(
            st.tuples(
                st.lists(st.tuples(sts.header_names, sts.header_values), max_size=5),
                sts.dense_content(encoder.boundary),
                st.lists(st.integers(min_value=1, max_value=50), max_size=4),  # stream pieces
            ),
            min_size=1,
            max_size=8,
        )
    )
    wire: list[bytes] = []
    expected: list[tuple[object, ...]] = []
    for headers, content, piece_sizes in parts:
        wire.append(encoder.part_head(headers))
        pos = 0
        for size in piece_sizes:  # content streamed in pieces, unjoined
            wire.append(content[pos : pos + size])
            pos += size
        wire.append(content[pos:])
        expected.append(("start", tuple(headers)))
        if content:
            expected.append(("data", content))
        expected.append(("end",))
    wire.append(encoder.end())
    expected.append(("done",))
    body = b"".join(wire)
    assert parse(encoder.boundary, [w for w in wire if w]) == expected
    assert parse(encoder.boundary, split_at(body, data.draw(sts.splits(len(body))))) == expected
