"""The System interface: inactivity reports, endpoint changes, exceptions (avs-protocol 5.3),
and its completion (12): SoftwareInfo, ReportState/StateReport, RevokeAuthorization, and the
locale and time zone settings with their Report and Changed events, kept in the device store.

SynchronizeState itself is sent by the connection manager on every connect, with the full
context the client gathers from all agents.
"""

from __future__ import annotations

import asyncio
import logging
import random as _random
import re
import zoneinfo
from collections.abc import Callable, Sequence
from typing import Any

from avsclient._retry import RetryPolicy
from avsclient._tasks import TaskSet
from avsclient.agents import payload
from avsclient.agents.base import (
    AgentServices,
    Capability,
    CapabilityAgent,
    DirectiveHandler,
    StateReportEntry,
)
from avsclient.agents.events import ExceptionReceived
from avsclient.config import MAX_CLOUD_ENDPOINT
from avsclient.exceptions import DirectiveError
from avsclient.messages import Directive, Event, ExceptionType, exception_encountered

__all__ = [
    "DEFAULT_INACTIVITY_REPORT_INTERVAL",
    "DEFAULT_LOCALES",
    "DEFAULT_LOCALE_COMBINATIONS",
    "SOFTWARE_INFO_RETRY",
    "SystemAgent",
]

#: Locales a device supports unless told otherwise: those AVS documents for Alexa Built-in;
#: the first is the locale in force until AVS sets one.
DEFAULT_LOCALES = (
    "en-US", "de-DE", "en-AU", "en-CA", "en-GB", "en-IN", "es-ES", "es-MX", "es-US",
    "fr-CA", "fr-FR", "hi-IN", "it-IT", "ja-JP", "pt-BR",
)  # fmt: skip
#: Locale pairs that may be active together (primary first), as the SDK declares them.
DEFAULT_LOCALE_COMBINATIONS = (
    ("en-US", "es-US"), ("es-US", "en-US"), ("en-CA", "fr-CA"), ("fr-CA", "en-CA"),
    ("en-IN", "hi-IN"), ("hi-IN", "en-IN"),
)  # fmt: skip
#: SoftwareInfo retries until accepted: 1, 5, 25, then 1250 s (avs-protocol 12.2).
SOFTWARE_INFO_RETRY = RetryPolicy(delays=(1.0, 5.0, 25.0, 1250.0))
_DEFAULT_TIME_ZONE = "America/Los_Angeles"
# IANA names: letters, digits, '_', '-', '+' in up to three '/'-separated parts.
_TIME_ZONE = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}")

_log = logging.getLogger("avsclient.agents")

#: AVS asks for a UserInactivityReport every hour (avs-protocol 5.3).
DEFAULT_INACTIVITY_REPORT_INTERVAL = 3600.0

# System.Exception: an exception code is a short upper-case name, its description a sentence
# or two (avs-protocol 4.1); more is not an exception report.
_MAX_CODE = 256
_MAX_DESCRIPTION = 4096


