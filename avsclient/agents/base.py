"""What capability agents share: the agent base class, the capability an agent declares, the
services the client hands to every agent, and the `Messenger` they send events through.

An agent handles its interface's directives (`handlers()`), sends its events through the
`Messenger`, reports its device state as context (`context_states()`) and declares its
`Capability`. Agents never hold each other: what they share (the dialog owner, audio focus,
user activity, attachments) comes from the client in `AgentServices` when the agent is added.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import types
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from avsclient.agents.events import ClientEvent, EventFailed, EventSent
from avsclient.config import AMAZON_ENDPOINT_HOSTS, check_cloud_endpoint
from avsclient.directives import ImmediateHandler
from avsclient.exceptions import AudioError, StateError
from avsclient.messages import ContextState, Directive, Event

if TYPE_CHECKING:
    from avsclient.activity import UserActivity
    from avsclient.attachments import AttachmentStore
    from avsclient.avs.manager import EventResult, PostConnectStep
    from avsclient.config import DeviceInfo
    from avsclient.dialog import DialogManager
    from avsclient.focus import FocusManager
    from avsclient.outbox import EventOutbox
    from avsclient.store import DeviceStore, JSONValue

__all__ = [
    "AgentServices",
    "CLOSE_FLUSH_TIMEOUT",
    "Capability",
    "CapabilityAgent",
    "ContextProvider",
    "DirectiveHandler",
    "EventSender",
    "ImmediateHandler",
    "Messenger",
    "OUTBOX_SIZE",
    "StateReportEntry",
    "stop_sound",
]

_log = logging.getLogger("avsclient.agents")

#: Events waiting to be sent in the background (SpeechStarted, VolumeChanged, ...). Agents
#: wait when it is full, so a dead link slows them down instead of growing memory.
OUTBOX_SIZE = 64


class EventSender(Protocol):
    """Sends events to AVS: the connection manager's `send_event`."""

    async def send_event(
        self, event: Mapping[str, Any], *, audio: AsyncIterable[bytes] | None = None
    ) -> EventResult:
        """Send one event document (and streamed audio); returns exactly one outcome."""
        ...


class ContextProvider(Protocol):
    """Something that reports device state as context (avs-protocol 5.1)."""

    def context_states(self) -> list[ContextState]:
        """The current state objects, e.g. `Speaker.VolumeState`."""
        ...


#: Seconds `Messenger.aclose` spends sending the events still queued.
CLOSE_FLUSH_TIMEOUT = 2.0


class Messenger:
    """How agents talk: events out (awaited or in an ordered background outbox), context,
    and observations to the application."""

    def __init__(
        self,
        sender: EventSender,
        *,
        providers: list[ContextProvider],
        notify: Callable[[ClientEvent], None],
        outbox_size: int = OUTBOX_SIZE,
    ) -> None:
        """Create a messenger.

        Args:
            sender: the connection manager.
            providers: the context providers, asked in order.
            notify: delivers observations to the application.
            outbox_size: background events held before `post()` waits.
        """
        self.sender = sender
        self.providers = providers
        self.notify = notify
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(outbox_size)
        self._worker: asyncio.Task[None] | None = None

    def context(self) -> list[dict[str, Any]]:
        """The full context, as JSON objects."""
        return [state.to_json() for p in self.providers for state in p.context_states()]

    async def send(
        self,
        event: Event,
        *,
        context: bool = False,
        audio: AsyncIterable[bytes] | None = None,
    ) -> EventResult:
        """Send an event now and return its outcome (never raises for network trouble)."""
        document = event.to_json(context=self.context() if context else None)
        result = await self.sender.send_event(document, audio=audio)
        self.observe(document, result)
        return result

    async def send_document(self, document: Mapping[str, Any]) -> EventResult:
        """Send a ready event document now and return its outcome (observed like `send`)."""
        result = await self.sender.send_event(document)
        self.observe(document, result)
        return result

    async def post(self, document: dict[str, Any]) -> None:
        """Queue an event document for the background sender; events go out in post order.

        Waits while the outbox is full.
        """
        if self._worker is None:
            self._worker = asyncio.create_task(self._drain())
        await self._outbox.put(document)

    async def post_event(self, event: Event, *, context: bool = False) -> None:
        """`post()` an `Event` (with the current context when asked)."""
        await self.post(event.to_json(context=self.context() if context else None))

    async def _drain(self) -> None:
        while True:
            document = await self._outbox.get()
            try:
                result = await self.sender.send_event(document)
            except Exception:  # the manager promises not to raise; never let the loop die
                _log.exception("sending %s failed", _name(document))
                continue
            finally:
                self._outbox.task_done()
            self.observe(document, result)

    def observe(self, document: Mapping[str, Any], result: EventResult) -> None:
        """Tell the application an event's outcome (`EventSent`, and `EventFailed`)."""
        namespace, name = _name(document)
        self.notify(EventSent(namespace=namespace, name=name, result=result))
        if result.outcome.name in ("SUCCESS", "SUCCESS_NO_CONTENT"):
            return
        _log.warning("event %s.%s failed: %s", namespace, name, result.outcome.name)
        self.notify(EventFailed(namespace=namespace, name=name, result=result))

    async def flush(self) -> None:
        """Wait until the outbox is empty and its last event was sent."""
        await self._outbox.join()

    async def aclose(self, flush_timeout: float = CLOSE_FLUSH_TIMEOUT) -> None:
        """Send what is queued (at most `flush_timeout` seconds: an event the user's last
        action caused, such as SpeechFinished, still reaches AVS when the client closes right
        after it), then stop the background sender; events still queued are dropped, and
        logged."""
        if self._worker is not None and not self._worker.done():
            try:
                async with asyncio.timeout(flush_timeout):
                    await self._outbox.join()
            except TimeoutError:
                pass
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        if not self._outbox.empty():
            _log.info("%d queued events not sent at close", self._outbox.qsize())


