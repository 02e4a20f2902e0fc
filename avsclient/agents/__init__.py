"""Capability agents: each handles its interface's directives, sends its events, reports its
device state as context and declares its capability (System, SpeechRecognizer,
SpeechSynthesizer, Speaker, Alerts, Alexa (Discovery), Alexa.ApiGateway, InteractionModel, ...;
`CapabilityAgent` is the base of your own)."""

from __future__ import annotations

from avsclient.agents.alert_schedule import AlertSchedule, AlertsLimits, StopReason
from avsclient.agents.alerts import DEFAULT_ALERT_VOLUME, AlertsAgent
from avsclient.agents.api_gateway import ApiGatewayAgent
from avsclient.agents.audio_player import AudioPlayerAgent, PlayerActivity
from avsclient.agents.base import (
    OUTBOX_SIZE,
    AgentServices,
    Capability,
    CapabilityAgent,
    ContextProvider,
    DirectiveHandler,
    EventSender,
    ImmediateHandler,
    Messenger,
    StateReportEntry,
)
from avsclient.agents.discovery import DiscoveryAgent
from avsclient.agents.events import (
    AlertStateChanged,
    AuthorizationRevoked,
    ClientEvent,
    ConnectionStatusChanged,
    DirectiveObserved,
    DiscoveryState,
    DiscoveryStateChanged,
    EventFailed,
    EventSent,
    ExceptionReceived,
    ExpectingSpeech,
    FocusChanged,
    IndicatorChanged,
    ProcessingStateChanged,
    RecognizerStateChanged,
    SpeechStateChanged,
    VolumeStateChanged,
    WakeWordDetected,
    WakeWordRejected,
)
from avsclient.agents.interaction_model import InteractionModelAgent
from avsclient.agents.notifications import NotificationsAgent
from avsclient.agents.playback_controller import PlaybackControllerAgent
from avsclient.agents.speaker import DEFAULT_VOLUME, SpeakerAgent, VolumeApplier
from avsclient.agents.speech_recognizer import (
    DEFAULT_INITIATORS,
    PROFILES,
    RECOGNIZER_TRANSITIONS,
    RecognizerInput,
    RecognizerMachine,
    RecognizerState,
    SourceFactory,
    SpeechRecognizerAgent,
)
from avsclient.agents.speech_synthesizer import SpeechActivity, SpeechSynthesizerAgent
from avsclient.agents.system import DEFAULT_INACTIVITY_REPORT_INTERVAL, SystemAgent
from avsclient.agents.wake_word import (
    DEFAULT_TONE_MS,
    EndpointerFactory,
    WakeWordListener,
    confirmation_tone,
    default_endpointer,
)
from avsclient.dialog import Dialog, DialogTrace  # the turn `recognize()` returns

__all__ = [
    "AgentServices",
    "AlertSchedule",
    "AlertStateChanged",
    "AlertsAgent",
    "AlertsLimits",
    "ApiGatewayAgent",
    "AudioPlayerAgent",
    "AuthorizationRevoked",
    "Capability",
    "CapabilityAgent",
    "ClientEvent",
    "ConnectionStatusChanged",
    "ContextProvider",
    "DEFAULT_ALERT_VOLUME",
    "DEFAULT_INACTIVITY_REPORT_INTERVAL",
    "DEFAULT_INITIATORS",
    "DEFAULT_TONE_MS",
    "DEFAULT_VOLUME",
    "Dialog",
    "DialogTrace",
    "DirectiveHandler",
    "DirectiveObserved",
    "DiscoveryAgent",
    "DiscoveryState",
    "DiscoveryStateChanged",
    "EndpointerFactory",
    "EventFailed",
    "EventSender",
    "EventSent",
    "ExceptionReceived",
    "ExpectingSpeech",
    "FocusChanged",
    "ImmediateHandler",
    "IndicatorChanged",
    "InteractionModelAgent",
    "Messenger",
    "NotificationsAgent",
    "OUTBOX_SIZE",
    "PROFILES",
    "PlaybackControllerAgent",
    "PlayerActivity",
    "ProcessingStateChanged",
    "RECOGNIZER_TRANSITIONS",
    "RecognizerInput",
    "RecognizerMachine",
    "RecognizerState",
    "RecognizerStateChanged",
    "SourceFactory",
    "SpeakerAgent",
    "SpeechActivity",
    "SpeechRecognizerAgent",
    "SpeechStateChanged",
    "SpeechSynthesizerAgent",
    "StateReportEntry",
    "StopReason",
    "SystemAgent",
    "VolumeApplier",
    "VolumeStateChanged",
    "WakeWordDetected",
    "WakeWordListener",
    "WakeWordRejected",
    "confirmation_tone",
    "default_endpointer",
]
