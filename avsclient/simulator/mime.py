"""The simulator's message bodies, sans-IO: event upload parsing and directive writing.

Uploads (`multipart/form-data`, avs-protocol.md section 3) are parsed with defnull `multipart`
(`PushMultipartParser`), an implementation independent of avsclient's own parser and encoder, so
the simulator checks what our encoder writes rather than agreeing with it by construction.
Responses are `multipart/related` bodies (section 4.2) written part by part.
"""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass
from email.message import Message
from typing import Any, NoReturn

from avsclient.simulator._extra import missing_extra

try:
    import multipart
except ImportError as exc:  # the simulator extra is not installed
    raise missing_extra("multipart") from exc

__all__ = [
    "RelatedWriter",
    "UploadError",
    "UploadParser",
    "UploadPart",
    "avs_exception_body",
    "exception_code_for_status",
    "parse_content_type",
]

_CRLF = b"\r\n"

# AVS exception codes by HTTP status (avs-protocol.md 4.1; 503 uses "N/A").
_EXCEPTION_CODES = {
    400: "INVALID_REQUEST_EXCEPTION",
    403: "UNAUTHORIZED_REQUEST_EXCEPTION",
    429: "THROTTLING_EXCEPTION",
    500: "INTERNAL_SERVICE_EXCEPTION",
    503: "N/A",
}


class UploadError(ValueError):
    """An event upload is malformed; the simulator answers 400 INVALID_REQUEST_EXCEPTION."""


def exception_code_for_status(status: int) -> str:
    """The AVS exception code the simulator sends with an error `status`."""
    return _EXCEPTION_CODES.get(status, "INTERNAL_SERVICE_EXCEPTION" if status >= 500 else "N/A")


def avs_exception_body(status: int, description: str | None) -> bytes:
    """The JSON body of an AVS error response (avs-protocol.md 4.1, `System.Exception`)."""
    body = {
        "header": {"namespace": "System", "name": "Exception", "messageId": str(uuid.uuid4())},
        "payload": {"code": exception_code_for_status(status), "description": description},
    }
    return json.dumps(body, separators=(",", ":")).encode()


def parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    """Split a Content-Type header into its lower-cased media type and its parameters.

    Quoted parameter values are unquoted (RFC 2045 section 5.1).
    """
    message = Message()
    message["content-type"] = value
    params = {k.lower(): str(v) for k, v in message.get_params(failobj=[])[1:]}
    return message.get_content_type(), params


# -- upload ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadPart:
    """One part of an upload other than metadata and audio (e.g. `wakewordEngineMetadata`)."""

    name: str
    content_type: str
    data: bytes


