"""Defect 6: hostile JSON in directives.

Whatever a directive's JSON holds, the client answers ExceptionEncountered with
UNEXPECTED_INFORMATION_RECEIVED, logs no traceback, keeps its connection, and handles the
next directive.
"""

from __future__ import annotations

import json
import logging
import uuid

import pytest

from avsclient.agents import AudioPlayerAgent

from .kit import hostile_client
from .server import HostileServer


def _raw(namespace: str, name: str, payload_json: str, dialog: str | None = None) -> bytes:
    header = (
        f'{{"namespace": "{namespace}", "name": "{name}", "messageId": "{uuid.uuid4()}"'
        + (f', "dialogRequestId": "{dialog}"' if dialog else "")
        + "}"
    )
    return f'{{"directive": {{"header": {header}, "payload": {payload_json}}}}}'.encode()


def _play(**stream: object) -> str:
    """A Play payload (as JSON text) with a valid token and url, updated by `stream`."""
    return json.dumps(
        {"audioItem": {"stream": {"token": "t", "url": "https://media.invalid/a.mp3", **stream}}}
    )


HOSTILE = {
    # 100,000 nested arrays: deeper than any JSON decoder's recursion allows.
    "nested-arrays": _raw(
        "Speaker", "SetVolume", '{"volume": ' + "[" * 100_000 + "]" * 100_000 + "}"
    ),
    # 50,000 nested objects, the other way to nest.
    "nested-objects": _raw("Speaker", "SetVolume", '{"a": ' * 50_000 + "1" + "}" * 50_000),
    # A 4000-digit integer (Python refuses to convert it to float or past its digit limit).
    "4000-digit-timeout": _raw(
        "SpeechRecognizer", "ExpectSpeech", '{"timeoutInMilliseconds": ' + "9" * 4000 + "}"
    ),
    # 5000 digits: past the decoder's own digit limit.
    "5000-digit-volume": _raw("Speaker", "SetVolume", '{"volume": ' + "9" * 5000 + "}"),
    # NaN is not JSON, whatever Python's decoder would make of it.
    "nan-volume": _raw("Speaker", "SetVolume", '{"volume": NaN}'),
    # 10^12 ms is 31 years: no ExpectSpeech may keep the device waiting that long.
    "1e12-ms-timeout": _raw(
        "SpeechRecognizer", "ExpectSpeech", '{"timeoutInMilliseconds": 1000000000000}'
    ),
    "float-timeout": _raw("SpeechRecognizer", "ExpectSpeech", '{"timeoutInMilliseconds": 8e3}'),
    "initiator-string": _raw(
        "SpeechRecognizer", "ExpectSpeech", '{"timeoutInMilliseconds": 8000, "initiator": "x"}'
    ),
    # An endpoint that is a string but not a URL a port can be read from.
    "set-endpoint-bad-port": _raw(
        "System", "SetEndpoint", '{"endpoint": "https://avs.example.com:notaport"}'
    ),
    # An endpoint that is not a string at all.
    "set-endpoint-object": _raw("System", "SetEndpoint", '{"endpoint": {"host": 1}}'),
    "exception-code-array": _raw("System", "Exception", '{"code": [1], "description": "x"}'),
    "speak-token-object": _raw(
        "SpeechSynthesizer", "Speak", '{"token": {"a": 1}, "url": "cid:x", "format": "AUDIO_MPEG"}'
    ),
    "speak-url-number": _raw("SpeechSynthesizer", "Speak", '{"token": "t", "url": 7}'),
    "play-offset-string": _raw("AudioPlayer", "Play", _play(offsetInMilliseconds="10")),
    "play-offset-negative": _raw("AudioPlayer", "Play", _play(offsetInMilliseconds=-5)),
    "play-interval-beyond-long": _raw(
        "AudioPlayer", "Play", _play(progressReport={"progressReportIntervalInMilliseconds": 2**70})
    ),
    "play-stream-array": _raw("AudioPlayer", "Play", '{"audioItem": {"stream": [1, 2]}}'),
    "play-behavior-unknown": _raw(
        "AudioPlayer", "Play", _play()[:-1] + ', "playBehavior": "SHUFFLE"}'
    ),
    "clear-behavior-number": _raw("AudioPlayer", "ClearQueue", '{"clearBehavior": 1}'),
    "payload-array": _raw("Speaker", "SetVolume", "[1, 2]"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
async def test_hostile_directive_json_is_answered_not_raised(
    server: HostileServer, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """ExceptionEncountered UNEXPECTED_INFORMATION_RECEIVED with the raw text, no traceback,
    the same connection, and the next directive handled."""
    async with hostile_client(server) as client:
        await client.wait_connected(5)
        # AudioPlayer is a default agent: its directives are handled (and checked).
        assert isinstance(client.agent("AudioPlayer"), AudioPlayerAgent)
        caplog.clear()
        with caplog.at_level(logging.DEBUG):
            await server.push_raw(HOSTILE[name])
            report = await server.wait_for_event("System", "ExceptionEncountered", timeout=3)
            await server.push_directive("Speaker", "SetVolume", {"volume": 17})
            changed = await server.wait_for_event("Speaker", "VolumeChanged", timeout=5)
        tracebacks = [r for r in caplog.records if r.exc_info]
        assert client.status.name == "CONNECTED"
    assert report.payload["error"]["type"] == "UNEXPECTED_INFORMATION_RECEIVED"
    assert report.payload["unparsedDirective"]
    assert changed.payload["volume"] == 17
    assert len(server.connections) == 1, "the connection must survive hostile JSON"
    assert len(server.named("System", "ExceptionEncountered")) == 1
    assert tracebacks == [], [r.getMessage() for r in tracebacks]
