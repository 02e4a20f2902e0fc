"""The three event-gateway reports, split into batches and validated as JSON; no I/O.

`AddOrUpdateReport` and `DeleteReport` (namespace `Alexa.Discovery`) and `ChangeReport`
(namespace `Alexa`) follow avs-protocol.md 7.2. A report becomes one or more `Batch`es, each
small enough for `ReportLimits` (300 endpoints, 256 KB); a batch is encoded with the user's
current token (it travels in the body's `scope` too) and the encoded JSON is validated
before it leaves (`validate_event`).
"""

from __future__ import annotations

import copy
import enum
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from avsclient.auth.lwa import MAX_TOKEN_BYTES
from avsclient.exceptions import LocalProtocolError
from avsclient.gateway.builders import Endpoint, Property, check_endpoint_id
from avsclient.gateway.config import ReportLimits

__all__ = [
    "AddOrUpdateReport",
    "Batch",
    "Cause",
    "ChangeReport",
    "DeleteReport",
    "Report",
    "validate_event",
]

_DISCOVERY = "Alexa.Discovery"
_KNOWN_EVENTS = frozenset(
    {("Alexa", "ChangeReport"), (_DISCOVERY, "AddOrUpdateReport"), (_DISCOVERY, "DeleteReport")}
)
# The size of a batch is computed with a token this long in it, so that any real token fits.
_TOKEN_RESERVE = "x" * MAX_TOKEN_BYTES


class Cause(enum.Enum):
    """Why a property changed (ChangeReport `cause.type`, avs-protocol.md 7.2)."""

    APP_INTERACTION = "APP_INTERACTION"
    PHYSICAL_INTERACTION = "PHYSICAL_INTERACTION"
    PERIODIC_POLL = "PERIODIC_POLL"
    RULE_TRIGGER = "RULE_TRIGGER"
    VOICE_INTERACTION = "VOICE_INTERACTION"


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _scope(token: str) -> dict[str, str]:
    return {"type": "BearerToken", "token": token}


@dataclass(frozen=True, slots=True, eq=False)
class Batch:
    """One message of a report, encoded anew for each attempt with the current token.

    Attributes:
        name: `AddOrUpdateReport`, `DeleteReport` or `ChangeReport`.
        message_id: the header's messageId, kept across retries of this batch.
        endpoint_ids: the endpoints it is about, in order.
    """

    name: str
    message_id: str
    endpoint_ids: tuple[str, ...]
    _parts: tuple[dict[str, Any], ...] = field(repr=False)
    _limits: ReportLimits = field(repr=False)

    @property
    def namespace(self) -> str:
        """`Alexa` for ChangeReport, `Alexa.Discovery` otherwise."""
        return "Alexa" if self.name == "ChangeReport" else _DISCOVERY

    @property
    def splittable(self) -> bool:
        """True for a discovery batch with two or more endpoints."""
        return self.name != "ChangeReport" and len(self._parts) > 1

    def document(self, token: str) -> dict[str, Any]:
        """The event as a JSON-ready dict, with `token` in its scope (a copy: changing it
        leaves the batch as it was)."""
        return copy.deepcopy(self._document(token))

    def _document(self, token: str) -> dict[str, Any]:
        # Shares the batch's parts: callers only read it.
        header = {
            "namespace": self.namespace,
            "name": self.name,
            "messageId": self.message_id,
            "payloadVersion": "3",
        }
        if self.name == "ChangeReport":
            (part,) = self._parts
            return {
                "event": {
                    "header": header,
                    "endpoint": {"scope": _scope(token), "endpointId": self.endpoint_ids[0]},
                    "payload": part["payload"],
                },
                "context": part["context"],
            }
        return {
            "event": {
                "header": header,
                "payload": {"endpoints": list(self._parts), "scope": _scope(token)},
            }
        }

    def encode(self, token: str) -> bytes:
        """The JSON body to POST, validated.

        Raises:
            LocalProtocolError: the event is not valid (see `validate_event`), or it encodes
                to more than `ReportLimits.max_body_bytes`.
        """
        doc = self._document(token)
        validate_event(doc, self._limits)
        body = _dumps(doc)
        if len(body) > self._limits.max_body_bytes:
            raise LocalProtocolError(
                f"{self.name} {self.message_id} encodes to {len(body)} bytes, "
                f"over the {self._limits.max_body_bytes}-byte limit"
            )
        return body

    def split(self) -> tuple[Batch, Batch] | None:
        """Halve a discovery batch (the answer to HTTP 413), or None if it cannot be split."""
        if not self.splittable:
            return None
        half = len(self._parts) // 2
        return (
            _make_batch(self.name, self._parts[:half], self.endpoint_ids[:half], self._limits),
            _make_batch(self.name, self._parts[half:], self.endpoint_ids[half:], self._limits),
        )


