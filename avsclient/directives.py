"""The directive pipeline: response parts in, directives routed to their handlers, in order.

`DirectivePipeline` implements the connection manager's `ResponseSink`: JSON parts become
`Directive`s, parts with a Content-ID become attachments (`AttachmentStore`), and each
directive runs its handler: at once when it has no dialog id, else in its dialog's lane. What
to do with a directive of a dialog (run, queue, drop as stale) is the dialog owner's decision
(`avsclient.dialog.DialogManager`); the pipeline asks it and runs the lanes.

A dialog's lane runs one directive at a time in arrival order, so a Speak (whose handler
returns when the speech finished) holds back the directives after it, e.g. ExpectSpeech
(the SDK's blocking policy). A lane never holds back the response stream itself: the Speak's
attachment arrives on the same stream after it.

Back-pressure: handlers, lanes and ExceptionEncountered reports run in tasks, at most
`max_in_flight` at once. When they are all busy, `part_ended` waits before it hands on the
next directive; the response reader awaits it before it takes the next chunk off the HTTP/2
stream, so the stream's flow-control window stops the server (STYLE.md section 9), and a
directive flood costs a bounded number of tasks and at most one stream window of bytes.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from typing import Any

from avsclient.attachments import Attachment, AttachmentStore, cid_of
from avsclient.avs.manager import ResponseSource
from avsclient.dialog import DEFAULT_MAX_QUEUE, DialogManager, Disposition
from avsclient.exceptions import DirectiveError, RemoteProtocolError
from avsclient.messages import Directive, ExceptionType, parse_directive
from avsclient.multipart import Headers

__all__ = [
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_MAX_JSON_PART",
    "DirectivePipeline",
    "Handler",
    "ImmediateHandler",
]

_log = logging.getLogger("avsclient.directives")

#: Largest JSON part accepted (256 KiB): real directives are a few KiB; the SDK uses the
#: same order of magnitude. A larger part is skipped and reported as malformed.
DEFAULT_MAX_JSON_PART = 256 * 1024

#: Handlers, lanes and reports running at once before the response reader waits. A real
#: response carries a handful of directives; 64 leaves room for bursts (a SetAlert per alarm
#: of a sync) while a flood of 100,000 costs 64 tasks, not 100,000.
DEFAULT_MAX_IN_FLIGHT = 64

# How deep `_cids` looks into a payload for `cid:` URLs (AudioPlayer.Play nests it at 3).
_CID_DEPTH = 4

Handler = Callable[[Directive], Awaitable[None]]
"""A directive handler. It raises `DirectiveError` to have AVS told, with its error type."""

ImmediateHandler = Callable[[Directive], None]
"""Handles one directive synchronously, inside `dispatch`, before the next one is routed
(InteractionModel.NewDialogRequest must make its dialog current before the directives of that
dialog are sorted); raises `DirectiveError` to have AVS told."""

Reporter = Callable[[bytes, ExceptionType, str], Awaitable[None]]
Observer = Callable[[Directive, Disposition], None]


_ACCEPTED = frozenset({Disposition.IMMEDIATE, Disposition.START_LANE, Disposition.QUEUED})


class _PartKind(enum.Enum):
    JSON = "json"
    ATTACHMENT = "attachment"
    SKIP = "skip"


class _Part:
    __slots__ = ("attachment", "buffer", "kind", "too_large")

    def __init__(self, kind: _PartKind, attachment: Attachment | None = None) -> None:
        self.kind = kind
        self.attachment = attachment
        self.buffer = bytearray()
        self.too_large = False


def _cids(value: Any, depth: int = 0) -> list[str]:
    """Every `cid:` URL in a payload (Speak's `url`, Play's `audioItem.stream.url`)."""
    if depth > _CID_DEPTH:
        return []
    if isinstance(value, dict):
        return [c for v in value.values() for c in _cids(v, depth + 1)]
    if isinstance(value, list):
        return [c for v in value for c in _cids(v, depth + 1)]
    cid = cid_of(value)
    return [] if cid is None else [cid]


class DirectivePipeline:
    """Turns response parts into directives and runs their handlers (a `ResponseSink`).

    Handlers are registered per `(namespace, name)`. Unknown directives and directives whose
    handler raises are reported through `report` (which sends `System.ExceptionEncountered`);
    the pipeline carries on either way.
    """

    def __init__(
        self,
        *,
        report: Reporter,
        dialogs: DialogManager | None = None,
        attachments: AttachmentStore | None = None,
        max_json_part: int = DEFAULT_MAX_JSON_PART,
        max_queue: int = DEFAULT_MAX_QUEUE,
        observer: Observer | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        """Create a pipeline.

        Args:
            report: sends ExceptionEncountered for `(raw directive, error type, message)`.
            dialogs: the dialog owner it asks about each directive of a dialog (a new one,
                with `max_queue`, by default).
            attachments: where attachment parts go (a new store by default).
            max_json_part: the largest JSON part accepted, in bytes.
            max_queue: directives a dialog may queue (only for a new dialog owner).
            observer: called with each directive and what happened to it.
            max_in_flight: handlers, lanes and reports running at once; beyond it the
                response reader waits (back-pressure).

        Raises:
            ValueError: a limit is not positive.
        """
        if max_json_part <= 0:
            raise ValueError("max_json_part must be positive")
        if max_in_flight <= 0:
            raise ValueError("max_in_flight must be positive")
        self.max_in_flight = max_in_flight
        self.attachments = attachments if attachments is not None else AttachmentStore()
        self.dialogs = dialogs if dialogs is not None else DialogManager(max_queue=max_queue)
        self.dialogs.add_cancel_listener(self._cancelled)
        self.max_json_part = max_json_part
        self._report = report
        self._observer = observer
        self._routes: dict[tuple[str, str], Handler] = {}
        self._immediate: dict[tuple[str, str], ImmediateHandler] = {}
        self._parts: dict[Hashable, _Part] = {}
        self._seen: set[Hashable] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._room = asyncio.Event()  # set when a task ends: the reader may go on
        self._closed = False

    # -- routing -------------------------------------------------------------------------

    def register(self, namespace: str, name: str, handler: Handler) -> None:
        """Route directives `namespace.name` to `handler` (replacing any earlier one)."""
        self._routes[(namespace, name)] = handler

    def register_immediate(self, namespace: str, name: str, handler: ImmediateHandler) -> None:
        """Route directives `namespace.name` to a synchronous `handler`, run as each one
        arrives, before the next directive is routed (InteractionModel.NewDialogRequest makes
        its dialog current before that dialog's directives are sorted, avs-protocol 10)."""
        self._immediate[(namespace, name)] = handler

    def supports(self, namespace: str, name: str) -> bool:
        """True when a handler is registered for `namespace.name`."""
        return (namespace, name) in self._routes or (namespace, name) in self._immediate

    def _cancelled(self, directive: Directive) -> None:
        # A new or ended dialog dropped it from its queue (the dialog owner tells us).
        self._done(directive, Disposition.CANCELLED)

    # -- ResponseSink --------------------------------------------------------------------

    async def part_started(self, source: Hashable, headers: Headers) -> None:
        """A part of response `source` began (ResponseSink).

        The first part of an event's response is stamped on the event's dialog, if any.
        """
        if source not in self._seen:
            self._seen.add(source)
            if isinstance(source, ResponseSource) and source.message_id is not None:
                self.dialogs.response_started(source.message_id)
        content_type = (headers.content_type or "").lower()
        cid = headers.content_id
        if "application/json" in content_type:
            self._parts[source] = _Part(_PartKind.JSON)
        elif cid:
            self._parts[source] = _Part(_PartKind.ATTACHMENT, self.attachments.begin(source, cid))
        else:
            # avs-protocol 4.2 rule 6: unknown part types and parts without Content-Type are
            # skipped; the SDK warns.
            _log.warning("skipping a response part of type %r without Content-ID", content_type)
            self._parts[source] = _Part(_PartKind.SKIP)

    async def part_data(self, source: Any, data: memoryview) -> None:
        """Content of the current part of `source` (ResponseSink); may wait (backpressure)."""
        part = self._parts.get(source)
        if part is None:
            return
        if part.kind is _PartKind.ATTACHMENT:
            assert part.attachment is not None
            await part.attachment.put(data)
        elif part.kind is _PartKind.JSON and not part.too_large:
            if len(part.buffer) + len(data) > self.max_json_part:
                part.too_large = True
                del part.buffer[1024:]  # keep a prefix for the report
            else:
                part.buffer += data

    async def part_ended(self, source: Any) -> None:
        """The current part of `source` ended (ResponseSink)."""
        part = self._parts.pop(source, None)
        if part is None:
            return
        if part.kind is _PartKind.ATTACHMENT:
            assert part.attachment is not None
            part.attachment.finish()
        elif part.kind is _PartKind.JSON:
            await self._wait_for_room()
            raw = bytes(part.buffer)
            if part.too_large:
                self._spawn_report(
                    raw,
                    ExceptionType.UNEXPECTED_INFORMATION_RECEIVED,
                    f"directive larger than {self.max_json_part} bytes",
                )
                return
            try:
                directive = parse_directive(raw, source=source)
            except RemoteProtocolError as exc:
                _log.warning("malformed directive: %s", exc)
                self._spawn_report(raw, ExceptionType.UNEXPECTED_INFORMATION_RECEIVED, str(exc))
                return
            self.dispatch(directive)

    async def response_ended(self, source: Any, error: BaseException | None) -> None:
        """Response `source` ended, normally or with `error` (ResponseSink)."""
        part = self._parts.pop(source, None)
        if part is not None and part.attachment is not None:
            part.attachment.finish(error)
        self._seen.discard(source)
        self.attachments.response_ended(source, error)

    # -- dispatching ---------------------------------------------------------------------

    def dispatch(self, directive: Directive) -> Disposition:
        """Route one directive: run it, queue it in its dialog's lane, or drop it."""
        if self._closed:
            return Disposition.CANCELLED
        self._notify(directive, Disposition.RECEIVED)
        immediate = self._immediate.get(directive.key)
        if immediate is not None:
            self._notify(directive, Disposition.DISPATCHED)
            try:
                immediate(directive)
            except Exception as exc:
                self._failed(directive, exc)
            return Disposition.IMMEDIATE
        handler = self._routes.get(directive.key)
        if handler is None:
            _log.warning("unsupported directive %s.%s", directive.namespace, directive.name)
            self._notify(directive, Disposition.UNSUPPORTED)
            self._spawn_report(
                directive.raw,
                ExceptionType.UNSUPPORTED_OPERATION,
                f"{directive.namespace}.{directive.name} is not supported",
            )
            return Disposition.UNSUPPORTED
        disposition = self.dialogs.receive(directive)
        if disposition in _ACCEPTED:
            for cid in _cids(directive.payload):
                self.attachments.claim(directive.source, cid)
        if disposition is Disposition.IMMEDIATE:
            self._spawn(self._run(directive))
        elif disposition is Disposition.START_LANE:
            dialog = directive.dialog_request_id
            assert dialog is not None
            lane = self._spawn(self._lane(dialog))
            if lane is not None:
                self.dialogs.lane_started(dialog, lane)
        elif disposition is Disposition.STALE:
            _log.debug("dropping %r: dialog is not current", directive)
            self._done(directive, disposition)
        elif disposition is Disposition.OVERFLOW:
            _log.warning("dropping %r: its dialog queue is full", directive)
            self._done(directive, disposition)
            self._spawn_report(
                directive.raw, ExceptionType.INTERNAL_ERROR, "directive queue is full"
            )
        return disposition

    async def _lane(self, dialog_id: str) -> None:
        while (directive := self.dialogs.next(dialog_id)) is not None:
            if not await self._run(directive):
                for cancelled in self.dialogs.failed(directive):
                    self._done(cancelled, Disposition.CANCELLED)

    async def _run(self, directive: Directive) -> bool:
        handler = self._routes[directive.key]
        self._notify(directive, Disposition.DISPATCHED)
        try:
            await handler(directive)
        except Exception as exc:
            self._failed(directive, exc)
            return False
        finally:
            self._release(directive)
        return True

    def _failed(self, directive: Directive, exc: Exception) -> None:
        """A handler raised: tell AVS (ExceptionEncountered with the error's type)."""
        if isinstance(exc, DirectiveError):
            _log.warning("directive %r failed: %s", directive, exc)
            try:
                error = ExceptionType(exc.error_type)
            except ValueError:
                error = ExceptionType.INTERNAL_ERROR
            self._spawn_report(directive.raw, error, str(exc))
        else:
            _log.exception("handler of %r failed", directive, exc_info=exc)
            self._spawn_report(directive.raw, ExceptionType.INTERNAL_ERROR, repr(exc))

    async def wait_lane(self, dialog_id: str) -> None:
        """Wait until the lane of `dialog_id` has handled everything queued in it."""
        await self.dialogs.wait_handled(dialog_id)

    def _done(self, directive: Directive, disposition: Disposition) -> None:
        self._release(directive)
        self._notify(directive, disposition)

    def _release(self, directive: Directive) -> None:
        for cid in _cids(directive.payload):
            self.attachments.release(directive.source, cid)

    def _notify(self, directive: Directive, disposition: Disposition) -> None:
        self.dialogs.record(directive, disposition)
        if self._observer is not None:
            try:
                self._observer(directive, disposition)
            except Exception:
                _log.exception("directive observer failed")

    def _spawn_report(self, raw: bytes, error: ExceptionType, message: str) -> None:
        self._spawn(self._send_report(raw, error, message))

    async def _send_report(self, raw: bytes, error: ExceptionType, message: str) -> None:
        try:
            await self._report(raw, error, message)
        except Exception:
            _log.exception("could not report %s", error.value)

    @property
    def in_flight(self) -> int:
        """Handlers, lanes and reports running now."""
        return len(self._tasks)

    async def _wait_for_room(self) -> None:
        """Wait while `max_in_flight` tasks run (back-pressure on the response reader)."""
        while len(self._tasks) >= self.max_in_flight and not self._closed:
            self._room.clear()
            await self._room.wait()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[None] | None:
        if self._closed:
            coro.close()
            return None
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._room.set()

    async def wait_idle(self) -> None:
        """Wait until every running handler and lane has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Cancel running handlers and lanes and wait for them. Idempotent."""
        self._closed = True
        self._room.set()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._parts.clear()
