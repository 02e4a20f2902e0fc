"""What capability agents share: the interfaces they use and the per-dialog latency trace.

Every agent handles its namespace's directives, sends its events through a `Messenger`, and
reports its device state as context (`ContextProvider`).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncIterable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from avsclient.agents.events import ClientEvent, EventFailed, EventSent
from avsclient.messages import ContextState, Directive, Event

if TYPE_CHECKING:
    from avsclient.avs.manager import EventResult
    from avsclient.directives import DirectivePipeline

__all__ = [
    "CapabilityAgent",
    "ContextProvider",
    "Dialog",
    "DialogTrace",
    "EventSender",
    "Messenger",
    "OUTBOX_SIZE",
]

_log = logging.getLogger("avsclient.agents")

#: Events waiting to be sent in the background (SpeechStarted, VolumeChanged, ...). Agents
#: wait when it is full, so a dead link slows them down instead of growing memory.
OUTBOX_SIZE = 64

# Dialog traces kept for lookup by dialogRequestId; older ones are forgotten.
_TRACES_KEPT = 32


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


@dataclass(slots=True, kw_only=True)
class DialogTrace:
    """Latency stamps of one dialog, in `loop.time()` seconds (None until they happen).

    Attributes:
        dialog_request_id: the dialog.
        audio_started_at: the first audio frame was read from the source.
        last_audio_sent_at: the last audio frame was handed to the connection.
        first_response_byte_at: the first part of the Recognize response arrived.
        directives: `(namespace.name, time)` for each directive dispatched to its handler.
        speech_started_at: Speak playback started.
        speech_finished_at: Speak playback finished (or was interrupted).
    """

    dialog_request_id: str
    audio_started_at: float | None = None
    last_audio_sent_at: float | None = None
    first_response_byte_at: float | None = None
    directives: list[tuple[str, float]] = field(default_factory=list)
    speech_started_at: float | None = None
    speech_finished_at: float | None = None

    def relative_ms(self) -> dict[str, Any]:
        """The stamps as milliseconds after `audio_started_at` (for logs and reports)."""
        base = self.audio_started_at

        def rel(t: float | None) -> float | None:
            return None if t is None or base is None else round((t - base) * 1000, 3)

        return {
            "audio_started": 0.0 if base is not None else None,
            "last_audio_sent": rel(self.last_audio_sent_at),
            "first_response_byte": rel(self.first_response_byte_at),
            "directives": [(name, rel(t)) for name, t in self.directives],
            "speech_started": rel(self.speech_started_at),
            "speech_finished": rel(self.speech_finished_at),
        }

    def directive_at(self, name: str) -> float | None:
        """When the first directive `namespace.name` was dispatched, or None."""
        for key, t in self.directives:
            if key == name:
                return t
        return None


class Dialog:
    """One voice turn, as `AVSClient.recognize()` returns it.

    Attributes:
        dialog_request_id: the Recognize's dialogRequestId.
        message_id: the Recognize's messageId.
        trace: the latency trace (still filled in while speech plays).
        directives: the directives that arrived for this dialog, in arrival order.
        result: the Recognize event's outcome, once its response ended.
    """

    def __init__(self, dialog_request_id: str, message_id: str) -> None:
        self.dialog_request_id = dialog_request_id
        self.message_id = message_id
        self.trace = DialogTrace(dialog_request_id=dialog_request_id)
        self.directives: list[Directive] = []
        self.result: EventResult | None = None
        self._pipeline: DirectivePipeline | None = None

    async def wait_finished(self) -> None:
        """Wait until every directive of this dialog received so far has been handled
        (e.g. its Speak has finished playing)."""
        if self._pipeline is not None:
            await self._pipeline.wait_lane(self.dialog_request_id)

    def __repr__(self) -> str:
        names = [f"{d.namespace}.{d.name}" for d in self.directives]
        outcome = None if self.result is None else self.result.outcome.name
        return f"Dialog({self.dialog_request_id!r}, outcome={outcome}, directives={names})"


class Messenger:
    """How agents talk: events out (awaited or in an ordered background outbox), context,
    observations to the application, and dialog traces."""

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
        self._dialogs: collections.OrderedDict[str, Dialog] = collections.OrderedDict()

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
        self._check(document, result)
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
            self._check(document, result)

    def _check(self, document: Mapping[str, Any], result: EventResult) -> None:
        namespace, name = _name(document)
        self.notify(EventSent(namespace=namespace, name=name, result=result))
        if result.outcome.name in ("SUCCESS", "SUCCESS_NO_CONTENT"):
            return
        _log.warning("event %s.%s failed: %s", namespace, name, result.outcome.name)
        self.notify(EventFailed(namespace=namespace, name=name, result=result))

    async def flush(self) -> None:
        """Wait until the outbox is empty and its last event was sent."""
        await self._outbox.join()

    # -- dialogs ---------------------------------------------------------------------------

    def add_dialog(self, dialog: Dialog) -> None:
        """Remember a dialog (the most recent ones only) for tracing by dialogRequestId."""
        self._dialogs[dialog.dialog_request_id] = dialog
        while len(self._dialogs) > _TRACES_KEPT:
            self._dialogs.popitem(last=False)

    def dialog(self, dialog_request_id: str | None) -> Dialog | None:
        """The dialog with that id, if it is one of the recent ones."""
        if dialog_request_id is None:
            return None
        return self._dialogs.get(dialog_request_id)

    async def aclose(self) -> None:
        """Stop the background sender (queued events are dropped, and logged)."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        if not self._outbox.empty():
            _log.info("%d queued events not sent at close", self._outbox.qsize())


def _name(document: Mapping[str, Any]) -> tuple[str, str]:
    header = document.get("event", {}).get("header", {})
    return str(header.get("namespace")), str(header.get("name"))


class CapabilityAgent:
    """Base of the agents: a namespace, directive handlers, and context state."""

    #: The AVS interface the agent implements.
    namespace: str = ""

    def __init__(self, messenger: Messenger) -> None:
        self.messenger = messenger

    def handlers(self) -> dict[str, Callable[[Directive], Any]]:
        """Directive name -> async handler, for `DirectivePipeline.register`."""
        return {}

    def register(self, pipeline: DirectivePipeline) -> None:
        """Register this agent's handlers with `pipeline`."""
        for name, handler in self.handlers().items():
            pipeline.register(self.namespace, name, handler)

    def context_states(self) -> list[ContextState]:
        """The agent's context state objects (none by default)."""
        return []

    async def aclose(self) -> None:
        """Stop the agent's background work (nothing by default)."""
        return