def _make_batch(
    name: str, parts: Sequence[dict[str, Any]], ids: Sequence[str], limits: ReportLimits
) -> Batch:
    return Batch(
        name=name,
        message_id=str(uuid.uuid4()),
        endpoint_ids=tuple(ids),
        _parts=tuple(parts),
        _limits=limits,
    )


def _pack(
    name: str, parts: Sequence[dict[str, Any]], ids: Sequence[str], limits: ReportLimits
) -> list[Batch]:
    """Greedy packing: fill each batch up to the endpoint and byte limits, in order."""
    overhead = len(_dumps(_make_batch(name, [], [], limits)._document(_TOKEN_RESERVE)))
    batches: list[Batch] = []
    start, size = 0, overhead
    for index, part in enumerate(parts):
        part_size = len(_dumps(part)) + 1  # the separating comma
        if overhead + part_size > limits.max_body_bytes:
            raise ValueError(
                f"endpoint {ids[index]!r} alone encodes to {part_size} bytes: a {name} of it "
                f"cannot fit in {limits.max_body_bytes} bytes"
            )
        if index > start and (
            index - start >= limits.max_endpoints or size + part_size > limits.max_body_bytes
        ):
            batches.append(_make_batch(name, parts[start:index], ids[start:index], limits))
            start, size = index, overhead
        size += part_size
    batches.append(_make_batch(name, parts[start:], ids[start:], limits))
    return batches


def _unique_ids(ids: Iterable[str]) -> tuple[str, ...]:
    seen: set[str] = set()
    out: list[str] = []
    for endpoint_id in ids:
        check_endpoint_id(endpoint_id)
        if endpoint_id in seen:
            raise ValueError(f"endpoint {endpoint_id!r} is listed twice")
        seen.add(endpoint_id)
        out.append(endpoint_id)
    if not out:
        raise ValueError("a report needs at least one endpoint")
    return tuple(out)


