"""The simulator's Alexa event gateway and Skill Messaging API; sans-IO, no clock.

`GatewayService.handle(path, headers, body)` answers one complete request the way the
real services do (avs-protocol.md sections 7 and 8): `POST /v3/events` takes ChangeReport,
AddOrUpdateReport and DeleteReport with a user's bearer token; `POST
/v1/skillmessages/users/{userId}` takes `{"data": {...}, "expiresAfterSeconds": N}` with a
client_credentials token. Success is 202 with an empty body; errors carry
`{"header": {...System.Exception...}, "payload": {"code": ..., "description": ...}}`. Tests
read what arrived in `requests`, and inject faults with `fail_next`, `delay_next` and
`drop_next`. The server routes the two paths here (`route`) and writes the reply.
"""

from __future__ import annotations

import json
import urllib.parse
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from avsclient.simulator.mime import parse_content_type

__all__ = [
    "CODES",
    "GATEWAY_EVENTS_PATH",
    "MESSAGES_PREFIX",
    "Api",
    "GatewayReply",
    "GatewayRequest",
    "GatewayService",
    "error_body",
    "route",
]

GATEWAY_EVENTS_PATH = "/v3/events"
MESSAGES_PREFIX = "/v1/skillmessages/users/"

Api = Literal["events", "messages"]

# Error codes by status (avs-protocol.md 7.3).
CODES = {
    400: "INVALID_REQUEST_EXCEPTION",
    401: "INVALID_ACCESS_TOKEN_EXCEPTION",
    403: "SKILL_DISABLED_EXCEPTION",
    404: "SKILL_NOT_FOUND_EXCEPTION",
    413: "REQUEST_ENTITY_TOO_LARGE_EXCEPTION",
    429: "THROTTLING_EXCEPTION",
    500: "INTERNAL_SERVICE_EXCEPTION",
    503: "SERVICE_UNAVAILABLE_EXCEPTION",
}
_DISCOVERY = "Alexa.Discovery"
_EVENTS = frozenset(
    {("Alexa", "ChangeReport"), (_DISCOVERY, "AddOrUpdateReport"), (_DISCOVERY, "DeleteReport")}
)
_CAUSES = frozenset(
    {
        "APP_INTERACTION",
        "PHYSICAL_INTERACTION",
        "PERIODIC_POLL",
        "RULE_TRIGGER",
        "VOICE_INTERACTION",
    }
)


def route(path: str) -> Api | None:
    """Which gateway API serves `path` (without query), or None."""
    if path == GATEWAY_EVENTS_PATH:
        return "events"
    if path.startswith(MESSAGES_PREFIX):
        return "messages"
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayReply:
    """What the server sends back for one request.

    Attributes:
        status: the HTTP status.
        body: the body (empty for 202).
        headers: extra response headers (Retry-After from a fault).
        delay: seconds to wait before replying.
        drop: close the connection instead of replying.
    """

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    drop: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayRequest:
    """One request the gateway received and how it was answered. Token and body are hidden
    from the repr.

    Attributes:
        api: `"events"` or `"messages"`.
        path: the request path.
        token: the bearer token sent ("" when none).
        body: the raw body (at most `max_body_bytes` + one read of it).
        document: the parsed JSON body, or None.
        status: the status answered (0 for a dropped connection).
        code: the error code answered, or None.
        user_id: the Skill Messaging userId, or None.
    """

    api: Api
    path: str
    token: str = field(repr=False)
    body: bytes = field(repr=False)
    document: Any = field(repr=False)
    status: int
    code: str | None = None
    user_id: str | None = None

    @property
    def name(self) -> str | None:
        """The event's `header.name` (events only), if readable."""
        try:
            name = self.document["event"]["header"]["name"]
        except (KeyError, TypeError):
            return None
        return name if isinstance(name, str) else None

    @property
    def endpoint_ids(self) -> tuple[str, ...]:
        """The endpoint ids an event is about, in order (empty when unreadable)."""
        try:
            event = self.document["event"]
            if "endpoint" in event:
                return (event["endpoint"]["endpointId"],)
            return tuple(e["endpointId"] for e in event["payload"]["endpoints"])
        except (KeyError, TypeError):
            return ()


