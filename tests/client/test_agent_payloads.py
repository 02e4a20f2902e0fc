"""Every agent reads its directives' payloads through `avsclient.agents.payload`: a field of
the wrong type or out of the reference's range is a DirectiveError (UNEXPECTED_INFORMATION_
RECEIVED), never a traceback, and changes nothing. Handlers are called through the agents'
public `handlers()` on a client that never connects."""

from __future__ import annotations

from typing import Any

import pytest

from avsclient.agents import ExceptionReceived, ExpectingSpeech
from avsclient.agents.audio_player import AudioItem
from avsclient.agents.speech_recognizer import MAX_EXPECT_SPEECH_MS, RecognizerState
from avsclient.auth import StaticTokenProvider
from avsclient.client import AVSClient
from avsclient.config import ClientConfig
from avsclient.exceptions import DirectiveError, EndpointRejected
from avsclient.messages import Directive


def _directive(namespace: str, name: str, payload: dict[str, Any]) -> Directive:
    return Directive(
        namespace=namespace, name=name, message_id="m", dialog_request_id=None, payload=payload
    )


async def _handle(client: AVSClient, namespace: str, name: str, payload: dict[str, Any]) -> None:
    await client.agent(namespace).handlers()[name](_directive(namespace, name, payload))


async def _refused(
    client: AVSClient, namespace: str, name: str, payload: dict[str, Any]
) -> DirectiveError:
    with pytest.raises(DirectiveError) as info:
        await _handle(client, namespace, name, payload)
    return info.value


@pytest.fixture
async def client() -> Any:
    stored: list[str] = []
    seen: list[Any] = []
    client = AVSClient(
        ClientConfig(endpoint="https://127.0.0.1:9", endpoint_hosts=("127.0.0.1",)),
        StaticTokenProvider("token"),
        endpoint_store=stored.append,
        listener=seen.append,
    )
    client.stored, client.seen = stored, seen  # type: ignore[attr-defined]
    yield client
    await client.aclose()


async def test_expect_speech_timeout_is_bounded(client: AVSClient) -> None:
    """0..MAX_EXPECT_SPEECH_MS is accepted; beyond it, negative, fractional, boolean, huge or
    textual timeouts are refused as UNEXPECTED_INFORMATION_RECEIVED; a missing timeout as
    UNSUPPORTED_OPERATION (avs-protocol 5.2)."""
    for bad in (MAX_EXPECT_SPEECH_MS + 1, 10**12, int("9" * 4000), -1, 8000.0, True, "8000"):
        error = await _refused(
            client, "SpeechRecognizer", "ExpectSpeech", {"timeoutInMilliseconds": bad}
        )
        assert error.error_type == "UNEXPECTED_INFORMATION_RECEIVED"
        assert "timeoutInMilliseconds" in str(error) and len(str(error)) < 200
    missing = await _refused(client, "SpeechRecognizer", "ExpectSpeech", {})
    assert missing.error_type == "UNSUPPORTED_OPERATION"
    initiator = await _refused(
        client,
        "SpeechRecognizer",
        "ExpectSpeech",
        {"timeoutInMilliseconds": 8000, "initiator": [1]},
    )
    assert "initiator must be an object" in str(initiator)
    assert client.recognizer.state is RecognizerState.IDLE  # nothing changed
    await _handle(
        client, "SpeechRecognizer", "ExpectSpeech", {"timeoutInMilliseconds": MAX_EXPECT_SPEECH_MS}
    )
    assert client.recognizer.state is RecognizerState.EXPECTING_SPEECH
    expecting = [e for e in client.seen if isinstance(e, ExpectingSpeech)]  # type: ignore[attr-defined]
    assert [e.timeout for e in expecting] == [MAX_EXPECT_SPEECH_MS / 1000]


async def test_the_expect_speech_bound_is_the_agents_setting(client: AVSClient) -> None:
    client.recognizer.max_expect_speech_ms = 1000
    error = await _refused(
        client, "SpeechRecognizer", "ExpectSpeech", {"timeoutInMilliseconds": 1001}
    )
    assert "outside 0..1000" in str(error)


async def test_speak_fields_are_typed(client: AVSClient) -> None:
    for payload in (
        {"url": "cid:a"},
        {"token": {"a": 1}, "url": "cid:a"},
        {"token": "t", "url": 7},
        {"token": "t", "url": "cid:" + "x" * 5000},
        {"token": "t", "url": "cid:a", "format": ["AUDIO_MPEG"]},
    ):
        error = await _refused(client, "SpeechSynthesizer", "Speak", payload)
        assert error.error_type == "UNEXPECTED_INFORMATION_RECEIVED", payload
    unsupported = await _refused(
        client, "SpeechSynthesizer", "Speak", {"token": "t", "url": "cid:a", "format": "OPUS"}
    )
    assert unsupported.error_type == "UNSUPPORTED_OPERATION"
    assert client.synthesizer.token == ""  # nothing started


