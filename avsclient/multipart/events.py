"""Events produced by `MultipartParser`: the rhythm of a multipart body, part by part.

A body yields `PartStarted`, then zero or more `PartData`, then `PartEnded`, for each part, and
`MessageEnded` once the close delimiter has been read. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass

from avsclient.multipart.headers import Headers

__all__ = ["MessageEnded", "MultipartEvent", "PartData", "PartEnded", "PartStarted"]

# How much of a data event's bytes its repr shows: audio must never flood a log.
_REPR_PREFIX = 20


@dataclass(frozen=True, slots=True, kw_only=True)
class MultipartEvent:
    """Base class of the multipart events."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PartStarted(MultipartEvent):
    """A part's header block was read; its content follows as `PartData` events.

    Attributes:
        headers: the part's headers (case-insensitive lookup).
    """

    headers: Headers


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class PartData(MultipartEvent):
    """A piece of the current part's content.

    Attributes:
        data: a read-only view of the bytes that were fed in (no copy). It stays valid as long
            as the caller keeps it: the parser never mutates the buffers it hands out.
    """

    data: memoryview

    def __repr__(self) -> str:
        prefix = bytes(self.data[:_REPR_PREFIX])
        more = "..." if len(self.data) > _REPR_PREFIX else ""
        return f"PartData(len={len(self.data)}, data={prefix!r}{more})"


@dataclass(frozen=True, slots=True, kw_only=True)
class PartEnded(MultipartEvent):
    """The current part ended: the delimiter after it was read completely."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageEnded(MultipartEvent):
    """The close delimiter was read: the body is complete. Anything after it is epilogue."""
