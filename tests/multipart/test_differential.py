"""Differential test: on form-data bodies, the parser agrees with defnull `multipart`."""

from __future__ import annotations

import multipart as defnull
from hypothesis import given
from hypothesis import strategies as st

from avsclient.multipart import MultipartEncoder

from . import strategies as sts
from .util import parse, split_at

field_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=12)
# defnull accepts a narrower set of header names than RFC 9110 tokens: stay in the common part.
common_header_names = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-", min_size=1,
    max_size=20,
)


def _lower(headers: list[tuple[str, str]] | tuple[tuple[str, str], ...]) -> tuple[object, ...]:
    """Header names are case-insensitive (defnull title-cases them)."""
    return tuple((name.lower(), value) for name, value in headers)


def _defnull_parts(boundary: str, pieces: list[bytes]) -> list[tuple[object, ...]]:
    parser = defnull.PushMultipartParser(boundary, max_header_count=32)
    parts: list[tuple[object, ...]] = []
    for piece in [*pieces, b""]:
        for item in parser.parse(piece):
            if isinstance(item, defnull.MultipartSegment):
                parts.append((_lower(item.headerlist), b""))
            elif item is None:
                continue
            else:
                headers, content = parts[-1]
                parts[-1] = (headers, content + bytes(item))  # type: ignore[operator]
    return parts


def _our_parts(boundary: str, pieces: list[bytes]) -> list[tuple[object, ...]]:
    parts: list[tuple[object, ...]] = []
    for event in parse(boundary, pieces):
        if event[0] == "start":
            parts.append((_lower(event[1]), b""))  # type: ignore[arg-type]
        elif event[0] == "data":
            headers, content = parts[-1]
            parts[-1] = (headers, content + event[1])  # type: ignore[operator]
    return parts


@given(data=st.data())
def test_agrees_with_defnull_multipart(data: st.DataObject) -> None:
    """Same parts, headers and bodies as defnull's PushMultipartParser, however split."""
    encoder = MultipartEncoder(data.draw(st.one_of(st.none(), st.just("------abcde123"))))
    wire = []
    for _ in range(data.draw(st.integers(min_value=1, max_value=6))):
        headers = [("Content-Disposition", f'form-data; name="{data.draw(field_names)}"')]
        if data.draw(st.booleans()):
            headers.append(("Content-Type", data.draw(st.sampled_from(
                ["application/json; charset=UTF-8", "application/octet-stream", "text/plain"]))))
        headers += data.draw(st.lists(
            st.tuples(common_header_names.filter(
                lambda n: n.lower() not in ("content-disposition", "content-length")),
                      sts.header_values.filter(bool)), max_size=3))
        wire.append(encoder.part(headers, data.draw(sts.dense_content(encoder.boundary))))
    wire.append(encoder.end())
    body = b"".join(wire)
    pieces = split_at(body, data.draw(sts.splits(len(body))))
    ours = _our_parts(encoder.boundary, pieces)
    assert ours == _defnull_parts(encoder.boundary, pieces)
    assert len(ours) == len(wire) - 1
