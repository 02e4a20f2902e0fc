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
import dataclasses
import logging
import os
import shutil
import ssl
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from avsclient._resource import AsyncResource, AsyncService
from avsclient.activity import UserActivity
from avsclient.agents import (
    DEFAULT_INACTIVITY_REPORT_INTERVAL,
    DEFAULT_VOLUME,
    AgentServices,
    AlertsAgent,
    AudioPlayerAgent,
    Capability,
    CapabilityAgent,
    ClientEvent,
    ConnectionStatusChanged,
    DirectiveObserved,
    FocusChanged,
    Messenger,
    PlaybackControllerAgent,
    SourceFactory,
    SpeakerAgent,
    SpeechRecognizerAgent,
    SpeechSynthesizerAgent,
    SystemAgent,
    VolumeApplier,
)
from avsclient.agents.api_gateway import GATEWAY_STORE, ApiGatewayAgent
from avsclient.agents.base import StateReportEntry
from avsclient.agents.capabilities_api import CapabilitiesApi
from avsclient.agents.discovery import DiscoveryAgent
from avsclient.agents.events import AuthorizationRevoked
from avsclient.agents.interaction_model import InteractionModelAgent
from avsclient.agents.notifications import NotificationsAgent
from avsclient.attachments import AttachmentLimits, AttachmentStore
from avsclient.audio import Mixer, NullSink
from avsclient.auth.store import TokenStore
from avsclient.avs.manager import (
    ChangedReason,
    ConnectionManager,
    ConnectionStatus,
    PostConnectStep,
)
from avsclient.dialog import DEFAULT_MAX_QUEUE, DialogManager, Disposition
from avsclient.directives import DirectivePipeline
from avsclient.exceptions import AVSError, EndpointRejected, StateError, TrustStoreError
from avsclient.focus import FocusChange, FocusManager
from avsclient.messages import Directive, ExceptionType, exception_encountered
from avsclient.outbox import EventOutbox
from avsclient.store import STORE_FILE_NAME, DeviceStore, default_store_path

if TYPE_CHECKING:
    from avsclient.audio import AudioSink, AudioSource
    from avsclient.auth.provider import TokenProvider
    from avsclient.config import ClientConfig, DeviceInfo, Region
    from avsclient.dialog import Dialog
    from avsclient.store import DeviceStore

