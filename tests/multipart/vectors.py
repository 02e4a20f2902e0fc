"""Test vectors: multipart bodies with the events they must produce, and malformed bodies with
the error they must raise. Each rule of RFC 2046 / RFC 2387 and each AVS quirk has one."""

from __future__ import annotations

from dataclasses import dataclass

from avsclient.exceptions import MultipartError, ParserError, ParserLimitReached
from avsclient.multipart import DEFAULT_LIMITS, MultipartLimits

from .util import Norm

B = "------abcde123"  # the boundary of AVS's documented response (avs-protocol 4.2)
JSON_CT = ("Content-Type", "application/json; charset=UTF-8")
OCTET_CT = ("Content-Type", "application/octet-stream")
STOP_CAPTURE = (
    b'{"directive":{"header":{"namespace":"SpeechRecognizer","name":"StopCapture",'
    b'"messageId":"a1"},"payload":{}}}'
)
SPEAK = (
    b'{"directive":{"header":{"namespace":"SpeechSynthesizer","name":"Speak",'
    b'"messageId":"a2","dialogRequestId":"d-1"},"payload":{"url":"cid:TTS_7b1e_0",'
    b'"format":"AUDIO_MPEG","token":"tok-9"}}}'
)
MP3 = bytes(range(256)) * 3 + b"\r\n-\r\n--\r\n--------abcde12\r\n--------abcde12X\r"


@dataclass(frozen=True)
class Vector:
    name: str
    body: bytes
    expected: list[Norm]
    boundary: str = B


@dataclass(frozen=True)
class BadVector:
    name: str
    body: bytes
    error: type[MultipartError]
    boundary: str = B
    limits: MultipartLimits = DEFAULT_LIMITS
    offset: int | None = None  # the exact offset, the same however the body is split


def part(*headers: tuple[str, str], data: bytes = b"") -> list[Norm]:
    out: list[Norm] = [("start", tuple(headers))]
    if data:
        out.append(("data", data))
    out.append(("end",))
    return out


AVS_RESPONSE = (
    b"--------abcde123\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
    + STOP_CAPTURE
    + b"\r\n--------abcde123\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
    + SPEAK
    + b"\r\n--------abcde123\r\nContent-Type: application/octet-stream\r\n"
    b"Content-ID: <TTS_7b1e_0>\r\n\r\n"
    + MP3
    + b"\r\n--------abcde123--\r\n"
)
AVS_EVENTS = [
    *part(JSON_CT, data=STOP_CAPTURE),
    *part(JSON_CT, data=SPEAK),
    *part(OCTET_CT, ("Content-ID", "<TTS_7b1e_0>"), data=MP3),
    ("done",),
]

