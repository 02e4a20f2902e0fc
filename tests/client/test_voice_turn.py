"""Whole voice turns against the real Simulator and the real ConnectionManager."""

from __future__ import annotations

import asyncio
import json
import wave
from pathlib import Path
from typing import Any

import numpy as np

from avsclient.agents import (
    ClientEvent,
    DirectiveObserved,
    ExpectingSpeech,
    RecognizerState,
    RecognizerStateChanged,
    SpeechActivity,
)
from avsclient.audio import (
    PLAYBACK_FORMAT,
    EndpointedSource,
    NullSink,
    WavFileSink,
    WavFileSource,
)
from avsclient.dialog import Disposition
from avsclient.simulator import ReceivedEvent, ScriptedReply, Simulator, directive, speech_asset
from avsclient.simulator.scenarios import DEFAULT_STOP_CAPTURE_AFTER

from .conftest import ClientFactory, speech_like, tone_source


def _write_wav(path: Path, samples: np.ndarray[Any, Any]) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16_000)
        wav.writeframes(samples.astype("<i2").tobytes())
    return path


def _names(sim: Simulator) -> list[str]:
    return [f"{e.namespace}.{e.name}" for e in sim.events]


async def test_voice_turn_streams_recognize_and_plays_speak(
    sim: Simulator, make_client: ClientFactory, tmp_path: Path
) -> None:
    """Recognize streams the WAV file; Speak is decoded into the sink; SpeechStarted and
    SpeechFinished reach AVS with the Speak's token; the trace has every stamp."""
    wav_in = _write_wav(tmp_path / "in.wav", speech_like(2.0))
    out = tmp_path / "out.wav"
    sink = WavFileSink(out, PLAYBACK_FORMAT)
    client = make_client(sink=sink)
    async with client:
        await client.wait_connected(20)
        dialog = await client.recognize(WavFileSource(wav_in), profile="NEAR_FIELD")
        await dialog.wait_finished()
        started = await sim.wait_for_event("SpeechSynthesizer", "SpeechStarted")
        finished = await sim.wait_for_event("SpeechSynthesizer", "SpeechFinished")
    await sink.aclose()

    assert dialog.result is not None and dialog.result.ok
    recognize = await sim.wait_for_event("SpeechRecognizer", "Recognize")
    assert recognize.dialog_request_id == dialog.dialog_request_id
    assert recognize.payload["profile"] == "NEAR_FIELD"
    assert recognize.payload["format"] == "AUDIO_L16_RATE_16000_CHANNELS_1"
    assert recognize.payload["initiator"] == {"type": "TAP", "payload": {}}
    # StopCapture after DEFAULT_STOP_CAPTURE_AFTER bytes: the upload stopped well before 2 s.
    assert DEFAULT_STOP_CAPTURE_AFTER <= len(recognize.audio) < 64_000
    assert len(recognize.audio) % 320 == 0
    context = {f"{c['header']['namespace']}.{c['header']['name']}": c for c in recognize.context}
    assert context["Speaker.VolumeState"]["payload"] == {"volume": 50, "muted": False}
    assert "SpeechSynthesizer.SpeechState" in context

    names = [f"{d.namespace}.{d.name}" for d in dialog.directives]
    assert names == ["SpeechRecognizer.StopCapture", "SpeechSynthesizer.Speak"]
    token = dialog.directives[1].payload["token"]
    assert started.payload == {"token": token}
    assert finished.payload == {"token": token}
    assert started.dialog_request_id is None and "context" not in started.json

    with wave.open(str(out), "rb") as wav:
        assert wav.getframerate() == PLAYBACK_FORMAT.rate
        assert wav.getnframes() > PLAYBACK_FORMAT.rate // 2  # the asset is over a second

    trace = dialog.trace
    stamps = [
        trace.audio_started_at,
        trace.first_response_byte_at,
        trace.last_audio_sent_at,
        trace.directive_at("SpeechSynthesizer.Speak"),
        trace.speech_started_at,
        trace.speech_finished_at,
    ]
    assert all(s is not None for s in stamps)
    assert trace.audio_started_at <= trace.last_audio_sent_at  # type: ignore[operator]
    assert trace.speech_started_at <= trace.speech_finished_at  # type: ignore[operator]
    assert trace.relative_ms()["audio_started"] == 0.0
    assert client.synthesizer.activity is SpeechActivity.FINISHED


