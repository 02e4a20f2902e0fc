"""Alexa.Discovery: the device tells AVS what it is (avs-protocol 9).

`build_report()` and `check_report()` are plain functions (no I/O): the AddOrUpdateReport
document for the device's own endpoint with every agent's capability, checked against the
documented limits before anything is sent. `DiscoveryAgent` (interface `Alexa` 3, which makes
AVS answer with `Alexa.EventProcessed`) runs the exchange:

- on every new connection, as a post-connect step between VerifyGateway and
  SynchronizeState (9.5), it sends the report when it differs from the last one AVS accepted
  (kept in the device store) or none was accepted yet (9.4);
- it waits `ack_timeout` (the SDK's 2 s) for EventProcessed with the report's
  `eventCorrelationToken` (9.3);
- 400 and 403 stop (the reason is in `state_reason`); anything else is retried on the
  documented schedule (1, 2, 4, ... 256 s) in the background, rebuilt with a fresh token and
  correlation token, so that a failing Discovery never holds back the connection or a voice
  turn;
- `delete_report()` sends DeleteReport when the device is deregistered.

Products registered before Discovery declare through the legacy Capabilities API instead
(`capabilities_api=`, avs-protocol 9.7; `avsclient.agents.capabilities_api`), in the same
step, with the same state, store record and background retries (its own schedule).

The state (`DiscoveryState`) is observable: `state`, and `DiscoveryStateChanged` events.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random as _random
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from avsclient._retry import RetryPolicy
from avsclient.agents.base import CapabilityAgent, ImmediateHandler
from avsclient.agents.capabilities_api import (
    CAPABILITIES_API_RETRY,
    CapabilitiesApi,
    PutOutcome,
    capabilities_document,
    put_outcome,
)
from avsclient.agents.events import DiscoveryState, DiscoveryStateChanged
from avsclient.avs.tokens import AttemptFailed
from avsclient.exceptions import AVSError, CapabilityReportError
from avsclient.messages import Directive

if TYPE_CHECKING:
    from avsclient.agents.base import Capability
    from avsclient.avs.manager import EventResult, LinkSender, PostConnectStep
    from avsclient.config import DeviceInfo

__all__ = [
    "DISCOVERY_RETRY",
    "DiscoveryAgent",
    "DiscoveryState",
    "MAX_CAPABILITIES",
    "MAX_REPORT_BYTES",
    "build_report",
    "check_report",
    "report_digest",
]

_log = logging.getLogger("avsclient.agents")

#: The retry schedule after a failed report: 1, 2, 4, ... 256 s, the last repeating
#: (avs-protocol 9.3; the SDK adds no jitter that the reference could confirm).
DISCOVERY_RETRY = RetryPolicy.exponential(1.0, cap=256.0)
#: How long to wait for Alexa.EventProcessed after the report was accepted (SDK: 2 s).
DEFAULT_ACK_TIMEOUT = 2.0

# Documented limits (avs-protocol 9.2, [R29][R30][S23]).
MAX_ENDPOINTS = 300
MAX_CAPABILITIES = 100
#: The SDK puts at most 246 KB of endpoint JSON in one event (AVS allows 256 KB).
MAX_REPORT_BYTES = 246 * 1024
_MAX_ID = 256
_MAX_NAME = 128
_MAX_ATTRIBUTE = 256
_MAX_COOKIES = 5000
_ATTRIBUTES = frozenset(
    {
        "manufacturer",
        "model",
        "serialNumber",
        "firmwareVersion",
        "softwareVersion",
        "customIdentifier",
    }
)
# Discovery's own requirements (avs-protocol 9.1): these interfaces at these versions.
_REQUIRED = (("Alexa.ApiGateway", (1, 0)), ("InteractionModel", (1, 2)))
_MICROPHONE = ("SpeechRecognizer", (2, 3))

_NAMESPACE = "Alexa.Discovery"
_STORE_KEY = "report"


# -- the report (no I/O) -----------------------------------------------------------------------


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def build_report(
    device: DeviceInfo,
    capabilities: Sequence[Capability],
    *,
    token: str,
    correlation_token: str,
    message_id: str | None = None,
) -> dict[str, Any]:
    """The AddOrUpdateReport event document for the device's own endpoint (avs-protocol 9.2).

    No `context` and no `dialogRequestId`; `friendlyName` is empty for the device itself (SDK).
    """
    endpoint: dict[str, Any] = {
        "endpointId": device.endpoint_id,
        "manufacturerName": device.manufacturer_name,
        "description": device.description,
        "friendlyName": "",
        "displayCategories": ["ALEXA_VOICE_ENABLED"],
        "registration": {
            "productId": device.product_id,
            "deviceSerialNumber": device.device_serial_number,
        },
        "capabilities": [capability.to_json() for capability in capabilities],
    }
    if device.firmware_version is not None:
        endpoint["additionalAttributes"] = {"firmwareVersion": str(device.firmware_version)}
    return {
        "event": {
            "header": {
                "namespace": _NAMESPACE,
                "name": "AddOrUpdateReport",
                "messageId": message_id or str(uuid.uuid4()),
                "eventCorrelationToken": correlation_token,
                "payloadVersion": "3",
            },
            "payload": {"scope": {"type": "BearerToken", "token": token}, "endpoints": [endpoint]},
        }
    }


def delete_report(endpoint_id: str, *, token: str) -> dict[str, Any]:
    """The DeleteReport event document for one endpoint (avs-protocol 9.2)."""
    return {
        "event": {
            "header": {
                "namespace": _NAMESPACE,
                "name": "DeleteReport",
                "messageId": str(uuid.uuid4()),
                "eventCorrelationToken": str(uuid.uuid4()),
                "payloadVersion": "3",
            },
            "payload": {
                "scope": {"type": "BearerToken", "token": token},
                "endpoints": [{"endpointId": endpoint_id}],
            },
        }
    }


def report_digest(document: Mapping[str, Any]) -> str:
    """A digest of a report's endpoints (not of its token or ids): equal digests, same report."""
    endpoints = document["event"]["payload"]["endpoints"]
    canonical = json.dumps(endpoints, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _text(value: Any, where: str, *, low: int, high: int) -> None:
    if not isinstance(value, str):
        raise CapabilityReportError("must be a string", field=where)
    if not low <= len(value) <= high:
        raise CapabilityReportError(f"must be {low}..{high} characters", field=where)


def _capability(cap: Any, where: str, seen: set[tuple[str, str | None]]) -> None:
    if not isinstance(cap, Mapping):
        raise CapabilityReportError("must be an object", field=where)
    if cap.get("type") != "AlexaInterface":
        raise CapabilityReportError("type must be AlexaInterface", field=f"{where}.type")
    interface = cap.get("interface")
    _text(interface, f"{where}.interface", low=1, high=_MAX_ID)
    if interface == _NAMESPACE:
        raise CapabilityReportError("Alexa.Discovery is implicit: never list it", field=where)
    version = cap.get("version")
    if not isinstance(version, str) or not all(p.isdigit() for p in version.split(".")):
        raise CapabilityReportError("version must be a dotted string", field=f"{where}.version")
    instance = cap.get("instance")
    if instance is not None:
        _text(instance, f"{where}.instance", low=1, high=_MAX_ID)
    key = (str(interface), instance)
    if key in seen:
        raise CapabilityReportError(f"{interface} is declared twice", field=where)
    seen.add(key)
    for name in ("configurations", "properties"):
        if name in cap and not isinstance(cap[name], Mapping):
            raise CapabilityReportError("must be an object", field=f"{where}.{name}")


def check_report(document: Mapping[str, Any]) -> None:
    """Check an AddOrUpdateReport against the documented limits (avs-protocol 9.1, 9.2).

    Raises:
        CapabilityReportError: the first rule broken, naming the field.
    """
    event = document.get("event")
    if not isinstance(event, Mapping) or "context" in document:
        raise CapabilityReportError("a report is {'event': ...} without context", field="event")
    payload = event.get("payload")
    if not isinstance(payload, Mapping):
        raise CapabilityReportError("must be an object", field="payload")
    scope = payload.get("scope")
    if not isinstance(scope, Mapping) or scope.get("type") != "BearerToken":
        raise CapabilityReportError("must be a BearerToken scope", field="payload.scope")
    _text(scope.get("token"), "payload.scope.token", low=1, high=4096)
    endpoints = payload.get("endpoints")
    if not isinstance(endpoints, list) or not 1 <= len(endpoints) <= MAX_ENDPOINTS:
        raise CapabilityReportError(f"must hold 1..{MAX_ENDPOINTS} endpoints", field="endpoints")
    registration: Any = None
    for index, endpoint in enumerate(endpoints):
        where = f"endpoints[{index}]"
        if not isinstance(endpoint, Mapping):
            raise CapabilityReportError("must be an object", field=where)
        _text(endpoint.get("endpointId"), f"{where}.endpointId", low=1, high=_MAX_ID)
        for name in ("manufacturerName", "description"):
            _text(endpoint.get(name), f"{where}.{name}", low=1, high=_MAX_NAME)
        _text(endpoint.get("friendlyName", ""), f"{where}.friendlyName", low=0, high=_MAX_NAME)
        categories = endpoint.get("displayCategories")
        if (
            not isinstance(categories, list)
            or not categories
            or not all(isinstance(c, str) and c for c in categories)
        ):
            raise CapabilityReportError(
                "must be a non-empty list", field=f"{where}.displayCategories"
            )
        if "registration" in endpoint:
            reg = endpoint["registration"]
            if not isinstance(reg, Mapping):
                raise CapabilityReportError("must be an object", field=f"{where}.registration")
            for name in ("productId", "deviceSerialNumber"):
                _text(reg.get(name), f"{where}.registration.{name}", low=1, high=_MAX_ID)
            if registration is not None and reg != registration:
                raise CapabilityReportError(
                    "differs from another endpoint's", field=f"{where}.registration"
                )
            registration = reg
        attributes = endpoint.get("additionalAttributes", {})
        if not isinstance(attributes, Mapping):
            raise CapabilityReportError("must be an object", field=f"{where}.additionalAttributes")
        for name, value in attributes.items():
            if name not in _ATTRIBUTES:
                raise CapabilityReportError(
                    "is not a documented attribute", field=f"{where}.additionalAttributes.{name}"
                )
            _text(value, f"{where}.additionalAttributes.{name}", low=1, high=_MAX_ATTRIBUTE)
        cookie = endpoint.get("cookie", {})
        if not isinstance(cookie, Mapping) or not all(
            isinstance(v, str) and len(v) <= _MAX_ATTRIBUTE for v in cookie.values()
        ):
            raise CapabilityReportError("values must be strings <= 256", field=f"{where}.cookie")
        if len(json.dumps(cookie).encode()) >= _MAX_COOKIES:
            raise CapabilityReportError(
                f"must stay under {_MAX_COOKIES} bytes", field=f"{where}.cookie"
            )
        capabilities = endpoint.get("capabilities")
        if not isinstance(capabilities, list) or not 1 <= len(capabilities) <= MAX_CAPABILITIES:
            raise CapabilityReportError(
                f"must hold 1..{MAX_CAPABILITIES} capabilities", field=f"{where}.capabilities"
            )
        seen: set[tuple[str, str | None]] = set()
        for number, cap in enumerate(capabilities):
            _capability(cap, f"{where}.capabilities[{number}]", seen)
        if "registration" in endpoint:
            _check_requirements(capabilities, f"{where}.capabilities")
    size = len(json.dumps(endpoints, separators=(",", ":")).encode())
    if size > MAX_REPORT_BYTES:
        raise CapabilityReportError(
            f"{size} bytes of endpoints, more than {MAX_REPORT_BYTES}", field="endpoints"
        )


def _check_requirements(capabilities: list[Any], where: str) -> None:
    """The device using Discovery must declare ApiGateway >= 1.0, InteractionModel >= 1.2,
    and with a microphone SpeechRecognizer >= 2.3 (avs-protocol 9.1)."""
    declared = {cap["interface"]: _version(cap["version"]) for cap in capabilities}
    for interface, least in _REQUIRED:
        if interface not in declared:
            raise CapabilityReportError(f"Discovery needs {interface}", field=where)
        if declared[interface] < least:
            raise CapabilityReportError(
                f"{interface} must be >= {'.'.join(map(str, least))}", field=where
            )
    interface, least = _MICROPHONE
    if interface in declared and declared[interface] < least:
        raise CapabilityReportError(f"{interface} must be >= 2.3", field=where)


# -- the agent ---------------------------------------------------------------------------------

_Send = Callable[[Mapping[str, Any]], Awaitable["EventResult"]]


class DiscoveryAgent(CapabilityAgent):
    """Publishes the device's capabilities with Alexa.Discovery and handles EventProcessed.

    Declares `Alexa` 3 (so that AVS sends EventProcessed, avs-protocol 9.1); Alexa.Discovery
    itself is implicit and never declared.
    """

    namespace = "Alexa"
    version = "3"

    def __init__(
        self,
        *,
        retry: RetryPolicy | None = None,
        ack_timeout: float = DEFAULT_ACK_TIMEOUT,
        random: Callable[[], float] = _random.random,
        capabilities_api: CapabilitiesApi | None = None,
    ) -> None:
        """Create the agent.

        Args:
            retry: the schedule of attempts after a failure (tests compress it); default
                `DISCOVERY_RETRY`, or `CAPABILITIES_API_RETRY` with `capabilities_api`.
            ack_timeout: seconds to wait for EventProcessed after the report was accepted.
            random: the jitter source of `retry`.
            capabilities_api: declare through the legacy Capabilities API instead of
                Alexa.Discovery (products registered before Discovery; avs-protocol 9.7).

        Raises:
            ValueError: `ack_timeout` is not positive.
        """
        super().__init__()
        if not ack_timeout > 0:
            raise ValueError("ack_timeout must be positive")
        #: The legacy Capabilities API used instead of Alexa.Discovery, or None.
        self.capabilities_api = capabilities_api
        if retry is None:
            retry = DISCOVERY_RETRY if capabilities_api is None else CAPABILITIES_API_RETRY
        self.retry = retry
        self.ack_timeout = ack_timeout
        self._random = random
        self._state = DiscoveryState.IDLE
        #: Why the state is what it is (the error of the last failure), or None.
        self.state_reason: str | None = None
        #: Attempts made since the last success (1 after the first failure).
        self.failures = 0
        self._acks: dict[str, asyncio.Future[None]] = {}
        self._retrying: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    # -- observation -------------------------------------------------------------------------

    @property
    def state(self) -> DiscoveryState:
        """The state of the device's capability report."""
        return self._state

    def _set(
        self, state: DiscoveryState, reason: str | None = None, delay: float | None = None
    ) -> None:
        self._state, self.state_reason = state, reason
        _log.info("Discovery %s%s", state.name, f": {reason}" if reason else "")
        if self.attached:
            self.messenger.notify(
                DiscoveryStateChanged(
                    state=state, reason=reason, attempts=self.failures, retry_in=delay
                )
            )

    # -- wiring ------------------------------------------------------------------------------

    def immediate_handlers(self) -> dict[str, ImmediateHandler]:
        # Resolved as it arrives: the report's sender is waiting for it with a deadline.
        return {"EventProcessed": self._on_event_processed}

    def post_connect(self) -> list[tuple[int, PostConnectStep]]:
        return [(100, self._post_connect)]

    def _on_event_processed(self, directive: Directive) -> None:
        token = directive.correlation_token
        waiter = self._acks.get(token) if token is not None else None
        if waiter is None:
            _log.debug("EventProcessed for %r, which nobody awaits: ignored", token)
            return
        if not waiter.done():
            waiter.set_result(None)

    # -- the exchange ------------------------------------------------------------------------

    async def _post_connect(self, sender: LinkSender) -> None:
        if self._retrying is not None:  # this connection runs it now, in order
            self._retrying.cancel()
            # Wait for it to end without swallowing a cancellation of this step itself.
            await asyncio.gather(self._retrying, return_exceptions=True)
            self._retrying = None
        if not await self._attempt(self._observed(sender.send), sender.token):
            self._schedule_retry()

    def _observed(self, send: _Send) -> _Send:
        async def sending(document: Mapping[str, Any]) -> EventResult:
            result = await send(document)
            self.messenger.observe(document, result)
            return result

        return sending

    def capabilities_changed(self) -> None:
        """A declaration changed at run time: report it at once (in the background)."""
        if self._closed or not self.attached:
            return
        self.failures = 0
        self._schedule_retry(delay=0.0)

    def _schedule_retry(self, delay: float | None = None) -> None:
        if self._closed:
            return
        if self._retrying is not None and not self._retrying.done():
            if delay is None:
                return
            self._retrying.cancel()
        self._retrying = asyncio.create_task(self._retry_loop(delay), name="Discovery retry")

    async def _retry_loop(self, first_delay: float | None) -> None:
        services = self.services
        delay = first_delay
        while not self._closed:
            if delay is None:
                delay = self.retry.next_delay(self.failures, self._random)
                if delay is None:
                    self._set(DiscoveryState.REJECTED, "no retries left")
                    return
                self._set(DiscoveryState.RETRYING, self.state_reason, delay)
            await asyncio.sleep(delay)
            delay = None
            if await self._attempt(self.messenger.send_document, services.access_token):
                return

    async def _attempt(self, send: _Send, token: Callable[[], Awaitable[str]]) -> bool:
        """One report, if one is due. True when done (sent and acknowledged, unchanged, or
        stopped for good); False when it must be tried again."""
        async with self._lock:
            services = self.services
            if services.device is None:
                self._set(DiscoveryState.INVALID, "no DeviceInfo: the device cannot be described")
                return True
            if self.capabilities_api is not None:
                return await self._attempt_legacy(self.capabilities_api, services.device, token)
            correlation = str(uuid.uuid4())
            try:
                access_token = await token()
            except (AVSError, AttemptFailed, TimeoutError) as exc:  # no token yet: try later
                self.failures += 1
                self.state_reason = f"no access token: {exc}"
                return False
            try:
                document = build_report(
                    services.device,
                    services.capabilities(),
                    token=access_token,
                    correlation_token=correlation,
                )
                check_report(document)
            except CapabilityReportError as exc:
                self._set(DiscoveryState.INVALID, str(exc))
                return True
            digest = report_digest(document)
            store = services.store
            accepted = store.get(_NAMESPACE, _STORE_KEY) if store is not None else None
            if isinstance(accepted, dict) and accepted.get("digest") == digest:
                self.failures = 0
                self._set(DiscoveryState.UNCHANGED)
                return True
            self._set(DiscoveryState.SENDING)
            waiter = asyncio.get_running_loop().create_future()
            self._acks[correlation] = waiter
            try:
                result = await send(document)
                if result.ok:
                    try:
                        async with asyncio.timeout(self.ack_timeout):
                            await waiter
                    except TimeoutError:
                        return self._failed(f"no EventProcessed within {self.ack_timeout} s")
                elif result.status in (400, 403):
                    why = f"AVS answered {result.status}: {result.error}"
                    self.failures += 1
                    self._set(DiscoveryState.REJECTED, why)
                    return True
                else:
                    status = "" if result.status is None else f" {result.status}"
                    return self._failed(f"{result.outcome.name}{status}: {result.error}")
            finally:
                self._acks.pop(correlation, None)
            if store is not None:
                store.set(
                    _NAMESPACE,
                    _STORE_KEY,
                    {"digest": digest, "endpointId": services.device.endpoint_id},
                )
            self.failures = 0
            self._set(DiscoveryState.ACCEPTED)
            return True

    async def _attempt_legacy(
        self, api: CapabilitiesApi, device: DeviceInfo, token: Callable[[], Awaitable[str]]
    ) -> bool:
        """One PUT to the Capabilities API, if the body, the device's ids or the host changed
        since the last success (avs-protocol 9.7)."""
        store = self.services.store
        document = capabilities_document(self.services.capabilities())
        canonical = json.dumps(
            {"body": document, "endpointId": device.endpoint_id, "url": api.url},
            sort_keys=True,
            separators=(",", ":"),
        )
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        accepted = store.get(_NAMESPACE, _STORE_KEY) if store is not None else None
        if isinstance(accepted, dict) and accepted.get("digest") == digest:
            self.failures = 0
            self._set(DiscoveryState.UNCHANGED)
            return True
        self._set(DiscoveryState.SENDING)
        try:
            async with asyncio.timeout(api.timeout):  # the whole exchange, not each read
                reply = await api.put(document, await token())
        except Exception as exc:  # no token, or the API unreachable: try again later
            return self._failed(f"Capabilities API at {api.url}: {exc}")
        outcome, why = put_outcome(reply)
        if outcome is PutOutcome.RETRY:
            return self._failed(f"Capabilities API at {api.url}: {why}")
        if outcome is PutOutcome.FATAL:
            self.failures += 1
            self._set(DiscoveryState.REJECTED, f"Capabilities API at {api.url}: {why}")
            return True
        if store is not None:
            store.set(
                _NAMESPACE,
                _STORE_KEY,
                {"digest": digest, "endpointId": device.endpoint_id, "api": api.url},
            )
        self.failures = 0
        self._set(DiscoveryState.ACCEPTED)
        return True

    def _failed(self, why: str) -> bool:
        self.failures += 1
        self.state_reason = why
        _log.warning("Discovery attempt %d failed: %s", self.failures, why)
        return False

    async def delete_report(self, *, timeout: float = 5.0) -> EventResult | None:
        """Send DeleteReport for the device's endpoint (deregistration) and forget the
        accepted report, so that the next account gets the report again. No EventProcessed
        is awaited (avs-protocol 9.2). Returns the result, or None without a device or token.
        """
        services = self.services
        self.forget_report()
        if services.device is None:
            return None
        try:
            async with asyncio.timeout(timeout):
                token = await services.access_token()
                document = delete_report(services.device.endpoint_id, token=token)
                return await self.messenger.send_document(document)
        except Exception as exc:
            _log.warning("DeleteReport could not be sent: %r", exc)
            return None

    def forget_report(self) -> None:
        """Stop reporting and forget the report AVS accepted (the next account gets it)."""
        if self._retrying is not None:
            self._retrying.cancel()
        store = self.services.store
        if store is not None:
            store.delete(_NAMESPACE, _STORE_KEY)
        self._set(DiscoveryState.IDLE)

    def forget_account(self) -> None:
        self.failures = 0
        self._set(DiscoveryState.IDLE)

    async def aclose(self) -> None:
        """Stop the retries."""
        self._closed = True
        task, self._retrying = self._retrying, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for waiter in self._acks.values():
            waiter.cancel()
