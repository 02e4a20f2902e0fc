"""Hands-free turns: espeak-ng "Alexa" in a live stream starts WAKEWORD Recognizes against the
real Simulator, with pre-roll, indices, cloud rejection, barge-in, VAD endpointing and a
stalled upload."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from avsclient.agents import (
    ClientEvent,
    RecognizerState,
    SpeechActivity,
    SpeechStateChanged,
    WakeWordDetected,
    WakeWordListener,
    WakeWordRejected,
    confirmation_tone,
)
from avsclient.audio import (
    AVS_FORMAT,
    DEFAULT_PREROLL_SAMPLES,
    ArraySource,
    ContinuousSource,
    EndpointDetector,
    NullSink,
    WebRtcVadEndpointer,
)
from avsclient.auth import StaticTokenProvider
from avsclient.client import AVSClient
from avsclient.config import ClientConfig
from avsclient.simulator import ReceivedEvent, Simulator, SimulatorConfig
from tests.audio.wake_corpus import LiveSource, negative_clip, silence, wake_utterance
from tests.helpers import require_executable

from .conftest import ClientFactory

MS = 16  # samples per millisecond
SPEED = 4.0  # the stand-in microphone runs this much faster than real time


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_executable("espeak-ng")
    return tmp_path_factory.mktemp("wake-turns")


@pytest.fixture(scope="module")
def utterance(corpus: Path) -> tuple[np.ndarray, int]:
    return wake_utterance("en-us", corpus)


class Turns:
    """Collects the client's observations."""

    def __init__(self) -> None:
        self.events: list[ClientEvent] = []

    def __call__(self, event: ClientEvent) -> None:
        self.events.append(event)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


async def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def recognizes(sim: Simulator, n: int, timeout: float = 10.0) -> list[ReceivedEvent]:
    await sim.wait_for_event("SpeechRecognizer", "Recognize", nth=n, timeout=timeout)
    return [e for e in sim.events if e.name == "Recognize"]


@pytest.fixture
async def client(make_client: ClientFactory) -> AsyncIterator[tuple[AVSClient, Turns]]:
    turns = Turns()
    c = make_client(listener=turns)
    async with c:
        await c.wait_connected(20)
        yield c, turns


async def test_wake_word_turn_streams_preroll_word_and_command(
    sim: Simulator, client: tuple[AVSClient, Turns], utterance: tuple[np.ndarray, int]
) -> None:
    """The Recognize carries WAKEWORD, wakeWord ALEXA and indices (start 8000); its audio is
    the stream from 500 ms before the word, sent faster than real time, then live audio; the
    simulator finds the initiator consistent with the audio."""
    c, turns = client
    samples, word = utterance
    lead = 1500 * MS
    stream = np.concatenate([silence(1500), samples, silence(2000)])
    source = ContinuousSource(ArraySource(stream, 16000, realtime=True))
    async with WakeWordListener(c.recognizer, source, endpointer=None) as listener:
        (recognize,) = await recognizes(sim, 1)
        await wait_until(lambda: c.recognizer.state is RecognizerState.IDLE)
    (detected,) = turns.of(WakeWordDetected)
    assert detected.accepted and detected.wake_word == "ALEXA"
    initiator = recognize.payload["initiator"]
    assert initiator["type"] == "WAKEWORD"
    assert initiator["payload"]["wakeWord"] == "ALEXA"
    indices = initiator["payload"]["wakeWordIndices"]
    assert indices["startIndexInSamples"] == DEFAULT_PREROLL_SAMPLES
    check = recognize.wake_word
    assert check is not None and check.problems == ()
    assert check.preroll_ms == 500.0
    window = c.recognizer.last_wake_window
    assert window is not None
    # the estimate against the known word position (index error)
    assert abs(window.reader_start + window.start_index - lead) <= 50 * MS
    assert abs(window.reader_start + window.end_index - (lead + word)) <= 150 * MS
    # the audio is exactly the stream from the pre-roll's start
    audio = np.frombuffer(recognize.audio, dtype="<i2")
    expected = stream[window.reader_start : window.reader_start + len(audio)]
    assert len(audio) > window.end_index and np.array_equal(audio[: len(expected)], expected)
    # the history went out at once: far less wall time than the audio it held
    (dialog,) = listener.dialogs
    trace = dialog.trace
    assert trace.wake_word_detected_at is not None and trace.audio_started_at is not None
    assert recognize.audio_started_at is not None
    assert recognize.audio_started_at - trace.wake_word_detected_at < 0.5
    assert trace.last_audio_sent_at is not None
    backlog = (len(audio) / 16000) - (trace.last_audio_sent_at - trace.wake_word_detected_at)
    assert backlog > 0.8, backlog  # pre-roll + word + detector latency, sent without waiting
    assert [d.name for d in dialog.directives] == ["StopCapture", "Speak"]