__all__ = [
    "AVSClient",
    "DEFAULT_SUBSCRIPTION_SIZE",
    "Listener",
    "SimulatorEndpoint",
    "Subscription",
    "default_agents",
    "media_ssl_context",
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


StoreOption = DeviceStore | str | os.PathLike[str] | Literal[False] | None
"""Where device state lives: a `DeviceStore` (the application's, left open at close), a path,
None for the default file next to the token file, or False for a throw-away store."""


def default_agents(
    *,
    sink: AudioSink | None = None,
    mixer: Mixer | None = None,
    source_factory: SourceFactory | None = None,
    volume: int = DEFAULT_VOLUME,
    muted: bool = False,
    apply_volume: VolumeApplier | None = None,
    inactivity_report_interval: float = DEFAULT_INACTIVITY_REPORT_INTERVAL,
    store: DeviceStore | None = None,
    media_verify: ssl.SSLContext | bool = True,
    capabilities_api: CapabilitiesApi | None = None,
) -> list[CapabilityAgent]:
    """The default agents, new: System, Speaker, SpeechSynthesizer, SpeechRecognizer,
    AudioPlayer, PlaybackController and Alerts, then the agents every Alexa.Discovery device
    declares: Alexa (Discovery), Alexa.ApiGateway and InteractionModel (avs-protocol 9.1),
    and Notifications (its sounds play on the mixer's Alert channel, as alerts do).

    Args:
        sink: where sound is played (default: a `NullSink`); the application owns it. A
            `Mixer` is built around it: speech plays on its Dialog channel, music on Content,
            alerts and notifications on Alert.
        mixer: the mixer to play through instead (give `sink` or `mixer`, not both).
        source_factory: opens the microphone when AVS expects speech.
        volume: the initial speaker volume (0..100).
        muted: the initial mute state.
        apply_volume: applies `(volume, muted)` to the device output.
        inactivity_report_interval: seconds between UserInactivityReports.
        store: the device store keeping alerts (and their events) across restarts; without
            it they last as long as the client.
        media_verify: how AudioPlayer verifies media servers' certificates (an SSLContext to
            trust a private CA as well; never False in production).
        capabilities_api: declare through the legacy Capabilities API instead of
            Alexa.Discovery (a product registered before Discovery).

    Raises:
        ValueError: both `sink` and `mixer` given.
    """
    if mixer is None:
        mixer = Mixer(sink if sink is not None else NullSink())
    elif sink is not None:
        raise ValueError("give a sink or a mixer, not both")
    return [
        SystemAgent(inactivity_report_interval=inactivity_report_interval),
        SpeakerAgent(volume=volume, muted=muted, apply=apply_volume),
        SpeechSynthesizerAgent(mixer.channel("Dialog")),
        SpeechRecognizerAgent(source_factory=source_factory),
        AudioPlayerAgent(mixer.channel("Content"), verify=media_verify),
        PlaybackControllerAgent(),
        AlertsAgent(mixer.channel("Alert"), store=store),
        DiscoveryAgent(capabilities_api=capabilities_api),
        ApiGatewayAgent(),
        InteractionModelAgent(),
        NotificationsAgent(mixer.channel("Alert")),
    ]


def media_ssl_context(config: ClientConfig) -> ssl.SSLContext | bool:
    """What AudioPlayer trusts for media: the system's CAs, plus `config.ca_file` if given
    (the simulator's CA, which also signs its media server).

    Raises:
        TrustStoreError: the CA file cannot be loaded.
    """
    if config.ca_file is None:
        return True
    context = ssl.create_default_context()
    try:
        context.load_verify_locations(cafile=config.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise TrustStoreError(f"cannot load the CA file {config.ca_file!r}: {exc}") from exc
    return context


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
    (by default: System, Speaker, SpeechSynthesizer, SpeechRecognizer, AudioPlayer,
    PlaybackController, Alerts and what Discovery requires), playing every sound through one
    `Mixer` (`mixer`).

    Routing, context, capabilities and closing go through the agents generically; agents
    share the client's services (`services`) instead of holding each other.

    Attributes:
        config: the client configuration.
        manager: the connection manager.
        pipeline: the directive pipeline.
        dialogs: the dialog owner (current dialogRequestId, traces, blocking rules).
        focus: audio focus, shared by the agents.
        services: what every agent is given when it is added.
        mixer: the output mixer (channels Dialog, Content, ... into the sink).
    """

    def __init__(
        self,
        config: ClientConfig,
        tokens: TokenProvider,
        *,
        agents: Iterable[CapabilityAgent] | None = None,
        sink: AudioSink | None = None,
        mixer: Mixer | None = None,
        source_factory: SourceFactory | None = None,
        listener: Listener | None = None,
        endpoint_store: Callable[[str], None] | None = None,
        volume: int = DEFAULT_VOLUME,
        muted: bool = False,
        apply_volume: VolumeApplier | None = None,
        inactivity_report_interval: float = DEFAULT_INACTIVITY_REPORT_INTERVAL,
        attachment_limits: AttachmentLimits | None = None,
        max_dialog_queue: int = DEFAULT_MAX_QUEUE,
        store: StoreOption = None,
        device: DeviceInfo | None = None,
    ) -> None:
        """Build a client (nothing connects until `start()` or `async with`).

        Args:
            config: endpoint, timeouts and limits.
            tokens: where access tokens come from.
            agents: the capability agents, one per interface, in context order (default:
                `default_agents()` built from `sink` ... `inactivity_report_interval`).
            sink: where sound is played (default: a `NullSink`); the application owns it. The
                client mixes speech, music and other sounds into it through one `Mixer`.
            mixer: a mixer of the application's to play through instead of one around `sink`
                (with `agents=`, the one those agents play through).
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
            store: the device store (settings, the accepted capability report, the gateway):
                a `DeviceStore` (yours to close), a path, None for `device.sqlite3` next to
                the token file, or False for a throw-away one removed at close.
            device: who the device is (Discovery's endpoint, SoftwareInfo); without it
                Discovery reports INVALID and sends nothing.

        Raises:
            ValueError: `agents` given together with options of the default agents, both
                `sink` and `mixer`, or two agents for one interface.
            DeviceStoreError: the device store cannot be opened (corrupt, locked, unwritable).
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
        if agents is not None and any(core_options.values()):
            given = ", ".join(name for name, set_ in core_options.items() if set_)
            raise ValueError(
                f"{given} configure the default agents; with agents=..., pass them to the "
                "agents themselves (see default_agents())"
            )
        if sink is not None and mixer is not None:
            raise ValueError("give a sink or a mixer, not both")
        self._own_mixer = mixer is None and agents is None
        self._mixer = mixer
        self.device = device
        self._tokens = tokens
        self.store, self._own_store, self._store_dir = _open_store(store)
        if agents is None:
            if mixer is None:
                mixer = self._mixer = Mixer(sink if sink is not None else NullSink())
            agents = default_agents(
                mixer=mixer,
                media_verify=media_ssl_context(config),
                source_factory=source_factory,
                volume=volume,
                muted=muted,
                apply_volume=apply_volume,
                inactivity_report_interval=inactivity_report_interval,
                store=self.store,
                capabilities_api=(
                    None
                    if config.capabilities_api is None
                    else CapabilitiesApi(
                        config.capabilities_api,
                        ca_file=config.ca_file,
                        ssl_context=config.ssl_context,
                    )
                ),
            )
        stored_gateway = self.store.get(GATEWAY_STORE, "gateway")
        if stored_gateway is not None and stored_gateway != config.url():
            try:  # stored by an earlier version, or under other endpoint_hosts
                stored_gateway = config.check_cloud_endpoint(stored_gateway)
            except EndpointRejected as exc:
                _log.warning("ignoring the stored gateway: %s", exc)
                stored_gateway = None
        if isinstance(stored_gateway, str) and stored_gateway != config.url():
            # AVS moved the device (SetGateway, SetEndpoint) on an earlier run.
            _log.info("using the gateway AVS gave earlier: %s", stored_gateway)
            config = dataclasses.replace(config, endpoint=stored_gateway)
        self._endpoint_store = endpoint_store
        #: True once AVS deregistered the device (System.RevokeAuthorization) or `revoke()`.
        self.revoked = False
        #: What `revoke()` did, once it ran.
        self.revocation: AuthorizationRevoked | None = None
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
            endpoint_store=self._persist_endpoint,
            post_connect=self._post_connect_steps,
        )
        self.messenger = Messenger(self.manager, providers=[], notify=self._publish)
        #: The one persisted outbox over the device store (alert events, settings events):
        #: kept until AVS accepted them, across reconnects and restarts.
        self.outbox = EventOutbox(self.store, on_sent=self.messenger.observe)
        self.services = AgentServices(
            messenger=self.messenger,
            dialogs=self.dialogs,
            focus=self.focus,
            activity=UserActivity(),
            attachments=self.attachments,
            set_endpoint=self.manager.set_endpoint,
            endpoint=lambda: self.manager.url,
            check_cloud_endpoint=self.config.check_cloud_endpoint,
            store=self.store,
            device=device,
            capabilities=self.capabilities,
            capabilities_changed=self._capabilities_changed,
            state_reports=self.state_reports,
            access_token=tokens.get_token,
            revoke=self.revoke,
            outbox=self.outbox,
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
        product_id: str | None = None,
        serial: str | None = None,
        environ: Mapping[str, str] | None = None,
        **options: Any,
    ) -> _C:
        """A client for the device `avsclient login` linked, with the tokens it stored.

        The tokens are refreshed with Login with Amazon as they expire and written back to
        the token file. Each argument left None comes from its `AVSCLIENT_*` environment
        variable (`avsclient.environment`), then from the default: the default token file,
        region NA, the region's host, the system's CAs, `https://api.amazon.com`, the
        product id and serial number `avsclient login` recorded in the token file.

        The device (`device=`, Discovery's endpoint `clientId::productId::serial`) is the
        one linked: the token file's client id with that product id and serial. The device
        store (`store=`) defaults to `device.sqlite3` next to the token file.

        Args:
            token_file: the token file (default: where `avsclient login` writes).
            region: the AVS region, a `Region` or its name in any case.
            endpoint: an AVS base URL instead of the region's host.
            ca_file: a PEM file of CAs to trust, for AVS and Login with Amazon.
            lwa_url: the Login with Amazon base URL.
            product_id: the AVS product id, instead of the recorded one.
            serial: the device serial number, instead of the recorded one.
            environ: the environment to read (default: `os.environ`).
            options: the other `AVSClient` arguments (`sink=`, `source_factory=`, ...).

        Raises:
            ReauthorizationRequired: the token file holds no tokens (run `avsclient login`).
            TokenStoreError: the token file cannot be read.
            ValueError: a bad argument or environment variable (a product id or serial that
                cannot be part of an endpoint id among them).
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
        if "device" not in options:
            product_id, serial = product_id or env.product_id, serial or env.serial
            if (product_id or stored.product_id) and (serial or stored.device_serial_number):
                options["device"] = stored.device(product_id=product_id, serial=serial)
            else:  # a token file from before login recorded them: Discovery reports INVALID
                _log.warning(
                    "no product id and serial number for %s: the device sends no Discovery "
                    "report; run `avsclient login` again or set AVSCLIENT_PRODUCT_ID and "
                    "AVSCLIENT_SERIAL",
                    store.path,
                )
        options.setdefault("store", store.path.parent / STORE_FILE_NAME)
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
        immediate = agent.immediate_handlers()
        agent.attach(self.services)
        self._agents[interface] = agent
        for name, handler in handlers.items():
            self.pipeline.register(interface, name, handler)
        for name, immediate_handler in immediate.items():
            self.pipeline.register_immediate(interface, name, immediate_handler)
        self.messenger.providers.append(agent)
        if self._started:
            agent.start()
            self._capabilities_changed()  # Discovery reports the new declaration at once

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

    def state_reports(self) -> list[StateReportEntry]:
        """Every agent's setting reports, for System.StateReport (avs-protocol 12.2)."""
        return [entry for agent in self._agents.values() for entry in agent.state_reports()]

    def _capabilities_changed(self) -> None:
        agent = self._agents.get(DiscoveryAgent.namespace)
        if isinstance(agent, DiscoveryAgent) and self._started:
            agent.capabilities_changed()

    def _post_connect_steps(self) -> Sequence[PostConnectStep]:
        steps = [pair for agent in self._agents.values() for pair in agent.post_connect()]
        return [step for _, step in sorted(steps, key=lambda pair: pair[0])]

    def _persist_endpoint(self, url: str) -> None:
        self.store.set(GATEWAY_STORE, "gateway", url)
        if self._endpoint_store is not None:
            self._endpoint_store(url)

    @property
    def discovery(self) -> DiscoveryAgent:
        """The Alexa (Discovery) agent: `state` of the capability report."""
        return self._core("Alexa", DiscoveryAgent)

    @property
    def interaction_model(self) -> InteractionModelAgent:
        """The InteractionModel agent (`thinking`)."""
        return self._core("InteractionModel", InteractionModelAgent)

    @property
    def api_gateway(self) -> ApiGatewayAgent:
        """The Alexa.ApiGateway agent."""
        return self._core("Alexa.ApiGateway", ApiGatewayAgent)

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

    @property
    def player(self) -> AudioPlayerAgent:
        """The AudioPlayer agent (music)."""
        return self._core("AudioPlayer", AudioPlayerAgent)

    @property
    def playback(self) -> PlaybackControllerAgent:
        """The PlaybackController agent: call its `play()`, `pause()`, `next()`,
        `previous()` when the device's buttons are pressed."""
        return self._core("PlaybackController", PlaybackControllerAgent)

    @property
    def mixer(self) -> Mixer:
        """The output mixer: one channel per focus channel (Dialog, Content, ...), each with
        its gain (`mixer.set_gain("Content", 0.5)`), into the one sink.

        Raises:
            LookupError: the client was given `agents=` without `mixer=`.
        """
        if self._mixer is None:
            raise LookupError("this client's agents were given without mixer=")
        return self._mixer

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Start connecting in the background (it retries for ever) and start the agents."""
        if self._started:
            return
        if self._closed:
            raise StateError("the client is closed")
        self._started = True
        await self.manager.start()
        self.outbox.start(self.manager)
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
        if self._own_mixer and self._mixer is not None:
            await self._mixer.aclose()
        await self.outbox.aclose()  # what it holds stays stored for the next start
        await self.messenger.aclose()
        await self.manager.aclose()
        self.attachments.close()
        if self._own_store:
            self.store.close()
        if self._store_dir is not None:
            shutil.rmtree(self._store_dir, ignore_errors=True)
        for subscription in list(self._subscriptions):
            await subscription.aclose()
        while self._owned:
            await self._owned.pop()()

    async def revoke(self, *, delete_endpoint: bool = True) -> AuthorizationRevoked:
        """Deregister the device (System.RevokeAuthorization, or the application logging out):
        DeleteReport for the device's endpoint (best effort: AVS is told when the client is
        connected, or connects within a few seconds), the account's data removed from the
        device store and from every agent, the token file deleted, the connection closed,
        and `AuthorizationRevoked` published. The device must be linked again.

        Args:
            delete_endpoint: send the DeleteReport (False: only forget locally, e.g. when
                AVS cannot be reached; Amazon keeps the device until the user removes it).

        Returns:
            The `AuthorizationRevoked` published (the first one, on a second call): whether
            AVS accepted the DeleteReport and whether the token file was deleted.

        Raises:
            DeviceStoreError: the device store could not be cleared (the tokens are kept,
                so that the user can try again).
        """
        if self.revocation is not None:
            return self.revocation
        self.revoked = True
        agent = self._agents.get(DiscoveryAgent.namespace)
        endpoint_deleted: bool | None = None
        if isinstance(agent, DiscoveryAgent) and self.device is not None:
            if delete_endpoint:
                result = await agent.delete_report()
                endpoint_deleted = result is not None and result.ok
            else:
                agent.forget_report()
                endpoint_deleted = False
        self.store.clear_account_data()
        for each in self.agents:
            try:
                each.forget_account()
            except Exception:
                _log.exception("%r could not forget the account", each)
        token_store = getattr(self._tokens, "store", None)
        tokens_deleted = False
        if isinstance(token_store, TokenStore):
            try:
                tokens_deleted = token_store.delete()
            except AVSError as exc:
                _log.error("%s", exc)
        await self.manager.aclose()
        _log.warning("the device was deregistered: it must be linked again")
        self.revocation = AuthorizationRevoked(
            tokens_deleted=tokens_deleted, endpoint_deleted=endpoint_deleted
        )
        self._publish(self.revocation)
        return self.revocation

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
        for agent in list(self._agents.values()):
            try:
                agent.observe(event)
            except Exception:
                _log.exception("%r failed to observe %r", agent, event)
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
        if status is ConnectionStatus.CONNECTED:
            self.outbox.wake()  # back online: the outbox tries at once, not after its back-off
        self._publish(ConnectionStatusChanged(status=status, reason=reason))


def _open_store(option: StoreOption) -> tuple[DeviceStore, bool, Path | None]:
    """The store, whether the client owns it (closes it), and a directory to remove at close."""
    if isinstance(option, DeviceStore):
        return option, False, None
    if option is False:
        directory = Path(tempfile.mkdtemp(prefix="avsclient-store-"))
        return DeviceStore.open(directory / "device.sqlite3"), True, directory
    return DeviceStore.open(default_store_path() if option is None else option), True, None
