"""Content-Type boundary extraction, the Headers mapping and Content-ID helpers."""

from __future__ import annotations

import pytest

from avsclient.exceptions import ParserError
from avsclient.multipart import Headers, boundary_from_content_type, strip_angle_brackets


@pytest.mark.parametrize(
    ("value", "boundary"),
    [
        ("multipart/related; boundary=------abcde123; type=application/json", "------abcde123"),
        ('multipart/related; type="application/json"; boundary="------abcde123"', "------abcde123"),
        ("Multipart/Related;BOUNDARY=abc", "abc"),
        ('multipart/form-data; boundary="with space and \\=escape"', "with space and =escape"),
        ('multipart/form-data; boundary="a:b=c"; x=y', "a:b=c"),
        ("multipart/form-data ; boundary = abc ;", "abc"),
        ("multipart/mixed; boundary=abc; boundary=abc", "abc"),
    ],
)
def test_boundary_from_content_type(value: str, boundary: str) -> None:
    """Quoted or not, any parameter order, names case-insensitive."""
    assert boundary_from_content_type(value) == boundary


@pytest.mark.parametrize(
    "value",
    [
        "application/json; charset=UTF-8",
        "multipart/related",
        "multipart/related; type=application/json",
        "multipart/related; boundary=",
        'multipart/related; boundary=""',
        "multipart/related; boundary=" + "x" * 71,
        'multipart/related; boundary="ends in space "',
        'multipart/related; boundary="unterminated',
        "multipart/related; boundary=a; boundary=b",
        "multipart/related; garbage",
        'multipart/related; boundary="a\r\nb"',
        'multipart/related; boundary="a;b"',
        'multipart/related; boundary="quote\\"inside"',
        "",
    ],
)
def test_bad_content_type_raises_parser_error(value: str) -> None:
    """Missing, empty, invalid or ambiguous boundaries raise ParserError, nothing else."""
    with pytest.raises(ParserError):
        boundary_from_content_type(value)


def test_headers_lookup_is_case_insensitive_and_keeps_order() -> None:
    """Lookup ignores case, the first of repeated names wins, raw keeps everything."""
    headers = Headers((("Content-Type", "a"), ("X-Two", "1"), ("x-two", "2")))
    assert headers["content-type"] == headers["CONTENT-TYPE"] == "a"
    assert headers.get("X-TWO") == "1"
    assert headers.get("missing") is None
    assert "content-TYPE" in headers and 42 not in headers
    assert list(headers) == ["content-type", "x-two"]
    assert len(headers) == 2
    assert headers.raw == (("Content-Type", "a"), ("X-Two", "1"), ("x-two", "2"))
    assert headers.content_type == "a" and headers.content_id is None
    assert headers == Headers(headers.raw) and hash(headers) == hash(Headers(headers.raw))
    assert headers != Headers() and headers != "a"


@pytest.mark.parametrize(
    ("raw", "stripped"),
    [("<TTS_7b1e_0>", "TTS_7b1e_0"), (" < id@host > ", "id@host"), ("plain", "plain"),
     ("<", "<"), ("<>", "")],
)
def test_content_id_angle_brackets_are_stripped(raw: str, stripped: str) -> None:
    """RFC 2392: the Content-ID `<x>` matches the URL `cid:x`."""
    assert strip_angle_brackets(raw) == stripped
    assert Headers((("Content-ID", raw),)).content_id == stripped