class UploadParser:
    """Parses one event upload incrementally: a JSON `metadata` part, then an optional `audio` part.

    Feed DATA as it arrives; `metadata` is set as soon as the metadata part is complete (the
    response may begin before the upload ends), and `audio_length` grows with the audio.
    Errors are sticky: after an `UploadError` every call raises it again.

    Args:
        boundary: the boundary from the request's Content-Type.
        max_metadata: largest accepted metadata part, in bytes.
        max_audio: largest accepted audio part, in bytes.
        keep_audio: keep the audio bytes (else only count them).
    """

    def __init__(
        self, boundary: str, *, max_metadata: int, max_audio: int, keep_audio: bool = True
    ) -> None:
        try:
            self._parser = multipart.PushMultipartParser(
                # Not strict: strict mode rejects an epilogue (even the final CRLF) that arrives
                # in a later DATA frame than the close delimiter, which RFC 2046 5.1.1 allows.
                boundary,
                max_header_size=8192,
                max_segment_count=8,
            )
        except multipart.MultipartError as exc:
            raise UploadError(f"bad boundary: {exc}") from exc
        self._max_metadata = max_metadata
        self._max_audio = max_audio
        self._keep_audio = keep_audio
        self._segment: Any = None  # multipart.MultipartSegment of the current part
        self._kind = ""  # "metadata", "audio" or "other"
        self._metadata_buf = bytearray()
        self._other_buf = bytearray()
        self._audio = bytearray()
        self._error: UploadError | None = None
        self.metadata: dict[str, Any] | None = None
        self.audio_length = 0
        self.has_audio = False
        self.other_parts: list[UploadPart] = []
        self.complete = False

    @property
    def audio(self) -> bytes:
        """The audio received so far (empty when `keep_audio` is False)."""
        return bytes(self._audio)

    def feed(self, data: bytes) -> None:
        """Parse the next chunk of the body.

        Raises:
            UploadError: the body is malformed or exceeds a limit.
        """
        if self._error is not None:
            raise self._error
        if self.complete:
            raise ValueError("feed() after close()")
        if not data:
            return  # defnull's parser reads an empty chunk as the end of input; close() is that
        try:
            for item in self._parser.parse(data):
                if item is None:
                    self._end_part()
                elif isinstance(item, multipart.MultipartSegment):
                    self._start_part(item)
                else:
                    self._part_data(item)
        except multipart.MultipartError as exc:
            self._fail(f"malformed multipart body: {exc}", exc)

    def close(self) -> None:
        """The request body ended: check that it was complete and well formed.

        Raises:
            UploadError: the body ended early, or had no metadata part.
        """
        if self._error is not None:
            raise self._error
        try:
            self._parser.close(check_complete=True)
        except multipart.MultipartError as exc:
            self._fail("the body ended before the closing boundary", exc)
        self.complete = True
        if self.metadata is None:
            self._fail("no metadata part")
        header = self.metadata["event"]["header"]
        if header["name"] == "Recognize" and not self.has_audio:
            self._fail("Recognize needs an audio part")

    def _fail(self, message: str, cause: Exception | None = None) -> NoReturn:
        self._error = UploadError(message)
        if cause is not None:
            self._error.__cause__ = cause
        raise self._error

    def _start_part(self, segment: Any) -> None:
        name = segment.name
        content_type = (segment.content_type or "").lower()
        if self.metadata is None and name != "metadata":
            self._fail(f"the first part must be named 'metadata', not {name!r}")
        if name == "metadata":
            if self.metadata is not None or self._kind == "metadata":
                self._fail("more than one metadata part")
            if not content_type.startswith("application/json"):
                self._fail(f"the metadata part must be application/json, not {content_type!r}")
            self._kind = "metadata"
        elif name == "audio":
            if self.has_audio:
                self._fail("more than one audio part")
            if not content_type.startswith("application/octet-stream"):
                self._fail(f"the audio part must be application/octet-stream, not {content_type!r}")
            self.has_audio = True
            self._kind = "audio"
        else:
            self._kind = "other"
            self._other_buf.clear()
        self._segment = segment

    def _part_data(self, chunk: bytes) -> None:
        if self._kind == "audio":
            self.audio_length += len(chunk)
            if self.audio_length > self._max_audio:
                self._fail(f"audio longer than {self._max_audio} bytes")
            if self._keep_audio:
                self._audio += chunk
            return
        buf = self._metadata_buf if self._kind == "metadata" else self._other_buf
        buf += chunk
        if len(buf) > self._max_metadata:
            self._fail(f"part {self._segment.name!r} longer than {self._max_metadata} bytes")

    def _end_part(self) -> None:
        if self._kind == "metadata":
            self.metadata = _parse_event_json(bytes(self._metadata_buf))
        elif self._kind == "other":
            self.other_parts.append(
                UploadPart(
                    name=self._segment.name,
                    content_type=self._segment.content_type or "",
                    data=bytes(self._other_buf),
                )
            )
        self._kind = ""
        self._segment = None


