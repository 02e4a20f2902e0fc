"""Settings directives against the simulator over TLS, each round trip with persistence across
a client restart; bad values answered with the right error type and nothing stored;
SoftwareInfo, ReportState and RevokeAuthorization end to end."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from avsclient.agents import (
    AuthorizationRevoked,
    CapabilityAgent,
    ClientEvent,
    DiscoveryAgent,
    SpeechRecognizerAgent,
)
from avsclient.agents.recognizer_settings import RecognizerSettings
from avsclient.auth import StaticTokenProvider, TokenStore
from avsclient.auth.lwa import TokenSet
from avsclient.auth.store import StoredTokens
from avsclient.avs import ConnectionStatus
from avsclient.client import AVSClient, default_agents
from avsclient.config import ClientConfig
from avsclient.simulator import ReceivedEvent, Simulator, directive
from avsclient.store import DeviceStore

from .test_discovery import DEVICE, FAST

WAKE_WORDS = {"DEFAULT": [["ALEXA"]], "en-US": [["ALEXA"], ["ALEXA", "ECHO"]]}


def _agents(wake_words: bool) -> list[CapabilityAgent]:
    agents: list[CapabilityAgent] = []
    for agent in default_agents():
        if isinstance(agent, SpeechRecognizerAgent) and wake_words:
            agent = SpeechRecognizerAgent(settings=RecognizerSettings(wake_words=WAKE_WORDS))
        if isinstance(agent, DiscoveryAgent):
            agent = DiscoveryAgent(retry=FAST, ack_timeout=0.5)
        agents.append(agent)
    return agents


def _client(
    sim: Simulator,
    path: Path,
    *,
    wake_words: bool = False,
    tokens: StaticTokenProvider | None = None,
    events: list[ClientEvent] | None = None,
) -> AVSClient:
    config = ClientConfig(endpoint=sim.url, ca_file=str(sim.ca_file))
    client = AVSClient(
        config,
        tokens or StaticTokenProvider(sim.add_token()),
        agents=_agents(wake_words),
        store=path,
        device=DEVICE,
    )
    if events is not None:
        client.add_listener(events.append)
    return client


async def _push(sim: Simulator, namespace: str, name: str, payload: dict[str, Any]) -> None:
    await sim.push_directive(directive(namespace, name, payload))


async def _error(sim: Simulator, nth: int = 1) -> str:
    event = await sim.wait_for_event("System", "ExceptionEncountered", nth=nth)
    return str(event.payload["error"]["type"])


async def test_confirmations_round_trip_and_survive_a_restart(
    sim: Simulator, tmp_path: Path
) -> None:
    """SetWakeWordConfirmation / SetSpeechConfirmation: Report with the value, kept across a
    restart; a bad value is refused, reported with the value in force, and nothing changes."""
    path = tmp_path / "device.sqlite3"
    client = _client(sim, path)
    async with client:
        await client.wait_connected(10)
        await _push(
            sim, "SpeechRecognizer", "SetWakeWordConfirmation", {"wakeWordConfirmation": "TONE"}
        )
        report = await sim.wait_for_event("SpeechRecognizer", "WakeWordConfirmationReport")
        await _push(
            sim, "SpeechRecognizer", "SetSpeechConfirmation", {"speechConfirmation": "TONE"}
        )
        speech = await sim.wait_for_event("SpeechRecognizer", "SpeechConfirmationReport")
        await _push(
            sim, "SpeechRecognizer", "SetWakeWordConfirmation", {"wakeWordConfirmation": "LOUD"}
        )
        assert await _error(sim) == "UNEXPECTED_INFORMATION_RECEIVED"
        in_force = await sim.wait_for_event("SpeechRecognizer", "WakeWordConfirmationReport", nth=2)
        assert client.recognizer.wake_word_confirmation == "TONE"
    assert report.payload == {"wakeWordConfirmation": "TONE"}
    assert speech.payload == {"speechConfirmation": "TONE"}
    assert in_force.payload == {"wakeWordConfirmation": "TONE"}
    restarted = _client(sim, path)
    async with restarted:
        assert restarted.recognizer.wake_word_confirmation == "TONE"
        assert restarted.recognizer.settings.speech_confirmation == "TONE"
        await restarted.recognizer.settings.set_wake_word_confirmation("NONE")
        changed = await sim.wait_for_event("SpeechRecognizer", "WakeWordConfirmationChanged")
    assert changed.payload == {"wakeWordConfirmation": "NONE"}
    with DeviceStore.open(path) as store:
        assert store.get("SpeechRecognizer", "wakeWordConfirmation") == "NONE"


async def test_wake_words_round_trip_and_are_declared(sim: Simulator, tmp_path: Path) -> None:
    """A wake-word device declares its wake words in Discovery (the simulator accepts the
    block); SetWakeWords changes them (kept across a restart); an unknown set is refused."""
    path = tmp_path / "device.sqlite3"
    client = _client(sim, path, wake_words=True)
    async with client:
        await client.wait_connected(10)
        await _push(sim, "System", "SetLocales", {"locales": ["en-US"]})
        await sim.wait_for_event("System", "LocalesReport")
        await _push(sim, "SpeechRecognizer", "SetWakeWords", {"wakeWords": ["ALEXA", "ECHO"]})
        report = await sim.wait_for_event("SpeechRecognizer", "WakeWordsReport")
        await _push(sim, "SpeechRecognizer", "SetWakeWords", {"wakeWords": ["COMPUTER"]})
        assert await _error(sim) == "UNEXPECTED_INFORMATION_RECEIVED"
        await _push(sim, "SpeechRecognizer", "SetWakeWords", {"wakeWords": "ALEXA"})
        assert await _error(sim, 2) == "UNEXPECTED_INFORMATION_RECEIVED"
    assert report.payload == {"wakeWords": ["ALEXA", "ECHO"]}
    [verdict] = sim.discovery.reports
    assert verdict.problems == ()
    recognizer = next(
        c
        for c in verdict.event.payload["endpoints"][0]["capabilities"]
        if c["interface"] == "SpeechRecognizer"
    )
    assert recognizer["configurations"]["wakeWords"][1] == {
        "scopes": ["en-US"],
        "values": [["ALEXA"], ["ALEXA", "ECHO"]],
    }
    restarted = _client(sim, path, wake_words=True)
    async with restarted:
        assert restarted.recognizer.settings.wake_words == ("ALEXA", "ECHO")


async def test_set_wake_words_without_a_wake_word_is_unsupported(
    sim: Simulator, tmp_path: Path
) -> None:
    """A tap-to-talk device answers SetWakeWords with UNSUPPORTED_OPERATION."""
    client = _client(sim, tmp_path / "device.sqlite3")
    async with client:
        await client.wait_connected(10)
        await _push(sim, "SpeechRecognizer", "SetWakeWords", {"wakeWords": ["ALEXA"]})
        assert await _error(sim) == "UNSUPPORTED_OPERATION"


@pytest.mark.parametrize(
    "payload",
    [
        {"endOfSpeechOffsetInMilliseconds": -5, "startOfSpeechTimestamp": "1"},
        {"endOfSpeechOffsetInMilliseconds": 100},
        {"endOfSpeechOffsetInMilliseconds": 1.5, "startOfSpeechTimestamp": "1"},
    ],
)
async def test_bad_end_of_speech_offsets_are_refused(
    sim: Simulator, tmp_path: Path, payload: dict[str, Any]
) -> None:
    """Negative, missing or fractional values: UNEXPECTED_INFORMATION_RECEIVED, nothing stored."""
    path = tmp_path / "device.sqlite3"
    client = _client(sim, path)
    async with client:
        await client.wait_connected(10)
        await _push(sim, "SpeechRecognizer", "SetEndOfSpeechOffset", payload)
        assert await _error(sim) == "UNEXPECTED_INFORMATION_RECEIVED"
        assert client.recognizer.settings.end_of_speech_offset is None
    with DeviceStore.open(path) as store:
        assert store.get("SpeechRecognizer", "endOfSpeechOffset") is None


async def test_end_of_speech_offset_and_start_of_speech_timestamp(
    sim: Simulator, tmp_path: Path
) -> None:
    """Recognize carries startOfSpeechTimestamp (ms since the epoch); SetEndOfSpeechOffset
    echoing it is kept, also across a restart."""
    from .conftest import tone_source

    path = tmp_path / "device.sqlite3"
    client = _client(sim, path)
    async with client:
        await client.wait_connected(10)
        before = int(time.time() * 1000)
        dialog = await client.recognize(tone_source(0.5), profile="NEAR_FIELD")
        recognize = await sim.wait_for_event("SpeechRecognizer", "Recognize")
        stamp = recognize.payload["startOfSpeechTimestamp"]
        assert isinstance(stamp, str) and before <= int(stamp) <= int(time.time() * 1000)
        await dialog.wait_finished()
        await _push(
            sim,
            "SpeechRecognizer",
            "SetEndOfSpeechOffset",
            {"endOfSpeechOffsetInMilliseconds": 1180, "startOfSpeechTimestamp": stamp},
        )
        async with asyncio.timeout(5):
            while client.recognizer.settings.end_of_speech_offset is None:
                await asyncio.sleep(0.01)
    restarted = _client(sim, path)
    async with restarted:
        assert restarted.recognizer.settings.end_of_speech_offset == (1180, stamp)


async def test_locales_and_time_zone_round_trip_and_survive_a_restart(
    sim: Simulator, tmp_path: Path
) -> None:
    """SetLocales / SetTimeZone: Report, persisted; bad values refused and nothing changes."""
    path = tmp_path / "device.sqlite3"
    client = _client(sim, path)
    async with client:
        await client.wait_connected(10)
        await _push(sim, "System", "SetLocales", {"locales": ["en-US", "es-US"]})
        locales = await sim.wait_for_event("System", "LocalesReport")
        await _push(sim, "System", "SetTimeZone", {"timeZone": "Europe/Berlin"})
        zone = await sim.wait_for_event("System", "TimeZoneReport")
        for bad in (["xx-XX"], [], ["en-US", "de-DE"], "en-US"):
            await _push(sim, "System", "SetLocales", {"locales": bad})
        for bad_zone in ("Mars/Olympus", "../../etc/passwd", "", 7):
            await _push(sim, "System", "SetTimeZone", {"timeZone": bad_zone})
        for nth in range(1, 9):
            assert await _error(sim, nth) == "UNEXPECTED_INFORMATION_RECEIVED"
        assert client.system.locales == ("en-US", "es-US")
        assert client.system.time_zone == "Europe/Berlin"
    assert locales.payload == {"locales": ["en-US", "es-US"]}
    assert zone.payload == {"timeZone": "Europe/Berlin"}
    restarted = _client(sim, path)
    async with restarted:
        assert restarted.system.locales == ("en-US", "es-US")
        assert restarted.system.time_zone == "Europe/Berlin"
        await restarted.system.set_time_zone("Asia/Tokyo")
        changed = await sim.wait_for_event("System", "TimeZoneChanged")
    assert changed.payload == {"timeZone": "Asia/Tokyo"}


async def test_report_state_answers_with_every_setting_and_the_context(
    sim: Simulator, tmp_path: Path
) -> None:
    """ReportState -> StateReport: locales, time zone, recognizer settings, and the context."""
    client = _client(sim, tmp_path / "device.sqlite3", wake_words=True)
    async with client:
        await client.wait_connected(10)
        await _push(sim, "System", "ReportState", {})
        report = await sim.wait_for_event("System", "StateReport")
    states = {s["header"]["name"]: s["payload"] for s in report.payload["states"]}
    assert states["LocalesReport"] == {"locales": ["en-US"]}
    assert states["TimeZoneReport"] == {"timeZone": "America/Los_Angeles"}
    assert states["WakeWordConfirmationReport"] == {"wakeWordConfirmation": "NONE"}
    assert states["WakeWordsReport"] == {"wakeWords": ["ALEXA"]}
    assert {f"{c['header']['namespace']}.{c['header']['name']}" for c in report.context} >= {
        "Speaker.VolumeState",
        "SpeechSynthesizer.SpeechState",
    }


async def test_software_info_is_sent_once_per_firmware_version(
    sim: Simulator, tmp_path: Path
) -> None:
    """SoftwareInfo {"firmwareVersion": "42"} at the first connect, not after a restart, and
    again when AVS asks (ReportSoftwareInfo)."""
    path = tmp_path / "device.sqlite3"
    client = _client(sim, path)
    async with client:
        info = await sim.wait_for_event("System", "SoftwareInfo", timeout=10)
        async with asyncio.timeout(5):
            while not _stored(path, "softwareInfoAccepted"):
                await asyncio.sleep(0.02)
    assert info.payload == {"firmwareVersion": "42"} and info.context == []
    restarted = _client(sim, path)
    async with restarted:
        await restarted.wait_connected(10)
        await asyncio.sleep(0.1)
        assert _names(sim).count("System.SoftwareInfo") == 1
        await _push(sim, "System", "ReportSoftwareInfo", {})
        await sim.wait_for_event("System", "SoftwareInfo", nth=2)


def _stored(path: Path, key: str) -> object:
    with DeviceStore.open(path) as store:
        return store.get("System", key)


def _names(sim: Simulator) -> list[str]:
    return [f"{e.namespace}.{e.name}" for e in sim.events]


class _FileTokens(StaticTokenProvider):
    """A static token that also lives in a token file (as after `avsclient login`)."""

    def __init__(self, token: str, store: TokenStore) -> None:
        super().__init__(token)
        self.store = store


async def test_revoke_authorization_end_to_end(sim: Simulator, tmp_path: Path) -> None:
    """RevokeAuthorization: DeleteReport for the device, the account's settings and the
    accepted report gone from the store, the token file deleted, the connection closed and
    AuthorizationRevoked observed; device-only settings stay."""
    path = tmp_path / "device.sqlite3"
    token = sim.add_token()
    token_store = TokenStore(tmp_path / "tokens.json")
    token_store.save(
        StoredTokens(
            client_id=DEVICE.client_id,
            tokens=TokenSet(
                access_token=token, refresh_token="Atzr|r", expires_at=time.time() + 3600
            ),
        )
    )
    events: list[ClientEvent] = []
    client = _client(sim, path, tokens=_FileTokens(token, token_store), events=events)
    async with client:
        await client.wait_connected(10)
        await _push(sim, "System", "SetLocales", {"locales": ["en-GB"]})
        await sim.wait_for_event("System", "LocalesReport")
        await _push(
            sim,
            "SpeechRecognizer",
            "SetEndOfSpeechOffset",
            {"endOfSpeechOffsetInMilliseconds": 10, "startOfSpeechTimestamp": "1"},
        )
        await _push(sim, "System", "RevokeAuthorization", {})
        deleted: ReceivedEvent = await sim.wait_for_event("Alexa.Discovery", "DeleteReport")
        async with asyncio.timeout(5):
            while not any(isinstance(e, AuthorizationRevoked) for e in events):
                await asyncio.sleep(0.01)
        assert client.revoked
        assert client.status is ConnectionStatus.DISCONNECTED
        assert client.system.locales == ("en-US",)
    assert sim.discovery.deleted == [DEVICE.endpoint_id]
    assert deleted.payload["endpoints"] == [{"endpointId": DEVICE.endpoint_id}]
    [revoked] = [e for e in events if isinstance(e, AuthorizationRevoked)]
    assert revoked.tokens_deleted and not token_store.path.exists()
    with DeviceStore.open(path) as store:
        assert store.get("System", "locales") is None
        assert store.get("Alexa.Discovery", "report") is None
        assert store.get("Alexa.ApiGateway", "verified") is None
        assert store.get("SpeechRecognizer", "endOfSpeechOffset") == [10, "1"]


async def test_every_scripted_directive_has_a_handler_and_pushes(
    sim: Simulator, tmp_path: Path
) -> None:
    """Each scripted directive of the simulator is one the default client handles; pushing
    one by name from a test works."""
    from avsclient.simulator import SCRIPTED, scripted_directive

    client = _client(sim, tmp_path / "device.sqlite3")
    for name in SCRIPTED:
        header = scripted_directive(name)["directive"]["header"]
        assert client.pipeline.supports(header["namespace"], header["name"]), name
    async with client:
        await client.wait_connected(10)
        assert await sim.push_scripted("SetLocales", locales=["fr-FR"]) == 1
        report = await sim.wait_for_event("System", "LocalesReport")
    assert report.payload == {"locales": ["fr-FR"]}