VECTORS = [
    Vector("avs documented response", AVS_RESPONSE, AVS_EVENTS),
    Vector("preamble", b"This is the preamble.\r\nIt is ignored.\r\n" + AVS_RESPONSE, AVS_EVENTS),
    Vector("leading CRLF before the first delimiter", b"\r\n" + AVS_RESPONSE, AVS_EVENTS),
    Vector("preamble that looks like a delimiter prefix", b"\r\n--------abc\r\n" + AVS_RESPONSE,
           AVS_EVENTS),
    Vector(
        "transport padding after delimiters",
        b"--------abcde123 \t \r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
        + STOP_CAPTURE
        + b"\r\n--------abcde123\t\r\nContent-Type: application/octet-stream\r\n\r\nX"
        b"\r\n--------abcde123--  \r\n",
        [*part(JSON_CT, data=STOP_CAPTURE), *part(OCTET_CT, data=b"X"), ("done",)],
    ),
    Vector(
        "header names keep their case and value white space is trimmed",
        b"--------abcde123\r\ncontent-TYPE:application/json\r\nX-Custom-Header:   v a l  \r\n"
        b"\r\n{}\r\n--------abcde123--\r\n",
        [*part(("content-TYPE", "application/json"), ("X-Custom-Header", "v a l"), data=b"{}"),
         ("done",)],
    ),
    Vector(
        "consecutive duplicate delimiters yield no empty part (dash-boundary form)",
        b"--------abcde123\r\n--------abcde123\r\nContent-Type: application/json; charset=UTF-8"
        b"\r\n\r\n" + STOP_CAPTURE + b"\r\n--------abcde123\r\n--------abcde123\r\n"
        b"--------abcde123\r\nContent-Type: application/octet-stream\r\n\r\nZ"
        b"\r\n--------abcde123--\r\n",
        [*part(JSON_CT, data=STOP_CAPTURE), *part(OCTET_CT, data=b"Z"), ("done",)],
    ),
    Vector(
        "consecutive duplicate delimiters yield no empty part (CRLF form)",
        b"\r\n--------abcde123\r\n\r\n--------abcde123\r\nContent-Type: application/json; "
        b"charset=UTF-8\r\n\r\n" + STOP_CAPTURE + b"\r\n--------abcde123\r\n\r\n--------abcde123"
        b"  \r\nContent-Type: application/octet-stream\r\n\r\nZ\r\n--------abcde123--",
        [*part(JSON_CT, data=STOP_CAPTURE), *part(OCTET_CT, data=b"Z"), ("done",)],
    ),
    Vector(
        "epilogue is ignored, even when it holds delimiters and garbage",
        b"--------abcde123\r\nA: 1\r\n\r\nx\r\n--------abcde123--\r\nepilogue\r\n"
        b"--------abcde123\r\nNo colon here\r\n\n\r\x00",
        [*part(("A", "1"), data=b"x"), ("done",)],
    ),
    Vector(
        "close delimiter without a final CRLF",
        b"--------abcde123\r\nA: 1\r\n\r\nx\r\n--------abcde123--",
        [*part(("A", "1"), data=b"x"), ("done",)],
    ),
    Vector(
        "empty part content and a part without headers",
        b"--------abcde123\r\nA: 1\r\n\r\n\r\n--------abcde123\r\n\r\nno headers"
        b"\r\n--------abcde123--\r\n",
        [*part(("A", "1")), *part(data=b"no headers"), ("done",)],
    ),
    Vector(
        "content dense with near misses of the delimiter",
        b"--------abcde123\r\n\r\n\r\r\n\r\n-\r\n--\r\n------\r\n--------abcde12\r\n"
        b"-------abcde123\r\n--------abcde12\r\r\n--------abcde12"
        b"\r\n--------abcde123--",
        [*part(data=b"\r\r\n\r\n-\r\n--\r\n------\r\n--------abcde12\r\n-------abcde123"
               b"\r\n--------abcde12\r\r\n--------abcde12"), ("done",)],
    ),
    Vector(
        "binary content with every byte value",
        b"--------abcde123\r\nContent-Type: application/octet-stream\r\n\r\n"
        + bytes(range(256)) * 4 + b"\r\n--------abcde123--\r\n",
        [*part(OCTET_CT, data=bytes(range(256)) * 4), ("done",)],
    ),
    Vector(
        "folded header lines are joined",
        b"--------abcde123\r\nContent-Disposition: form-data;\r\n\tname=\"metadata\"\r\n\r\n{}"
        b"\r\n--------abcde123--\r\n",
        [*part(("Content-Disposition", 'form-data; name="metadata"'), data=b"{}"), ("done",)],
    ),
    Vector(
        "UTF-8 and Latin-1 header values",
        "--------abcde123\r\nX-Name: caf\u00e9\r\n".encode()
        + b"X-Latin: caf\xe9\r\n\r\n.\r\n--------abcde123--\r\n",
        [*part(("X-Name", "caf\u00e9"), ("X-Latin", "caf\u00e9"), data=b"."), ("done",)],
    ),
    Vector(
        "a boundary that is a single character",
        b"--x\r\nA: 1\r\n\r\n-x\r\n-\r\n--y\r\n--x--",
        [*part(("A", "1"), data=b"-x\r\n-\r\n--y"), ("done",)],
        boundary="x",
    ),
    Vector(
        "a 70-character boundary with spaces and punctuation",
        b"--" + b"a'()+_,-./:=? " * 4 + b"abcdefghijklmn" + b"\r\n\r\nv"
        + b"\r\n--" + b"a'()+_,-./:=? " * 4 + b"abcdefghijklmn" + b"--",
        [*part(data=b"v"), ("done",)],
        boundary="a'()+_,-./:=? " * 4 + "abcdefghijklmn",
    ),
]

# One part, the shape of most AVS responses: with a byte glued in front of its first delimiter,
# everything up to the close delimiter reads as preamble and the message has no part.
ONE_PART_HEAD = b"--------abcde123\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
ONE_PART = ONE_PART_HEAD + STOP_CAPTURE + b"\r\n--------abcde123--\r\n"
# Where the close delimiter's "--boundary" starts in ONE_PART.
ONE_PART_CLOSE = len(ONE_PART_HEAD) + len(STOP_CAPTURE) + 2