def _parse_event_json(raw: bytes) -> dict[str, Any]:
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise UploadError(f"metadata is not valid JSON: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("event"), dict):
        raise UploadError("metadata must be a JSON object with an 'event' object")
    event = document["event"]
    header = event.get("header")
    if not isinstance(header, dict):
        raise UploadError("event.header must be an object")
    for key in ("namespace", "name", "messageId"):
        if not isinstance(header.get(key), str) or not header[key]:
            raise UploadError(f"event.header.{key} must be a non-empty string")
    if "dialogRequestId" in header and not isinstance(header["dialogRequestId"], str):
        raise UploadError("event.header.dialogRequestId must be a string")
    if not isinstance(event.get("payload"), dict):
        raise UploadError("event.payload must be an object")
    if "context" in document and not isinstance(document["context"], list):
        raise UploadError("context must be a list")
    return document


# -- response -------------------------------------------------------------------------------


class RelatedWriter:
    """Writes a `multipart/related` body part by part (avs-protocol.md 4.2).

    Every part is followed at once by its full delimiter line: `CRLF--boundary CRLF` when more
    parts may follow, `CRLF--boundary--CRLF` for the last. A streaming parser can then emit each
    part as soon as it arrives, which the never-ending downchannel body needs (4.5).
    """

    def __init__(self, boundary: str | None = None) -> None:
        self.boundary = boundary or "------avs-sim-" + secrets.token_hex(12)
        self._dash = b"--" + self.boundary.encode("ascii")
        self._started = False
        self.finished = False

    @property
    def content_type(self) -> str:
        """The response Content-Type header value."""
        return f"multipart/related; boundary={self.boundary}; type=application/json"

    def part(
        self,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        last: bool = False,
        corrupt: bool = False,
    ) -> list[bytes]:
        """Encode one part; returns chunks to send in order (the body is not copied).

        Args:
            headers: the part headers.
            body: the part content.
            last: close the body after this part.
            corrupt: break the delimiter after the part (the malformed-multipart fault).
        """
        if self.finished:
            raise ValueError("the multipart body is already finished")
        head = bytearray()
        if not self._started:
            head += self._dash + _CRLF
            self._started = True
        for name, value in headers:
            head += f"{name}: {value}".encode("latin-1") + _CRLF
        head += _CRLF
        if corrupt:
            # A delimiter followed by bytes that are neither CRLF nor "--" (RFC 2046 5.1.1).
            tail = _CRLF + self._dash + b"\x00not-a-delimiter" + _CRLF
        elif last:
            tail = _CRLF + self._dash + b"--" + _CRLF
            self.finished = True
        else:
            tail = _CRLF + self._dash + _CRLF
        return [bytes(head), body, tail]

    def close(self) -> bytes:
        """Finish the body if no part did: the bytes to send before END_STREAM."""
        if self.finished:
            return b""
        self.finished = True
        if not self._started:
            return self._dash + b"--" + _CRLF
        # A part was promised by the last delimiter: send an empty part of a type clients skip
        # (avs-protocol.md 4.2 rule 6), then the close delimiter.
        return b"Content-Type: text/plain" + _CRLF + _CRLF + _CRLF + self._dash + b"--" + _CRLF

    def directive(
        self,
        directive: dict[str, Any],
        *,
        last: bool = False,
        corrupt_json: bool = False,
        corrupt_framing: bool = False,
    ) -> list[bytes]:
        """Encode one directive JSON part.

        Args:
            directive: the JSON document, `{"directive": {...}}`.
            last: close the body after this part.
            corrupt_json: send the JSON cut in half (the malformed-JSON fault).
            corrupt_framing: break the delimiter after the part.
        """
        raw = json.dumps(directive, separators=(",", ":")).encode()
        if corrupt_json:
            raw = raw[: max(1, len(raw) // 2)]
        headers = [("Content-Type", "application/json; charset=UTF-8")]
        return self.part(headers, raw, last=last, corrupt=corrupt_framing)

    def attachment(
        self, content_id: str, data: bytes, *, last: bool = False, corrupt: bool = False
    ) -> list[bytes]:
        """Encode one binary attachment part with `Content-ID: <content_id>` (4.3)."""
        headers = [("Content-Type", "application/octet-stream"), ("Content-ID", f"<{content_id}>")]
        return self.part(headers, data, last=last, corrupt=corrupt)
