"""Multipart part headers and the header-value helpers AVS needs. No I/O here."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from avsclient.exceptions import ParserError

__all__ = ["Headers", "boundary_from_content_type", "is_valid_boundary", "strip_angle_brackets"]


class Headers(Mapping[str, str]):
    """The headers of one part: an immutable, case-insensitive mapping, in received order.

    `headers["content-type"]` and `headers["Content-Type"]` are the same. When a name repeats,
    lookup gives the first value; `items()` / `raw` keep every field as received.
    """

    __slots__ = ("_index", "raw")

    def __init__(self, raw: tuple[tuple[str, str], ...] = ()) -> None:
        self.raw = raw
        index: dict[str, str] = {}
        for name, value in raw:
            index.setdefault(name.lower(), value)
        self._index = index

    def __getitem__(self, name: str) -> str:
        return self._index[name.lower()]

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return self._index.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self.raw == other.raw
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        return f"Headers({list(self.raw)!r})"

    @property
    def content_type(self) -> str | None:
        """The Content-Type value, or None."""
        return self._index.get("content-type")

    @property
    def content_id(self) -> str | None:
        """The Content-ID with its angle brackets stripped (RFC 2392), or None."""
        value = self._index.get("content-id")
        return None if value is None else strip_angle_brackets(value)


def strip_angle_brackets(value: str) -> str:
    """Return a Content-ID without its surrounding `<` `>` and white space.

    AVS sends `Content-ID: <TTS_7b1e_0>` for an attachment that a directive names as
    `cid:TTS_7b1e_0` (RFC 2392; avs-protocol 4.3). Values without brackets are returned stripped.
    """
    value = value.strip()
    if len(value) >= 2 and value[0] == "<" and value[-1] == ">":
        return value[1:-1].strip()
    return value


# RFC 2045 token and quoted-string, for Content-Type parameters.
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
# Unquoted values are read leniently (up to ";" or white space): AVS itself sends
# `type=application/json`, which holds a "/" that RFC 2045 tokens forbid.
_PARAM = re.compile(
    rf"\s*;\s*(?P<name>{_TOKEN})\s*=\s*(?:\"(?P<quoted>(?:[^\"\\]|\\.)*)\"|(?P<token>[^;\s\"]+))\s*",
    re.DOTALL,
)
_MEDIA_TYPE = re.compile(rf"\s*(?P<type>{_TOKEN})/(?P<subtype>{_TOKEN})\s*")
# RFC 2046 5.1.1 bchars, plus the rule that a boundary is 1 to 70 of them and does not end in
# a space. Rejecting everything else (CR and LF above all) keeps the delimiter search simple.
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")


def is_valid_boundary(boundary: str) -> bool:
    """True when `boundary` is 1 to 70 RFC 2046 bchars and does not end in a space."""
    return _BOUNDARY.fullmatch(boundary) is not None


def boundary_from_content_type(content_type: str) -> str:
    """Return the boundary parameter of a multipart Content-Type header value.

    The parameter may be quoted or not and its name is case-insensitive, as in AVS's
    `multipart/related; boundary=------abcde123; type=application/json`.

    Raises:
        ParserError: the value is not a multipart media type, has no boundary, has a
            malformed parameter list, or the boundary breaks RFC 2046 (1 to 70 bchars).
    """
    match = _MEDIA_TYPE.match(content_type)
    if match is None or match["type"].lower() != "multipart":
        raise ParserError(f"not a multipart content type: {content_type!r}")
    pos = match.end()
    boundary: str | None = None
    while pos < len(content_type):
        param = _PARAM.match(content_type, pos)
        if param is None:
            raise ParserError(f"malformed Content-Type parameters: {content_type!r}")
        if param["name"].lower() == "boundary":
            quoted = param["quoted"]
            value = param["token"] if quoted is None else re.sub(r"\\(.)", r"\1", quoted)
            if boundary is not None and value != boundary:
                raise ParserError("Content-Type names two different boundaries")
            boundary = value
        pos = param.end()
        if pos < len(content_type) and content_type[pos:].strip() in ("", ";"):
            break
    if boundary is None:
        raise ParserError(f"Content-Type has no boundary parameter: {content_type!r}")
    if not is_valid_boundary(boundary):
        raise ParserError(f"invalid multipart boundary {boundary!r} (RFC 2046: 1-70 bchars)")
    return boundary
