"""The dialog owner: the current dialogRequestId, each dialog's latency trace and the blocking
rules of avs-protocol 5.0, in one place.

Two layers, as elsewhere in avsclient:

- `DialogSequencer` (no I/O) holds the dialogRequestId rules: which dialog is current, which
  directives are stale, the queue of the current dialog, and what a failure cancels.
- `DialogManager` is the service the client owns and shares: SpeechRecognizer starts dialogs
  through it, the directive pipeline asks it what to do with each directive (and hands it the
  lane tasks it runs), and every step of a dialog is stamped on that dialog's `DialogTrace`.
  Nobody else keeps dialog state.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from avsclient.avs.manager import EventResult
    from avsclient.messages import Directive

__all__ = [
    "DEFAULT_MAX_QUEUE",
    "DIALOGS_KEPT",
    "Dialog",
    "DialogManager",
    "DialogSequencer",
    "DialogTrace",
    "Disposition",
    "new_dialog_request_id",
]

_log = logging.getLogger("avsclient.dialog")

#: Directives a dialog may have waiting behind a blocking one (AVS sends a handful).
DEFAULT_MAX_QUEUE = 64

#: Dialogs kept for lookup by dialogRequestId; older ones are forgotten.
DIALOGS_KEPT = 32

CancelListener = Callable[["Directive"], None]
"""Told about each queued directive a new or ended dialog cancelled."""


def new_dialog_request_id() -> str:
    """A fresh dialogRequestId (a UUID, avs-protocol 5.0)."""
    return str(uuid.uuid4())


class Disposition(enum.Enum):
    """What happened to a directive (reported to the pipeline's observer)."""

    #: It arrived and was parsed (reported first, before any of the others).
    RECEIVED = "received"
    #: No dialog id: run at once, outside any lane.
    IMMEDIATE = "immediate"
    #: The first of the current dialog's lane: a lane starts and runs it.
    START_LANE = "start_lane"
    #: Queued in the current dialog's running lane.
    QUEUED = "queued"
    #: Its dialog is not the current one: dropped (avs-protocol 5.0).
    STALE = "stale"
    #: The lane's queue is full: dropped (and reported).
    OVERFLOW = "overflow"
    #: Dropped because an earlier directive of its dialog failed, or its dialog ended.
    CANCELLED = "cancelled"
    #: Handed to its handler (reported to observers when the handler is called).
    DISPATCHED = "dispatched"
    #: No handler for its namespace and name (answered with UNSUPPORTED_OPERATION).
    UNSUPPORTED = "unsupported"


# Theory of operation: `current` is the dialog the device last started (a Recognize). A
# directive with a dialog id is processed only if the id is current. The current dialog has at
# most one lane; `_lane` names the dialog whose lane is running. A lane pulls directives with
# `next(dialog)` until it gets None, which also ends it; starting a new dialog orphans the old
# lane (its next `next()` returns None) and cancels its queue.
class DialogSequencer:
    """The dialogRequestId rules of avs-protocol 5.0, with no I/O."""

    def __init__(self, max_queue: int = DEFAULT_MAX_QUEUE) -> None:
        """Create a sequencer with no current dialog.

        Raises:
            ValueError: `max_queue` is not positive.
        """
        if max_queue <= 0:
            raise ValueError("max_queue must be positive")
        self.max_queue = max_queue
        self.current: str | None = None
        self._lane: str | None = None
        self._queue: collections.deque[Directive] = collections.deque()

    @property
    def queued(self) -> int:
        """Directives waiting in the current dialog's lane."""
        return len(self._queue)

    def start_dialog(self, dialog_id: str) -> list[Directive]:
        """Make `dialog_id` current; returns the old dialog's queued directives, cancelled."""
        cancelled = list(self._queue)
        self._queue.clear()
        self.current = dialog_id
        self._lane = None
        return cancelled

    def end_dialog(self, dialog_id: str) -> list[Directive]:
        """Forget `dialog_id` if it is current (its directives become stale); returns the
        cancelled queue."""
        if self.current != dialog_id:
            return []
        cancelled = list(self._queue)
        self._queue.clear()
        self.current = None
        self._lane = None
        return cancelled

    def receive(self, directive: Directive) -> Disposition:
        """Decide what to do with a directive that just arrived."""
        dialog = directive.dialog_request_id
        if dialog is None:
            return Disposition.IMMEDIATE
        if dialog != self.current:
            return Disposition.STALE
        if len(self._queue) >= self.max_queue:
            return Disposition.OVERFLOW
        self._queue.append(directive)
        if self._lane == dialog:
            return Disposition.QUEUED
        self._lane = dialog
        return Disposition.START_LANE

    def next(self, dialog_id: str) -> Directive | None:
        """The next directive for the lane of `dialog_id`, or None: the lane must end."""
        if dialog_id != self.current or self._lane != dialog_id or not self._queue:
            if self._lane == dialog_id:
                self._lane = None
            return None
        return self._queue.popleft()

    def failed(self, directive: Directive) -> list[Directive]:
        """A directive's handler failed: cancel the rest of its dialog's queue (SDK rule)."""
        if directive.dialog_request_id is None or directive.dialog_request_id != self.current:
            return []
        cancelled = list(self._queue)
        self._queue.clear()
        return cancelled


@dataclass(slots=True, kw_only=True)
class DialogTrace:
    """Latency stamps of one dialog, in `loop.time()` seconds (None until they happen).

    Attributes:
        dialog_request_id: the dialog.
        wake_word_detected_at: the wake word that started the dialog was detected (None for
            other initiators).
        audio_started_at: the first audio frame was read from the source.
        last_audio_sent_at: the last audio frame was handed to the connection.
        first_response_byte_at: the first part of the Recognize response arrived.
        directives: `(namespace.name, time)` for each directive dispatched to its handler.
        speech_started_at: Speak playback started.
        speech_finished_at: Speak playback finished (or was interrupted).
    """

    dialog_request_id: str
    wake_word_detected_at: float | None = None
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

    def __init__(
        self, dialog_request_id: str, message_id: str, *, owner: DialogManager | None = None
    ) -> None:
        self.dialog_request_id = dialog_request_id
        self.message_id = message_id
        self.trace = DialogTrace(dialog_request_id=dialog_request_id)
        self.directives: list[Directive] = []
        self.result: EventResult | None = None
        self._owner = owner

    async def wait_finished(self) -> None:
        """Wait until every directive of this dialog received so far has been handled
        (e.g. its Speak has finished playing)."""
        if self._owner is not None:
            await self._owner.wait_handled(self.dialog_request_id)

    def __repr__(self) -> str:
        names = [f"{d.namespace}.{d.name}" for d in self.directives]
        outcome = None if self.result is None else self.result.outcome.name
        return f"Dialog({self.dialog_request_id!r}, outcome={outcome}, directives={names})"


class DialogManager:
    """The one owner of dialog state, shared by the agents and the directive pipeline.

    It keeps the sequencer (which dialog is current, its queue), the recent `Dialog`s by
    dialogRequestId, and the lanes running their directives. Stamps use `clock` (default: the
    event loop's).
    """

    def __init__(
        self,
        *,
        max_queue: int = DEFAULT_MAX_QUEUE,
        kept: int = DIALOGS_KEPT,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """Create a dialog owner with no current dialog.

        Args:
            max_queue: directives a dialog may queue behind a blocking one.
            kept: dialogs remembered for lookup (the most recent ones).
            clock: seconds for trace stamps (default: the running loop's `time()`).

        Raises:
            ValueError: a limit is not positive.
        """
        if kept <= 0:
            raise ValueError("kept must be positive")
        self.sequencer = DialogSequencer(max_queue)
        self.kept = kept
        self._clock = clock
        self._dialogs: collections.OrderedDict[str, Dialog] = collections.OrderedDict()
        self._lanes: dict[str, asyncio.Task[None]] = {}
        self._cancel_listeners: list[CancelListener] = []

    def now(self) -> float:
        """The clock trace stamps use."""
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    @property
    def current(self) -> str | None:
        """The current dialogRequestId, or None."""
        return self.sequencer.current

    # -- dialogs ---------------------------------------------------------------------------

    def start(self, dialog_request_id: str, message_id: str = "") -> Dialog:
        """Make a dialog current (a Recognize is about to be sent) and return it.

        Directives still queued for the previous dialog are cancelled (avs-protocol 5.0).

        Args:
            dialog_request_id: the new dialog's id (see `new_dialog_request_id`).
            message_id: the messageId of the event that starts it; the first part of its
                response is stamped on the trace (`response_started`).

        Raises:
            ValueError: `dialog_request_id` is empty.
        """
        if not dialog_request_id:
            raise ValueError("a dialog needs a non-empty dialogRequestId")
        dialog = Dialog(dialog_request_id, message_id, owner=self)
        self._dialogs[dialog_request_id] = dialog
        self._dialogs.move_to_end(dialog_request_id)
        while len(self._dialogs) > self.kept:
            self._dialogs.popitem(last=False)
        self._cancelled(self.sequencer.start_dialog(dialog_request_id))
        return dialog

    def end(self, dialog_request_id: str) -> None:
        """Forget `dialog_request_id` if current: its later directives are dropped as stale."""
        self._cancelled(self.sequencer.end_dialog(dialog_request_id))

    def get(self, dialog_request_id: str | None) -> Dialog | None:
        """The dialog with that id, if it is one of the recent ones."""
        if dialog_request_id is None:
            return None
        return self._dialogs.get(dialog_request_id)

    def response_started(self, message_id: str) -> None:
        """The first part of the response to event `message_id` arrived: stamp its dialog."""
        for dialog in reversed(self._dialogs.values()):
            if dialog.message_id == message_id:
                if dialog.trace.first_response_byte_at is None:
                    dialog.trace.first_response_byte_at = self.now()
                return

    def record(self, directive: Directive, disposition: Disposition) -> None:
        """Note what happened to a directive of a known dialog: arrivals are listed on the
        dialog, dispatches stamped on its trace."""
        dialog = self.get(directive.dialog_request_id)
        if dialog is None:
            return
        if disposition is Disposition.RECEIVED:
            dialog.directives.append(directive)
        elif disposition is Disposition.DISPATCHED:
            dialog.trace.directives.append((f"{directive.namespace}.{directive.name}", self.now()))

    # -- the pipeline's questions ----------------------------------------------------------

    def receive(self, directive: Directive) -> Disposition:
        """Decide what to do with a directive that just arrived (`DialogSequencer.receive`)."""
        return self.sequencer.receive(directive)

    def next(self, dialog_request_id: str) -> Directive | None:
        """The next directive of that dialog's lane, or None: the lane must end."""
        return self.sequencer.next(dialog_request_id)

    def failed(self, directive: Directive) -> list[Directive]:
        """A directive's handler failed: the rest of its dialog's queue, now cancelled."""
        return self.sequencer.failed(directive)

    def add_cancel_listener(self, listener: CancelListener) -> None:
        """Tell `listener` about each queued directive that a new or ended dialog cancels."""
        self._cancel_listeners.append(listener)

    def _cancelled(self, directives: list[Directive]) -> None:
        for directive in directives:
            for listener in list(self._cancel_listeners):
                try:
                    listener(directive)
                except Exception:
                    _log.exception("cancel listener failed on %r", directive)

    # -- lanes -----------------------------------------------------------------------------

    def lane_started(self, dialog_request_id: str, lane: asyncio.Task[None]) -> None:
        """The pipeline runs `lane` for that dialog's directives (see `wait_handled`)."""
        self._lanes[dialog_request_id] = lane
        lane.add_done_callback(lambda task: self._lane_done(dialog_request_id, task))

    def _lane_done(self, dialog_request_id: str, task: asyncio.Task[None]) -> None:
        if self._lanes.get(dialog_request_id) is task:
            del self._lanes[dialog_request_id]

    async def wait_handled(self, dialog_request_id: str) -> None:
        """Wait until the lane of that dialog has handled everything queued in it."""
        while (lane := self._lanes.get(dialog_request_id)) is not None:
            await asyncio.wait({lane})