def glued(prefix: bytes) -> BadVector:
    return BadVector(f"{prefix!r} glued to the first delimiter of a one-part body",
                     prefix + ONE_PART, ParserError, offset=len(prefix) + ONE_PART_CLOSE)


BAD_VECTORS = [
    glued(b"\r"),
    glued(b"\n"),
    glued(b"x"),
    glued(b"\r\r"),
    glued(b"\n\r\n-"),
    BadVector("an empty multipart body (close delimiter only: RFC 2046 requires one part)",
              b"--------abcde123--\r\n", ParserError, offset=0),
    BadVector("a preamble then a close delimiter", b"preamble\r\n--------abcde123--",
              ParserError, offset=10),
    BadVector("duplicate delimiters then a close delimiter, no part",
              b"--------abcde123\r\n\r\n--------abcde123  \r\n--------abcde123--", ParserError,
              offset=40),
    BadVector("header line without a colon", b"--------abcde123\r\nNoColon\r\n\r\n", ParserError,
              offset=18),
    BadVector("non-ASCII header name", "--------abcde123\r\nN\u00e4me: x\r\n\r\n".encode(),
              ParserError, offset=18),
    BadVector("header name with a space", b"--------abcde123\r\nOk: 1\r\nBad Name: x\r\n\r\n",
              ParserError, offset=25),
    BadVector("empty header name", b"--------abcde123\r\n: x\r\n\r\n", ParserError, offset=18),
    BadVector("folded line first in the block", b"--------abcde123\r\n x: 1\r\n\r\n",
              ParserError, offset=18),
    BadVector("bare LF after a delimiter", b"--------abcde123\nA: 1\r\n\r\n", ParserError,
              offset=16),
    BadVector("bare CR after a delimiter", b"--------abcde123\rA: 1\r\n\r\n", ParserError,
              offset=16),
    BadVector("bare LF inside a header block", b"--------abcde123\r\nA: 1\nB: 2\r\n\r\n",
              ParserError, offset=18),
    BadVector("bare CR inside a header value", b"--------abcde123\r\nA: 1\rB\r\n\r\n",
              ParserError, offset=18),
    BadVector("garbage after a delimiter (boundary inside content)",
              b"--------abcde123\r\nA: 1\r\n\r\ndata\r\n--------abcde123X\r\n", ParserError,
              offset=48),
    BadVector("one dash after a delimiter", b"--------abcde123-x", ParserError, offset=16),
    BadVector("padding before the close delimiter's dashes", b"--------abcde123 --",
              ParserError, offset=17),
    BadVector("header block over the limit", b"--------abcde123\r\nA: " + b"x" * 200 + b"\r\n\r\n",
              ParserLimitReached, limits=MultipartLimits(max_header_size=64), offset=18 + 64),
    BadVector("too many headers",
              b"--------abcde123\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(5)) + b"\r\n",
              ParserLimitReached, limits=MultipartLimits(max_headers=4)),
    BadVector("preamble over the limit", b"x" * 100 + b"\r\n--------abcde123\r\n\r\n",
              ParserLimitReached, limits=MultipartLimits(max_preamble_size=50), offset=50),
    BadVector("preamble over the limit just before the delimiter (found by fuzzing)",
              b"x" * 40 + b"\r\n--b\r\n\r\nhi\r\n--b--", ParserLimitReached, boundary="b",
              limits=MultipartLimits(max_preamble_size=32), offset=32),
    BadVector("too many parts",
              b"--------abcde123\r\n\r\na\r\n--------abcde123\r\n\r\nb\r\n--------abcde123--",
              ParserLimitReached, limits=MultipartLimits(max_parts=1)),
    BadVector("endless transport padding", b"--------abcde123" + b" " * 2000 + b"\r\n",
              ParserLimitReached, offset=16 + 1024),
    BadVector("truncated inside a part", b"--------abcde123\r\nA: 1\r\n\r\ndata", ParserError),
    BadVector("truncated inside headers", b"--------abcde123\r\nA: 1\r\n", ParserError),
    BadVector("truncated after a delimiter",
              b"--------abcde123\r\nA: 1\r\n\r\nx\r\n--------abcde123", ParserError),
    BadVector("truncated in the preamble", b"no delimiter at all", ParserError),
    BadVector("empty body", b"", ParserError),
]
