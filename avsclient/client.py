"""`AVSClient`: the public face of avsclient, wiring the connection manager, the directive
pipeline and the capability agents together.

```python
async with AVSClient(ClientConfig(region=Region.EU), tokens, sink=Speaker()) as client:
    await client.wait_connected()
    dialog = await client.recognize(Microphone(), profile="NEAR_FIELD")
    await dialog.wait_finished()           # the answer has been spoken
    print(dialog.trace.relative_ms())
```

Applications observe what happens through callbacks (`add_listener`) or async iteration
(`async with client.subscribe() as events: async for event in events: ...`).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncIterator, Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any

from avsclient._resource import AsyncResource, AsyncService
from avsclient.agents import (
    DEFAULT_INACTIVITY_REPORT_INTERVAL,
    DEFAULT_VOLUME,
    ClientEvent,
    ConnectionStatusChanged,
    Dialog,
    DirectiveObserved,
    Messenger,
    SourceFactory,
    SpeakerAgent,
    SpeechRecognizerAgent,
    SpeechSynthesizerAgent,
    SystemAgent,
    VolumeApplier,
)
from avsclient.attachments import AttachmentLimits, AttachmentStore
from avsclient.audio import NullSink
from avsclient.avs.manager import ChangedReason, ConnectionManager, ConnectionStatus
from avsclient.directives import DEFAULT_MAX_QUEUE, DirectivePipeline, Disposition
from avsclient.messages import Directive, ExceptionType

if TYPE_CHECKING:
    from avsclient.audio import AudioSink, AudioSource
    from avsclient.auth.provider import TokenProvider
    from avsclient.config import ClientConfig

__all__ = ["AVSClient", "DEFAULT_SUBSCRIPTION_SIZE", "Listener", "Subscription"]

_log = logging.getLogger("avsclient.client")

#: Observations a subscription holds for a slow reader before it drops the oldest.
DEFAULT_SUBSCRIPTION_SIZE = 256

Listener = Callable[[ClientEvent], None]
"""A callback receiving every `ClientEvent`, called in the event loop; it must not block."""


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
    """An Alexa Built-in device: connection, directives, and the core capability agents.

    Attributes:
        config: the client configuration.
        manager: the connection manager.
        pipeline: the directive pipeline.
        system: the System agent.
        recognizer: the SpeechRecognizer agent.
        synthesizer: the SpeechSynthesizer agent.
        speaker: the Speaker agent (volume and mute).
    """

    def __init__(
        self,
        config: ClientConfig,
        tokens: TokenProvider,
        *,
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
        """
        self.config = config
        self._listeners: list[Listener] = [] if listener is None else [listener]
        self._subscriptions: set[Subscription] = set()
        self.attachments = AttachmentStore(attachment_limits)
        self.pipeline = DirectivePipeline(
            report=self._report,
            attachments=self.attachments,
            max_json_part=config.max_json_part,
            max_queue=max_dialog_queue,
            observer=self._observe_directive,
            on_response_started=self._response_started,
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
        self.system = SystemAgent(
            self.messenger,
            set_endpoint=self.manager.set_endpoint,
            inactivity_report_interval=inactivity_report_interval,
        )
        self.speaker = SpeakerAgent(self.messenger, volume=volume, muted=muted, apply=apply_volume)
        self.synthesizer = SpeechSynthesizerAgent(
            self.messenger, self.attachments, sink if sink is not None else NullSink()
        )
        self.recognizer = SpeechRecognizerAgent(
            self.messenger,
            self.pipeline,
            synthesizer=self.synthesizer,
            system=self.system,
            source_factory=source_factory,
        )
        self.agents = (self.system, self.speaker, self.synthesizer, self.recognizer)
        for agent in self.agents:
            agent.register(self.pipeline)
            self.messenger.providers.append(agent)
        self._started = False
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Start connecting in the background (it retries for ever) and start the timers."""
        if self._started:
            return
        self._started = True
        await self.manager.start()
        self.system.start()

    async def aclose(self) -> None:
        """Stop everything: recognition, playback, timers, and the connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self.recognizer.aclose()
        await self.system.aclose()
        await self.pipeline.aclose()
        await self.synthesizer.aclose()
        await self.messenger.aclose()
        await self.manager.aclose()
        for subscription in list(self._subscriptions):
            await subscription.aclose()

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
        dialog = self.messenger.dialog(directive.dialog_request_id)
        if dialog is not None:
            if disposition is Disposition.RECEIVED:
                dialog.directives.append(directive)
            elif disposition is Disposition.DISPATCHED:
                stamp = asyncio.get_running_loop().time()
                dialog.trace.directives.append((f"{directive.namespace}.{directive.name}", stamp))
        self._publish(DirectiveObserved(directive=directive, disposition=disposition))

    def _response_started(self, source: Hashable) -> None:
        message_id = getattr(source, "message_id", None)
        dialog = self.recognizer.dialog
        if (
            dialog is not None
            and message_id == dialog.message_id
            and dialog.trace.first_response_byte_at is None
        ):
            dialog.trace.first_response_byte_at = asyncio.get_running_loop().time()

    async def _report(self, raw: bytes, error: ExceptionType, message: str) -> None:
        await self.system.send_exception_encountered(raw, error, message)

    def _on_status(self, status: ConnectionStatus, reason: ChangedReason) -> None:
        _log.info("connection %s (%s)", status.name, reason.name)
        self._publish(ConnectionStatusChanged(status=status, reason=reason))