# -- reports -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AddOrUpdateReport:
    """Tell Alexa about new or changed endpoints (`Alexa.Discovery.AddOrUpdateReport`).

    Attributes:
        endpoints: the full endpoint objects; split into batches of at most 300 endpoints
            and 256 KB.
    """

    endpoints: tuple[Endpoint, ...]

    def __post_init__(self) -> None:
        if not all(isinstance(e, Endpoint) for e in self.endpoints):
            raise TypeError("endpoints must be Endpoint objects")
        _unique_ids(e.endpoint_id for e in self.endpoints)

    name = "AddOrUpdateReport"

    def batches(self, limits: ReportLimits | None = None) -> list[Batch]:
        """Split into batches that respect `limits`.

        Raises:
            ValueError: an endpoint has more capabilities than allowed, or alone cannot fit.
        """
        limits = limits or ReportLimits()
        for endpoint in self.endpoints:
            if endpoint.capability_count > limits.max_capabilities:
                raise ValueError(
                    f"endpoint {endpoint.endpoint_id!r} has {endpoint.capability_count} "
                    f"capabilities; at most {limits.max_capabilities} are allowed"
                )
        parts = [e.to_json() for e in self.endpoints]
        return _pack(self.name, parts, [e.endpoint_id for e in self.endpoints], limits)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteReport:
    """Tell Alexa that endpoints are gone (`Alexa.Discovery.DeleteReport`).

    Attributes:
        endpoint_ids: the ids to delete; split into batches like `AddOrUpdateReport`.
    """

    endpoint_ids: tuple[str, ...]

    def __post_init__(self) -> None:
        _unique_ids(self.endpoint_ids)

    name = "DeleteReport"

    def batches(self, limits: ReportLimits | None = None) -> list[Batch]:
        """Split into batches that respect `limits`."""
        limits = limits or ReportLimits()
        parts = [{"endpointId": endpoint_id} for endpoint_id in self.endpoint_ids]
        return _pack(self.name, parts, self.endpoint_ids, limits)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeReport:
    """Tell Alexa that properties of one endpoint changed (`Alexa.ChangeReport`).

    Attributes:
        endpoint_id: the endpoint.
        properties: the properties that changed.
        cause: why they changed.
        context: the endpoint's other, unchanged reportable properties.
    """

    endpoint_id: str
    properties: tuple[Property, ...]
    cause: Cause = Cause.PHYSICAL_INTERACTION
    context: tuple[Property, ...] = ()

    def __post_init__(self) -> None:
        check_endpoint_id(self.endpoint_id)
        if not self.properties:
            raise ValueError("a ChangeReport needs at least one changed property")
        if not all(isinstance(p, Property) for p in (*self.properties, *self.context)):
            raise TypeError("properties and context must be Property objects")
        if not isinstance(self.cause, Cause):
            raise TypeError("cause must be a Cause")
        changed = {(p.namespace, p.name) for p in self.properties}
        if len(changed) != len(self.properties):
            raise ValueError("a property is listed twice among the changed properties")
        if changed & {(p.namespace, p.name) for p in self.context}:
            raise ValueError("a changed property must not also be in the context")

    name = "ChangeReport"

    def batches(self, limits: ReportLimits | None = None) -> list[Batch]:
        """One batch (a ChangeReport cannot be split).

        Raises:
            ValueError: it encodes to more than `limits.max_body_bytes`.
        """
        limits = limits or ReportLimits()
        part = {
            "payload": {
                "change": {
                    "cause": {"type": self.cause.value},
                    "properties": [p.to_json() for p in self.properties],
                }
            },
            "context": {"properties": [p.to_json() for p in self.context]},
        }
        batch = _make_batch(self.name, [part], [self.endpoint_id], limits)
        size = len(_dumps(batch._document(_TOKEN_RESERVE)))
        if size > limits.max_body_bytes:
            raise ValueError(
                f"this ChangeReport encodes to {size} bytes, over {limits.max_body_bytes}"
            )
        return [batch]


Report = AddOrUpdateReport | DeleteReport | ChangeReport


# -- validation ----------------------------------------------------------------------------


def _fail(where: str, problem: str) -> LocalProtocolError:
    return LocalProtocolError(f"invalid event: {where}: {problem}")


