"""AVS messages as typed values: directives parsed from JSON, events and context states built
for JSON (avs-protocol 3.2, 4.2, 5). No I/O here.

```python
directive = parse_directive(b'{"directive": {"header": {...}, "payload": {...}}}')
event = Event.build("SpeechSynthesizer", "SpeechStarted", {"token": "t-1"})
document = event.to_json(context=[VolumeState(volume=40, muted=False).to_json()])
```
"""

from __future__ import annotations

import enum
import json
import re
import uuid
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from avsclient.exceptions import RemoteProtocolError

__all__ = [
    "MAX_DIRECTIVE_DEPTH",
    "ContextState",
    "Directive",
    "Event",
    "ExceptionType",
    "Header",
    "NO_DIALOG_IDS",
    "exception_encountered",
    "new_message_id",
    "parse_directive",
]

#: dialogRequestId values that mean "no dialog" (avs-protocol 5.0; the SDK treats the string
#: "null" like an absent id).
NO_DIALOG_IDS = frozenset({"", "null"})


class ExceptionType(enum.Enum):
    """The `error.type` values of `System.ExceptionEncountered` (avs-protocol 5.3)."""

    #: The directive could not be parsed or had invalid values.
    UNEXPECTED_INFORMATION_RECEIVED = "UNEXPECTED_INFORMATION_RECEIVED"
    #: The device does not support the directive.
    UNSUPPORTED_OPERATION = "UNSUPPORTED_OPERATION"
    #: The device failed while handling the directive.
    INTERNAL_ERROR = "INTERNAL_ERROR"


def new_message_id() -> str:
    """A fresh messageId (a random UUID, avs-protocol 3.2)."""
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True, kw_only=True)
class Header:
    """The header of a directive or event.

    Attributes:
        namespace: the interface, e.g. `SpeechSynthesizer`.
        name: the message name, e.g. `Speak`.
        message_id: the messageId.
        dialog_request_id: the dialogRequestId, or None when absent, empty or "null".
    """

    namespace: str
    name: str
    message_id: str
    dialog_request_id: str | None = None

    def to_json(self) -> dict[str, str]:
        """The header object; `dialogRequestId` only when set (avs-protocol 3.2)."""
        out = {"namespace": self.namespace, "name": self.name, "messageId": self.message_id}
        if self.dialog_request_id is not None:
            out["dialogRequestId"] = self.dialog_request_id
        return out


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Directive:
    """One directive received from AVS.

    Attributes:
        namespace: `header.namespace`.
        name: `header.name`.
        message_id: `header.messageId`.
        dialog_request_id: `header.dialogRequestId`, or None when absent, "" or "null".
        payload: the payload object.
        raw: the JSON part exactly as received (for `ExceptionEncountered`).
        source: which response carried it: `cid:` URLs resolve only against attachments of
            the same response (avs-protocol 4.3). None for directives built locally.
        correlation_token: `header.eventCorrelationToken` (Alexa.EventProcessed names the
            event it acknowledges with it, avs-protocol 9.3), or None.
    """

    namespace: str
    name: str
    message_id: str
    dialog_request_id: str | None
    payload: dict[str, Any]
    raw: bytes = b""
    source: Hashable | None = field(default=None, compare=False)
    correlation_token: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        """`(namespace, name)`, the routing key."""
        return (self.namespace, self.name)

    @property
    def header(self) -> Header:
        """The header as a `Header`."""
        return Header(
            namespace=self.namespace,
            name=self.name,
            message_id=self.message_id,
            dialog_request_id=self.dialog_request_id,
        )

    def __repr__(self) -> str:
        return (
            f"Directive({self.namespace}.{self.name}, message_id={self.message_id!r}, "
            f"dialog_request_id={self.dialog_request_id!r})"
        )


#: Deepest nesting of arrays and objects accepted in a directive's JSON. Real directives nest
#: a handful of levels (AudioPlayer.Play: 5) and rich ones (templates, APL documents) a few
#: dozen; 100,000 nested arrays would exhaust the decoder's recursion, so nesting is counted,
#: without recursion, before the decoder runs.
MAX_DIRECTIVE_DEPTH = 128

# A JSON string, escapes included (unrolled so that long strings cost no backtracking), and
# the brackets left once strings are gone.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPENERS = frozenset(b"[{")


