"""How the simulator answers events: the records it keeps, the replies it sends, and the script.

No I/O here except reading the packaged MP3 assets. The server asks the `Script` what to answer
to each event and when to send StopCapture; tests change the script through `sim.script`.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, TypeAlias

__all__ = [
    "ReceivedEvent",
    "ReplyHandler",
    "Script",
    "ScriptedReply",
    "WakeWordCheck",
    "check_wake_word",
    "directive",
    "speech_asset",
    "speech_asset_names",
    "speech_asset_text",
]

# Two-thirds of a second of 16 kHz 16-bit mono PCM: enough for a test to have streamed "some
# audio" before the simulated end-of-speech detection fires.
DEFAULT_STOP_CAPTURE_AFTER = 21_333
_FAR_PROFILES = frozenset({"NEAR_FIELD", "FAR_FIELD"})

#: The pre-roll a WAKEWORD upload should carry before the word: 500 ms at 16 kHz
#: (avs-protocol 5.2, 11.1), and how far from it the start index may lie.
WAKE_WORD_PREROLL_SAMPLES = 8000
WAKE_WORD_PREROLL_TOLERANCE = 800  # 50 ms
#: A wake word shorter or longer than this is not a word (indices in the wrong unit, say).
_WAKE_WORD_MS = (150, 2000)


@dataclass(frozen=True, slots=True, kw_only=True)
class WakeWordCheck:
    """What the simulator found in a WAKEWORD Recognize, checked against its audio.

    Attributes:
        wake_word: `wakeWord` (in `initiator.payload`, or in the payload), or None.
        start_index: `wakeWordIndices.startIndexInSamples`, or None.
        end_index: `wakeWordIndices.endIndexInSamples`, or None.
        audio_samples: samples in the audio part.
        problems: what is wrong, empty when the initiator is good.
    """

    wake_word: str | None
    start_index: int | None
    end_index: int | None
    audio_samples: int
    problems: tuple[str, ...]

    @property
    def preroll_samples(self) -> int:
        """The audio before the word (the start index), 0 without indices."""
        return self.start_index or 0

    @property
    def preroll_ms(self) -> float:
        """The pre-roll in milliseconds (16 kHz)."""
        return self.preroll_samples / 16.0


def _index(indices: Mapping[str, Any], key: str, problems: list[str]) -> int | None:
    value = indices.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        problems.append(f"wakeWordIndices.{key} is {value!r}, not an integer")
        return None
    return value


def check_wake_word(payload: Mapping[str, Any], audio_bytes: int) -> WakeWordCheck | None:
    """Check a Recognize payload's WAKEWORD initiator against the audio received.

    The indices must lie inside the audio (16 kHz 16-bit mono), the audio before the start
    index must be about 500 ms, the word must last a plausible time, and `wakeWord` must be
    present (either placement, avs-protocol 11.1). Returns None for other initiators.
    """
    initiator = payload.get("initiator")
    if not isinstance(initiator, Mapping) or initiator.get("type") != "WAKEWORD":
        return None
    problems: list[str] = []
    samples = audio_bytes // 2
    inner = initiator.get("payload")
    inner = inner if isinstance(inner, Mapping) else {}
    word = inner.get("wakeWord", payload.get("wakeWord"))
    if not isinstance(word, str) or not word:
        problems.append("no wakeWord")
        word = None
    start = end = None
    indices = inner.get("wakeWordIndices")
    # Indices go only with a full 500 ms pre-roll (11.1): without them there is nothing
    # to check, and the cloud cannot verify the word.
    if indices is not None and not isinstance(indices, Mapping):
        problems.append(f"wakeWordIndices is {indices!r}, not an object")
    elif indices is not None:
        start = _index(indices, "startIndexInSamples", problems)
        end = _index(indices, "endIndexInSamples", problems)
    if start is not None and end is not None:
        if not 0 <= start < end <= samples:
            problems.append(f"indices [{start}, {end}) do not lie inside the {samples} samples")
        if abs(start - WAKE_WORD_PREROLL_SAMPLES) > WAKE_WORD_PREROLL_TOLERANCE:
            problems.append(f"pre-roll of {start / 16:.0f} ms, not about 500 ms")
        shortest, longest = _WAKE_WORD_MS
        if not shortest * 16 <= end - start <= longest * 16:
            problems.append(f"a wake word of {(end - start) / 16:.0f} ms")
    return WakeWordCheck(
        wake_word=word,
        start_index=start,
        end_index=end,
        audio_samples=samples,
        problems=tuple(problems),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceivedEvent:
    """One event the simulator received, complete with its audio.

    Attributes:
        namespace: `event.header.namespace`.
        name: `event.header.name`.
        message_id: `event.header.messageId`.
        dialog_request_id: `event.header.dialogRequestId`, or None.
        header: the event header object.
        payload: the event payload object.
        context: the context list (empty when absent).
        json: the whole metadata document as received.
        audio: the bytes of the audio part (empty if none).
        stream_id: the HTTP/2 stream that carried it.
        connection_id: which connection it came on (connections are numbered from 1).
        http_headers: the request headers (names lower-cased; pseudo-headers included).
        status: the HTTP status the simulator answered.
        extra_parts: other parts, as `(name, content_type, data)`.
        wake_word: for a WAKEWORD Recognize, the check of its initiator against its audio.
        audio_started_at: loop time at which the first audio byte arrived, or None.
    """

    namespace: str
    name: str
    message_id: str
    dialog_request_id: str | None
    header: dict[str, Any]
    payload: dict[str, Any]
    context: list[Any]
    json: dict[str, Any]
    audio: bytes
    stream_id: int
    connection_id: int = 0
    http_headers: dict[str, str] = field(default_factory=dict)
    status: int = 0
    extra_parts: tuple[tuple[str, str, bytes], ...] = ()
    wake_word: WakeWordCheck | None = None
    audio_started_at: float | None = None

    def __repr__(self) -> str:
        return (
            f"ReceivedEvent({self.namespace}.{self.name}, message_id={self.message_id!r}, "
            f"dialog_request_id={self.dialog_request_id!r}, audio=<{len(self.audio)} bytes>, "
            f"stream_id={self.stream_id}, status={self.status})"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ScriptedReply:
    """The answer to one event.

    Attributes:
        status: 200 with directives, 204 without; or an error status (answered with the AVS
            JSON exception body).
        directives: directives, each `{"directive": {...}}`, sent in order.
        attachments: binary parts by content id; each follows the first directive that names
            `cid:<id>`, the others come last.
        description: the exception description for error statuses.
    """

    status: int = 204
    directives: tuple[dict[str, Any], ...] = ()
    attachments: Mapping[str, bytes] = field(default_factory=dict)
    description: str | None = None

    @classmethod
    def of(
        cls, *directives: dict[str, Any], attachments: Mapping[str, bytes] | None = None
    ) -> ScriptedReply:
        """A 200 reply carrying `directives` (204 when there are none)."""
        return cls(
            status=200 if directives or attachments else 204,
            directives=directives,
            attachments=dict(attachments or {}),
        )


ReplyHandler: TypeAlias = Callable[[ReceivedEvent], "ScriptedReply | Awaitable[ScriptedReply]"]


def directive(
    namespace: str,
    name: str,
    payload: Mapping[str, Any] | None = None,
    *,
    dialog_request_id: str | None = None,
    message_id: str | None = None,
) -> dict[str, Any]:
    """Build `{"directive": {"header": ..., "payload": ...}}` with a fresh messageId."""
    header: dict[str, Any] = {
        "namespace": namespace,
        "name": name,
        "messageId": message_id or str(uuid.uuid4()),
    }
    if dialog_request_id is not None:
        header["dialogRequestId"] = dialog_request_id
    return {"directive": {"header": header, "payload": dict(payload or {})}}


# -- speech assets --------------------------------------------------------------------------


def speech_asset_names() -> list[str]:
    """Names of the MP3 speech assets shipped with the simulator (without `.mp3`)."""
    files = resources.files("avsclient.simulator").joinpath("assets").iterdir()
    return sorted(f.name[:-4] for f in files if f.name.endswith(".mp3"))


@cache
def speech_asset(name: str) -> bytes:
    """The MP3 bytes of one speech asset.

    Raises:
        KeyError: there is no asset of that name.
    """
    if name not in speech_asset_names():
        raise KeyError(f"no speech asset {name!r}; have {speech_asset_names()}")
    return resources.files("avsclient.simulator").joinpath("assets", f"{name}.mp3").read_bytes()


def speech_asset_text(name: str) -> str:
    """The sentence a speech asset says."""
    if name not in speech_asset_names():
        raise KeyError(f"no speech asset {name!r}")
    path = resources.files("avsclient.simulator").joinpath("assets", f"{name}.txt")
    return path.read_text(encoding="utf-8").strip()


# -- the script -----------------------------------------------------------------------------


class Script:
    """What the simulator answers, event by event.

    Defaults: Recognize gets `SpeechSynthesizer.Speak` with the `hello` asset (same
    dialogRequestId), preceded by `StopCapture` for NEAR_FIELD and FAR_FIELD once
    `DEFAULT_STOP_CAPTURE_AFTER` audio bytes arrived (after the wake word, for a WAKEWORD
    upload); every other event gets 204. `reject_wake_words()` makes the cloud verification
    fail.

    Attributes:
        rejected: dialogRequestIds of the wake-word Recognizes rejected so far.
    """

    def __init__(self) -> None:
        self._handlers: dict[tuple[str, str], ScriptedReply | ReplyHandler] = {}
        self._recognize_handler: ReplyHandler | None = None
        self._speech = "hello"
        self._speech_bytes: bytes | None = None
        self._expect_speech_ms: int | None = None
        self._stop_capture_after: int | None = DEFAULT_STOP_CAPTURE_AFTER
        self._turn = 0
        self._rejections = 0
        self._reject_on_downchannel = False
        self._rejecting: set[str] = set()  # messageIds of uploads being rejected
        self.rejected: list[str | None] = []
        self._processing = False

    def recognize(
        self,
        handler: ReplyHandler | None = None,
        *,
        speech: str | bytes = "hello",
        expect_speech: bool | int = False,
        stop_capture_after: int | None = DEFAULT_STOP_CAPTURE_AFTER,
        processing: bool = False,
    ) -> None:
        """Set how Recognize is answered (every later Recognize, until changed).

        Args:
            handler: a callable given the complete `ReceivedEvent` that returns the `ScriptedReply`
                (or an awaitable of it); it replaces the default Speak reply. StopCapture is
                still sent first for NEAR_FIELD/FAR_FIELD unless `stop_capture_after` is None.
            speech: an asset name (see `speech_asset_names()`) or raw MP3 bytes for Speak.
            expect_speech: also send `SpeechRecognizer.ExpectSpeech` after Speak; True means an
                8000 ms timeout, an int gives the timeout in milliseconds.
            stop_capture_after: audio bytes after which NEAR_FIELD/FAR_FIELD uploads get
                StopCapture (0: at once, when the metadata arrives); None: never.
            processing: frame the default reply with InteractionModel
                RequestProcessingStarted and RequestProcessingCompleted (avs-protocol 10).
        """
        if isinstance(speech, str):
            speech_asset(speech)  # fail now on a bad name, not inside the server
            self._speech, self._speech_bytes = speech, None
        else:
            self._speech, self._speech_bytes = "custom", bytes(speech)
        if isinstance(expect_speech, bool):
            self._expect_speech_ms = 8000 if expect_speech else None
        else:
            self._expect_speech_ms = int(expect_speech)
        if stop_capture_after is not None and stop_capture_after < 0:
            raise ValueError("stop_capture_after must be >= 0 or None")
        self._stop_capture_after = stop_capture_after
        self._recognize_handler = handler
        self._processing = processing

    def on(self, namespace: str, name: str, reply: ScriptedReply | ReplyHandler | None) -> None:
        """Answer events `namespace.name` with a fixed `ScriptedReply` or a handler; None
        restores 204.

        For Recognize use `recognize()`; a handler set here for Recognize is used as its
        `handler`.
        """
        if (namespace, name) == ("SpeechRecognizer", "Recognize"):
            if reply is not None and not callable(reply):
                fixed = reply
                self._recognize_handler = lambda _event: fixed
            else:
                self._recognize_handler = reply
            return
        if reply is None:
            self._handlers.pop((namespace, name), None)
        else:
            self._handlers[(namespace, name)] = reply

    def reject_wake_words(self, count: int = 1, *, on_downchannel: bool = False) -> None:
        """Reject the next `count` wake-word Recognizes, as the cloud does a false wake
        (avs-protocol 11.2): StopCapture once the word has arrived, then no Speak (204).

        Args:
            count: how many to reject.
            on_downchannel: send that StopCapture on the downchannel, without a
                dialogRequestId (what the docs describe), instead of on the event stream.
        """
        if count < 0:
            raise ValueError("count must not be negative")
        self._rejections = count
        self._reject_on_downchannel = on_downchannel

    def stop_capture_after(self, metadata: Mapping[str, Any]) -> int | None:
        """Audio bytes after which this upload gets StopCapture, or None for no StopCapture."""
        event = metadata["event"]
        header = event["header"]
        if (header["namespace"], header["name"]) != ("SpeechRecognizer", "Recognize"):
            return None
        payload = event["payload"]
        initiator = payload.get("initiator")
        word_end = 0
        if isinstance(initiator, Mapping) and initiator.get("type") == "WAKEWORD":
            indices = (initiator.get("payload") or {}).get("wakeWordIndices") or {}
            end = indices.get("endIndexInSamples") if isinstance(indices, Mapping) else None
            word_end = 2 * end if isinstance(end, int) and end > 0 else 0
            if self._rejections > 0:
                self._rejections -= 1
                self._rejecting.add(header["messageId"])
                return word_end
        if payload.get("profile") not in _FAR_PROFILES or self._stop_capture_after is None:
            return None
        return word_end + self._stop_capture_after

    def stop_capture_on_downchannel(self, metadata: Mapping[str, Any]) -> bool:
        """Whether this upload's StopCapture goes on the downchannel (a rejected wake word)."""
        message_id = metadata["event"]["header"]["messageId"]
        return self._reject_on_downchannel and message_id in self._rejecting

    def stop_capture(self, metadata: Mapping[str, Any]) -> dict[str, Any]:
        """The StopCapture directive for an upload (it carries the dialogRequestId, except on
        the downchannel)."""
        if self.stop_capture_on_downchannel(metadata):
            return directive("SpeechRecognizer", "StopCapture")
        dialog = metadata["event"]["header"].get("dialogRequestId")
        return directive("SpeechRecognizer", "StopCapture", dialog_request_id=dialog)

    def reply(self, event: ReceivedEvent) -> ScriptedReply | Awaitable[ScriptedReply]:
        """The reply to a complete event (may be an awaitable from a user handler)."""
        if (event.namespace, event.name) == ("SpeechRecognizer", "Recognize"):
            if event.message_id in self._rejecting:
                self._rejecting.discard(event.message_id)
                self.rejected.append(event.dialog_request_id)
                return ScriptedReply()
            if self._recognize_handler is not None:
                return self._recognize_handler(event)
            return self._speak_reply(event)
        handler = self._handlers.get((event.namespace, event.name))
        if handler is None:
            return ScriptedReply()
        if isinstance(handler, ScriptedReply):
            return handler
        return handler(event)

    def _speak_reply(self, event: ReceivedEvent) -> ScriptedReply:
        self._turn += 1
        dialog = event.dialog_request_id
        cid = f"TTS_{uuid.uuid4().hex[:12]}_{self._turn}"
        mp3 = self._speech_bytes if self._speech_bytes is not None else speech_asset(self._speech)
        speak = directive(
            "SpeechSynthesizer",
            "Speak",
            {"url": f"cid:{cid}", "format": "AUDIO_MPEG", "token": f"sim-speech-{self._turn}"},
            dialog_request_id=dialog,
        )
        directives = [speak]
        if self._processing:
            directives.insert(
                0,
                directive("InteractionModel", "RequestProcessingStarted", dialog_request_id=dialog),
            )
            directives.append(
                directive(
                    "InteractionModel", "RequestProcessingCompleted", dialog_request_id=dialog
                )
            )
        if self._expect_speech_ms is not None:
            directives.append(
                directive(
                    "SpeechRecognizer",
                    "ExpectSpeech",
                    {"timeoutInMilliseconds": self._expect_speech_ms},
                    dialog_request_id=dialog,
                )
            )
        return ScriptedReply(status=200, directives=tuple(directives), attachments={cid: mp3})