@pytest.mark.parametrize("on_downchannel", [False, True], ids=["event-stream", "downchannel"])
async def test_a_rejected_wake_word_returns_to_listening_quietly(
    sim: Simulator,
    client: tuple[AVSClient, Turns],
    utterance: tuple[np.ndarray, int],
    on_downchannel: bool,
) -> None:
    """StopCapture and no Speak: the device goes idle, counts and reports the rejection, plays
    nothing, and the next wake word starts a normal turn."""
    c, turns = client
    samples, _ = utterance
    sim.script.reject_wake_words(1, on_downchannel=on_downchannel)
    mic = LiveSource(speed=SPEED)
    async with WakeWordListener(c.recognizer, mic, endpointer=None) as listener:
        mic.say(np.concatenate([silence(500), samples]))
        await wait_until(lambda: c.recognizer.wake_words_rejected == 1)
        assert c.recognizer.state is RecognizerState.IDLE
        mic.say(np.concatenate([silence(2000), samples]))
        await recognizes(sim, 2)
        await wait_until(lambda: len(listener.dialogs) == 2)
        await listener.dialogs[1].wait_finished()
    first, second = listener.dialogs
    assert listener.turns == 2 and listener.unfollowed == 0  # counted beyond the 16 kept
    assert sim.script.rejected == [first.dialog_request_id]
    (rejected,) = turns.of(WakeWordRejected)
    assert rejected.dialog_request_id == first.dialog_request_id
    assert [d.name for d in first.directives] == ([] if on_downchannel else ["StopCapture"])
    assert [d.name for d in second.directives] == ["StopCapture", "Speak"]
    speech = turns.of(SpeechStateChanged)
    assert [s.activity for s in speech] == [SpeechActivity.PLAYING, SpeechActivity.FINISHED]
    assert c.recognizer.wake_words_rejected == 1
    # the rejected upload stopped once the word had arrived
    r1 = next(e for e in sim.events if e.name == "Recognize")
    assert r1.wake_word is not None and r1.wake_word.problems == ()
    assert r1.wake_word.end_index is not None
    assert len(r1.audio) // 2 - r1.wake_word.end_index < 400 * MS


async def test_a_wake_word_during_speech_barges_in(
    sim: Simulator, make_client: ClientFactory, utterance: tuple[np.ndarray, int]
) -> None:
    """ "Alexa" while the answer plays stops it (SpeechInterrupted) and starts a new turn; the
    tone plays on each detection when the confirmation setting is TONE."""
    turns = Turns()
    samples, _ = utterance
    tones = NullSink(AVS_FORMAT)
    async with make_client(listener=turns, sink=NullSink(realtime=True)) as c:
        await c.wait_connected(20)
        c.recognizer.settings.wake_word_confirmation = "TONE"
        sim.script.recognize(speech="follow_up")
        mic = LiveSource(speed=SPEED)
        async with WakeWordListener(c.recognizer, mic, endpointer=None, tone_sink=tones) as ww:
            mic.say(np.concatenate([silence(500), samples]))
            await wait_until(lambda: bool(turns.of(SpeechStateChanged)))
            mic.say(np.concatenate([silence(700), samples]))  # microWakeWord needs a pause
            await recognizes(sim, 2)
            await sim.wait_for_event("SpeechSynthesizer", "SpeechInterrupted")
            await wait_until(lambda: len(ww.dialogs) == 2)
            await ww.dialogs[1].wait_finished()
    activities = [s.activity for s in turns.of(SpeechStateChanged)]
    assert activities[:2] == [SpeechActivity.PLAYING, SpeechActivity.INTERRUPTED]
    second = [e for e in sim.events if e.name == "Recognize"][1]
    assert second.payload["initiator"]["type"] == "WAKEWORD"
    assert ww.tones == 2
    assert tones.bytes_written == 2 * len(confirmation_tone())


