"""Keeps bearer tokens out of third-party DEBUG logs.

hpack (under h2 and httpx's HTTP/2) logs whole header blocks at DEBUG: "Encoded header block to
%s", "Decoding %s" and each decoded header. h2 sends `authorization` as a never-indexed field
and hpack redacts such fields in one message but not in those, so an application that turns on
DEBUG logging would write every access token to its logs (Huffman-coded, which is no secret).
A filter on hpack's logger replaces header blocks by their length and never-indexed headers by
their name; every other hpack message passes unchanged.
"""

from __future__ import annotations

import logging

__all__ = ["install"]

_BLOCK_MESSAGES = frozenset({"Encoded header block to %s", "Decoding %s"})
_REDACTED = "<redacted>"


class _HeaderBlockRedactor(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not isinstance(args, tuple) or not args:
            return True
        if record.msg in _BLOCK_MESSAGES:
            block = args[0]
            size = len(block) if isinstance(block, bytes | bytearray | memoryview) else "?"
            record.args = (f"<header block of {size} bytes, redacted>", *args[1:])
        elif isinstance(record.msg, str) and record.msg.startswith("Decoded %s"):
            header = args[0]
            if isinstance(header, tuple) and getattr(header, "indexable", True) is False:
                record.args = ((header[0], _REDACTED), *args[1:])
        return True


_FILTER = _HeaderBlockRedactor()


def install() -> None:
    """Attach the filter to hpack's logger (once; safe to call again)."""
    logger = logging.getLogger("hpack.hpack")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
