"""Helpers for the multipart tests: feed a body in given pieces and normalise the events."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from avsclient.multipart import (
    DEFAULT_LIMITS,
    MessageEnded,
    MultipartEvent,
    MultipartLimits,
    MultipartParser,
    PartData,
    PartEnded,
    PartStarted,
)

# A normalised event: ("start", ((name, value), ...)), ("data", bytes), ("end",), ("done",).
Norm = tuple[object, ...]


def normalize(events: Iterable[MultipartEvent]) -> list[Norm]:
    """Turn events into comparable tuples, merging consecutive data events."""
    out: list[Norm] = []
    for event in events:
        if isinstance(event, PartData):
            assert len(event.data) > 0, "empty PartData emitted"
            if out and out[-1][0] == "data":
                out[-1] = ("data", out[-1][1] + bytes(event.data))  # type: ignore[operator]
            else:
                out.append(("data", bytes(event.data)))
        elif isinstance(event, PartStarted):
            out.append(("start", event.headers.raw))
        elif isinstance(event, PartEnded):
            out.append(("end",))
        elif isinstance(event, MessageEnded):
            out.append(("done",))
        else:  # pragma: no cover
            raise AssertionError(f"unknown event {event!r}")
    return out


def split_at(body: bytes, cuts: Sequence[int]) -> list[bytes]:
    """Split `body` at the given offsets (sorted, deduplicated, clipped)."""
    points = sorted({c for c in cuts if 0 < c < len(body)})
    pieces, start = [], 0
    for point in points:
        pieces.append(body[start:point])
        start = point
    pieces.append(body[start:])
    return pieces


def parse(
    boundary: str,
    pieces: Iterable[bytes],
    *,
    limits: MultipartLimits = DEFAULT_LIMITS,
    close: bool = True,
) -> list[Norm]:
    """Parse pieces one by one, optionally close, and return normalised events."""
    parser = MultipartParser(boundary, limits=limits)
    events: list[MultipartEvent] = []
    for piece in pieces:
        events.extend(parser.feed(piece))
    if close:
        parser.close()
    return normalize(events)


def every_split(body: bytes) -> Iterable[list[bytes]]:
    """The body whole, byte by byte, and cut in two at every offset."""
    yield [body]
    yield [body[i : i + 1] for i in range(len(body))]
    for i in range(1, len(body)):
        yield [body[:i], body[i:]]