def _obj(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _fail(where, "must be a JSON object")
    return value


def _text(value: Any, where: str, *, limit: int = 256) -> str:
    if not isinstance(value, str) or not value or len(value) > limit:
        raise _fail(where, f"must be a string of 1 to {limit} characters")
    return value


def _list(value: Any, where: str, *, allow_empty: bool = False) -> list[Any]:
    if not isinstance(value, list) or (not value and not allow_empty):
        raise _fail(where, "must be a non-empty JSON array" if not allow_empty else "array")
    return value


def _check_scope(value: Any, where: str) -> None:
    scope = _obj(value, where)
    if scope.get("type") != "BearerToken":
        raise _fail(f"{where}.type", "must be 'BearerToken'")
    token = scope.get("token")
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_BYTES:
        raise _fail(f"{where}.token", "must be the user's access token")


def _check_endpoint_id(value: Any, where: str) -> str:
    try:
        return check_endpoint_id(value)
    except ValueError as exc:
        raise _fail(where, str(exc)) from None


def _check_property(value: Any, where: str) -> None:
    prop = _obj(value, where)
    for key in ("namespace", "name", "timeOfSample"):
        _text(prop.get(key), f"{where}.{key}")
    if "value" not in prop:
        raise _fail(f"{where}.value", "is missing")
    uncertainty = prop.get("uncertaintyInMilliseconds")
    if isinstance(uncertainty, bool) or not isinstance(uncertainty, int) or uncertainty < 0:
        raise _fail(f"{where}.uncertaintyInMilliseconds", "must be an integer >= 0")


def _check_discovery_endpoint(value: Any, where: str, limits: ReportLimits) -> str:
    endpoint = _obj(value, where)
    endpoint_id = _check_endpoint_id(endpoint.get("endpointId"), f"{where}.endpointId")
    for key in ("friendlyName", "description", "manufacturerName"):
        _text(endpoint.get(key), f"{where}.{key}", limit=128)
    for index, category in enumerate(
        _list(endpoint.get("displayCategories"), f"{where}.displayCategories")
    ):
        _text(category, f"{where}.displayCategories[{index}]")
    capabilities = _list(endpoint.get("capabilities"), f"{where}.capabilities")
    if len(capabilities) > limits.max_capabilities:
        raise _fail(f"{where}.capabilities", f"more than {limits.max_capabilities} capabilities")
    interfaces: list[str] = []
    for index, cap in enumerate(capabilities):
        at = f"{where}.capabilities[{index}]"
        capability = _obj(cap, at)
        if capability.get("type") != "AlexaInterface":
            raise _fail(f"{at}.type", "must be 'AlexaInterface'")
        interfaces.append(_text(capability.get("interface"), f"{at}.interface"))
        _text(capability.get("version"), f"{at}.version")
    if "Alexa" not in interfaces:
        raise _fail(f"{where}.capabilities", "must include the 'Alexa' interface")
    return endpoint_id


def validate_event(doc: Any, limits: ReportLimits | None = None) -> None:
    """Check an event-gateway message before it is sent (avs-protocol.md 7.2).

    Args:
        doc: the decoded JSON document, `{"event": {...}, ...}`.
        limits: the endpoint and capability limits to enforce.

    Raises:
        LocalProtocolError: the message is not one the gateway accepts; the message names the
            JSON path of the first problem.
    """
    limits = limits or ReportLimits()
    try:
        _dumps(doc)
    except (TypeError, ValueError) as exc:
        raise _fail("document", f"not plain JSON ({exc})") from None
    event = _obj(_obj(doc, "document").get("event"), "event")
    header = _obj(event.get("header"), "event.header")
    key = (header.get("namespace"), header.get("name"))
    if key not in _KNOWN_EVENTS:
        raise _fail("event.header", f"{key[0]}.{key[1]} is not a gateway report")
    _text(header.get("messageId"), "event.header.messageId", limit=128)
    if header.get("payloadVersion") != "3":
        raise _fail("event.header.payloadVersion", "must be '3'")
    payload = _obj(event.get("payload"), "event.payload")
    if key == ("Alexa", "ChangeReport"):
        endpoint = _obj(event.get("endpoint"), "event.endpoint")
        _check_scope(endpoint.get("scope"), "event.endpoint.scope")
        _check_endpoint_id(endpoint.get("endpointId"), "event.endpoint.endpointId")
        change = _obj(payload.get("change"), "event.payload.change")
        cause = _obj(change.get("cause"), "event.payload.change.cause")
        if cause.get("type") not in {c.value for c in Cause}:
            raise _fail("event.payload.change.cause.type", f"must be one of {[*Cause.__members__]}")
        for index, prop in enumerate(
            _list(change.get("properties"), "event.payload.change.properties")
        ):
            _check_property(prop, f"event.payload.change.properties[{index}]")
        context = _obj(doc.get("context", {"properties": []}), "context")
        props = _list(context.get("properties"), "context.properties", allow_empty=True)
        for index, prop in enumerate(props):
            _check_property(prop, f"context.properties[{index}]")
        return
    _check_scope(payload.get("scope"), "event.payload.scope")
    endpoints = _list(payload.get("endpoints"), "event.payload.endpoints")
    if len(endpoints) > limits.max_endpoints:
        raise _fail("event.payload.endpoints", f"more than {limits.max_endpoints} endpoints")
    seen: set[str] = set()
    for index, value in enumerate(endpoints):
        where = f"event.payload.endpoints[{index}]"
        if key[1] == "DeleteReport":
            endpoint_id = _check_endpoint_id(_obj(value, where).get("endpointId"), where)
        else:
            endpoint_id = _check_discovery_endpoint(value, where, limits)
        if endpoint_id in seen:
            raise _fail(where, f"endpoint {endpoint_id!r} is listed twice")
        seen.add(endpoint_id)