def _check_depth(raw: bytes, limit: int) -> None:
    """Raise RemoteProtocolError when arrays and objects nest deeper than `limit`."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return  # the usual case, without a copy (brackets inside strings only over-count)
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    if brackets.count(b"[") + brackets.count(b"{") <= limit:
        return  # the usual case: fewer openers than the limit
    depth = 0
    for byte in brackets:
        if byte in _OPENERS:
            depth += 1
            if depth > limit:
                raise RemoteProtocolError(f"directive JSON nests deeper than {limit} levels")
        else:
            depth -= 1


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not a JSON number")


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise RemoteProtocolError(f"directive {what} must be a non-empty string")
    return value


def parse_directive(
    data: bytes | bytearray | memoryview,
    *,
    source: Hashable = None,
    max_depth: int = MAX_DIRECTIVE_DEPTH,
) -> Directive:
    """Parse one JSON part, `{"directive": {"header": {...}, "payload": {...}}}`.

    Whatever the bytes hold, the only exception is `RemoteProtocolError`: nesting is bounded
    before decoding, and integers too long to convert (more digits than Python's limit) or
    the non-JSON constants `NaN` and `Infinity` are refused like any other bad JSON.

    Args:
        data: the part's content (UTF-8 JSON).
        source: the response it came in, stored on the directive.
        max_depth: the deepest nesting of arrays and objects accepted.

    Returns:
        The directive; a missing payload is read as `{}`.

    Raises:
        RemoteProtocolError: the content is not UTF-8 JSON, nests deeper than `max_depth`,
            is not a directive object, or its header lacks a namespace, name or messageId.
    """
    raw = bytes(data)
    _check_depth(raw, max_depth)
    try:
        document = json.loads(raw, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise RemoteProtocolError(f"directive is not valid JSON: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("directive"), dict):
        raise RemoteProtocolError('a directive part must be {"directive": {...}}')
    body = document["directive"]
    header = body.get("header")
    if not isinstance(header, dict):
        raise RemoteProtocolError("directive has no header object")
    payload = body.get("payload", {})
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise RemoteProtocolError("directive payload must be an object")
    dialog = header.get("dialogRequestId")
    if dialog is not None and not isinstance(dialog, str):
        raise RemoteProtocolError("directive dialogRequestId must be a string")
    correlation = header.get("eventCorrelationToken")
    if correlation is not None and not isinstance(correlation, str):
        raise RemoteProtocolError("directive eventCorrelationToken must be a string")
    return Directive(
        namespace=_text(header.get("namespace"), "namespace"),
        name=_text(header.get("name"), "name"),
        message_id=_text(header.get("messageId"), "messageId"),
        dialog_request_id=None if dialog is None or dialog in NO_DIALOG_IDS else dialog,
        payload=payload,
        raw=raw,
        source=source,
        correlation_token=correlation or None,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One event to send to AVS.

    Attributes:
        header: the header (fresh messageId; dialogRequestId only on Recognize).
        payload: the payload object.
    """

    header: Header
    payload: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        namespace: str,
        name: str,
        payload: Mapping[str, Any] | None = None,
        *,
        dialog_request_id: str | None = None,
    ) -> Event:
        """An event with a fresh messageId."""
        header = Header(
            namespace=namespace,
            name=name,
            message_id=new_message_id(),
            dialog_request_id=dialog_request_id,
        )
        return cls(header=header, payload=dict(payload or {}))

    @property
    def message_id(self) -> str:
        """The event's messageId."""
        return self.header.message_id

    def to_json(self, *, context: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
        """The whole metadata document, `{"context": [...], "event": {...}}`.

        Args:
            context: the context states to send, already as JSON objects; None leaves the
                key out (only some events carry context, avs-protocol 3.2).
        """
        document: dict[str, Any] = {}
        if context is not None:
            document["context"] = list(context)
        document["event"] = {"header": self.header.to_json(), "payload": dict(self.payload)}
        return document


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextState:
    """One context entry, e.g. `Speaker.VolumeState` (avs-protocol 5.1)."""

    namespace: str
    name: str
    payload: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        """`{"header": {"namespace", "name"}, "payload": {...}}`."""
        return {
            "header": {"namespace": self.namespace, "name": self.name},
            "payload": dict(self.payload),
        }


def exception_encountered(
    unparsed: bytes | str, error: ExceptionType, message: str
) -> dict[str, Any]:
    """The whole `System.ExceptionEncountered` document, with `"context": []` (avs-protocol 5.3).

    Args:
        unparsed: the directive as received (decoded leniently when bytes).
        error: the error type.
        message: a human-readable explanation.
    """
    text = unparsed.decode("utf-8", "replace") if isinstance(unparsed, bytes) else unparsed
    event = Event.build(
        "System",
        "ExceptionEncountered",
        {"unparsedDirective": text, "error": {"type": error.value, "message": message}},
    )
    return event.to_json(context=[])
