"""The SpeechSynthesizer interface: Speak plays its MP3 attachment as it streams in
(avs-protocol 5.4), with SpeechStarted, SpeechFinished and, on barge-in, SpeechInterrupted.

Speech holds the Dialog channel of the client's `FocusManager` for the whole turn: from its
Speak until every directive of its dialog has been handled (so music stays ducked or paused
between two Speaks, and hands over to an ExpectSpeech without coming back in between;
avs-protocol 13.3). Losing the channel (a Recognize acquires it) interrupts the speech.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from avsclient._tasks import TaskSet
from avsclient.agents import payload
from avsclient.agents.base import CapabilityAgent, DirectiveHandler
from avsclient.agents.events import SpeechActivity, SpeechStateChanged
from avsclient.attachments import AttachmentReader, cid_of
from avsclient.audio import AudioSink, Mp3Sink
from avsclient.dialog import DIALOG_HOLD_TIMEOUT
from avsclient.exceptions import AttachmentError, AudioError, DirectiveError
from avsclient.focus import FocusState
from avsclient.messages import ContextState, Directive, Event, ExceptionType

__all__ = ["SpeechActivity", "SpeechSynthesizerAgent"]

_log = logging.getLogger("avsclient.agents")

# A Speak's url is `cid:` and a Content-ID (avs-protocol 5.4); 2048 characters is plenty.
_MAX_URL = 2048


class SpeechSynthesizerAgent(CapabilityAgent):
    """Plays Speak directives through an `AudioSink` (decoded by `Mp3Sink`).

    The Speak handler returns once the speech finished, which holds back the later
    directives of its dialog (avs-protocol 5.0). `interrupt()` stops it at once.
    """

    namespace = "SpeechSynthesizer"
    # 1.0 is the baseline; SpeechInterrupted and the INTERRUPTED activity this agent reports
    # belong to later versions (avs-protocol 5.4), which newer SDKs declare as 1.3 (9.8).
    version = "1.3"

    #: The focus channel speech plays on (avs-protocol 13.1).
    channel = "Dialog"

    def __init__(self, sink: AudioSink, *, clock: Callable[[], float] | None = None) -> None:
        """Create the agent.

        Args:
            sink: the audio output; the agent does not close it.
            clock: seconds for offsets (default: the event loop's clock).
        """
        super().__init__()
        self.mp3 = Mp3Sink(sink)
        self._clock = clock
        self.token = ""
        self.activity = SpeechActivity.FINISHED
        self._started_at: float | None = None
        self._offset_ms = 0
        self._playback: asyncio.Task[None] | None = None
        self._dialog: str | None = None
        self._speaks = 0  # Speak handlers running (holding the focus channel)
        self._holds = TaskSet(_log, "synthesizer")  # waiting for their dialog to end

    def handlers(self) -> dict[str, DirectiveHandler]:
        return {"Speak": self._on_speak}

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    @property
    def offset_ms(self) -> int:
        """Milliseconds into the current (or last) speech."""
        if self.activity is SpeechActivity.PLAYING and self._started_at is not None:
            return max(0, round((self._now() - self._started_at) * 1000))
        return self._offset_ms

    def context_states(self) -> list[ContextState]:
        return [
            ContextState(
                namespace="SpeechSynthesizer",
                name="SpeechState",
                payload={
                    "token": self.token,
                    "offsetInMilliseconds": self.offset_ms,
                    "playerActivity": self.activity.value,
                },
            )
        ]

    def _set_activity(self, activity: SpeechActivity) -> None:
        if activity is not SpeechActivity.PLAYING:
            self._offset_ms = self.offset_ms
        self.activity = activity
        self.messenger.notify(
            SpeechStateChanged(token=self.token, activity=activity, offset_ms=self._offset_ms)
        )

    async def _on_speak(self, directive: Directive) -> None:
        token = payload.text(directive.payload, "token")
        url = payload.text(directive.payload, "url", max_length=_MAX_URL)
        fmt = payload.text(directive.payload, "format", default="AUDIO_MPEG", max_length=64)
        if fmt != "AUDIO_MPEG":
            raise DirectiveError(
                f"unsupported Speak format {fmt!r}",
                error_type=ExceptionType.UNSUPPORTED_OPERATION.value,
            )
        cid = cid_of(url)
        if cid is None:
            raise DirectiveError(
                "only cid: Speak URLs are supported",
                error_type=ExceptionType.UNSUPPORTED_OPERATION.value,
            )
        try:
            reader = self.services.attachments.open(directive.source, cid)
        except AttachmentError as exc:
            raise DirectiveError(str(exc)) from exc
        await self._stop_playback()  # a Speak without a dialog may overlap an earlier one
        await self.services.focus.acquire(self.channel, self)
        self._speaks += 1
        try:
            await self._speak(directive, token, reader)
        finally:
            self._speaks -= 1
            if self._speaks == 0:  # an overlapping Speak still needs the channel
                self._release_after(directive.dialog_request_id)

    def _release_after(self, dialog_request_id: str | None) -> None:
        """Release the Dialog channel once the dialog's other directives have been handled
        (at once for a Speak outside a dialog). The handler runs inside the dialog's lane,
        so the wait happens in a task of its own."""
        focus = self.services.focus
        if dialog_request_id is None:
            self._holds.spawn(focus.release(self.channel, self))
        else:
            self._holds.spawn(self._release_when_handled(dialog_request_id))

    async def _release_when_handled(self, dialog_request_id: str) -> None:
        if not await self.services.dialogs.wait_handled(dialog_request_id, DIALOG_HOLD_TIMEOUT):
            _log.warning("dialog %s still busy: releasing the Dialog channel", dialog_request_id)
        if self._speaks == 0:  # no later Speak took the channel over meanwhile
            await self.services.focus.release(self.channel, self)

    async def _speak(self, directive: Directive, token: str, reader: AttachmentReader) -> None:
        self.token = token
        self._dialog = directive.dialog_request_id
        self._started_at = self._now()
        self._offset_ms = 0
        self._set_activity(SpeechActivity.PLAYING)
        dialog = self.services.dialogs.get(directive.dialog_request_id)
        if dialog is not None:
            dialog.trace.speech_started_at = self._started_at
        await self.messenger.post_event(
            Event.build(self.namespace, "SpeechStarted", {"token": token})
        )
        playback = self._playback = asyncio.create_task(self._play(reader))
        await asyncio.wait({playback})
        if self._playback is playback:
            self._playback = None
        if playback.cancelled():
            return  # interrupted: interrupt() reported it
        error = playback.exception()
        self._set_activity(SpeechActivity.FINISHED)
        if dialog is not None:
            dialog.trace.speech_finished_at = self._now()
        if error is not None:
            raise DirectiveError(
                f"speech playback failed: {error}", error_type=ExceptionType.INTERNAL_ERROR.value
            ) from error
        await self.messenger.post_event(
            Event.build(self.namespace, "SpeechFinished", {"token": token})
        )

    async def _play(self, reader: AttachmentReader) -> None:
        try:
            async with reader:
                async for chunk in reader:
                    await self.mp3.write(chunk)
            await self.mp3.drain()
        except (AttachmentError, AudioError):
            await self.mp3.stop()
            raise

    async def _stop_playback(self) -> bool:
        playback, self._playback = self._playback, None
        if playback is None or playback.done():
            return False
        playback.cancel()
        await asyncio.gather(playback, return_exceptions=True)
        await self.mp3.stop()
        return True

    async def interrupt(self) -> bool:
        """Stop the speech playing now (barge-in) and send SpeechInterrupted.

        Returns:
            True if speech was playing.
        """
        if self.activity is not SpeechActivity.PLAYING:
            return False
        offset = self.offset_ms
        if not await self._stop_playback():
            return False
        self._set_activity(SpeechActivity.INTERRUPTED)
        dialog = self.services.dialogs.get(self._dialog)
        if dialog is not None:
            dialog.trace.speech_finished_at = self._now()
        _log.debug("speech %r interrupted at %d ms", self.token, offset)
        await self.messenger.post_event(
            Event.build(
                self.namespace,
                "SpeechInterrupted",
                {"token": self.token, "offsetInMilliseconds": offset},
            )
        )
        return True

    async def focus_changed(self, channel: str, state: FocusState) -> None:
        """Losing the Dialog channel (a Recognize took it) interrupts the speech."""
        if state is FocusState.NONE:
            await self.interrupt()

    async def aclose(self) -> None:
        """Stop playback (the sink stays open: it belongs to the application)."""
        await self._holds.cancel()
        await self._stop_playback()
