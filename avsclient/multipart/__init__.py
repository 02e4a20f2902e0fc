"""Streaming multipart for AVS: a zero-copy `multipart/related` parser and the
`multipart/form-data` event encoder. Sans-IO: no sockets, no asyncio, no clock."""

from __future__ import annotations

from avsclient.multipart.encoder import MultipartEncoder, encode_event
from avsclient.multipart.events import (
    MessageEnded,
    MultipartEvent,
    PartData,
    PartEnded,
    PartStarted,
)
from avsclient.multipart.headers import (
    Headers,
    boundary_from_content_type,
    is_valid_boundary,
    strip_angle_brackets,
)
from avsclient.multipart.parser import DEFAULT_LIMITS, MultipartLimits, MultipartParser

__all__ = [
    "DEFAULT_LIMITS",
    "Headers",
    "MessageEnded",
    "MultipartEncoder",
    "MultipartEvent",
    "MultipartLimits",
    "MultipartParser",
    "PartData",
    "PartEnded",
    "PartStarted",
    "boundary_from_content_type",
    "encode_event",
    "is_valid_boundary",
    "strip_angle_brackets",
]