async def stop_sound(player: asyncio.Task[Any] | None, stop: Callable[[], Awaitable[None]]) -> bool:
    """Cut off a sound being played by the task `player`: cancel it, wait for it to end, then
    `stop()` its output (an AudioError from the output is ignored: the sound has ended).

    Returns:
        False, doing nothing, when `player` is None or has already finished.
    """
    if player is None or player.done():
        return False
    player.cancel()
    await asyncio.gather(player, return_exceptions=True)
    with contextlib.suppress(AudioError):
        await stop()
    return True


def _name(document: Mapping[str, Any]) -> tuple[str, str]:
    header = document.get("event", {}).get("header", {})
    return str(header.get("namespace")), str(header.get("name"))


DirectiveHandler = Callable[[Directive], Awaitable[None]]
"""Handles one directive; raises `DirectiveError` to have AVS told (ExceptionEncountered)."""

StateReportEntry = dict[str, Any]
"""One entry of `System.StateReport`'s `states`: `{"header": {"namespace", "name"},
"payload": {...}}`, e.g. System.LocalesReport (avs-protocol 12.2)."""


def _no_capabilities() -> tuple[Capability, ...]:
    return ()


def _nothing() -> None:
    return None


def _no_reports() -> list[StateReportEntry]:
    return []


def _no_endpoint() -> str:
    return ""


def _amazon_endpoint(url: object) -> str:
    return check_cloud_endpoint(url, AMAZON_ENDPOINT_HOSTS)


async def _no_token() -> str:
    raise StateError("no access token source: the agent is not part of a client")


async def _no_revoke() -> object:
    return None


# Interface versions are dotted decimal strings: "1.0", "2.3", and "3" for `Alexa`.
_VERSION = re.compile(r"[0-9]+(\.[0-9]+)*")


@dataclass(frozen=True, slots=True)
class Capability:
    """What an agent declares: its interface, the version it implements and its configuration,
    as published in `Alexa.Discovery.AddOrUpdateReport` (avs-protocol 9.2, versions in 9.8).

    Attributes:
        interface: the interface name, e.g. `SpeechRecognizer`.
        version: the interface version, e.g. `2.3`.
        configurations: the interface's configuration object (e.g. SpeechRecognizer's
            `wakeWords`), or None; held read-only.
    """

    interface: str
    version: str
    configurations: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.interface, str) or not self.interface:
            raise ValueError(f"interface must be a non-empty string, not {self.interface!r}")
        if not isinstance(self.version, str) or not _VERSION.fullmatch(self.version):
            raise ValueError(f"version must be like '1.0', not {self.version!r}")
        if self.configurations is not None:
            if not isinstance(self.configurations, Mapping):
                raise ValueError("configurations must be a mapping")
            frozen = types.MappingProxyType(dict(self.configurations))
            object.__setattr__(self, "configurations", frozen)

    def to_json(self) -> dict[str, Any]:
        """The capability object of a Discovery report (`type` is `AlexaInterface`)."""
        out: dict[str, Any] = {
            "type": "AlexaInterface",
            "interface": self.interface,
            "version": self.version,
        }
        if self.configurations is not None:
            out["configurations"] = dict(self.configurations)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentServices:
    """What the client shares with every agent it holds.

    Attributes:
        messenger: sends events, gathers context, delivers observations.
        dialogs: the dialog owner (current dialogRequestId, traces, blocking rules).
        focus: audio focus; agents coordinate output through it (barge-in).
        activity: the time of the last user activity.
        attachments: the attachments of the responses (`cid:` URLs).
        set_endpoint: persists a new AVS endpoint and reconnects there (make-before-break).
        endpoint: the endpoint in use now.
        check_cloud_endpoint: the check every endpoint or gateway URL from AVS passes before
            it is stored or used (`ClientConfig.check_cloud_endpoint`: https, an allowed
            host); raises `EndpointRejected`.
        store: the device store (settings that survive a restart), or None.
        device: who the device is (Discovery, SoftwareInfo), or None.
        capabilities: what every agent declares now (what Discovery publishes).
        capabilities_changed: tells the client that a declaration changed (a new wake word
            set, a new locale), so Discovery reports it at once.
        state_reports: every agent's setting reports, for System.StateReport.
        access_token: the access token in use (a Discovery report's `scope`).
        revoke: deregisters the device (System.RevokeAuthorization): account data goes.
        outbox: the client's one persisted outbox over `store`, for events that must reach
            AVS even across a restart (alert lifecycle, settings), or None.
    """

    messenger: Messenger
    dialogs: DialogManager
    focus: FocusManager
    activity: UserActivity
    attachments: AttachmentStore
    set_endpoint: Callable[[str], Awaitable[None]]
    endpoint: Callable[[], str] = _no_endpoint
    check_cloud_endpoint: Callable[[object], str] = _amazon_endpoint
    store: DeviceStore | None = None
    device: DeviceInfo | None = None
    capabilities: Callable[[], tuple[Capability, ...]] = _no_capabilities
    capabilities_changed: Callable[[], None] = _nothing
    state_reports: Callable[[], list[StateReportEntry]] = _no_reports
    access_token: Callable[[], Awaitable[str]] = _no_token
    revoke: Callable[[], Awaitable[object]] = _no_revoke
    outbox: EventOutbox | None = None

    async def deliver(
        self, event: Event, changes: Mapping[tuple[str, str], JSONValue] | None = None
    ) -> None:
        """Store setting `changes` (`{(namespace, key): value}`, account data) and send
        `event`, the event that reports them (a settings Report or Changed).

        With a persisted outbox, both commit in one store transaction: after a crash either
        the setting and its event are there, or neither; the event then goes out once
        connected, even after a restart. Without one, the changes are stored and the event
        goes through the messenger's background queue.

        Raises:
            DeviceStoreError: the store could not be written (nothing was stored or sent).
        """
        store, outbox = self.store, self.outbox
        if store is None:
            await self.messenger.post_event(event)
            return
        with store.transaction():
            for (namespace, key), value in (changes or {}).items():
                store.set(namespace, key, value)
            if outbox is not None:
                outbox.put(event.to_json())
        if outbox is None:
            await self.messenger.post_event(event)


