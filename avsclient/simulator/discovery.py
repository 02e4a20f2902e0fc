"""The simulator's Alexa.Discovery and Alexa.ApiGateway: it judges capability reports against
the protocol reference (avs-protocol 9) and acknowledges them the way AVS does.

Written from the reference, not from the client: `report_problems()` lists every rule of
sections 9.1, 9.2, 9.8, 11.5 and 12.1 that a report breaks. A valid AddOrUpdateReport is
answered 202, then `Alexa.EventProcessed` with its `eventCorrelationToken` goes out on the
downchannel (9.3) when the report declares `Alexa` 3; an invalid one is answered 400 with the
problems. VerifyGateway is answered 204, or 200 with a SetGateway when a test moved the
gateway (`move_gateway`). Faults: `fail_next(n, status)` (400, 403, 500, 503) and
`drop_acks(n)` (202 and no EventProcessed); for VerifyGateway `fail_verify_next(n, status)`
and `ignore_verify_next(n)` (no answer for a while).

`CapabilitiesApiService` is the legacy Capabilities API (9.7): `PUT
/v1/devices/@self/capabilities` with the access token in `x-amz-access-token`, JSON with a
`Content-Length`, a body of `envelopeVersion` "20160207" and capabilities judged like a
report's (`capabilities_problems()`); 204, or 400 `{"message": ...}`, or 403; faults with
`fail_next(n, status)`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from avsclient.simulator.scenarios import ReceivedEvent, ScriptedReply, directive

__all__ = [
    "CAPABILITIES_API_PATH",
    "CapabilitiesApiService",
    "DiscoveryService",
    "capabilities_problems",
    "report_problems",
]

logger = logging.getLogger("avsclient.simulator")

# 9.2: limits of the device's endpoint fields and of the report.
_LIMITS = {"endpointId": (1, 256), "manufacturerName": (1, 128), "description": (1, 128)}
_MAX_ENDPOINTS = 300
_MAX_CAPABILITIES = 100
_MAX_PAYLOAD = 256 * 1024
_ATTRIBUTE_KEYS = {
    "manufacturer",
    "model",
    "serialNumber",
    "firmwareVersion",
    "softwareVersion",
    "customIdentifier",
}
# 9.8 (and 14.1, 16.1): the versions the reference documents for each interface.
_DOCUMENTED = {
    "Alexa": {"3"},
    "Alexa.ApiGateway": {"1.0"},
    "InteractionModel": {"1.0", "1.1", "1.2"},
    "SpeechRecognizer": {"2.0", "2.1", "2.2", "2.3"},
    "SpeechSynthesizer": {"1.0", "1.1", "1.2", "1.3"},
    "System": {"1.0", "1.1", "1.2", "1.3", "1.4", "1.5"},
    "AudioPlayer": {"1.0", "1.1", "1.2", "1.3", "1.4", "1.5"},
    "PlaybackController": {"1.0", "1.1"},
    "Alerts": {"1.0", "1.1", "1.2", "1.3", "1.4", "1.5"},
    "Notifications": {"1.0"},
    "Speaker": {"1.0"},
}
_FAULT_STATUSES = frozenset({400, 403, 500, 503})
_LOCALE = re.compile(r"[a-z]{2,3}-[A-Z]{2}")


def _num(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in version.split("."))
    except ValueError:
        return ()


def _length(value: Any, low: int, high: int) -> bool:
    return isinstance(value, str) and low <= len(value) <= high


def report_problems(event: ReceivedEvent, bearer: str | None = None) -> list[str]:
    """Every rule of the reference an AddOrUpdateReport breaks (empty: a valid report).

    Args:
        event: the received event.
        bearer: the access token of the request, which the report's scope must carry.
    """
    problems: list[str] = []
    add = problems.append
    header = event.header
    if event.json.get("context") is not None:
        add("a Discovery event carries no context (9.2)")
    if header.get("dialogRequestId") is not None:
        add("a Discovery event carries no dialogRequestId (9.2)")
    if not _length(header.get("eventCorrelationToken"), 1, 10_000):
        add("header.eventCorrelationToken is missing (9.2, 9.3)")
    if header.get("payloadVersion") != "3":
        add("header.payloadVersion must be '3'")
    payload = event.payload
    scope = payload.get("scope")
    if not isinstance(scope, dict) or scope.get("type") != "BearerToken":
        add("payload.scope must be a BearerToken scope")
    elif not _length(scope.get("token"), 1, 10_000):
        add("payload.scope.token is missing")
    elif bearer is not None and scope.get("token") != bearer:
        add("payload.scope.token is not the access token of the request")
    if len(json.dumps(payload).encode()) > _MAX_PAYLOAD:
        add(f"the payload is larger than {_MAX_PAYLOAD} bytes")
    endpoints = payload.get("endpoints")
    if not isinstance(endpoints, list) or not endpoints:
        add("payload.endpoints must be a non-empty array")
        return problems
    if len(endpoints) > _MAX_ENDPOINTS:
        add(f"more than {_MAX_ENDPOINTS} endpoints")
    registrations = []
    for i, endpoint in enumerate(endpoints):
        if not isinstance(endpoint, dict):
            add(f"endpoints[{i}] is not an object")
            continue
        problems.extend(_endpoint_problems(endpoint, f"endpoints[{i}]"))
        if "registration" in endpoint:
            registrations.append(endpoint["registration"])
    if any(r != registrations[0] for r in registrations[1:]):
        add("registration differs between endpoints")
    return problems


def _endpoint_problems(endpoint: Mapping[str, Any], at: str) -> list[str]:
    out: list[str] = []
    for key, (low, high) in _LIMITS.items():
        if not _length(endpoint.get(key), low, high):
            out.append(f"{at}.{key} must be a string of {low}..{high} characters")
    if not _length(endpoint.get("friendlyName", ""), 0, 128):
        out.append(f"{at}.friendlyName must be at most 128 characters")
    categories = endpoint.get("displayCategories")
    if not isinstance(categories, list) or not categories:
        out.append(f"{at}.displayCategories must be a non-empty array")
    attributes = endpoint.get("additionalAttributes")
    if attributes is not None:
        if not isinstance(attributes, dict):
            out.append(f"{at}.additionalAttributes must be an object")
        else:
            for key, value in attributes.items():
                if key not in _ATTRIBUTE_KEYS:
                    out.append(f"{at}.additionalAttributes.{key} is not a documented attribute")
                elif not _length(value, 1, 256):
                    out.append(f"{at}.additionalAttributes.{key} must be 1..256 characters")
    capabilities = endpoint.get("capabilities")
    if not isinstance(capabilities, list) or not capabilities:
        out.append(f"{at}.capabilities must be a non-empty array")
        return out
    if len(capabilities) > _MAX_CAPABILITIES:
        out.append(f"{at} has more than {_MAX_CAPABILITIES} capabilities")
    declared: dict[str, str] = {}
    for j, cap in enumerate(capabilities):
        where = f"{at}.capabilities[{j}]"
        if not isinstance(cap, dict):
            out.append(f"{where} is not an object")
            continue
        named = _interface_problems(cap, where, out)
        if named is None:
            continue
        interface, version = named
        if interface == "Alexa.Discovery":
            out.append(f"{where}: Alexa.Discovery is implicit and never listed (9.1)")
        if interface in declared and cap.get("instance") is None:
            out.append(f"{where}: {interface} is declared twice")
        declared[interface] = version
    registration = endpoint.get("registration")
    if registration is not None:
        if not isinstance(registration, dict) or not all(
            _length(registration.get(k), 1, 256) for k in ("productId", "deviceSerialNumber")
        ):
            out.append(f"{at}.registration needs productId and deviceSerialNumber")
        else:
            endpoint_id = str(endpoint.get("endpointId", ""))
            parts = endpoint_id.split("::")
            if len(parts) != 3 or parts[1:] != [
                registration["productId"],
                registration["deviceSerialNumber"],
            ]:
                out.append(f"{at}.endpointId must be clientId::productId::deviceSerialNumber")
        # 9.1: the device that uses Discovery declares these.
        for interface, least in (("Alexa.ApiGateway", (1, 0)), ("InteractionModel", (1, 2))):
            if interface not in declared:
                out.append(f"{at} must declare {interface} (9.1)")
            elif _num(declared[interface]) < least:
                out.append(f"{at}: {interface} must be at least {'.'.join(map(str, least))}")
        if "SpeechRecognizer" in declared and _num(declared["SpeechRecognizer"]) < (2, 3):
            out.append(f"{at}: SpeechRecognizer must be at least 2.3 with Discovery (9.1)")
    return out


def _configuration_problems(interface: str, config: Any, where: str) -> list[str]:
    if config is None:
        return []
    if not isinstance(config, dict):
        return [f"{where}.configurations must be an object"]
    out: list[str] = []
    if interface == "SpeechRecognizer" and "wakeWords" in config:  # 11.5
        entries = config["wakeWords"]
        if not isinstance(entries, list) or not entries:
            return [f"{where}.configurations.wakeWords must be a non-empty array"]
        for k, entry in enumerate(entries):
            at = f"{where}.configurations.wakeWords[{k}]"
            scopes = entry.get("scopes") if isinstance(entry, dict) else None
            values = entry.get("values") if isinstance(entry, dict) else None
            if (
                not isinstance(scopes, list)
                or not scopes
                or not all(
                    s == "DEFAULT"
                    or (isinstance(s, str) and re.fullmatch(r"[a-z]{2,3}(-[A-Z]{2})?", s))
                    for s in scopes
                )
            ):
                out.append(f"{at}.scopes must list DEFAULT, languages or locales")
            if (
                not isinstance(values, list)
                or not values
                or not all(
                    isinstance(v, list) and v and all(isinstance(w, str) and w.isupper() for w in v)
                    for v in values
                )
            ):
                out.append(f"{at}.values must be non-empty arrays of upper-case wake words")
    if interface == "System":  # 12.1
        locales = config.get("locales")
        if locales is not None and (
            not isinstance(locales, list)
            or not all(isinstance(x, str) and _LOCALE.fullmatch(x) for x in locales)
        ):
            out.append(f"{where}.configurations.locales must list locales like en-US")
        combos = config.get("localeCombinations")
        if combos is not None and (
            not isinstance(combos, list)
            or not all(isinstance(c, list) and all(x in (locales or []) for x in c) for c in combos)
        ):
            out.append(f"{where}.configurations.localeCombinations must combine declared locales")
    return out


@dataclass(frozen=True, slots=True)
class _Verdict:
    event: ReceivedEvent
    problems: tuple[str, ...]


Pusher = Callable[[Mapping[str, Any]], Awaitable[int]]


class DiscoveryService:
    """What the simulator does with Alexa.Discovery and Alexa.ApiGateway events.

    Attributes:
        reports: every AddOrUpdateReport judged, with its problems (valid: none).
        deleted: endpoint ids received in DeleteReport events.
        acknowledged: correlation tokens EventProcessed was sent for.
        verifications: every VerifyGateway received, answered or not.
    """

    def __init__(self, push: Pusher) -> None:
        self._push = push
        self.reports: list[_Verdict] = []
        self.deleted: list[str] = []
        self.acknowledged: list[str] = []
        self.verifications: list[ReceivedEvent] = []
        self._fail: deque[list[int]] = deque()
        self._drop = 0
        self._move_to: str | None = None
        self._fail_verify: deque[list[int]] = deque()
        self._ignore_verify = 0
        #: How long an ignored VerifyGateway waits before its (late) 204.
        self.ignore_seconds = 30.0
        self._tasks: set[asyncio.Task[None]] = set()
        self.ack_delay = 0.01

    # -- what tests set ------------------------------------------------------------------

    def fail_next(self, n: int = 1, *, status: int = 500) -> None:
        """Answer the next `n` reports with `status` (400, 403, 500 or 503)."""
        if n < 1 or status not in _FAULT_STATUSES:
            raise ValueError(f"n >= 1 and status in {sorted(_FAULT_STATUSES)}")
        self._fail.append([n, status])

    def drop_acks(self, n: int = 1) -> None:
        """Accept the next `n` reports (202) but send no EventProcessed for them."""
        if n < 1:
            raise ValueError("n must be >= 1")
        self._drop += n

    def fail_verify_next(self, n: int = 1, *, status: int = 500) -> None:
        """Answer the next `n` VerifyGateway events with `status` (400, 403, 500 or 503)."""
        if n < 1 or status not in _FAULT_STATUSES:
            raise ValueError(f"n >= 1 and status in {sorted(_FAULT_STATUSES)}")
        self._fail_verify.append([n, status])

    def ignore_verify_next(self, n: int = 1) -> None:
        """Leave the next `n` VerifyGateway events unanswered (for `ignore_seconds`, then a
        late 204 if the stream is still open)."""
        if n < 1:
            raise ValueError("n must be >= 1")
        self._ignore_verify += n

    def move_gateway(self, url: str | None) -> None:
        """Answer VerifyGateway with 200 and `SetGateway {"gateway": url}` (None: 204 again)."""
        self._move_to = url

    @property
    def valid_reports(self) -> list[ReceivedEvent]:
        """The reports that broke no rule."""
        return [v.event for v in self.reports if not v.problems]

    # -- answering -----------------------------------------------------------------------

    def reply(self, event: ReceivedEvent) -> ScriptedReply | Awaitable[ScriptedReply]:
        """The answer to an Alexa.Discovery or Alexa.ApiGateway event (the script's handler)."""
        if event.name == "VerifyGateway":
            self.verifications.append(event)
            if self._fail_verify:
                entry = self._fail_verify[0]
                entry[0] -= 1
                if not entry[0]:
                    self._fail_verify.popleft()
                return ScriptedReply(status=entry[1], description="injected failure")
            if self._ignore_verify:
                self._ignore_verify -= 1
                return self._late(self._verify_gateway(event))
            return self._verify_gateway(event)
        if event.name == "DeleteReport":
            for endpoint in event.payload.get("endpoints", []):
                if isinstance(endpoint, dict) and isinstance(endpoint.get("endpointId"), str):
                    self.deleted.append(endpoint["endpointId"])
            return ScriptedReply(status=202)
        if event.name != "AddOrUpdateReport":
            return ScriptedReply(status=400, description=f"unknown Discovery event {event.name}")
        bearer = event.http_headers.get("authorization", "").removeprefix("Bearer ").strip()
        problems = report_problems(event, bearer or None)
        self.reports.append(_Verdict(event, tuple(problems)))
        if problems:
            logger.warning("invalid Discovery report: %s", "; ".join(problems))
            return ScriptedReply(status=400, description="; ".join(problems)[:1000])
        if self._fail:
            entry = self._fail[0]
            entry[0] -= 1
            if not entry[0]:
                self._fail.popleft()
            return ScriptedReply(status=entry[1], description="injected failure")
        if self._drop:
            self._drop -= 1
            return ScriptedReply(status=202)
        declares_alexa = any(
            cap.get("interface") == "Alexa" and cap.get("version") == "3"
            for endpoint in event.payload["endpoints"]
            for cap in endpoint["capabilities"]
        )
        if declares_alexa:  # 9.1: EventProcessed only for devices declaring Alexa 3
            token = str(event.header["eventCorrelationToken"])
            task = asyncio.get_running_loop().create_task(self._acknowledge(token))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return ScriptedReply(status=202)

    def _verify_gateway(self, event: ReceivedEvent) -> ScriptedReply:
        if event.payload or event.json.get("context") is not None:
            return ScriptedReply(
                status=400, description="VerifyGateway has payload {} and no context"
            )
        if self._move_to is not None:
            move = directive("Alexa.ApiGateway", "SetGateway", {"gateway": self._move_to})
            return ScriptedReply.of(move)
        return ScriptedReply(status=204)

    async def _late(self, reply: ScriptedReply) -> ScriptedReply:
        await asyncio.sleep(self.ignore_seconds)
        return reply

    async def _acknowledge(self, token: str) -> None:
        await asyncio.sleep(self.ack_delay)  # after the 202, as AVS does
        message = directive("Alexa", "EventProcessed")
        message["directive"]["header"]["eventCorrelationToken"] = token
        message["directive"]["header"]["payloadVersion"] = "3"
        try:
            await self._push(message)
        except Exception as exc:  # the client went away meanwhile
            logger.info("EventProcessed for %s not delivered: %r", token, exc)
            return
        self.acknowledged.append(token)

    async def aclose(self) -> None:
        """Cancel acknowledgements still waiting."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


# -- the legacy Capabilities API (avs-protocol 9.7) ---------------------------------------------

CAPABILITIES_API_PATH = "/v1/devices/@self/capabilities"
_CAPABILITIES_FAULTS = frozenset({400, 403, 404, 500, 503})
_MAX_CAPABILITIES_BODY = 256 * 1024


def capabilities_problems(headers: Mapping[str, str], body: bytes) -> list[str]:
    """Every rule of 9.7 a Capabilities API request breaks, token aside (empty: valid)."""
    out: list[str] = []
    media_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        out.append("Content-Type must be application/json")
    length = headers.get("content-length")
    if length is None or not length.isdigit() or int(length) != len(body):
        out.append("Content-Length must give the body's length")
    if "authorization" in headers:
        out.append("the token goes in x-amz-access-token, not Authorization")
    try:
        doc: Any = json.loads(body)
    except (ValueError, RecursionError):
        return [*out, "the body is not JSON"]
    if not isinstance(doc, dict):
        return [*out, "the body must be a JSON object"]
    if doc.get("envelopeVersion") != "20160207":
        out.append('envelopeVersion must be "20160207"')
    capabilities = doc.get("capabilities")
    if not isinstance(capabilities, list) or not capabilities:
        return [*out, "capabilities must be a non-empty array"]
    declared: set[str] = set()
    for j, cap in enumerate(capabilities):
        where = f"capabilities[{j}]"
        if not isinstance(cap, dict):
            out.append(f"{where} is not an object")
            continue
        unknown = set(cap) - {"type", "interface", "version", "configurations"}
        if unknown:
            out.append(f"{where} has fields a capability does not have: {sorted(unknown)}")
        named = _interface_problems(cap, where, out)
        if named is None:
            continue
        interface, _ = named
        if interface in declared:
            out.append(f"{where}: {interface} is declared twice")
        declared.add(interface)
    return out


def _interface_problems(
    cap: dict[str, Any], where: str, out: list[str]
) -> tuple[str, str] | None:
    """Check one capability object of either report (Discovery's or the Capabilities API's):
    its type, interface and version (documented ones, 9.8) and its configurations. Returns
    the interface and version, or None when they are unusable (the problems are in `out`)."""
    interface, version = cap.get("interface"), cap.get("version")
    if cap.get("type") != "AlexaInterface":
        out.append(f"{where}.type must be AlexaInterface")
    if not isinstance(interface, str) or not interface:
        out.append(f"{where}.interface must be a non-empty string")
        return None
    if not isinstance(version, str):
        out.append(f'{where}.version must be a string (e.g. "1.0")')
        return None
    documented = _DOCUMENTED.get(interface)
    if documented is not None and version not in documented:
        out.append(f"{where}: {interface} {version} is not a documented version")
    out.extend(_configuration_problems(interface, cap.get("configurations"), where))
    return interface, version


@dataclass(frozen=True, slots=True)
class CapabilitiesPut:
    """One request received: its headers, its body (parsed, or None) and its problems."""

    headers: Mapping[str, str]
    document: Any
    problems: tuple[str, ...]
    status: int


class CapabilitiesApiService:
    """The simulator's legacy Capabilities API; sans-IO (`handle` answers one request).

    Attributes:
        requests: every PUT received, with the problems found and the status answered.
    """

    def __init__(self, token_accepted: Callable[[str], bool]) -> None:
        self._token_accepted = token_accepted
        self.requests: list[CapabilitiesPut] = []
        self._fail: deque[list[int]] = deque()

    def fail_next(self, n: int = 1, *, status: int = 500) -> None:
        """Answer the next `n` valid requests with `status` (400, 403, 404, 500 or 503)."""
        if n < 1 or status not in _CAPABILITIES_FAULTS:
            raise ValueError(f"n >= 1 and status in {sorted(_CAPABILITIES_FAULTS)}")
        self._fail.append([n, status])

    @property
    def accepted(self) -> list[Any]:
        """The bodies answered 204."""
        return [r.document for r in self.requests if r.status == 204]

    def handle(self, headers: Mapping[str, str], body: bytes) -> tuple[int, bytes]:
        """The status and JSON body (empty for 204) for one complete request."""
        token = headers.get("x-amz-access-token", "")
        if len(body) > _MAX_CAPABILITIES_BODY:
            problems = [f"the body is larger than {_MAX_CAPABILITIES_BODY} bytes"]
        else:
            problems = capabilities_problems(headers, body)
        try:
            document: Any = json.loads(body)
        except (ValueError, RecursionError):
            document = None
        if not token or not self._token_accepted(token):
            status, message = 403, "invalid or missing x-amz-access-token"
        elif problems:
            status, message = 400, "; ".join(problems)[:1000]
            logger.warning("invalid Capabilities API request: %s", message)
        elif self._fail:
            entry = self._fail[0]
            entry[0] -= 1
            if not entry[0]:
                self._fail.popleft()
            status, message = entry[1], "injected failure"
        else:
            status, message = 204, ""
        self.requests.append(CapabilitiesPut(dict(headers), document, tuple(problems), status))
        return status, b"" if status == 204 else json.dumps({"message": message}).encode()