class SystemAgent(CapabilityAgent):
    """System directives (ResetUserInactivity, SetEndpoint, Exception) and events
    (UserInactivityReport every `inactivity_report_interval`, ExceptionEncountered)."""

    namespace = "System"
    # The SDK declares 1.4 (avs-protocol 9.8, 12.1), with `locales` configurations once the
    # device supports locale settings; none are declared until then.
    version = "1.4"

    def __init__(
        self,
        *,
        inactivity_report_interval: float = DEFAULT_INACTIVITY_REPORT_INTERVAL,
        locales: Sequence[str] = DEFAULT_LOCALES,
        locale_combinations: Sequence[Sequence[str]] = DEFAULT_LOCALE_COMBINATIONS,
        time_zone: str = _DEFAULT_TIME_ZONE,
        software_info_retry: RetryPolicy = SOFTWARE_INFO_RETRY,
        random: Callable[[], float] = _random.random,
    ) -> None:
        """Create the agent.

        Args:
            inactivity_report_interval: seconds between UserInactivityReports.
            locales: the locales the device supports (declared in its capability).
            locale_combinations: the locale sets that may be active together.
            time_zone: the time zone until AVS sets one (IANA name).
            software_info_retry: SoftwareInfo's retries until accepted.
            random: the jitter source of the retries.

        Raises:
            ValueError: the interval is not positive, no locales, a combination of
                undeclared locales, or an unknown time zone.
        """
        super().__init__()
        if inactivity_report_interval <= 0:
            raise ValueError("inactivity_report_interval must be positive")
        if not locales:
            raise ValueError("a device supports at least one locale")
        self.supported_locales = tuple(locales)
        self.locale_combinations = tuple(tuple(c) for c in locale_combinations)
        if any(x not in self.supported_locales for c in self.locale_combinations for x in c):
            raise ValueError("locale combinations may only use supported locales")
        if not _known_time_zone(time_zone):
            raise ValueError(f"unknown time zone {time_zone!r}")
        self.default_time_zone = time_zone
        #: The active locales, primary first (SetLocales).
        self.locales: tuple[str, ...] = (self.supported_locales[0],)
        #: The time zone (SetTimeZone), an IANA name.
        self.time_zone = time_zone
        self.software_info_retry = software_info_retry
        self._random = random
        self.inactivity_report_interval = inactivity_report_interval
        self._timer: asyncio.Task[None] | None = None
        self._tasks = TaskSet(_log, "system")
        #: The last System.Exception received, as (code, description).
        self.last_exception: tuple[str, str | None] | None = None

    def handlers(self) -> dict[str, DirectiveHandler]:
        return {
            "ResetUserInactivity": self._on_reset_user_inactivity,
            "SetEndpoint": self._on_set_endpoint,
            "Exception": self._on_exception,
            "ReportSoftwareInfo": self._on_report_software_info,
            "ReportState": self._on_report_state,
            "RevokeAuthorization": self._on_revoke_authorization,
            "SetLocales": self._on_set_locales,
            "SetTimeZone": self._on_set_time_zone,
        }

    def attach(self, services: AgentServices) -> None:
        super().attach(services)
        store = services.store
        if store is None:
            return
        locales = store.get(self.namespace, "locales")
        if (
            isinstance(locales, list)
            and locales
            and all(isinstance(x, str) and x in self.supported_locales for x in locales)
        ):
            self.locales = tuple(str(x) for x in locales)
        zone = store.get(self.namespace, "timeZone")
        if isinstance(zone, str) and _known_time_zone(zone):
            self.time_zone = zone

    def capability(self) -> Capability:
        """System 1.4 with the supported `locales` and `localeCombinations` (12.1)."""
        return Capability(
            self.namespace,
            self.version,
            {
                "locales": list(self.supported_locales),
                "localeCombinations": [list(c) for c in self.locale_combinations],
            },
        )

    def state_reports(self) -> list[StateReportEntry]:
        return [
            _entry("LocalesReport", {"locales": list(self.locales)}),
            _entry("TimeZoneReport", {"timeZone": self.time_zone}),
        ]

    def forget_account(self) -> None:
        self.locales = (self.supported_locales[0],)
        self.time_zone = self.default_time_zone

    @property
    def inactive_seconds(self) -> int:
        """Whole seconds since the last user activity (the client's `UserActivity`)."""
        return self.services.activity.inactive_seconds

    def user_activity(self) -> None:
        """Record user activity now (a Recognize starting or ending counts, avs-protocol 5.3)."""
        self.services.activity.touch()

    def start(self) -> None:
        """Start the hourly UserInactivityReport timer; send SoftwareInfo if the firmware
        version is new to AVS, and a StateReport still pending from an earlier run."""
        if self._timer is None:
            self._timer = asyncio.create_task(self._report_inactivity())
        services = self.services
        store = services.store
        version = services.device.firmware_version if services.device is not None else None
        if version is not None and (
            store is None or store.get(self.namespace, "softwareInfoAccepted") != version
        ):
            self._tasks.spawn(self._send_software_info(version))
        if store is not None and store.get(self.namespace, "stateReportPending"):
            self._tasks.spawn(self._send_state_report())

    # -- SoftwareInfo and StateReport --------------------------------------------------------

    async def _send_software_info(self, version: int) -> None:
        """SoftwareInfo `{"firmwareVersion": "<decimal>"}` until AVS accepts it (12.2)."""
        failures = 0
        while True:
            event = Event.build(self.namespace, "SoftwareInfo", {"firmwareVersion": str(version)})
            result = await self.messenger.send(event)
            if result.ok:
                store = self.services.store
                if store is not None:
                    store.set(self.namespace, "softwareInfoAccepted", version)
                return
            failures += 1
            delay = self.software_info_retry.next_delay(failures, self._random)
            if delay is None:
                _log.warning("SoftwareInfo not accepted after %d attempts", failures)
                return
            _log.info("SoftwareInfo failed (%s); again in %.1f s", result.outcome.name, delay)
            await asyncio.sleep(delay)

    async def _send_state_report(self) -> None:
        """StateReport with every agent's setting reports and context; the pending flag is
        persisted until AVS accepted it (12.2)."""
        store = self.services.store
        if store is not None:
            store.set(self.namespace, "stateReportPending", True)
        event = Event.build(
            self.namespace, "StateReport", {"states": self.services.state_reports()}
        )
        result = await self.messenger.send(event, context=True)
        if result.ok and store is not None:
            store.delete(self.namespace, "stateReportPending")

    async def _on_report_software_info(self, directive: Directive) -> None:
        device = self.services.device
        if device is None or device.firmware_version is None:
            raise DirectiveError(
                "no firmware version is known", error_type=ExceptionType.INTERNAL_ERROR.value
            )
        self._tasks.spawn(self._send_software_info(device.firmware_version))

    async def _on_report_state(self, directive: Directive) -> None:
        self._tasks.spawn(self._send_state_report())

    async def _on_revoke_authorization(self, directive: Directive) -> None:
        _log.warning("AVS revoked this device's authorization")
        self._tasks.spawn(self.services.revoke())  # it closes the connection this came on

    # -- settings ----------------------------------------------------------------------------

    async def _on_set_locales(self, directive: Directive) -> None:
        try:
            locales = self._check_locales(payload.seq(directive.payload, "locales", max_items=4))
        except DirectiveError:
            await self._report("LocalesReport", {"locales": list(self.locales)})
            raise
        await self._apply_locales(locales, "LocalesReport")

    def _check_locales(self, raw: list[Any]) -> tuple[str, ...]:
        if not raw or not all(isinstance(x, str) for x in raw):
            raise DirectiveError("locales must be a non-empty array of locales")
        locales = tuple(raw)
        if len(locales) == 1:
            if locales[0] not in self.supported_locales:
                raise DirectiveError(f"unsupported locale {locales[0]!r}")
        elif locales not in self.locale_combinations:
            raise DirectiveError(f"unsupported locale combination {list(locales)!r}")
        return locales

    async def _apply_locales(self, locales: tuple[str, ...], event: str) -> None:
        await self.services.deliver(
            Event.build(self.namespace, event, {"locales": list(locales)}),
            {(self.namespace, "locales"): list(locales)},
        )
        self.locales = locales
        self.services.capabilities_changed()  # wake words follow the locale (11.5)

    async def _on_set_time_zone(self, directive: Directive) -> None:
        zone = payload.text(directive.payload, "timeZone", max_length=64)
        if not _known_time_zone(zone):
            await self._report("TimeZoneReport", {"timeZone": self.time_zone})
            raise DirectiveError(f"unknown time zone {zone!r}")
        await self._apply_time_zone(zone, "TimeZoneReport")

    async def _apply_time_zone(self, zone: str, event: str) -> None:
        await self.services.deliver(
            Event.build(self.namespace, event, {"timeZone": zone}),
            {(self.namespace, "timeZone"): zone},
        )
        self.time_zone = zone

    async def set_locales(self, locales: Sequence[str]) -> None:
        """Change the locales locally (primary first) and tell AVS (LocalesChanged).

        Raises:
            ValueError: an unsupported locale or combination.
        """
        try:
            checked = self._check_locales(list(locales))
        except DirectiveError as exc:
            raise ValueError(str(exc)) from exc
        await self._apply_locales(checked, "LocalesChanged")

    async def set_time_zone(self, zone: str) -> None:
        """Change the time zone locally and tell AVS (TimeZoneChanged).

        Raises:
            ValueError: not a known IANA time zone.
        """
        if not _known_time_zone(zone):
            raise ValueError(f"unknown time zone {zone!r}")
        await self._apply_time_zone(zone, "TimeZoneChanged")

    async def _report(self, name: str, body: dict[str, Any]) -> None:
        # Settings events must reach AVS: through the persisted outbox (AgentServices.deliver).
        await self.services.deliver(Event.build(self.namespace, name, body))

    async def _report_inactivity(self) -> None:
        while True:
            await asyncio.sleep(self.inactivity_report_interval)
            await self.send_user_inactivity_report()

    async def send_user_inactivity_report(self) -> None:
        """Queue a UserInactivityReport with the current inactive time."""
        payload = {"inactiveTimeInSeconds": self.inactive_seconds}
        await self.messenger.post_event(Event.build("System", "UserInactivityReport", payload))

    async def send_exception_encountered(
        self, unparsed: bytes | str, error: ExceptionType, message: str
    ) -> None:
        """Queue a System.ExceptionEncountered about a directive (with `"context": []`)."""
        await self.messenger.post(exception_encountered(unparsed, error, message))

    async def _on_reset_user_inactivity(self, directive: Directive) -> None:
        self.user_activity()

    async def _on_set_endpoint(self, directive: Directive) -> None:
        endpoint = payload.text(directive.payload, "endpoint", max_length=MAX_CLOUD_ENDPOINT)
        _log.info("AVS asked to switch to endpoint %r", endpoint[:100])
        # The services check it (https, an allowed host: `ClientConfig.check_cloud_endpoint`)
        # before anything is stored; EndpointRejected is a DirectiveError, so AVS hears of it.
        await self.services.set_endpoint(endpoint)

    async def _on_exception(self, directive: Directive) -> None:
        code = payload.text(directive.payload, "code", default="UNKNOWN", max_length=_MAX_CODE)
        text = payload.text(
            directive.payload,
            "description",
            default=None,
            max_length=_MAX_DESCRIPTION,
            allow_empty=True,
        )
        _log.warning("AVS sent System.Exception %s: %s", code, text)
        self.last_exception = (code, text)
        self.messenger.notify(ExceptionReceived(code=code, description=text))

    async def aclose(self) -> None:
        """Stop the inactivity timer and the SoftwareInfo and StateReport senders."""
        await self._tasks.cancel()
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
            await asyncio.gather(timer, return_exceptions=True)


def _known_time_zone(name: str) -> bool:
    """True for an IANA time zone name the system knows (`zoneinfo`)."""
    if not _TIME_ZONE.fullmatch(name):
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _entry(name: str, body: dict[str, Any]) -> StateReportEntry:
    return {"header": {"namespace": "System", "name": name}, "payload": body}