async def test_close_talk_ends_on_end_of_speech(sim: Simulator, make_client: ClientFactory) -> None:
    """CLOSE_TALK gets no StopCapture: end-of-speech detection ends the upload by itself."""
    samples = np.concatenate(
        [np.zeros(4000, np.int16), speech_like(0.8), np.zeros(48_000, np.int16)]
    )
    from avsclient.audio import ArraySource

    source = EndpointedSource(ArraySource(samples, 16_000))
    async with make_client() as client:
        await client.wait_connected(20)
        dialog = await client.recognize(source, profile="CLOSE_TALK")
        await dialog.wait_finished()
    recognize = await sim.wait_for_event("SpeechRecognizer", "Recognize")
    assert recognize.payload["initiator"]["type"] == "PRESS_AND_HOLD"
    assert [d.name for d in dialog.directives] == ["Speak"]
    # The detector ended the utterance after the hangover, long before the trailing 3 s.
    assert len(recognize.audio) < len(samples) * 2 - 32_000
    await sim.wait_for_event("SpeechSynthesizer", "SpeechFinished")


async def test_close_talk_ends_when_the_caller_releases(
    sim: Simulator, make_client: ClientFactory
) -> None:
    """Closing the source (button released) ends a CLOSE_TALK upload."""
    source = tone_source(10.0, realtime=True)
    async with make_client() as client:
        await client.wait_connected(20)
        task = asyncio.create_task(client.recognize(source, profile="CLOSE_TALK"))
        await asyncio.sleep(0.3)
        assert client.recognizer.state is RecognizerState.RECOGNIZING
        await source.aclose()
        dialog = await task
    recognize = await sim.wait_for_event("SpeechRecognizer", "Recognize")
    assert 0 < len(recognize.audio) < 16_000 * 2 * 2
    assert dialog.result is not None and dialog.result.ok


async def test_stop_capture_ends_the_upload_at_once(
    sim: Simulator, make_client: ClientFactory
) -> None:
    """StopCapture on a real-time NEAR_FIELD stream stops the upload and moves to BUSY."""
    sim.script.recognize(stop_capture_after=3200)
    states: list[RecognizerState] = []

    def on_event(event: ClientEvent) -> None:
        if isinstance(event, RecognizerStateChanged):
            states.append(event.new)

    async with make_client(listener=on_event) as client:
        await client.wait_connected(20)
        dialog = await client.recognize(tone_source(10.0, realtime=True))
    recognize = await sim.wait_for_event("SpeechRecognizer", "Recognize")
    assert 3200 <= len(recognize.audio) < 32_000  # under a second of the 10 s source
    assert states[:3] == [RecognizerState.RECOGNIZING, RecognizerState.BUSY, RecognizerState.IDLE]
    assert dialog.directives[0].name == "StopCapture"


async def test_expect_speech_opens_the_source_again(
    sim: Simulator, make_client: ClientFactory
) -> None:
    """ExpectSpeech after Speak starts a second Recognize from the source factory, with the
    ExpectSpeech initiator verbatim and a new dialogRequestId."""
    initiator = {"type": "OPAQUE", "payload": {"token": "expect-1"}}
    turns = 0

    def reply(event: ReceivedEvent) -> ScriptedReply:
        nonlocal turns
        turns += 1
        dialog = event.dialog_request_id
        speak = directive(
            "SpeechSynthesizer",
            "Speak",
            {"url": f"cid:tts-{turns}", "format": "AUDIO_MPEG", "token": f"t-{turns}"},
            dialog_request_id=dialog,
        )
        if turns > 1:
            return ScriptedReply.of(speak, attachments={f"tts-{turns}": speech_asset("follow_up")})
        expect = directive(
            "SpeechRecognizer",
            "ExpectSpeech",
            {"timeoutInMilliseconds": 5000, "initiator": initiator},
            dialog_request_id=dialog,
        )
        return ScriptedReply.of(speak, expect, attachments={f"tts-{turns}": speech_asset("hello")})

    sim.script.recognize(reply)
    opened = 0

    def factory() -> Any:
        nonlocal opened
        opened += 1
        return tone_source(1.5)

    async with make_client(source_factory=factory) as client:
        await client.wait_connected(20)
        first = await client.recognize(tone_source(1.5))
        second = await sim.wait_for_event("SpeechRecognizer", "Recognize", nth=2)
        await sim.wait_for_event("SpeechSynthesizer", "SpeechFinished", nth=2)
    assert opened == 1
    assert second.payload["initiator"] == initiator
    assert second.dialog_request_id not in (None, first.dialog_request_id)
    finished = [e.payload["token"] for e in sim.events if e.name == "SpeechFinished"]
    assert finished == ["t-1", "t-2"]
    # ExpectSpeech waited for the Speak before it: the second Recognize follows SpeechFinished.
    names = _names(sim)
    assert names.index("SpeechSynthesizer.SpeechFinished") < names.index(
        "SpeechRecognizer.Recognize", names.index("SpeechRecognizer.Recognize") + 1
    )


