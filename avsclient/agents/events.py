"""What applications can observe of a running client: directives, state changes, failures.

`AVSClient` delivers these to listeners (callbacks) and subscriptions (async iteration).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from avsclient.avs.manager import ChangedReason, ConnectionStatus, EventResult
    from avsclient.dialog import Disposition
    from avsclient.focus import FocusState, MixingBehavior
    from avsclient.messages import Directive

__all__ = [
    "AlertStateChanged",
    "AuthorizationRevoked",
    "ClientEvent",
    "ConnectionStatusChanged",
    "DirectiveObserved",
    "DiscoveryState",
    "DiscoveryStateChanged",
    "EventFailed",
    "EventSent",
    "ExceptionReceived",
    "ExpectingSpeech",
    "FocusChanged",
    "IndicatorChanged",
    "ProcessingStateChanged",
    "RecognizerState",
    "RecognizerStateChanged",
    "SpeechActivity",
    "SpeechStateChanged",
    "VolumeStateChanged",
    "WakeWordDetected",
    "WakeWordRejected",
]


# The states applications observe; the agents that move them import them from here.


class RecognizerState(enum.Enum):
    """Where the recognizer is (the SDK's states)."""

    IDLE = "IDLE"
    #: Audio is streaming to AVS.
    RECOGNIZING = "RECOGNIZING"
    #: AVS asked for more speech; waiting for the next Recognize or the timeout.
    EXPECTING_SPEECH = "EXPECTING_SPEECH"
    #: The upload ended; waiting for the response ("thinking").
    BUSY = "BUSY"


class SpeechActivity(enum.Enum):
    """`playerActivity` of `SpeechSynthesizer.SpeechState`."""

    PLAYING = "PLAYING"
    FINISHED = "FINISHED"
    #: Cut short by barge-in (later SpeechSynthesizer versions).
    INTERRUPTED = "INTERRUPTED"


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientEvent:
    """Base class of everything a client reports to the application."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DirectiveObserved(ClientEvent):
    """A directive arrived and was dispatched, dropped, cancelled or found unsupported.

    Attributes:
        directive: the directive.
        disposition: what the pipeline did with it.
    """

    directive: Directive
    disposition: Disposition


@dataclass(frozen=True, slots=True, kw_only=True)
class RecognizerStateChanged(ClientEvent):
    """The speech recognizer moved from `old` to `new`."""

    old: RecognizerState
    new: RecognizerState
    dialog_request_id: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpectingSpeech(ClientEvent):
    """AVS asked for more speech (ExpectSpeech): call `recognize()` within `timeout` seconds.

    Attributes:
        timeout: seconds before `ExpectSpeechTimedOut` is sent.
        initiator: the opaque initiator the next Recognize will carry, or None.
    """

    timeout: float
    initiator: dict[str, Any] | None


@dataclass(frozen=True, slots=True, kw_only=True)
class FocusChanged(ClientEvent):
    """An output channel changed focus (avs-protocol 13): who plays, ducks, pauses or stops.

    Attributes:
        channel: the focus channel (Dialog, Communications, Alert, Content).
        state: its new focus state.
        behavior: how its activity plays now (duck or pause in the background).
    """

    channel: str
    state: FocusState
    behavior: MixingBehavior


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeechStateChanged(ClientEvent):
    """Speech output started, finished or was interrupted."""

    token: str
    activity: SpeechActivity
    offset_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class VolumeStateChanged(ClientEvent):
    """The speaker volume or mute state changed (by AVS or locally)."""

    volume: int
    muted: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ExceptionReceived(ClientEvent):
    """AVS sent a `System.Exception` message.

    Attributes:
        code: the exception code, e.g. `THROTTLING_EXCEPTION`.
        description: the description, or None.
    """

    code: str
    description: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class _EventOutcome(ClientEvent):
    """What `EventSent` and `EventFailed` carry.

    Attributes:
        namespace: the event's namespace.
        name: the event's name.
        result: the outcome the connection manager reported.
    """

    namespace: str
    name: str
    result: EventResult


@dataclass(frozen=True, slots=True, kw_only=True)
class EventSent(_EventOutcome):
    """An event the client sent has its outcome (success or not), e.g. for a live log."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EventFailed(_EventOutcome):
    """An event the client sent on its own (SpeechStarted, VolumeChanged, ...) failed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionStatusChanged(ClientEvent):
    """The connection status changed (CONNECTED only once SynchronizeState succeeded)."""

    status: ConnectionStatus
    reason: ChangedReason


@dataclass(frozen=True, slots=True, kw_only=True)
class WakeWordDetected(ClientEvent):
    """The always-on path heard the wake word.

    Attributes:
        wake_word: the word, e.g. "ALEXA".
        probability: the engine's score.
        start: estimated first sample of the word (capture stream position).
        end: estimated end of the word (capture stream position).
        accepted: False when it was ignored (a recognition was already streaming).
    """

    wake_word: str
    probability: float
    start: int
    end: int
    accepted: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class WakeWordRejected(ClientEvent):
    """AVS did not confirm the wake word (StopCapture and no answer, avs-protocol 11.2);
    the device went back to listening."""

    dialog_request_id: str
    wake_word: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertStateChanged(ClientEvent):
    """An alert started sounding or stopped.

    Attributes:
        token: the alert's token.
        state: `STARTED`, or why it stopped: `LOCAL_STOP`, `DELETED`, `COMPLETED`,
            `TIMED_OUT`, `PAST_DUE` (dropped without sounding) or `SNOOZED`.
    """

    token: str
    state: str


class DiscoveryState(enum.Enum):
    """Where the device's capability report stands."""

    #: Nothing sent yet on this run.
    IDLE = "IDLE"
    #: The report is the one AVS accepted before: nothing to send.
    UNCHANGED = "UNCHANGED"
    #: The report is on its way, or AVS's EventProcessed is awaited.
    SENDING = "SENDING"
    #: AVS acknowledged the report (EventProcessed); it is stored as the accepted one.
    ACCEPTED = "ACCEPTED"
    #: The last attempt failed; another one is scheduled.
    RETRYING = "RETRYING"
    #: AVS refused the report (400) or the token (403): no more attempts until it changes.
    REJECTED = "REJECTED"
    #: The report breaks the documented limits, or the device has no `DeviceInfo`: not sent.
    INVALID = "INVALID"


@dataclass(frozen=True, slots=True, kw_only=True)
class DiscoveryStateChanged(ClientEvent):
    """The device's capability report (Alexa.Discovery) changed state.

    Attributes:
        state: the new state.
        reason: why (the last failure, or what made the report invalid), or None.
        attempts: failed attempts since the last success.
        retry_in: seconds until the next attempt, when one is scheduled.
    """

    state: DiscoveryState
    reason: str | None
    attempts: int
    retry_in: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessingStateChanged(ClientEvent):
    """AVS began (THINKING) or finished processing a request (InteractionModel 1.2:
    RequestProcessingStarted / RequestProcessingCompleted).

    Attributes:
        thinking: True from RequestProcessingStarted until RequestProcessingCompleted.
        dialog_request_id: the dialog being processed, or None.
    """

    thinking: bool
    dialog_request_id: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorizationRevoked(ClientEvent):
    """The device was deregistered (System.RevokeAuthorization): its account data is gone,
    the connection is closed, and the device must be linked again.

    Attributes:
        tokens_deleted: True if the token file was deleted.
        endpoint_deleted: True if AVS accepted the DeleteReport of the device's endpoint,
            False if it could not be sent or was refused, None if the client has no device
            to delete (no `DeviceInfo`, or no Discovery agent).
    """

    tokens_deleted: bool
    endpoint_deleted: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class IndicatorChanged(ClientEvent):
    """The notification indicator changed (Notifications SetIndicator / ClearIndicator).

    Attributes:
        enabled: a notification indicator is set and not cleared.
        visual: the visual indicator (e.g. a yellow light) is on.
    """

    enabled: bool
    visual: bool
