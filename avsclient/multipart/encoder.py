"""The `multipart/form-data` encoder for AVS event bodies. Sans-IO: it only returns bytes.

An AVS event is one JSON part named `metadata`, then, for `SpeechRecognizer.Recognize`, one
binary part named `audio` whose content streams while the user speaks (avs-protocol 3.1, 3.3)::

    encoder = MultipartEncoder()
    send(encoder.metadata_part(event_json))   # delimiter, headers, JSON
    send(encoder.audio_part_start())          # delimiter, headers; content follows
    for frame in microphone:                  # each 320-byte frame as it is captured,
        send(frame)                           # passed through without joining
    send(encoder.end())                       # close delimiter

`encode_event()` does it in one call for events without audio.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

from avsclient.exceptions import LocalProtocolError
from avsclient.multipart.headers import is_valid_boundary

__all__ = ["MultipartEncoder", "encode_event"]

METADATA_HEADERS = (
    ("Content-Disposition", 'form-data; name="metadata"'),
    ("Content-Type", "application/json; charset=UTF-8"),
)
AUDIO_HEADERS = (
    ("Content-Disposition", 'form-data; name="audio"'),
    ("Content-Type", "application/octet-stream"),
)


class MultipartEncoder:
    """Writes one `multipart/form-data` body, part by part.

    Args:
        boundary: the boundary to use. By default a fresh random one with 128 bits of entropy,
            so that it cannot occur in streamed audio it never sees.

    Raises:
        ValueError: the given boundary breaks RFC 2046 (1 to 70 bchars, no trailing space).
    """

    __slots__ = ("_delimiter", "_ended", "_started", "boundary", "content_type")

    def __init__(self, boundary: str | None = None) -> None:
        if boundary is None:
            boundary = f"avsclient-{secrets.token_hex(16)}"  # 128 random bits
        if not is_valid_boundary(boundary):
            raise ValueError(f"invalid multipart boundary {boundary!r} (RFC 2046: 1-70 bchars)")
        self.boundary = boundary
        self.content_type = f"multipart/form-data; boundary={boundary}"
        self._delimiter = b"\r\n--" + boundary.encode("ascii")
        self._started = False
        self._ended = False

    def part_head(self, headers: Iterable[tuple[str, str]]) -> bytes:
        """Return the delimiter and header block that start the next part.

        The part's content is whatever the caller sends next, up to the next `part_head()`
        or `end()`.

        Raises:
            LocalProtocolError: the body was already ended, or a header name or value holds
                a character that would break the header block (CR, LF, a colon in a name).
        """
        if self._ended:
            raise LocalProtocolError("the multipart body was already ended")
        out = [self._delimiter[2:] if not self._started else self._delimiter, b"\r\n"]
        for name, value in headers:
            if not name or any(c in name for c in ":\r\n \t") or any(c in value for c in "\r\n"):
                raise LocalProtocolError(f"header {name!r} cannot be written to a multipart body")
            out.append(f"{name}: {value}\r\n".encode())
        out.append(b"\r\n")
        self._started = True
        return b"".join(out)

    def part(self, headers: Iterable[tuple[str, str]], content: bytes) -> bytes:
        """Return a whole part: its head, then `content`.

        Raises:
            LocalProtocolError: as `part_head()`, or the content holds the delimiter.
        """
        if self._delimiter in content:
            raise LocalProtocolError("part content contains the multipart delimiter")
        return self.part_head(headers) + content

    def metadata_part(self, event: Mapping[str, Any] | bytes | str) -> bytes:
        """Return the `metadata` part holding an event's JSON (a mapping is serialised).

        Raises:
            LocalProtocolError: as `part()`.
        """
        if isinstance(event, Mapping):
            content = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
        elif isinstance(event, str):
            content = event.encode()
        else:
            content = bytes(event)
        return self.part(METADATA_HEADERS, content)

    def audio_part_start(self) -> bytes:
        """Return the head of the `audio` part; the caller then sends the audio as it comes.

        Raises:
            LocalProtocolError: the body was already ended.
        """
        return self.part_head(AUDIO_HEADERS)

    def end(self) -> bytes:
        """Return the close delimiter that ends the body.

        Raises:
            LocalProtocolError: the body was already ended, or no part was written.
        """
        if self._ended:
            raise LocalProtocolError("the multipart body was already ended")
        if not self._started:
            raise LocalProtocolError("a multipart body needs at least one part")
        self._ended = True
        return self._delimiter + b"--\r\n"


def encode_event(
    event: Mapping[str, Any] | bytes | str, *, boundary: str | None = None
) -> tuple[str, bytes]:
    """Encode an event without audio; return (Content-Type header value, body).

    Raises:
        ValueError: the given boundary is invalid.
        LocalProtocolError: the event JSON contains the delimiter.
    """
    encoder = MultipartEncoder(boundary)
    return encoder.content_type, encoder.metadata_part(event) + encoder.end()
