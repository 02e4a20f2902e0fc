"""`AVSClient`: the public face of avsclient, wiring the connection manager, the directive
pipeline and the capability agents together.

```python
async with Speaker() as speaker, AVSClient.from_login(sink=speaker) as client:
    await client.wait_connected(30)
    dialog = await client.recognize(Microphone(), profile="NEAR_FIELD")
    await dialog.wait_finished()           # the answer has been spoken
    print(dialog.trace.relative_ms())
```

`AVSClient.from_login()` connects with the tokens `avsclient login` stored and
`AVSClient.for_simulator(sim)` with a local simulator; `AVSClient(config, tokens)` takes any
configuration and token provider.

Applications observe what happens through callbacks (`add_listener`) or async iteration
(`async with client.subscribe() as events: async for event in events: ...`).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from avsclient._resource import AsyncResource, AsyncService
from avsclient.activity import UserActivity
from avsclient.agents import (
    DEFAULT_INACTIVITY_REPORT_INTERVAL,
    DEFAULT_VOLUME,
    AgentServices,
    AlertsAgent,
    Capability,
    CapabilityAgent,
    ClientEvent,
    ConnectionStatusChanged,
    DirectiveObserved,
    FocusChanged,
    Messenger,
    SourceFactory,
    SpeakerAgent,
    SpeechRecognizerAgent,
    SpeechSynthesizerAgent,
    SystemAgent,
    VolumeApplier,
)
from avsclient.attachments import AttachmentLimits, AttachmentStore
from avsclient.audio import Mixer, NullSink
from avsclient.avs.manager import ChangedReason, ConnectionManager, ConnectionStatus
from avsclient.dialog import DEFAULT_MAX_QUEUE, DialogManager, Disposition
from avsclient.directives import DirectivePipeline
from avsclient.exceptions import StateError
from avsclient.focus import FocusChange, FocusManager
from avsclient.messages import Directive, ExceptionType, exception_encountered

if TYPE_CHECKING:
    from avsclient.audio import AudioSink, AudioSource
    from avsclient.auth.provider import TokenProvider
    from avsclient.config import ClientConfig, Region
    from avsclient.dialog import Dialog
    from avsclient.store import DeviceStore

__all__ = [
    "AVSClient",
    "DEFAULT_SUBSCRIPTION_SIZE",
    "Listener",
    "SimulatorEndpoint",
    "Subscription",
    "default_agents",
]

_log = logging.getLogger("avsclient.client")

#: Observations a subscription holds for a slow reader before it drops the oldest.
DEFAULT_SUBSCRIPTION_SIZE = 256

Listener = Callable[[ClientEvent], None]
"""A callback receiving every `ClientEvent`, called in the event loop; it must not block."""

_A = TypeVar("_A", bound=CapabilityAgent)
_C = TypeVar("_C", bound="AVSClient")


class SimulatorEndpoint(Protocol):
    """What `AVSClient.for_simulator` needs of a simulator (`avsclient.simulator.Simulator`)."""

    def client_config(self, **options: Any) -> ClientConfig:
        """A configuration that reaches the simulator."""
        ...

    def add_token(self, token: str | None = None) -> str:
        """A bearer token the simulator accepts."""
        ...


def default_agents(
    *,
    sink: AudioSink | None = None,
    source_factory: SourceFactory | None = None,
    volume: int = DEFAULT_VOLUME,
    muted: bool = False,
    apply_volume: VolumeApplier | None = None,
    inactivity_report_interval: float = DEFAULT_INACTIVITY_REPORT_INTERVAL,
    store: DeviceStore | None = None,
) -> list[CapabilityAgent]:
    """The core agents, new: System, Speaker, SpeechSynthesizer, SpeechRecognizer, Alerts.

    Args:
        sink: where speech and alerts are played (default: a `NullSink`); the application
            owns it. A `Mixer` is built around it: speech plays on its Dialog channel,
            alerts on its Alert channel.
        source_factory: opens the microphone when AVS expects speech.
        volume: the initial speaker volume (0..100).
        muted: the initial mute state.
        apply_volume: applies `(volume, muted)` to the device output.
        inactivity_report_interval: seconds between UserInactivityReports.
        store: the device store keeping alerts (and their events) across restarts; without
            it they last as long as the client.
    """
    mixer = Mixer(sink if sink is not None else NullSink())
    return [
        SystemAgent(inactivity_report_interval=inactivity_report_interval),
        SpeakerAgent(volume=volume, muted=muted, apply=apply_volume),
        SpeechSynthesizerAgent(mixer.channel("Dialog")),
        SpeechRecognizerAgent(source_factory=source_factory),
        AlertsAgent(mixer.channel("Alert"), store=store),
    ]


class Subscription(AsyncResource):
    """An async iterator of the client's `ClientEvent`s, from subscription on.

    It holds at most `maxsize` unread events; when full, the oldest is dropped and counted in
    `dropped`, so a forgotten subscription cannot grow memory. Close it with `aclose()` or
    `async with`.
    """

    def __init__(self, client: AVSClient, maxsize: int) -> None:
        if maxsize <= 0:
            raise ValueError("maxsize must be positive")
        self._client = client
        self._items: collections.deque[ClientEvent] = collections.deque(maxlen=maxsize)
        self._ready = asyncio.Event()
        self._closed = False
        #: Events dropped because the reader lagged.
        self.dropped = 0

    def _push(self, event: ClientEvent) -> None:
        if len(self._items) == self._items.maxlen:
            self.dropped += 1
        self._items.append(event)
        self._ready.set()

    async def get(self, timeout: float | None = None) -> ClientEvent:
        """The next event.

        Raises:
            StopAsyncIteration: the subscription is closed.
            TimeoutError: none came within `timeout` seconds.
        """
        async with asyncio.timeout(timeout):
            while not self._items:
                if self._closed:
                    raise StopAsyncIteration
                self._ready.clear()
                await self._ready.wait()
        return self._items.popleft()

    def __aiter__(self) -> AsyncIterator[ClientEvent]:
        return self

    async def __anext__(self) -> ClientEvent:
        return await self.get()

    async def aclose(self) -> None:
        """Stop receiving events; iteration ends after the ones already held."""
        self._closed = True
        self._ready.set()
        self._client._subscriptions.discard(self)


class AVSClient(AsyncService):
    """An Alexa Built-in device: connection, directives, and a collection of capability agents
    (by default the core ones: System, Speaker, SpeechSynthesizer, SpeechRecognizer, Alerts).

    Routing, context, capabilities and closing go through the agents generically; agents
    share the client's services (`services`) instead of holding each other.

    Attributes:
        config: the client configuration.
        manager: the connection manager.
        pipeline: the directive pipeline.
        dialogs: the dialog owner (current dialogRequestId, traces, blocking rules).
        focus: audio focus, shared by the agents.
        services: what every agent is given when it is added.
    """

    def __init__(
        self,
        config: ClientConfig,
        tokens: TokenProvider,
        *,
        agents: Iterable[CapabilityAgent] | None = None,
        sink: AudioSink | None = None,
        source_factory: SourceFactory | None = None,
        listener: Listener | None = None,
        endpoint_store: Callable[[str], None] | None = None,
        volume: int = DEFAULT_VOLUME,
        muted: bool = False,
        apply_volume: VolumeApplier | None = None,
        inactivity_report_interval: float = DEFAULT_INACTIVITY_REPORT_INTERVAL,
        attachment_limits: AttachmentLimits | None = None,
        max_dialog_queue: int = DEFAULT_MAX_QUEUE,
    ) -> None:
        """Build a client (nothing connects until `start()` or `async with`).

        Args:
            config: endpoint, timeouts and limits.
            tokens: where access tokens come from.
            agents: the capability agents, one per interface, in context order (default:
                `default_agents()` built from `sink` ... `inactivity_report_interval`).
            sink: where speech is played (default: a `NullSink`); the application owns it.
            source_factory: opens the microphone when AVS expects speech (ExpectSpeech);
                without it the application receives `ExpectingSpeech` and calls `recognize()`.
            listener: a first callback for every `ClientEvent` (see `add_listener`).
            endpoint_store: persists the endpoint when AVS moves the device (SetEndpoint).
            volume: the initial speaker volume (0..100).
            muted: the initial mute state.
            apply_volume: applies `(volume, muted)` to the device output.
            inactivity_report_interval: seconds between UserInactivityReports (1 hour).
            attachment_limits: bounds on attachment buffering.
            max_dialog_queue: directives a dialog may queue behind a Speak.

        Raises:
            ValueError: `agents` given together with options of the default agents, or two
                agents for one interface.
        """
        core_options = {
            "sink": sink is not None,
            "source_factory": source_factory is not None,
            "volume": volume != DEFAULT_VOLUME,
            "muted": muted,
            "apply_volume": apply_volume is not None,
            "inactivity_report_interval": (
                inactivity_report_interval != DEFAULT_INACTIVITY_REPORT_INTERVAL
            ),
        }
        if agents is None:
            agents = default_agents(
                sink=sink,
                source_factory=source_factory,
                volume=volume,
                muted=muted,
                apply_volume=apply_volume,
                inactivity_report_interval=inactivity_report_interval,
            )
        elif any(core_options.values()):
            given = ", ".join(name for name, set_ in core_options.items() if set_)
            raise ValueError(
                f"{given} configure the default agents; with agents=..., pass them to the "
                "agents themselves (see default_agents())"
            )
        self.config = config
        self._listeners: list[Listener] = [] if listener is None else [listener]
        self._subscriptions: set[Subscription] = set()
        self.attachments = AttachmentStore(attachment_limits)
        self.dialogs = DialogManager(max_queue=max_dialog_queue)
        self.focus = FocusManager(listener=self._on_focus)
        self.pipeline = DirectivePipeline(
            report=self._report,
            dialogs=self.dialogs,
            attachments=self.attachments,
            max_json_part=config.max_json_part,
            observer=self._observe_directive,
        )
        self.manager = ConnectionManager(
            config,
            tokens,
            self.pipeline,
            context=self.context,
            on_status=self._on_status,
            endpoint_store=endpoint_store,
        )
        self.messenger = Messenger(self.manager, providers=[], notify=self._publish)
        self.services = AgentServices(
            messenger=self.messenger,
            dialogs=self.dialogs,
            focus=self.focus,
            activity=UserActivity(),
            attachments=self.attachments,
            set_endpoint=self.manager.set_endpoint,
        )
        self._agents: dict[str, CapabilityAgent] = {}
        # What from_login() made for this client, closed after it, newest first.
        self._owned: list[Callable[[], Awaitable[None]]] = []
        self._started = False
        self._closed = False
        for agent in agents:
            self.add_agent(agent)

    # -- the obvious ways to build one -------------------------------------------------------

    @classmethod
    def from_login(
        cls: type[_C],
        *,
        token_file: str | os.PathLike[str] | None = None,
        region: Region | str | None = None,
        endpoint: str | None = None,
        ca_file: str | None = None,
        lwa_url: str | None = None,
        environ: Mapping[str, str] | None = None,
        **options: Any,
    ) -> _C:
        """A client for the device `avsclient login` linked, with the tokens it stored.

        The tokens are refreshed with Login with Amazon as they expire and written back to
        the token file. Each argument left None comes from its `AVSCLIENT_*` environment
        variable (`avsclient.environment`), then from the default: the default token file,
        region NA, the region's host, the system's CAs, `https://api.amazon.com`.

        Args:
            token_file: the token file (default: where `avsclient login` writes).
            region: the AVS region, a `Region` or its name in any case.
            endpoint: an AVS base URL instead of the region's host.
            ca_file: a PEM file of CAs to trust, for AVS and Login with Amazon.
            lwa_url: the Login with Amazon base URL.
            environ: the environment to read (default: `os.environ`).
            options: the other `AVSClient` arguments (`sink=`, `source_factory=`, ...).

        Raises:
            ReauthorizationRequired: the token file holds no tokens (run `avsclient login`).
            TokenStoreError: the token file cannot be read.
            ValueError: a bad argument or environment variable.
        """
        from avsclient.auth import LWAConfig, LWAHttpClient, RefreshingTokenProvider, TokenStore
        from avsclient.auth.lwa import DEFAULT_LWA_URL
        from avsclient.config import ClientConfig, Region
        from avsclient.environment import read_environment
        from avsclient.exceptions import ReauthorizationRequired

        env = read_environment(environ)
        store = TokenStore(token_file if token_file is not None else env.token_file)
        stored = store.load()
        if stored is None:
            raise ReauthorizationRequired(
                f"no tokens in {store.path}: link this device with `avsclient login` first"
            )
        if isinstance(region, str):
            region = Region.parse(region)
        config = ClientConfig(
            endpoint=endpoint or env.endpoint,
            region=region or env.region or Region.NA,
            ca_file=ca_file or env.ca_file,
        )
        lwa = LWAConfig(client_id=stored.client_id, url=lwa_url or env.lwa_url or DEFAULT_LWA_URL)
        http = LWAHttpClient(lwa.url, ca_file=config.ca_file, timeout=lwa.timeout)
        tokens = RefreshingTokenProvider(lwa, store=store, http=http)
        client = cls(config, tokens, **options)
        client._owned += [http.aclose, tokens.aclose]
        return client

    @classmethod
    def for_simulator(
        cls: type[_C],
        simulator: SimulatorEndpoint,
        *,
        config: ClientConfig | None = None,
        **options: Any,
    ) -> _C:
        """A client for a started local simulator (`avsclient.simulator.Simulator`).

        Args:
            simulator: the simulator; it is given a new token for this client.
            config: a configuration (default: `simulator.client_config()`).
            options: the other `AVSClient` arguments (`sink=`, `source_factory=`, ...).
        """
        from avsclient.auth import StaticTokenProvider

        tokens = StaticTokenProvider(simulator.add_token())
        return cls(config or simulator.client_config(), tokens, **options)

    # -- agents ----------------------------------------------------------------------------

    def add_agent(self, agent: CapabilityAgent) -> None:
        """Add a capability agent: its directives are routed to it, its context joins every
        SynchronizeState and Recognize, its capability is declared, and it is closed with
        the client. Added to a started client, it starts at once.

        Raises:
            ValueError: an agent for the same interface is already there, or the agent has
                no interface name.
            StateError: the client is closed, or the agent belongs to another client.
        """
        if self._closed:
            raise StateError("the client is closed")
        interface = agent.namespace
        if not interface:
            raise ValueError(f"{agent!r} has no interface name (set its `namespace`)")
        if interface in self._agents:
            raise ValueError(
                f"there is already an agent for {interface}: {self._agents[interface]!r}"
            )
        try:
            agent.capability()  # a bad declaration fails here, not at Discovery
        except ValueError as exc:
            raise ValueError(f"{agent!r} declares a bad capability: {exc}") from exc
        handlers = agent.handlers()
        agent.attach(self.services)
        self._agents[interface] = agent
        for name, handler in handlers.items():
            self.pipeline.register(interface, name, handler)
        self.messenger.providers.append(agent)
        if self._started:
            agent.start()

    @property
    def agents(self) -> tuple[CapabilityAgent, ...]:
        """The agents, in the order they were added (the order of the context)."""
        return tuple(self._agents.values())

    def agent(self, interface: str) -> CapabilityAgent:
        """The agent of `interface` (e.g. `"Speaker"`).

        Raises:
            KeyError: no agent implements it.
        """
        try:
            return self._agents[interface]
        except KeyError:
            raise KeyError(f"no agent for {interface}; agents: {list(self._agents)}") from None

    def capabilities(self) -> tuple[Capability, ...]:
        """What the agents declare, in agent order (what Discovery publishes)."""
        return tuple(agent.capability() for agent in self._agents.values())

    def _core(self, interface: str, kind: type[_A]) -> _A:
        agent = self.agent(interface)
        if not isinstance(agent, kind):
            raise LookupError(f"the {interface} agent is a {type(agent).__name__}")
        return agent

    @property
    def system(self) -> SystemAgent:
        """The System agent."""
        return self._core("System", SystemAgent)

    @property
    def speaker(self) -> SpeakerAgent:
        """The Speaker agent (volume and mute)."""
        return self._core("Speaker", SpeakerAgent)

    @property
    def synthesizer(self) -> SpeechSynthesizerAgent:
        """The SpeechSynthesizer agent."""
        return self._core("SpeechSynthesizer", SpeechSynthesizerAgent)

    @property
    def recognizer(self) -> SpeechRecognizerAgent:
        """The SpeechRecognizer agent."""
        return self._core("SpeechRecognizer", SpeechRecognizerAgent)

    @property
    def alerts(self) -> AlertsAgent:
        """The Alerts agent (timers, alarms, reminders; `stop()` silences one)."""
        return self._core("Alerts", AlertsAgent)

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Start connecting in the background (it retries for ever) and start the agents."""
        if self._started:
            return
        if self._closed:
            raise StateError("the client is closed")
        self._started = True
        await self.manager.start()
        for agent in self.agents:
            agent.start()

    async def aclose(self) -> None:
        """Stop everything, idempotently: the directive pipeline first (no handler runs any
        more), then the agents, newest first (one failing to close is logged and the others
        still close), the event outbox, the connection, the attachments still held and the
        subscriptions."""
        if self._closed:
            return
        self._closed = True
        await self.pipeline.aclose()
        for agent in reversed(self.agents):
            try:
                await agent.aclose()
            except Exception:
                _log.exception("closing %r failed", agent)
        await self.messenger.aclose()
        await self.manager.aclose()
        self.attachments.close()
        for subscription in list(self._subscriptions):
            await subscription.aclose()
        while self._owned:
            await self._owned.pop()()

    @property
    def status(self) -> ConnectionStatus:
        """The connection status (CONNECTED once SynchronizeState was accepted)."""
        return self.manager.status

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the client is connected (`ConnectionManager.wait_connected`).

        Args:
            timeout: seconds to wait at most; None waits for ever.

        Raises:
            ConnectTimeout: not connected within `timeout` seconds (a `TimeoutException`, not
                the built-in `TimeoutError`); its message says why the last attempt failed.
            ConnectionClosed: the client is (or gets) closed.
        """
        await self.manager.wait_connected(timeout)

    # -- voice -----------------------------------------------------------------------------

    async def recognize(
        self,
        source: AudioSource,
        *,
        profile: str = "NEAR_FIELD",
        initiator: Mapping[str, Any] | str | None = None,
    ) -> Dialog:
        """Send what the user says and return the dialog once its response has ended.

        Speech that is playing stops at once (barge-in, SpeechInterrupted). Use
        `await dialog.wait_finished()` to wait until the answer has been spoken.

        Args:
            source: the audio (AVS format: 16 kHz, 16-bit, mono); closed when the upload
                ends. Close it yourself to end a CLOSE_TALK utterance (button released).
            profile: CLOSE_TALK, NEAR_FIELD or FAR_FIELD.
            initiator: the initiator object or type (default TAP; PRESS_AND_HOLD for
                CLOSE_TALK); after ExpectSpeech its initiator is sent instead.

        Returns:
            The `Dialog`: its `result` (the Recognize's `EventResult`), its `directives` and
            its latency `trace`.

        Raises:
            StateError: a recognition is already streaming.
            ValueError: bad profile or audio format.
        """
        return await self.recognizer.recognize(source, profile=profile, initiator=initiator)

    def context(self) -> list[dict[str, Any]]:
        """The full context (every agent's state objects), as sent with SynchronizeState."""
        return self.messenger.context()

    # -- observation -----------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Call `listener` with every `ClientEvent` from now on."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling `listener` (no error if it was not added)."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def subscribe(self, maxsize: int = DEFAULT_SUBSCRIPTION_SIZE) -> Subscription:
        """An async iterator of every `ClientEvent` from now on (bounded by `maxsize`)."""
        subscription = Subscription(self, maxsize)
        self._subscriptions.add(subscription)
        return subscription

    def _publish(self, event: ClientEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                _log.exception("listener %r failed on %r", listener, event)
        for subscription in self._subscriptions:
            subscription._push(event)

    # -- wiring ----------------------------------------------------------------------------

    def _observe_directive(self, directive: Directive, disposition: Disposition) -> None:
        self._publish(DirectiveObserved(directive=directive, disposition=disposition))

    async def _report(self, raw: bytes, error: ExceptionType, message: str) -> None:
        # System.ExceptionEncountered, with `"context": []` (avs-protocol 5.3).
        await self.messenger.post(exception_encountered(raw, error, message))

    def _on_focus(self, change: FocusChange) -> None:
        self._publish(
            FocusChanged(channel=change.channel, state=change.state, behavior=change.behavior)
        )

    def _on_status(self, status: ConnectionStatus, reason: ChangedReason) -> None:
        _log.info("connection %s (%s)", status.name, reason.name)
        self._publish(ConnectionStatusChanged(status=status, reason=reason))
