"""The System interface: inactivity reports, endpoint changes, exceptions (avs-protocol 5.3).

SynchronizeState itself is sent by the connection manager on every connect, with the full
context the client gathers from all agents.
"""

from __future__ import annotations

import asyncio
import logging

from avsclient.agents import payload
from avsclient.agents.base import CapabilityAgent, DirectiveHandler
from avsclient.agents.events import ExceptionReceived
from avsclient.config import MAX_CLOUD_ENDPOINT
from avsclient.messages import Directive, Event, ExceptionType, exception_encountered

__all__ = ["DEFAULT_INACTIVITY_REPORT_INTERVAL", "SystemAgent"]

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
        self, *, inactivity_report_interval: float = DEFAULT_INACTIVITY_REPORT_INTERVAL
    ) -> None:
        """Create the agent.

        Args:
            inactivity_report_interval: seconds between UserInactivityReports.

        Raises:
            ValueError: the interval is not positive.
        """
        super().__init__()
        if inactivity_report_interval <= 0:
            raise ValueError("inactivity_report_interval must be positive")
        self.inactivity_report_interval = inactivity_report_interval
        self._timer: asyncio.Task[None] | None = None
        #: The last System.Exception received, as (code, description).
        self.last_exception: tuple[str, str | None] | None = None

    def handlers(self) -> dict[str, DirectiveHandler]:
        return {
            "ResetUserInactivity": self._on_reset_user_inactivity,
            "SetEndpoint": self._on_set_endpoint,
            "Exception": self._on_exception,
        }

    @property
    def inactive_seconds(self) -> int:
        """Whole seconds since the last user activity (the client's `UserActivity`)."""
        return self.services.activity.inactive_seconds

    def user_activity(self) -> None:
        """Record user activity now (a Recognize starting or ending counts, avs-protocol 5.3)."""
        self.services.activity.touch()

    def start(self) -> None:
        """Start the hourly UserInactivityReport timer."""
        if self._timer is None:
            self._timer = asyncio.create_task(self._report_inactivity())

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
        """Stop the inactivity timer."""
        if self._timer is not None:
            self._timer.cancel()
            await asyncio.gather(self._timer, return_exceptions=True)
            self._timer = None