class CapabilityAgent:
    """Base of the agents: an interface, its directive handlers, context state and capability.

    Subclasses set `namespace` and `version` and override what they need. The client calls
    `attach()` when the agent is added, routes the directives of `namespace` named in
    `handlers()`, gathers `context_states()` for SynchronizeState and Recognize, calls
    `start()` when the client starts (or at once if it already has), `observe()` with every
    observation the client publishes, and `aclose()` when the client closes.
    """

    #: The AVS interface the agent implements (its directives' and events' namespace).
    namespace: str = ""
    #: The interface version it implements (avs-protocol 9.8).
    version: str = ""

    def __init__(self) -> None:
        self._services: AgentServices | None = None

    def attach(self, services: AgentServices) -> None:
        """Join a client: from now on the agent uses `services`.

        Raises:
            StateError: the agent already belongs to a client.
        """
        if self._services is not None:
            raise StateError(f"the {self.namespace} agent already belongs to a client")
        self._services = services

    @property
    def attached(self) -> bool:
        """True once the agent belongs to a client."""
        return self._services is not None

    @property
    def services(self) -> AgentServices:
        """The client's shared services.

        Raises:
            StateError: the agent has not been added to a client.
        """
        if self._services is None:
            raise StateError(f"the {self.namespace} agent has not been added to a client")
        return self._services

    @property
    def messenger(self) -> Messenger:
        """Where the agent's events and observations go."""
        return self.services.messenger

    def capability(self) -> Capability:
        """The capability the agent declares (interface, version; no configuration)."""
        return Capability(self.namespace, self.version)

    def handlers(self) -> dict[str, DirectiveHandler]:
        """Directive name -> async handler, for the directives of `namespace`."""
        return {}

    def immediate_handlers(self) -> dict[str, ImmediateHandler]:
        """Directive name -> synchronous handler run as the directive arrives, before the
        next one is routed (none by default; see `ImmediateHandler`)."""
        return {}

    def context_states(self) -> list[ContextState]:
        """The agent's context state objects (none by default)."""
        return []

    def post_connect(self) -> list[tuple[int, PostConnectStep]]:
        """`(priority, step)` pairs run on every new connection before SynchronizeState,
        lowest priority first (the SDK's: VerifyGateway 50, Discovery 100; avs-protocol
        9.5). None by default."""
        return []

    def state_reports(self) -> list[StateReportEntry]:
        """The agent's setting reports for System.StateReport (none by default)."""
        return []

    def forget_account(self) -> None:
        """The device was deregistered (RevokeAuthorization, logout): drop account data kept
        in memory and go back to the defaults (the device store was cleared already)."""
        return

    def start(self) -> None:
        """Start background work (timers); called in the event loop. Nothing by default."""
        return

    def observe(self, event: ClientEvent) -> None:
        """See what the client reports to the application (a `ConnectionStatusChanged`, a
        directive observed, ...): called in the event loop for every `ClientEvent`, so it
        must not block. Nothing by default."""
        return

    async def aclose(self) -> None:
        """Stop the agent's background work (nothing by default)."""
        return

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.namespace} {self.version}>"
