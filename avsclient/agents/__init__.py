"""Capability agents: each handles its interface's directives, sends its events and reports
its device state as context (System, SpeechRecognizer, SpeechSynthesizer, Speaker)."""

from __future__ import annotations

from avsclient.agents.base import (
    OUTBOX_SIZE,
    CapabilityAgent,
    ContextProvider,
    Dialog,
    DialogTrace,
    EventSender,
    Messenger,
)
from avsclient.agents.events import (
    ClientEvent,
    ConnectionStatusChanged,
    DirectiveObserved,
    EventFailed,
    EventSent,
    ExceptionReceived,
    ExpectingSpeech,
    RecognizerStateChanged,
    SpeechStateChanged,
    VolumeStateChanged,
)
from avsclient.agents.speaker import DEFAULT_VOLUME, SpeakerAgent, VolumeApplier
from avsclient.agents.speech_recognizer import (
    DEFAULT_INITIATORS,
    PROFILES,
    TRANSITIONS,
    RecognizerInput,
    RecognizerMachine,
    RecognizerState,
    SourceFactory,
    SpeechRecognizerAgent,
)
from avsclient.agents.speech_synthesizer import SpeechActivity, SpeechSynthesizerAgent
from avsclient.agents.system import DEFAULT_INACTIVITY_REPORT_INTERVAL, SystemAgent

__all__ = [
    "CapabilityAgent",
    "ClientEvent",
    "ConnectionStatusChanged",
    "ContextProvider",
    "DEFAULT_INACTIVITY_REPORT_INTERVAL",
    "DEFAULT_INITIATORS",
    "DEFAULT_VOLUME",
    "Dialog",
    "DialogTrace",
    "DirectiveObserved",
    "EventFailed",
    "EventSender",
    "EventSent",
    "ExceptionReceived",
    "ExpectingSpeech",
    "Messenger",
    "OUTBOX_SIZE",
    "PROFILES",
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
    "SystemAgent",
    "TRANSITIONS",
    "VolumeApplier",
    "VolumeStateChanged",
]
