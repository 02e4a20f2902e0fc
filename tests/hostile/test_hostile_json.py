"""Defect 6: hostile JSON in directives.

Whatever a directive's JSON holds, the client answers ExceptionEncountered with
UNEXPECTED_INFORMATION_RECEIVED, logs no traceback, keeps its connection, and handles the
next directive.
"""

from __future__ import annotations

import logging
import uuid

import pytest

from .kit import hostile_client
from .server import HostileServer

DEFECT_6 = "defect 6: hostile directive JSON reaches handlers and ends in a traceback"


def _raw(namespace: str, name: str, payload_json: str, dialog: str | None = None) -> bytes:
    header = (
        f'{{"namespace": "{namespace}", "name": "{name}", "messageId": "{uuid.uuid4()}"'
        + (f', "dialogRequestId": "{dialog}"' if dialog else "")
        + "}"
    )
    return f'{{"directive": {{"header": {header}, "payload": {payload_json}}}}}'.encode()


HOSTILE = {
    # 100,000 nested arrays: deeper than any JSON decoder's recursion allows.
    "nested-arrays": _raw(
        "Speaker", "SetVolume", '{"volume": ' + "[" * 100_000 + "]" * 100_000 + "}"
    ),
    # A 4000-digit integer (Python refuses to convert it to float or past its digit limit).
    "4000-digit-timeout": _raw(
        "SpeechRecognizer", "ExpectSpeech", '{"timeoutInMilliseconds": ' + "9" * 4000 + "}"
    ),
    # 10^12 ms is 31 years: no ExpectSpeech may keep the device waiting that long.
    "1e12-ms-timeout": _raw(
        "SpeechRecognizer", "ExpectSpeech", '{"timeoutInMilliseconds": 1000000000000}'
    ),
    # An endpoint that is a string but not a URL a port can be read from.
    "set-endpoint-bad-port": _raw(
        "System", "SetEndpoint", '{"endpoint": "https://avs.example.com:notaport"}'
    ),
    # An endpoint that is not a string at all.
    "set-endpoint-object": _raw("System", "SetEndpoint", '{"endpoint": {"host": 1}}'),
}


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=DEFECT_6))
        if name not in ("set-endpoint-object", "set-endpoint-bad-port")
        else name
        for name in HOSTILE
    ],
)
async def test_hostile_directive_json_is_answered_not_raised(
    server: HostileServer, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """ExceptionEncountered UNEXPECTED_INFORMATION_RECEIVED with the raw text, no traceback,
    the same connection, and the next directive handled."""
    async with hostile_client(server) as client:
        await client.wait_connected(5)
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
    assert tracebacks == [], [r.getMessage() for r in tracebacks]