def _play(**stream: Any) -> Directive:
    return _directive(
        "AudioPlayer", "Play", {"audioItem": {"stream": {"token": "t", "url": "cid:a", **stream}}}
    )


def test_play_reads_every_stream_field_through_the_checked_reader() -> None:
    """Absent keys are tolerated (avs-protocol 14.2); present ones need their type and range."""
    item = AudioItem.from_play(_play())
    assert (item.offset_ms, item.report_delay_ms, item.report_interval_ms) == (0, None, None)
    assert item.expected_previous is None and item.expires is None
    full = AudioItem.from_play(
        _play(
            offsetInMilliseconds=2**63 - 1,
            expectedPreviousToken="",  # empty: like an absent one (the SDK's reading)
            interruptedBehavior="ATTENUATE",
            expiryTime="2024-03-01T08:30:00+0000",
            progressReport={
                "progressReportDelayInMilliseconds": 0,
                "progressReportIntervalInMilliseconds": 60000,
            },
        )
    )
    assert full.offset_ms == 2**63 - 1 and full.expected_previous is None
    assert (full.report_delay_ms, full.report_interval_ms) == (None, 60000)
    assert full.content_type.name == "MIXABLE" and full.expires is not None
    for bad in (
        {"offsetInMilliseconds": "10"},
        {"offsetInMilliseconds": -5},
        {"offsetInMilliseconds": 2**63},
        {"offsetInMilliseconds": 1.5},
        {"expectedPreviousToken": 5},
        {"interruptedBehavior": "DUCK"},
        {"expiryTime": 1700000000},
        {"progressReport": [1]},
        {"progressReport": {"progressReportIntervalInMilliseconds": 2**70}},
        {"progressReport": {"progressReportDelayInMilliseconds": -1}},
        {"token": ["t"]},
        {"url": None},
    ):
        with pytest.raises(DirectiveError) as info:
            AudioItem.from_play(_play(**bad))
        assert "audioItem.stream." in str(info.value), bad
    for payload in ({}, {"audioItem": []}, {"audioItem": {"stream": "s"}}):
        with pytest.raises(DirectiveError):
            AudioItem.from_play(_directive("AudioPlayer", "Play", payload))


async def test_set_endpoint_is_typed_then_checked_before_it_is_stored(client: AVSClient) -> None:
    """A non-string is refused by the payload reader, a string by the endpoint check; neither
    reaches the endpoint store. An allowed one is stored."""
    for value in ({"host": 1}, 42, "", "x" * 3000):
        error = await _refused(client, "System", "SetEndpoint", {"endpoint": value})
        assert error.error_type == "UNEXPECTED_INFORMATION_RECEIVED"
    for url in ("http://127.0.0.1:9", "https://127.0.0.1:notaport", "https://attacker.invalid"):
        with pytest.raises(EndpointRejected):
            await _handle(client, "System", "SetEndpoint", {"endpoint": url})
    assert client.stored == []  # type: ignore[attr-defined]
    assert client.manager.url == "https://127.0.0.1:9"
    await _handle(client, "System", "SetEndpoint", {"endpoint": "https://127.0.0.1:8443/"})
    assert client.stored == ["https://127.0.0.1:8443"]  # type: ignore[attr-defined]
    assert client.manager.url == "https://127.0.0.1:8443"


async def test_system_exception_fields_are_typed(client: AVSClient) -> None:
    """code and description are strings (description may be empty, null or absent)."""
    await _handle(
        client, "System", "Exception", {"code": "THROTTLING_EXCEPTION", "description": ""}
    )
    await _handle(client, "System", "Exception", {"code": "N/A", "description": None})
    await _handle(client, "System", "Exception", {})
    received = [e for e in client.seen if isinstance(e, ExceptionReceived)]  # type: ignore[attr-defined]
    assert [(e.code, e.description) for e in received] == [
        ("THROTTLING_EXCEPTION", ""),
        ("N/A", None),
        ("UNKNOWN", None),
    ]
    for payload in ({"code": [1]}, {"code": "C", "description": 5}, {"code": "C" * 1000}):
        await _refused(client, "System", "Exception", payload)
    assert len([e for e in client.seen if isinstance(e, ExceptionReceived)]) == 3  # type: ignore[attr-defined]
