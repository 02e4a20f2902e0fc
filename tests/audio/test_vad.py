"""Both endpointers behind one interface, on generated speech with silence and pink noise."""

from __future__ import annotations

import numpy as np
import pytest

from avsclient.audio import (
    EndpointDetector,
    Endpointer,
    EndpointingConfig,
    EndReason,
    VoiceEnded,
    VoiceStarted,
    WebRtcVadEndpointer,
    create_endpointer,
)
from tests.helpers import require_executable

from .wake_corpus import VOICES, espeak_pcm, frames, mix_noise, silence, trim

KINDS = ("energy", "webrtc")
LEAD_MS = 500


@pytest.fixture(scope="session")
def utterances(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[np.ndarray, float]]:
    """(samples, true end in ms): 500 ms of silence, a sentence, 3 s of silence."""
    require_executable("espeak-ng")
    workdir = tmp_path_factory.mktemp("vad")
    out = []
    for voice in VOICES[:4]:
        speech = trim(espeak_pcm("turn on the kitchen lights please", voice, workdir))
        samples = np.concatenate([silence(LEAD_MS), speech, silence(3000)])
        out.append((samples, LEAD_MS + len(speech) / 16))
    return out


def run(endpointer: Endpointer, samples: np.ndarray) -> list[object]:
    events: list[object] = []
    for frame in frames(samples):
        event = endpointer.feed(frame)
        if event is not None:
            events.append(event)
        if endpointer.state.name == "ENDED":
            break
    return events


def make(kind: str) -> Endpointer:
    return create_endpointer(kind, EndpointingConfig(no_speech_timeout_ms=2000))


@pytest.mark.parametrize("kind", KINDS)
def test_both_kinds_implement_the_interface(kind: str) -> None:
    endpointer = make(kind)
    assert isinstance(endpointer, Endpointer)
    assert isinstance(endpointer, EndpointDetector)
    assert endpointer.elapsed_ms == 0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("snr_db", [None, 20.0])
def test_speech_start_and_end_are_found(
    kind: str, snr_db: float | None, utterances: list[tuple[np.ndarray, float]]
) -> None:
    for samples, true_end in utterances:
        if snr_db is not None:
            samples = mix_noise(samples, snr_db, seed=3)
        events = run(make(kind), samples)
        assert len(events) == 2, events
        started, ended = events
        assert isinstance(started, VoiceStarted)
        assert isinstance(ended, VoiceEnded)
        assert abs(started.offset_ms - LEAD_MS) <= 60
        assert ended.reason is EndReason.SILENCE
        # the energy detector cuts the soft tail in noise; the VAD ends a little late
        assert -150 <= ended.offset_ms - true_end <= 100, (kind, snr_db, ended, true_end)


@pytest.mark.parametrize("kind", KINDS)
def test_silence_alone_times_out(kind: str) -> None:
    events = run(make(kind), silence(3000))
    assert len(events) == 1
    ended = events[0]
    assert isinstance(ended, VoiceEnded)
    assert ended.reason is EndReason.NO_SPEECH
    assert ended.offset_ms == 2000


def test_webrtc_rejects_bad_frames_and_options() -> None:
    endpointer = WebRtcVadEndpointer()
    with pytest.raises(ValueError, match="10, 20 or 30 ms"):
        endpointer.feed(b"\x00\x00" * 100)
    with pytest.raises(ValueError, match="mode"):
        WebRtcVadEndpointer(mode=4)
    with pytest.raises(ValueError, match="unknown endpointer"):
        create_endpointer("nope")