async def test_expect_speech_times_out(sim: Simulator, make_client: ClientFactory) -> None:
    """Without a new Recognize, ExpectSpeech ends with ExpectSpeechTimedOut."""
    sim.script.recognize(expect_speech=200)
    seen: list[ClientEvent] = []
    async with make_client(listener=seen.append) as client:
        await client.wait_connected(20)
        await client.recognize(tone_source(1.0))
        timed_out = await sim.wait_for_event("SpeechRecognizer", "ExpectSpeechTimedOut")
        assert client.recognizer.state is RecognizerState.IDLE
    assert timed_out.payload == {}
    assert "context" not in timed_out.json
    expecting = [e for e in seen if isinstance(e, ExpectingSpeech)]
    assert len(expecting) == 1 and expecting[0].timeout == 0.2


async def test_barge_in_interrupts_speech(sim: Simulator, make_client: ClientFactory) -> None:
    """A new recognize() while speech plays stops it and sends SpeechInterrupted."""
    sink = NullSink(PLAYBACK_FORMAT, realtime=True)
    async with make_client(sink=sink) as client:
        await client.wait_connected(20)
        first = await client.recognize(tone_source(1.0))
        started = await sim.wait_for_event("SpeechSynthesizer", "SpeechStarted")
        await asyncio.sleep(0.3)
        assert client.synthesizer.activity is SpeechActivity.PLAYING
        second = await client.recognize(tone_source(1.0))
        interrupted = await sim.wait_for_event("SpeechSynthesizer", "SpeechInterrupted")
        await first.wait_finished()
        await client.synthesizer.interrupt()
    assert interrupted.payload["token"] == started.payload["token"]
    assert 0 < interrupted.payload["offsetInMilliseconds"] < 5000
    assert sink.stops >= 1
    names = _names(sim)
    # The interruption went out before the second Recognize's Speak started.
    assert names.index("SpeechSynthesizer.SpeechInterrupted") < len(names)
    assert second.dialog_request_id != first.dialog_request_id
    assert (
        "SpeechSynthesizer.SpeechFinished"
        not in names[: names.index("SpeechSynthesizer.SpeechInterrupted")]
    )


async def test_stale_dialog_directives_are_dropped(
    sim: Simulator, make_client: ClientFactory
) -> None:
    """A Speak carrying another dialog's id is dropped, not played."""

    def reply(event: ReceivedEvent) -> ScriptedReply:
        speak = directive(
            "SpeechSynthesizer",
            "Speak",
            {"url": "cid:old", "format": "AUDIO_MPEG", "token": "stale"},
            dialog_request_id="an-earlier-dialog",
        )
        return ScriptedReply.of(speak, attachments={"old": speech_asset("hello")})

    sim.script.recognize(reply)
    seen: list[ClientEvent] = []
    async with make_client(listener=seen.append) as client:
        await client.wait_connected(20)
        await client.recognize(tone_source(1.0))
        await client.pipeline.wait_idle()
        await client.messenger.flush()
    stale = [
        e for e in seen if isinstance(e, DirectiveObserved) and e.disposition is Disposition.STALE
    ]
    assert [e.directive.name for e in stale] == ["Speak"]
    assert "SpeechSynthesizer.SpeechStarted" not in _names(sim)
    assert len(client.attachments) == 0  # the unclaimed attachment was released


async def test_exception_encountered_payloads_are_raw_json(
    sim: Simulator, make_client: ClientFactory
) -> None:
    """The unparsed directive is sent back as the raw JSON string."""
    message = directive("Acme.Unknown", "DoThing", {"persistVisualIndicator": True})
    async with make_client() as client:
        await client.wait_connected(20)
        await sim.push_directive(message)
        event = await sim.wait_for_event("System", "ExceptionEncountered")
    assert json.loads(event.payload["unparsedDirective"]) == message
    assert event.payload["error"]["type"] == "UNSUPPORTED_OPERATION"
    assert event.context == [] and event.json["context"] == []