async def test_vad_ends_a_wake_word_turn_unless_stop_capture_comes_first(
    sim: Simulator, client: tuple[AVSClient, Turns], utterance: tuple[np.ndarray, int]
) -> None:
    """With the WebRTC VAD installed it is the default endpointer: without StopCapture the
    upload ends shortly after the command; with the default StopCapture (0.67 s after the
    word) the cloud ends it first."""
    c, _ = client
    samples, word = utterance
    mic = LiveSource(speed=SPEED)
    sim.script.recognize(stop_capture_after=None)
    async with WakeWordListener(c.recognizer, mic) as listener:
        assert isinstance(listener.new_endpointer(), WebRtcVadEndpointer)
        mic.say(np.concatenate([silence(500), samples]))
        (vad_turn,) = await recognizes(sim, 1)
        await wait_until(lambda: c.recognizer.state is RecognizerState.IDLE)
        sim.script.recognize()
        mic.say(np.concatenate([silence(2500), samples]))
        _, cloud_turn = await recognizes(sim, 2)
        await wait_until(lambda: len(listener.dialogs) == 2)
    assert [d.name for d in listener.dialogs[0].directives] == ["Speak"]  # no StopCapture
    # VAD turn: the audio runs past the command by about the hangover (700 ms), no further
    check = vad_turn.wake_word
    assert check is not None and check.end_index is not None
    after_word_ms = (len(vad_turn.audio) // 2 - check.end_index) / MS
    command_ms = (len(samples) - word) / MS
    assert command_ms + 300 <= after_word_ms <= command_ms + 1300, after_word_ms - command_ms
    # cloud turn: StopCapture 21333 bytes after the word's end, before the VAD would end it
    assert cloud_turn.wake_word is not None and cloud_turn.wake_word.end_index is not None
    after_word = len(cloud_turn.audio) - 2 * cloud_turn.wake_word.end_index
    assert 21_333 <= after_word < 21_333 + 300 * 2 * MS
    assert [d.name for d in listener.dialogs[1].directives] == ["StopCapture", "Speak"]


async def test_the_energy_endpointer_can_be_chosen(
    client: tuple[AVSClient, Turns],
) -> None:
    c, _ = client
    listener = WakeWordListener(c.recognizer, LiveSource(), endpointer=lambda: EndpointDetector())
    assert type(listener.new_endpointer()) is EndpointDetector
    assert WakeWordListener(c.recognizer, LiveSource(), endpointer=None).new_endpointer() is None
    with pytest.raises(ValueError, match="endpointer"):
        WakeWordListener(c.recognizer, LiveSource(), endpointer="vad")
    with pytest.raises(ValueError, match="profile"):
        WakeWordListener(c.recognizer, LiveSource(), profile="LOUD")
    await listener.aclose()


async def test_no_wake_on_long_near_miss_speech(
    sim: Simulator, client: tuple[AVSClient, Turns], corpus: Path
) -> None:
    """Two minutes of "Alexander", "a lexicon", "electric"... through the whole path: no
    detection, no Recognize."""
    c, turns = client
    negative = negative_clip(corpus)
    assert len(negative) > 90 * 16000
    source = ArraySource(negative, 16000)
    async with WakeWordListener(c.recognizer, source, ring_ms=3000) as listener:
        await listener.wait_closed(120)
    assert listener.detections == 0
    assert turns.of(WakeWordDetected) == []
    assert [e for e in sim.events if e.name == "Recognize"] == []


async def test_a_stalled_upload_overruns_the_ring_and_listening_goes_on(
    utterance: tuple[np.ndarray, int],
) -> None:
    """The simulator stops reading, so flow control stalls the upload: the ring stays the same
    size, the reader's overrun is counted and ends that upload (no audio with a hole is sent),
    and the next wake word starts a new turn."""
    samples, _ = utterance
    small = SimulatorConfig(initial_window_size=65_535, connection_window_size=131_072)
    turns = Turns()
    async with Simulator(config=small) as sim:
        sim.script.recognize(stop_capture_after=None)
        config = ClientConfig(endpoint=sim.url, ca_file=str(sim.ca_file))
        async with AVSClient(config, StaticTokenProvider(sim.add_token()), listener=turns) as c:
            await c.wait_connected(20)
            mic = LiveSource(speed=SPEED)
            async with WakeWordListener(
                c.recognizer, mic, ring_ms=1500, endpointer=None
            ) as listener:
                ring = listener.capture.ring
                size = len(ring._buf)
                spoken = np.concatenate([silence(500), samples])
                begin = mic.say(spoken)
                await wait_until(lambda: c.recognizer.state is RecognizerState.RECOGNIZING)
                window = c.recognizer.last_wake_window
                assert window is not None
                (conn,) = sim._connections
                assert conn.transport is not None
                conn.transport.pause_reading()
                await asyncio.sleep(6 / SPEED)  # 6 s of audio: the 1.5 s ring wraps
                assert len(ring._buf) == size
                assert ring.end - ring.oldest == ring.capacity
                conn.transport.resume_reading()
                await wait_until(lambda: c.recognizer.ring_overruns == 1)
                await wait_until(lambda: c.recognizer.state is not RecognizerState.RECOGNIZING)
                assert ring.overruns > 0
                sim.script.recognize()  # this time the cloud ends the upload
                mic.say(np.concatenate([silence(2000), samples]))
                await recognizes(sim, 2, timeout=20)
                assert listener.error is None
    first = next(e for e in sim.events if e.name == "Recognize")
    # what was sent of the first turn is one gapless piece of the stream (the overrun ended it)
    stream = np.concatenate([np.zeros(begin, np.int16), spoken])
    stream = np.concatenate([stream, np.zeros(len(first.audio), np.int16)])
    audio = np.frombuffer(first.audio, dtype="<i2")
    assert np.array_equal(audio, stream[window.reader_start : window.reader_start + len(audio)])
    assert window.reader_start + len(audio) < ring.end  # it ended before the live edge
