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
    "Reply",
    "ReplyHandler",
    "Script",
    "directive",
    "speech_asset",
    "speech_asset_names",
    "speech_asset_text",
]

# Two-thirds of a second of 16 kHz 16-bit mono PCM: enough for a test to have streamed "some
# audio" before the simulated end-of-speech detection fires.
DEFAULT_STOP_CAPTURE_AFTER = 21_333
_FAR_PROFILES = frozenset({"NEAR_FIELD", "FAR_FIELD"})


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

    def __repr__(self) -> str:
        return (
            f"ReceivedEvent({self.namespace}.{self.name}, message_id={self.message_id!r}, "
            f"dialog_request_id={self.dialog_request_id!r}, audio=<{len(self.audio)} bytes>, "
            f"stream_id={self.stream_id}, status={self.status})"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
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
    ) -> Reply:
        """A 200 reply carrying `directives` (204 when there are none)."""
        return cls(
            status=200 if directives or attachments else 204,
            directives=directives,
            attachments=dict(attachments or {}),
        )


ReplyHandler: TypeAlias = Callable[[ReceivedEvent], "Reply | Awaitable[Reply]"]


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
    `DEFAULT_STOP_CAPTURE_AFTER` audio bytes arrived; every other event gets 204.
    """

    def __init__(self) -> None:
        self._handlers: dict[tuple[str, str], Reply | ReplyHandler] = {}
        self._recognize_handler: ReplyHandler | None = None
        self._speech = "hello"
        self._speech_bytes: bytes | None = None
        self._expect_speech_ms: int | None = None
        self._stop_capture_after: int | None = DEFAULT_STOP_CAPTURE_AFTER
        self._turn = 0
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
            handler: a callable given the complete `ReceivedEvent` that returns the `Reply`
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

    def on(self, namespace: str, name: str, reply: Reply | ReplyHandler | None) -> None:
        """Answer events `namespace.name` with a fixed `Reply` or a handler; None restores 204.

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

    def stop_capture_after(self, metadata: Mapping[str, Any]) -> int | None:
        """Audio bytes after which this upload gets StopCapture, or None for no StopCapture."""
        event = metadata["event"]
        header = event["header"]
        if (header["namespace"], header["name"]) != ("SpeechRecognizer", "Recognize"):
            return None
        if event["payload"].get("profile") not in _FAR_PROFILES:
            return None
        return self._stop_capture_after

    def stop_capture(self, metadata: Mapping[str, Any]) -> dict[str, Any]:
        """The StopCapture directive for an upload (it carries the dialogRequestId)."""
        dialog = metadata["event"]["header"].get("dialogRequestId")
        return directive("SpeechRecognizer", "StopCapture", dialog_request_id=dialog)

    def reply(self, event: ReceivedEvent) -> Reply | Awaitable[Reply]:
        """The reply to a complete event (may be an awaitable from a user handler)."""
        if (event.namespace, event.name) == ("SpeechRecognizer", "Recognize"):
            if self._recognize_handler is not None:
                return self._recognize_handler(event)
            return self._speak_reply(event)
        handler = self._handlers.get((event.namespace, event.name))
        if handler is None:
            return Reply()
        if isinstance(handler, Reply):
            return handler
        return handler(event)

    def _speak_reply(self, event: ReceivedEvent) -> Reply:
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
        return Reply(status=200, directives=tuple(directives), attachments={cid: mp3})
