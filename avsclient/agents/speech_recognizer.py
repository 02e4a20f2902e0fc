"""The SpeechRecognizer interface: Recognize streamed from an `AudioSource`, StopCapture and
ExpectSpeech (avs-protocol 5.2), driven by one transition table.

Each Recognize starts a dialog with the client's `DialogManager` and takes the Dialog channel
of its `FocusManager`, which interrupts speech that is playing (barge-in).

A wake-word Recognize (`recognize_wake_word`) streams from the always-on capture ring: 500 ms
of pre-roll before the word, the word, then live audio, with `wakeWordIndices` and `wakeWord`
in the initiator (avs-protocol 5.2, 11.1). The history is sent as fast as the connection takes
it; live frames follow as they are captured. A StopCapture with no answer after it is the
cloud rejecting the wake word (11.2): it is counted and reported, and nothing else happens.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

from avsclient._fsm import StateMachine, Table
from avsclient._tasks import TaskSet
from avsclient.agents import payload
from avsclient.agents.base import (
    AgentServices,
    Capability,
    CapabilityAgent,
    DirectiveHandler,
    StateReportEntry,
)
from avsclient.agents.events import (
    ExpectingSpeech,
    RecognizerState,
    RecognizerStateChanged,
    WakeWordRejected,
)
from avsclient.agents.recognizer_settings import RecognizerSettings
from avsclient.audio import (
    AVS_FORMAT,
    AVS_FORMAT_NAME,
    DEFAULT_PREROLL_SAMPLES,
    AudioSource,
    EndpointedSource,
    RingOverrun,
    recognize_window,
    refine_start,
)
from avsclient.dialog import DIALOG_HOLD_TIMEOUT, new_dialog_request_id
from avsclient.exceptions import DirectiveError, StateError
from avsclient.messages import Directive, Event, ExceptionType

if TYPE_CHECKING:
    from avsclient.audio import Endpointer, RecognizeWindow, RingCapture, WakeWordDetection
    from avsclient.dialog import Dialog
    from avsclient.focus import FocusState

__all__ = [
    "DEFAULT_INITIATORS",
    "MAX_EXPECT_SPEECH_MS",
    "PROFILES",
    "RECOGNIZER_TRANSITIONS",
    "RecognizerInput",
    "RecognizerMachine",
    "RecognizerState",
    "SourceFactory",
    "SpeechRecognizerAgent",
    "wake_word_initiator",
]

_log = logging.getLogger("avsclient.agents")

#: The ASR profiles (avs-protocol 5.2): CLOSE_TALK ends on the device, the others in the cloud.
PROFILES = frozenset({"CLOSE_TALK", "NEAR_FIELD", "FAR_FIELD"})

#: The initiator type sent when the caller gives none, by profile (the SDK's defaults:
#: hold-to-talk for close talk, tap for the far-field profiles).
DEFAULT_INITIATORS = {"CLOSE_TALK": "PRESS_AND_HOLD", "NEAR_FIELD": "TAP", "FAR_FIELD": "TAP"}

#: The longest ExpectSpeech `timeoutInMilliseconds` accepted. The reference names no upper
#: bound (its example is 8000 ms, and the SDK takes any 64-bit value), so the bound is the
#: client's: 5 minutes, the idle time after which AVS closes a connection (avs-protocol 1.4),
#: far above any real prompt, while 10**12 ms would keep the microphone expected for 31 years.
#: An agent's `max_expect_speech_ms` overrides it.
MAX_EXPECT_SPEECH_MS = 5 * 60 * 1000

SourceFactory: TypeAlias = Callable[[], "AudioSource | Awaitable[AudioSource | None] | None"]
"""Opens the microphone again for ExpectSpeech; returning None lets the timeout run."""


class RecognizerInput(enum.Enum):
    """What happens to the recognizer."""

    RECOGNIZE = "recognize"  # a Recognize starts
    STOP_CAPTURE = "stop_capture"  # the StopCapture directive
    AUDIO_ENDED = "audio_ended"  # the source ended (release, endpointing, end of file)
    RESPONSE_ENDED = "response_ended"  # the Recognize's response is complete
    EXPECT_SPEECH = "expect_speech"  # the ExpectSpeech directive
    EXPECT_TIMED_OUT = "expect_timed_out"  # nobody spoke within its timeout


S = RecognizerState
I = RecognizerInput  # noqa: E741 - a table reads better with one-letter names

# Theory of operation: a Recognize may start from any state but RECOGNIZING (one upload at a
# time; from BUSY or EXPECTING_SPEECH it supersedes the dialog). The upload ends by StopCapture
# or by the source ending (CLOSE_TALK release or endpointing), then the response completes.
# ExpectSpeech is valid only while idle or busy (avs-protocol 5.2). Late inputs that change
# nothing (a StopCapture after the audio ended, a response ending while speech is expected)
# are listed as self-transitions so they are not mistaken for errors.
RECOGNIZER_TRANSITIONS: Table[RecognizerState, RecognizerInput, None] = {
    (S.IDLE, I.RECOGNIZE): (None, S.RECOGNIZING),
    (S.BUSY, I.RECOGNIZE): (None, S.RECOGNIZING),
    (S.EXPECTING_SPEECH, I.RECOGNIZE): (None, S.RECOGNIZING),
    (S.RECOGNIZING, I.STOP_CAPTURE): (None, S.BUSY),
    (S.RECOGNIZING, I.AUDIO_ENDED): (None, S.BUSY),
    (S.RECOGNIZING, I.RESPONSE_ENDED): (None, S.IDLE),  # the request failed before the audio ended
    (S.BUSY, I.STOP_CAPTURE): (None, S.BUSY),
    (S.BUSY, I.AUDIO_ENDED): (None, S.BUSY),
    (S.BUSY, I.RESPONSE_ENDED): (None, S.IDLE),
    (S.BUSY, I.EXPECT_SPEECH): (None, S.EXPECTING_SPEECH),
    (S.IDLE, I.EXPECT_SPEECH): (None, S.EXPECTING_SPEECH),
    (S.IDLE, I.STOP_CAPTURE): (None, S.IDLE),
    (S.EXPECTING_SPEECH, I.RESPONSE_ENDED): (None, S.EXPECTING_SPEECH),
    (S.EXPECTING_SPEECH, I.EXPECT_TIMED_OUT): (None, S.IDLE),
}
del S, I


class RecognizerMachine(StateMachine[RecognizerState, RecognizerInput, None]):
    """The recognizer's state, moved only through `RECOGNIZER_TRANSITIONS` (no I/O).

    Unlike a protocol connection, an illegal input does not break the machine: the device must
    go on listening. It raises `StateError` and leaves the state as it was (`error_state=None`).
    """

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(
            RECOGNIZER_TRANSITIONS,
            RecognizerState.IDLE,
            name="SpeechRecognizer",
            error_state=None,
            misuse=StateError,
        )


def _initiator(value: Mapping[str, Any] | str | None, profile: str) -> dict[str, Any]:
    if value is None:
        return {"type": DEFAULT_INITIATORS[profile], "payload": {}}
    if isinstance(value, str):
        return {"type": value, "payload": {}}
    return dict(value)


def wake_word_initiator(window: RecognizeWindow) -> dict[str, Any]:
    """The WAKEWORD initiator of a Recognize whose audio starts at `window.reader_start`
    (avs-protocol 11.1, the SDK's shape: `wakeWord` inside `initiator.payload`).

    `wakeWordIndices` go only with a full pre-roll: with less history before the word (just
    after start-up) the cloud could not verify the word against them.
    """
    payload: dict[str, Any] = {"wakeWord": window.wake_word}
    if window.full_preroll:
        payload["wakeWordIndices"] = {
            "startIndexInSamples": window.start_index,
            "endIndexInSamples": window.end_index,
        }
    return {"type": "WAKEWORD", "payload": payload}


class SpeechRecognizerAgent(CapabilityAgent):
    """Streams Recognize events and follows StopCapture and ExpectSpeech."""

    namespace = "SpeechRecognizer"
    # Discovery requires 2.3 (avs-protocol 9.1, 9.8); a tap-to-talk device declares no
    # `wakeWords` configuration (11.5).
    version = "2.3"

    #: The focus channel a Recognize takes (avs-protocol 13.1).
    channel = "Dialog"

    #: The longest ExpectSpeech timeout accepted, in ms; a longer one is refused
    #: (UNEXPECTED_INFORMATION_RECEIVED). See `MAX_EXPECT_SPEECH_MS`.
    max_expect_speech_ms: int = MAX_EXPECT_SPEECH_MS

    def __init__(
        self,
        *,
        source_factory: SourceFactory | None = None,
        settings: RecognizerSettings | None = None,
    ) -> None:
        """Create the agent.

        Args:
            source_factory: opens the microphone when AVS expects speech; without one the
                application gets `ExpectingSpeech` and should call `recognize()` itself.
            settings: the 2.3 settings (default: tap-to-talk, no wake word); give
                `RecognizerSettings(wake_words=...)` for a wake-word device.
        """
        super().__init__()
        self.source_factory = source_factory
        #: The 2.3 settings (confirmations, wake words, end-of-speech offset).
        self.settings = settings if settings is not None else RecognizerSettings()
        self.machine = RecognizerMachine()
        self.dialog: Dialog | None = None
        self.profile = "NEAR_FIELD"
        self._source: AudioSource | None = None
        self._stop = False
        self._expect_initiator: dict[str, Any] | None = None
        self._expect_timer: asyncio.TimerHandle | None = None
        self._tasks = TaskSet(_log, "recognizer")
        self._cloud_stopped = False  # the current upload was ended by StopCapture
        #: Wake words AVS did not confirm (StopCapture with no answer, avs-protocol 11.2).
        self.wake_words_rejected = 0
        #: Uploads ended early because the capture ring overwrote audio not yet sent.
        self.ring_overruns = 0
        #: The pre-roll and indices of the last wake-word Recognize.
        self.last_wake_window: RecognizeWindow | None = None

    @property
    def state(self) -> RecognizerState:
        """The current state."""
        return self.machine.state

    def handlers(self) -> dict[str, DirectiveHandler]:
        return {
            "StopCapture": self._on_stop_capture,
            "ExpectSpeech": self._on_expect_speech,
            **self.settings.handlers(),
        }

    def attach(self, services: AgentServices) -> None:
        super().attach(services)
        self.settings.bind(services)

    def capability(self) -> Capability:
        """SpeechRecognizer 2.3, with the `wakeWords` configuration of a wake-word device."""
        return Capability(self.namespace, self.version, self.settings.configuration())

    def state_reports(self) -> list[StateReportEntry]:
        return self.settings.state_reports()

    def forget_account(self) -> None:
        self.settings.forget_account()

    @property
    def wake_word_confirmation(self) -> str:
        """`NONE` or `TONE`: play a tone when listening starts (SetWakeWordConfirmation)."""
        return self.settings.wake_word_confirmation

    def _move(self, event: RecognizerInput) -> None:
        old = self.machine.state
        self.machine.feed(event)
        new = self.machine.state
        if old is not new:
            _log.debug("recognizer %s -> %s", old.value, new.value)
            dialog = None if self.dialog is None else self.dialog.dialog_request_id
            self.messenger.notify(
                RecognizerStateChanged(old=old, new=new, dialog_request_id=dialog)
            )

    # -- Recognize -------------------------------------------------------------------------

    async def recognize(
        self,
        source: AudioSource,
        *,
        profile: str = "NEAR_FIELD",
        initiator: Mapping[str, Any] | str | None = None,
    ) -> Dialog:
        """Stream `source` as a Recognize event and return when its response has ended.

        The recognizer owns `source` from here on and closes it when the upload ends: at the
        end of its audio, on StopCapture, or when the caller closes it (CLOSE_TALK release;
        an `EndpointedSource` ends by itself at the end of speech).

        Args:
            source: 16 kHz 16-bit mono PCM frames (the AVS format).
            profile: CLOSE_TALK, NEAR_FIELD or FAR_FIELD.
            initiator: an initiator object, or just its type (TAP, PRESS_AND_HOLD,
                WAKEWORD); by default TAP, or PRESS_AND_HOLD for CLOSE_TALK. When AVS expects
                speech, its ExpectSpeech initiator is sent instead, verbatim.

        Returns:
            The dialog: its directives, outcome and latency trace.

        Raises:
            StateError: a recognition is already streaming.
            ValueError: unknown profile, or the source is not in the AVS format.
        """
        return await self._recognize(source, profile, initiator, None)

    async def recognize_wake_word(
        self,
        capture: RingCapture,
        detection: WakeWordDetection,
        *,
        profile: str = "NEAR_FIELD",
        preroll_samples: int = DEFAULT_PREROLL_SAMPLES,
        endpointer: Endpointer | None = None,
        detected_at: float | None = None,
    ) -> Dialog:
        """Stream a wake-word Recognize from the capture ring and return when its response ended.

        The audio starts `preroll_samples` before the word's start (refined by the onset seen
        in the ring, `refine_start`), or at the oldest sample held when the history is shorter;
        `wakeWordIndices` are sample offsets in that stream (start 8000 with a full pre-roll).
        The history goes out at once, then live audio until StopCapture or, with an
        `endpointer`, the end of speech (whichever comes first).

        Args:
            capture: the always-on capture whose ring holds the word.
            detection: the detection, in the ring's stream positions.
            profile: NEAR_FIELD or FAR_FIELD (or CLOSE_TALK).
            preroll_samples: audio wanted before the word (500 ms).
            endpointer: ends the upload at the end of speech; None leaves it to StopCapture.
            detected_at: loop time of the detection, stamped on the dialog's trace.

        Raises:
            StateError: a recognition is already streaming.
            RingOverrun: the word is no longer in the ring.
        """
        ring = capture.ring
        window = recognize_window(
            refine_start(ring, detection), ring.oldest, preroll_samples=preroll_samples
        )
        source: AudioSource = capture.reader_from(window.reader_start)
        if endpointer is not None:
            source = EndpointedSource(source, endpointer=endpointer)
        self.last_wake_window = window
        return await self._recognize(source, profile, wake_word_initiator(window), detected_at)

    async def _recognize(
        self,
        source: AudioSource,
        profile: str,
        initiator: Mapping[str, Any] | str | None,
        detected_at: float | None,
    ) -> Dialog:
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {sorted(PROFILES)}")
        if source.format != AVS_FORMAT:
            raise ValueError(f"the source must produce {AVS_FORMAT_NAME}, not {source.format}")
        if not self.machine.accepts(RecognizerInput.RECOGNIZE):
            await source.aclose()
            raise StateError(f"cannot recognize while {self.state.value}")
        expecting = self.state is RecognizerState.EXPECTING_SPEECH
        self._cancel_expect_timer()
        fields: dict[str, Any] = {
            "profile": profile,
            "format": AVS_FORMAT_NAME,
            "startOfSpeechTimestamp": self.settings.stamp_start_of_speech(),
        }
        if expecting:
            if self._expect_initiator is not None:
                fields["initiator"] = self._expect_initiator
        else:
            fields["initiator"] = _initiator(initiator, profile)
        self._expect_initiator = None
        dialog_id = new_dialog_request_id()
        event = Event.build(self.namespace, "Recognize", fields, dialog_request_id=dialog_id)
        services = self.services
        dialog = services.dialogs.start(dialog_id, event.message_id)
        dialog.trace.wake_word_detected_at = detected_at
        self.dialog, self.profile = dialog, profile
        self._source, self._stop, self._cloud_stopped = source, False, False
        self._move(RecognizerInput.RECOGNIZE)
        services.activity.touch()
        try:
            await services.focus.acquire(self.channel, self)  # barge-in: speech stops
            dialog.result = await self.messenger.send(
                event, context=True, audio=self._stream(source, dialog)
            )
        finally:
            await source.aclose()
            if self.dialog is dialog:
                self._source = None
                if self.machine.accepts(RecognizerInput.RESPONSE_ENDED):
                    self._move(RecognizerInput.RESPONSE_ENDED)
                # The turn goes on while its directives are handled (its Speak takes the
                # channel over): release only then, so that what the turn sent to the
                # background (music, a ringing alert) does not come back in between (13.3).
                self._tasks.spawn(self._release_when_handled(dialog))
        services.activity.touch()
        sent = fields.get("initiator") or {}
        if sent.get("type") == "WAKEWORD" and self._rejected(dialog):
            self.wake_words_rejected += 1
            word = str(sent.get("payload", {}).get("wakeWord", ""))
            _log.info("AVS did not confirm the wake word %s (dialog %s)", word, dialog_id)
            self.messenger.notify(WakeWordRejected(dialog_request_id=dialog_id, wake_word=word))
        _log.debug(
            "dialog %s: %s, trace %s",
            dialog_id,
            dialog.result.outcome.name,
            dialog.trace.relative_ms(),
        )
        return dialog

    def _rejected(self, dialog: Dialog) -> bool:
        # A false wake: the cloud stopped the capture and sent nothing else (avs-protocol
        # 11.2). StopCapture may come on the downchannel without the dialog's id.
        if self.dialog is not dialog or not self._cloud_stopped:
            return False
        if dialog.result is None or not dialog.result.ok:
            return False
        return all(d.name == "StopCapture" for d in dialog.directives)

    async def _stream(self, source: AudioSource, dialog: Dialog) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        trace = dialog.trace
        try:
            while True:
                try:
                    frame = await source.read_frame()
                except RingOverrun as exc:
                    # The upload fell so far behind that the ring overwrote audio it had not
                    # sent: what follows would not be continuous, so the utterance ends here.
                    self.ring_overruns += 1
                    _log.warning("upload of %s ends: %s", dialog.dialog_request_id, exc)
                    break
                if not frame or self._stop:
                    break
                if trace.audio_started_at is None:
                    trace.audio_started_at = loop.time()
                yield frame
            trace.last_audio_sent_at = loop.time()
        finally:
            if self.dialog is dialog and self.state is RecognizerState.RECOGNIZING:
                self._move(RecognizerInput.AUDIO_ENDED)

    async def _on_stop_capture(self, directive: Directive) -> None:
        if self.state is RecognizerState.BUSY:
            self._cloud_stopped = True  # the upload had ended locally (end of speech) first
        if self.state is not RecognizerState.RECOGNIZING:
            _log.debug("StopCapture while %s: nothing to stop", self.state.value)
            return
        self._stop = self._cloud_stopped = True
        self._move(RecognizerInput.STOP_CAPTURE)
        source = self._source
        if source is not None:
            await source.aclose()  # a read in progress returns at once

    # -- ExpectSpeech ----------------------------------------------------------------------

    async def _on_expect_speech(self, directive: Directive) -> None:
        timeout_ms = payload.integer(
            directive.payload,
            "timeoutInMilliseconds",
            low=0,
            high=self.max_expect_speech_ms,
            default=None,
        )
        if timeout_ms is None:  # the SDK's answer to a missing timeout (avs-protocol 5.2)
            raise DirectiveError(
                "ExpectSpeech without timeoutInMilliseconds",
                error_type=ExceptionType.UNSUPPORTED_OPERATION.value,
            )
        initiator = payload.obj(directive.payload, "initiator", default=None)
        if not self.machine.accepts(RecognizerInput.EXPECT_SPEECH):
            raise DirectiveError(f"ExpectSpeech while {self.state.value}")
        self._move(RecognizerInput.EXPECT_SPEECH)
        # The turn goes on: hold the Dialog channel until the answer is recognized or the
        # wait times out, so music does not come back in between (avs-protocol 13.3).
        await self.services.focus.acquire(self.channel, self)
        self._expect_initiator = initiator
        timeout = timeout_ms / 1000
        self.messenger.notify(ExpectingSpeech(timeout=timeout, initiator=initiator))
        loop = asyncio.get_running_loop()
        self._expect_timer = loop.call_later(timeout, self._expect_timed_out)
        if self.source_factory is not None:
            opened = self.source_factory()
            source = await opened if inspect.isawaitable(opened) else opened
            if source is not None and self.state is RecognizerState.EXPECTING_SPEECH:
                self._tasks.spawn(self.recognize(source, profile=self.profile))
            elif source is not None:
                await source.aclose()

    async def focus_changed(self, channel: str, state: FocusState) -> None:
        """Nothing to do: the upload is not cut short when speech takes the channel."""

    async def _release_when_handled(self, dialog: Dialog) -> None:
        # The hold only bridges the response's end and its first Speak taking the channel
        # over; a turn whose handling stalls does not keep the channel beyond the deadline.
        dialogs = self.services.dialogs
        if not await dialogs.wait_handled(dialog.dialog_request_id, DIALOG_HOLD_TIMEOUT):
            _log.warning("dialog %s still busy: releasing the Dialog channel", dialog)
        if self.dialog is dialog:  # not if a newer recognition holds the channel
            await self.services.focus.release(self.channel, self)

    def _expect_timed_out(self) -> None:
        self._expect_timer = None
        if self.state is not RecognizerState.EXPECTING_SPEECH:
            return
        self._move(RecognizerInput.EXPECT_TIMED_OUT)
        self._expect_initiator = None
        _log.info("nobody spoke after ExpectSpeech: sending ExpectSpeechTimedOut")
        timed_out = Event.build(self.namespace, "ExpectSpeechTimedOut")
        self._tasks.spawn(self.messenger.post_event(timed_out))
        self._tasks.spawn(self.services.focus.release(self.channel, self))

    def _cancel_expect_timer(self) -> None:
        if self._expect_timer is not None:
            self._expect_timer.cancel()
            self._expect_timer = None

    async def aclose(self) -> None:
        """Stop the expect-speech timer and any recognition it started."""
        self._cancel_expect_timer()
        self._stop = True
        if self._source is not None:
            await self._source.aclose()
        await self._tasks.cancel()
