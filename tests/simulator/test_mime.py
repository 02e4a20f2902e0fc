"""The simulator's sans-IO body handling: upload parsing at every split, directive writing."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from avsclient.simulator.mime import (
    RelatedWriter,
    UploadError,
    UploadParser,
    avs_exception_body,
    exception_code_for_status,
    parse_content_type,
)
from tests.simulator.conftest import BOUNDARY, event_body, recognize
from tests.simulator.rawclient import parse_related

AUDIO = bytes(range(256)) * 8 + b"\r\n--sim-test-boundary-4f7a9" + b"\r\n-"  # near-delimiters
METADATA = recognize("NEAR_FIELD")
BODY = event_body(METADATA, AUDIO)


def parse_in_chunks(chunks: list[bytes]) -> UploadParser:
    parser = UploadParser(BOUNDARY, max_metadata=4096, max_audio=1 << 20)
    for chunk in chunks:
        parser.feed(chunk)
    parser.close()
    return parser


def test_upload_parses_at_every_split_point() -> None:
    """Any split of the body into two chunks gives the same metadata and audio."""
    for cut in range(len(BODY) + 1):
        parser = parse_in_chunks([BODY[:cut], BODY[cut:]])
        assert parser.metadata == METADATA
        assert parser.audio == AUDIO
        assert parser.audio_length == len(AUDIO)


def test_upload_parses_byte_by_byte() -> None:
    """Feeding one byte at a time works, and metadata is ready before the audio ends."""
    parser = UploadParser(BOUNDARY, max_metadata=4096, max_audio=1 << 20)
    seen_metadata_at = None
    for i in range(len(BODY)):
        parser.feed(BODY[i : i + 1])
        if seen_metadata_at is None and parser.metadata is not None:
            seen_metadata_at = i
    parser.close()
    assert seen_metadata_at is not None
    assert seen_metadata_at < len(BODY) - len(AUDIO)
    assert parser.audio == AUDIO


@given(st.lists(st.integers(min_value=0, max_value=len(BODY)), max_size=12))
def test_upload_parses_random_splits(cuts: list[int]) -> None:
    """Random splits (Hypothesis) parse identically."""
    points = [0, *sorted(cuts), len(BODY)]
    chunks = [BODY[a:b] for a, b in itertools.pairwise(points)]
    assert parse_in_chunks(chunks).audio == AUDIO


def test_upload_errors_are_sticky() -> None:
    """After an UploadError every later call raises it again."""
    parser = UploadParser(BOUNDARY, max_metadata=10, max_audio=10)
    with pytest.raises(UploadError, match="longer than 10"):
        parser.feed(BODY)
    with pytest.raises(UploadError):
        parser.feed(b"more")
    with pytest.raises(UploadError):
        parser.close()


def test_upload_without_keep_audio_only_counts() -> None:
    """keep_audio=False counts the audio without storing it."""
    parser = UploadParser(BOUNDARY, max_metadata=4096, max_audio=1 << 20, keep_audio=False)
    parser.feed(BODY)
    parser.close()
    assert (parser.audio, parser.audio_length) == (b"", len(AUDIO))


def test_related_writer_round_trip() -> None:
    """Parts written one by one parse back, each complete as soon as it is written."""
    writer = RelatedWriter("b0und")
    assert writer.content_type == "multipart/related; boundary=b0und; type=application/json"
    first = b"".join(writer.directive({"directive": {"n": 1}}))
    assert parse_related(first, "b0und") == [
        ({"content-type": "application/json; charset=UTF-8"}, b'{"directive":{"n":1}}')
    ]
    rest = b"".join(writer.attachment("a1", b"\x00mp3", last=True))
    parts = parse_related(first + rest, "b0und")
    assert parts[1] == (
        {"content-type": "application/octet-stream", "content-id": "<a1>"},
        b"\x00mp3",
    )
    assert writer.finished
    assert writer.close() == b""
    with pytest.raises(ValueError, match="finished"):
        writer.part([], b"")


def test_related_writer_close_without_and_after_parts() -> None:
    """close() ends an empty body, or one whose last delimiter promised another part."""
    assert RelatedWriter("x").close() == b"--x--\r\n"
    writer = RelatedWriter("x")
    body = b"".join(writer.directive({"directive": {}})) + writer.close()
    assert [p[0] for p in parse_related(body, "x")] == [
        {"content-type": "application/json; charset=UTF-8"},
        {"content-type": "text/plain"},
    ]


def test_exception_bodies_and_content_types() -> None:
    """AVS exception bodies carry the code of the status; Content-Type params unquote."""
    body = json.loads(avs_exception_body(429, "slow down"))
    assert body["payload"] == {"code": "THROTTLING_EXCEPTION", "description": "slow down"}
    assert exception_code_for_status(502) == "INTERNAL_SERVICE_EXCEPTION"
    assert exception_code_for_status(404) == "N/A"
    assert parse_content_type('Multipart/Form-Data; boundary="a b"') == (
        "multipart/form-data",
        {"boundary": "a b"},
    )