@dataclass(slots=True)
class _Fault:
    remaining: int
    api: Api | None
    status: int = 0
    code: str | None = None
    code_field: str = "code"
    body: bytes | None = None
    retry_after: float | None = None
    delay: float = 0.0


class _Rejected(Exception):
    def __init__(self, status: int, description: str, code: str | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.code = code or CODES.get(status, "INTERNAL_SERVICE_EXCEPTION")


def error_body(status: int, code: str, description: str, *, code_field: str = "code") -> bytes:
    """A gateway error body; `code_field="type"` names the code as some services do."""
    doc = {
        "header": {"namespace": "System", "name": "Exception", "messageId": str(uuid.uuid4())},
        "payload": {code_field: code, "description": description},
    }
    return json.dumps(doc, separators=(",", ":")).encode()


class GatewayService:
    """The event gateway and the Skill Messaging API, kept in memory.

    Args:
        token_accepted: says whether a bearer token is valid (the simulator accepts tokens
            from `add_token` and access tokens its LWA service issued).

    Attributes:
        requests: every request received, in order, with the status it got.
        max_body_bytes: event bodies above this get 413 (256 KB, avs-protocol.md 7.2).
        max_endpoints: discovery reports with more endpoints get 413.
        max_data_bytes: Skill Messaging `data` above this gets 400.
    """

    def __init__(self, token_accepted: Callable[[str], bool]) -> None:
        self._token_accepted = token_accepted
        self.requests: list[GatewayRequest] = []
        self.max_body_bytes = 256_000
        self.max_endpoints = 300
        self.max_data_bytes = 6_000
        self._fail: deque[_Fault] = deque()
        self._delay: deque[_Fault] = deque()
        self._drop: deque[_Fault] = deque()

    # -- what arrived --------------------------------------------------------------------

    def reports(self, name: str | None = None) -> list[GatewayRequest]:
        """The events answered with 2xx, optionally only those named `name`."""
        return [
            r
            for r in self.requests
            if r.api == "events" and 200 <= r.status <= 299 and (name is None or r.name == name)
        ]

    def messages(self) -> list[GatewayRequest]:
        """The Skill Messaging requests answered with 2xx."""
        return [r for r in self.requests if r.api == "messages" and 200 <= r.status <= 299]

    # -- faults --------------------------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int,
        code: str | None = None,
        api: Api | None = None,
        code_field: Literal["code", "type"] = "code",
        body: bytes | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next `n` requests with `status` and an error body.

        Args:
            n: how many requests fail.
            status: the HTTP status.
            code: the error code (default: the code the table gives `status`).
            api: only requests to this API (`"events"` or `"messages"`); None: both.
            code_field: name the code `payload.code` or `payload.type`.
            body: raw bytes sent instead of the JSON error body.
            retry_after: send a Retry-After header with these seconds.
        """
        if n < 1 or not 100 <= status <= 599:
            raise ValueError("n must be >= 1 and status an HTTP status")
        self._fail.append(
            _Fault(
                n,
                api,
                status=status,
                code=code,
                code_field=code_field,
                body=body,
                retry_after=retry_after,
            )
        )

    def delay_next(self, seconds: float, n: int = 1, *, api: Api | None = None) -> None:
        """Delay the replies to the next `n` requests by `seconds`."""
        if n < 1 or seconds < 0:
            raise ValueError("n must be >= 1 and seconds >= 0")
        self._delay.append(_Fault(n, api, delay=seconds))

    def drop_next(self, n: int = 1, *, api: Api | None = None) -> None:
        """Close the connection instead of answering the next `n` requests."""
        if n < 1:
            raise ValueError("n must be >= 1")
        self._drop.append(_Fault(n, api))

    def clear_faults(self) -> None:
        """Cancel every pending fault."""
        self._fail.clear()
        self._delay.clear()
        self._drop.clear()

    @staticmethod
    def _take(queue: deque[_Fault], api: Api) -> _Fault | None:
        for fault in queue:
            if fault.api is None or fault.api == api:
                fault.remaining -= 1
                if not fault.remaining:
                    queue.remove(fault)
                return fault
        return None

    # -- requests ------------------------------------------------------------------------

    def handle(self, path: str, headers: Mapping[str, str], body: bytes) -> GatewayReply:
        """Answer one complete request, applying pending faults first.

        Args:
            path: the request path (a `route` must exist for it).
            headers: the request headers, lower-case names.
            body: the body (the server may cut it after `max_body_bytes` + 1 bytes).

        Returns:
            The reply to send.
        """
        api = route(path)
        if api is None:
            raise ValueError(f"no gateway API at {path!r}")
        scheme, _, token = headers.get("authorization", "").partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        document = _load(body)
        user_id = _user_id(path) if api == "messages" else None

        def record(status: int, code: str | None) -> None:
            self.requests.append(
                GatewayRequest(
                    api=api,
                    path=path,
                    token=token,
                    body=body,
                    document=document,
                    status=status,
                    code=code,
                    user_id=user_id,
                )
            )

        delay_fault = self._take(self._delay, api)
        delay = delay_fault.delay if delay_fault is not None else 0.0
        if self._take(self._drop, api) is not None:
            record(0, None)
            return GatewayReply(status=0, delay=delay, drop=True)
        fault = self._take(self._fail, api)
        if fault is not None:
            code = fault.code or CODES.get(fault.status, "INTERNAL_SERVICE_EXCEPTION")
            record(fault.status, code)
            extra: tuple[tuple[str, str], ...] = ()
            if fault.retry_after is not None:
                extra = (("retry-after", f"{fault.retry_after:g}"),)
            reply_body = fault.body
            if reply_body is None:
                reply_body = error_body(
                    fault.status, code, "injected failure", code_field=fault.code_field
                )
            return GatewayReply(status=fault.status, body=reply_body, headers=extra, delay=delay)
        try:
            if api == "events":
                self._check_event(headers, token, body, document)
            else:
                self._check_message(headers, token, body, document, user_id)
        except _Rejected as exc:
            record(exc.status, exc.code)
            return GatewayReply(
                status=exc.status, body=error_body(exc.status, exc.code, str(exc)), delay=delay
            )
        record(202, None)
        return GatewayReply(status=202, delay=delay)

    # -- validation ----------------------------------------------------------------------

    def _check_common(self, headers: Mapping[str, str], token: str, body: bytes) -> None:
        if not token or not self._token_accepted(token):
            raise _Rejected(401, "the access token is missing, invalid or expired")
        media_type, _ = parse_content_type(headers.get("content-type", ""))
        if media_type != "application/json":
            raise _Rejected(400, "Content-Type must be application/json")
        if len(body) > self.max_body_bytes:
            raise _Rejected(413, f"the body is larger than {self.max_body_bytes} bytes")

    def _check_event(
        self, headers: Mapping[str, str], token: str, body: bytes, document: Any
    ) -> None:
        self._check_common(headers, token, body)
        if not isinstance(document, dict):
            raise _Rejected(400, "the body is not a JSON object")
        event = _need_obj(document.get("event"), "event")
        header = _need_obj(event.get("header"), "event.header")
        key = (header.get("namespace"), header.get("name"))
        if key not in _EVENTS:
            raise _Rejected(400, f"unsupported event {key[0]}.{key[1]}")
        if header.get("payloadVersion") != "3":
            raise _Rejected(400, "payloadVersion must be 3")
        if not isinstance(header.get("messageId"), str) or not header["messageId"]:
            raise _Rejected(400, "messageId is missing")
        payload = _need_obj(event.get("payload"), "event.payload")
        if key[1] == "ChangeReport":
            endpoint = _need_obj(event.get("endpoint"), "event.endpoint")
            _check_scope(endpoint.get("scope"), token)
            _need_id(endpoint.get("endpointId"), "event.endpoint.endpointId")
            change = _need_obj(payload.get("change"), "event.payload.change")
            cause = _need_obj(change.get("cause"), "event.payload.change.cause")
            if cause.get("type") not in _CAUSES:
                raise _Rejected(400, "event.payload.change.cause.type is not a known cause")
            properties = change.get("properties")
            if not isinstance(properties, list) or not properties:
                raise _Rejected(400, "event.payload.change.properties must be a non-empty list")
            for prop in properties:
                p = _need_obj(prop, "a changed property")
                if not all(k in p for k in ("namespace", "name", "value", "timeOfSample")):
                    raise _Rejected(400, "a changed property lacks namespace/name/value/time")
            return
        _check_scope(payload.get("scope"), token)
        endpoints = payload.get("endpoints")
        if not isinstance(endpoints, list) or not endpoints:
            raise _Rejected(400, "event.payload.endpoints must be a non-empty list")
        if len(endpoints) > self.max_endpoints:
            raise _Rejected(413, f"more than {self.max_endpoints} endpoints in one report")
        for endpoint in endpoints:
            e = _need_obj(endpoint, "an endpoint")
            _need_id(e.get("endpointId"), "endpointId")
            if key[1] == "AddOrUpdateReport":
                caps = e.get("capabilities")
                if not isinstance(caps, list) or not any(
                    isinstance(c, dict) and c.get("interface") == "Alexa" for c in caps
                ):
                    raise _Rejected(400, "every endpoint must list the Alexa interface")
                for name in ("friendlyName", "manufacturerName", "description"):
                    if not isinstance(e.get(name), str) or not e[name]:
                        raise _Rejected(400, f"endpoint {name} is missing")

    def _check_message(
        self,
        headers: Mapping[str, str],
        token: str,
        body: bytes,
        document: Any,
        user_id: str | None,
    ) -> None:
        try:
            self._check_common(headers, token, body)
        except _Rejected as exc:
            if exc.status == 401:
                # Section 8 lists 403 for a bad token on this API.
                raise _Rejected(403, str(exc), "INVALID_ACCESS_TOKEN_EXCEPTION") from None
            raise
        if not user_id:
            raise _Rejected(404, "no such user")
        if not isinstance(document, dict):
            raise _Rejected(400, "the body is not a JSON object")
        data = document.get("data")
        if not isinstance(data, dict):
            raise _Rejected(400, "data is required and must be a JSON object")
        if len(json.dumps(data, separators=(",", ":")).encode()) > self.max_data_bytes:
            raise _Rejected(400, f"data is larger than {self.max_data_bytes} bytes")
        expires = document.get("expiresAfterSeconds", 3600)
        if isinstance(expires, bool) or not isinstance(expires, int) or not 60 <= expires <= 86400:
            raise _Rejected(400, "expiresAfterSeconds must be an integer from 60 to 86400")


def _load(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def _user_id(path: str) -> str | None:
    raw = path[len(MESSAGES_PREFIX) :]
    if not raw or "/" in raw:
        return None
    return urllib.parse.unquote(raw)


def _need_obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Rejected(400, f"{where} must be a JSON object")
    return value


def _need_id(value: Any, where: str) -> None:
    if not isinstance(value, str) or not 1 <= len(value) <= 256:
        raise _Rejected(400, f"{where} must be a string of 1 to 256 characters")


def _check_scope(value: Any, token: str) -> None:
    scope = _need_obj(value, "scope")
    if scope.get("type") != "BearerToken":
        raise _Rejected(400, "scope.type must be BearerToken")
    if scope.get("token") != token:
        raise _Rejected(400, "scope.token is not the bearer token of the request")
