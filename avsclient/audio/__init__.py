"""Audio for AVS: formats, sources (microphone, files), sinks (speaker, files), MP3, endpointing,
always-on capture with history, wake-word detection.

Importing this package never loads PortAudio: `Microphone` and `Speaker` import sounddevice
when they are created, and report a missing library or device as `AudioError`. Likewise the
wake-word and VAD engines (extras `wakeword`, `vad`) are imported when a detector is created.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from avsclient import _lazy

if TYPE_CHECKING:
    from .alert_tones import TONE_NAMES, alert_tone
    from .convert import Framer, PcmConverter, Resampler, decode_samples, encode_samples
    from .endpointing import (
        EndpointDetector,
        EndpointEvent,
        EndpointingConfig,
        EndpointState,
        EndReason,
        VoiceEnded,
        VoiceStarted,
        frame_energy_dbfs,
    )
    from .format import (
        AVS_FORMAT,
        AVS_FORMAT_NAME,
        AVS_FRAME_BYTES,
        AVS_FRAME_MS,
        AudioFormat,
        SampleEncoding,
    )
    from .mixer import Mixer, MixerChannel
    from .mp3 import DEFAULT_MP3_QUEUE_FRAMES, Mp3Decoder, Mp3FrameSplitter, Mp3Sink, decode_mp3
    from .ring import DEFAULT_RING_MS, PcmRing, RingCapture, RingOverrun, RingReader
    from .sinks import (
        DEFAULT_SPEAKER_BUFFER_MS,
        PLAYBACK_FORMAT,
        AudioSink,
        NullSink,
        Speaker,
        WavFileSink,
    )
    from .sources import (
        DEFAULT_QUEUE_FRAMES,
        ArraySource,
        AudioSource,
        CaptureBridge,
        ContinuousSource,
        EndpointedSource,
        Microphone,
        WavFileSource,
    )
    from .vad import Endpointer, WebRtcVadEndpointer, create_endpointer
    from .wakeword import (
        DEFAULT_PREROLL_SAMPLES,
        MicroWakeWordDetector,
        RecognizeWindow,
        WakeWordDetection,
        WakeWordDetector,
        create_wake_word_detector,
        recognize_window,
        refine_start,
    )
else:
    __getattr__, __dir__ = _lazy.exports(
        __name__,
        {
            ".convert": (
                "Framer",
                "PcmConverter",
                "Resampler",
                "decode_samples",
                "encode_samples",
            ),
            ".endpointing": (
                "EndpointDetector",
                "EndpointEvent",
                "EndpointingConfig",
                "EndpointState",
                "EndReason",
                "VoiceEnded",
                "VoiceStarted",
                "frame_energy_dbfs",
            ),
            ".ring": ("DEFAULT_RING_MS", "PcmRing", "RingCapture", "RingOverrun", "RingReader"),
            ".vad": ("Endpointer", "WebRtcVadEndpointer", "create_endpointer"),
            ".wakeword": (
                "DEFAULT_PREROLL_SAMPLES",
                "MicroWakeWordDetector",
                "RecognizeWindow",
                "WakeWordDetection",
                "WakeWordDetector",
                "create_wake_word_detector",
                "recognize_window",
                "refine_start",
            ),
            ".mixer": ("Mixer", "MixerChannel"),
            ".alert_tones": ("TONE_NAMES", "alert_tone"),
            ".format": (
                "AVS_FORMAT",
                "AVS_FORMAT_NAME",
                "AVS_FRAME_BYTES",
                "AVS_FRAME_MS",
                "AudioFormat",
                "SampleEncoding",
            ),
            ".mp3": (
                "DEFAULT_MP3_QUEUE_FRAMES",
                "Mp3Decoder",
                "Mp3FrameSplitter",
                "Mp3Sink",
                "decode_mp3",
            ),
            ".sinks": (
                "DEFAULT_SPEAKER_BUFFER_MS",
                "PLAYBACK_FORMAT",
                "AudioSink",
                "NullSink",
                "Speaker",
                "WavFileSink",
            ),
            ".sources": (
                "DEFAULT_QUEUE_FRAMES",
                "ArraySource",
                "AudioSource",
                "CaptureBridge",
                "ContinuousSource",
                "EndpointedSource",
                "Microphone",
                "WavFileSource",
            ),
        },
    )

__all__ = [
    "AVS_FORMAT",
    "AVS_FORMAT_NAME",
    "AVS_FRAME_BYTES",
    "AVS_FRAME_MS",
    "ArraySource",
    "AudioFormat",
    "AudioSink",
    "AudioSource",
    "CaptureBridge",
    "ContinuousSource",
    "DEFAULT_MP3_QUEUE_FRAMES",
    "DEFAULT_PREROLL_SAMPLES",
    "DEFAULT_QUEUE_FRAMES",
    "DEFAULT_RING_MS",
    "DEFAULT_SPEAKER_BUFFER_MS",
    "EndReason",
    "EndpointDetector",
    "EndpointEvent",
    "EndpointState",
    "EndpointedSource",
    "Endpointer",
    "EndpointingConfig",
    "Framer",
    "MicroWakeWordDetector",
    "Microphone",
    "Mixer",
    "MixerChannel",
    "Mp3Decoder",
    "Mp3FrameSplitter",
    "Mp3Sink",
    "NullSink",
    "PLAYBACK_FORMAT",
    "PcmConverter",
    "PcmRing",
    "RecognizeWindow",
    "Resampler",
    "RingCapture",
    "RingOverrun",
    "RingReader",
    "SampleEncoding",
    "Speaker",
    "TONE_NAMES",
    "VoiceEnded",
    "VoiceStarted",
    "WakeWordDetection",
    "WakeWordDetector",
    "WavFileSink",
    "WavFileSource",
    "WebRtcVadEndpointer",
    "alert_tone",
    "create_endpointer",
    "create_wake_word_detector",
    "decode_mp3",
    "decode_samples",
    "encode_samples",
    "frame_energy_dbfs",
    "recognize_window",
    "refine_start",
]
