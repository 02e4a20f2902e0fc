"""Audio for AVS: formats, sources (microphone, files), sinks (speaker, files), MP3, endpointing.

Importing this package never loads PortAudio: `Microphone` and `Speaker` import sounddevice
when they are created, and report a missing library or device as `AudioError`.
"""

from __future__ import annotations

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
    EndpointedSource,
    Microphone,
    WavFileSource,
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
    "DEFAULT_MP3_QUEUE_FRAMES",
    "DEFAULT_QUEUE_FRAMES",
    "DEFAULT_SPEAKER_BUFFER_MS",
    "EndReason",
    "EndpointDetector",
    "EndpointEvent",
    "EndpointState",
    "EndpointedSource",
    "EndpointingConfig",
    "Framer",
    "Microphone",
    "Mixer",
    "MixerChannel",
    "Mp3Decoder",
    "Mp3FrameSplitter",
    "Mp3Sink",
    "NullSink",
    "PLAYBACK_FORMAT",
    "PcmConverter",
    "Resampler",
    "SampleEncoding",
    "Speaker",
    "VoiceEnded",
    "VoiceStarted",
    "WavFileSink",
    "WavFileSource",
    "decode_mp3",
    "decode_samples",
    "encode_samples",
    "frame_energy_dbfs",
]
