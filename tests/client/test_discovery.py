"""Alexa.Discovery and Alexa.ApiGateway against the simulator over TLS: the post-connect order,
a report sent once and again only after a change, EventProcessed timeouts and the retry
schedule (time-compressed), 400 stopping, reports checked before sending, VerifyGateway and
SetGateway, and voice turns that never wait for Discovery."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from avsclient._retry import RetryPolicy
from avsclient.agents import (
    ApiGatewayAgent,
    Capability,
    CapabilityAgent,
    ClientEvent,
    DiscoveryAgent,
    DiscoveryState,
    DiscoveryStateChanged,
    SpeechRecognizerAgent,
    SystemAgent,
)
from avsclient.agents.discovery import build_report, check_report
from avsclient.auth import StaticTokenProvider
from avsclient.client import AVSClient, default_agents
from avsclient.config import ClientConfig, DeviceInfo
from avsclient.exceptions import CapabilityReportError
from avsclient.simulator import ReceivedEvent, Simulator, report_problems
from avsclient.store import DeviceStore

from .conftest import tone_source

DEVICE = DeviceInfo(
    client_id="amzn1.application-oa2-client.test",
    product_id="acme_speaker",
    device_serial_number="SN-0001",
    manufacturer_name="Acme",
    description="Acme kitchen speaker",
    firmware_version=42,
)
# Compressed 9.3 schedule (1, 2, 4 s ... as 20, 40, 80 ms) and EventProcessed wait.
FAST = RetryPolicy(delays=(0.02, 0.04, 0.08))


class Lamp(CapabilityAgent):
    namespace = "Acme.Lamp"
    version = "1.0"


class Declares(CapabilityAgent):
    """An agent declaring whatever it is given (to break the rules on purpose)."""

    def __init__(self, interface: str, version: str) -> None:
        super().__init__()
        self.namespace, self.version = interface, version


def _client(
    sim: Simulator,
    store: Path,
    *,
    agents: list[CapabilityAgent] | None = None,
    events: list[ClientEvent] | None = None,
    discovery: DiscoveryAgent | None = None,
    device: DeviceInfo | None = DEVICE,
) -> AVSClient:
    if agents is None:
        agents = [a for a in default_agents() if not isinstance(a, DiscoveryAgent)]
        agents.append(discovery or DiscoveryAgent(retry=FAST, ack_timeout=0.5))
    # AVS (the simulator) may move the client to the simulator's host only.
    config = ClientConfig(endpoint=sim.url, ca_file=str(sim.ca_file), endpoint_hosts=(sim.host,))
    client = AVSClient(
        config, StaticTokenProvider(sim.add_token()), agents=agents, store=store, device=device
    )
    if events is not None:
        client.add_listener(events.append)
    return client


def _names(sim: Simulator, connection: int | None = None) -> list[str]:
    return [
        f"{e.namespace}.{e.name}"
        for e in sim.events
        if connection is None or e.connection_id == connection
    ]


async def _wait_state(client: AVSClient, *states: DiscoveryState, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while client.discovery.state not in states:
            await asyncio.sleep(0.01)


async def test_post_connect_order_is_verify_gateway_discovery_synchronize_state(
    sim: Simulator, tmp_path: Path
) -> None:
    """VerifyGateway, then AddOrUpdateReport (acknowledged before going on), then
    SynchronizeState, on the first connection; the report passes the simulator's checks."""
    client = _client(sim, tmp_path / "device.sqlite3")
    async with client:
        await client.wait_connected(10)
        assert client.discovery.state is DiscoveryState.ACCEPTED
        assert client.api_gateway.verified
    assert _names(sim, 1)[:3] == [
        "Alexa.ApiGateway.VerifyGateway",
        "Alexa.Discovery.AddOrUpdateReport",
        "System.SynchronizeState",
    ]
    [verdict] = sim.discovery.reports
    assert verdict.problems == ()
    report = verdict.event
    assert sim.discovery.acknowledged == [report.header["eventCorrelationToken"]]
    [endpoint] = report.payload["endpoints"]
    assert endpoint["endpointId"] == DEVICE.endpoint_id
    assert endpoint["registration"] == {
        "productId": "acme_speaker",
        "deviceSerialNumber": "SN-0001",
    }
    declared = {(c["interface"], c["version"]) for c in endpoint["capabilities"]}
    assert declared == {
        ("System", "1.4"),
        ("Speaker", "1.0"),
        ("SpeechSynthesizer", "1.3"),
        ("SpeechRecognizer", "2.3"),
        ("AudioPlayer", "1.3"),
        ("PlaybackController", "1.1"),
        ("Alerts", "1.3"),
        ("Alexa", "3"),
        ("Alexa.ApiGateway", "1.0"),
        ("InteractionModel", "1.2"),
        ("Notifications", "1.0"),
    }
    assert report.context == [] and "context" not in report.json


async def test_report_is_sent_once_and_not_again_after_reconnect_or_restart(
    sim: Simulator, tmp_path: Path
) -> None:
    """A reconnect and a restart with the same store and agents send no second report and no
    second VerifyGateway: the accepted report and the verified gateway are persisted."""
    path = tmp_path / "device.sqlite3"
    client = _client(sim, path)
    async with client:
        await client.wait_connected(10)
        sim.faults.drop_connections()
        await sim.wait_for_event("System", "SynchronizeState", nth=2, timeout=10)
        assert client.discovery.state is DiscoveryState.UNCHANGED
    again = _client(sim, path)
    async with again:
        await again.wait_connected(10)
        assert again.discovery.state is DiscoveryState.UNCHANGED
    names = _names(sim)
    assert names.count("Alexa.Discovery.AddOrUpdateReport") == 1
    assert names.count("Alexa.ApiGateway.VerifyGateway") == 1
    assert names.count("System.SynchronizeState") == 3


async def test_report_is_sent_again_after_a_change(sim: Simulator, tmp_path: Path) -> None:
    """A new agent added at run time is reported at once; a restart with another agent set
    sends the new report on connect."""
    path = tmp_path / "device.sqlite3"
    client = _client(sim, path)
    async with client:
        await client.wait_connected(10)
        client.add_agent(Lamp())
        second = await sim.wait_for_event("Alexa.Discovery", "AddOrUpdateReport", nth=2)
        await _wait_state(client, DiscoveryState.ACCEPTED)
    interfaces = [c["interface"] for c in second.payload["endpoints"][0]["capabilities"]]
    assert "Acme.Lamp" in interfaces
    again = _client(sim, path)  # the Lamp is gone: a change again
    async with again:
        await again.wait_connected(10)
        third = await sim.wait_for_event("Alexa.Discovery", "AddOrUpdateReport", nth=3)
    assert "Acme.Lamp" not in [
        c["interface"] for c in third.payload["endpoints"][0]["capabilities"]
    ]
    assert [v.problems for v in sim.discovery.reports] == [(), (), ()]


async def test_event_processed_timeout_is_retried_on_the_schedule(
    sim: Simulator, tmp_path: Path
) -> None:
    """No EventProcessed within the wait: retried after 1, 2, ... (here 20, 40 ms) with a
    fresh correlation token, without holding back the connection."""
    events: list[ClientEvent] = []
    sim.discovery.drop_acks(2)
    client = _client(
        sim,
        tmp_path / "device.sqlite3",
        events=events,
        discovery=DiscoveryAgent(retry=FAST, ack_timeout=0.2),
    )
    async with client:
        await client.wait_connected(10)
        assert client.discovery.state is DiscoveryState.RETRYING  # connected anyway
        await _wait_state(client, DiscoveryState.ACCEPTED)
    changes = [e for e in events if isinstance(e, DiscoveryStateChanged)]
    retries = [e.retry_in for e in changes if e.state is DiscoveryState.RETRYING]
    assert retries == [0.02, 0.04]
    assert [e.attempts for e in changes if e.state is DiscoveryState.RETRYING] == [1, 2]
    assert all(
        "no EventProcessed" in (e.reason or "")
        for e in changes
        if e.state is DiscoveryState.RETRYING
    )
    tokens = [v.event.header["eventCorrelationToken"] for v in sim.discovery.reports]
    assert len(tokens) == 3 and len(set(tokens)) == 3
    assert sim.discovery.acknowledged == tokens[2:]


async def test_server_errors_are_retried_and_400_stops(sim: Simulator, tmp_path: Path) -> None:
    """500 is retried; 400 stops with the reason, and nothing more is sent."""
    sim.discovery.fail_next(1, status=500)
    sim.discovery.fail_next(1, status=400)
    client = _client(sim, tmp_path / "device.sqlite3")
    async with client:
        await client.wait_connected(10)
        await _wait_state(client, DiscoveryState.REJECTED)
        assert "400" in (client.discovery.state_reason or "")
        await asyncio.sleep(0.3)  # longer than the whole compressed schedule
    assert _names(sim).count("Alexa.Discovery.AddOrUpdateReport") == 2


async def test_403_stops_too(sim: Simulator, tmp_path: Path) -> None:
    """403 on the report (twice: the token is renewed once) stops retrying."""
    sim.discovery.fail_next(2, status=403)
    client = _client(sim, tmp_path / "device.sqlite3")
    async with client:
        await _wait_state(client, DiscoveryState.REJECTED, timeout=10)
        assert "403" in (client.discovery.state_reason or "")


async def test_a_report_breaking_the_limits_is_never_sent(sim: Simulator, tmp_path: Path) -> None:
    """A device declaring Alexa.Discovery itself, or without InteractionModel, is INVALID
    locally; nothing reaches AVS and the connection is not held back."""
    agents: list[CapabilityAgent] = [
        SystemAgent(),
        SpeechRecognizerAgent(),
        ApiGatewayAgent(),
        DiscoveryAgent(retry=FAST),
    ]
    client = _client(sim, tmp_path / "device.sqlite3", agents=agents)
    async with client:
        await client.wait_connected(10)
        assert client.discovery.state is DiscoveryState.INVALID
        assert "InteractionModel" in (client.discovery.state_reason or "")
        client.add_agent(Declares("Alexa.Discovery", "3"))
        await asyncio.sleep(0.05)
    assert "Alexa.Discovery.AddOrUpdateReport" not in _names(sim)


async def test_without_device_info_discovery_says_so(sim: Simulator, tmp_path: Path) -> None:
    """No DeviceInfo: Discovery is INVALID with the reason, the device still connects."""
    client = _client(sim, tmp_path / "device.sqlite3", device=None)
    async with client:
        await client.wait_connected(10)
        assert client.discovery.state is DiscoveryState.INVALID
        assert "DeviceInfo" in (client.discovery.state_reason or "")


async def test_voice_turns_do_not_wait_for_a_failing_discovery(
    sim: Simulator, tmp_path: Path
) -> None:
    """With every report unacknowledged, the client connects and a voice turn completes."""
    sim.discovery.drop_acks(1000)
    client = _client(
        sim, tmp_path / "device.sqlite3", discovery=DiscoveryAgent(retry=FAST, ack_timeout=0.05)
    )
    async with client:
        await client.wait_connected(10)
        dialog = await client.recognize(tone_source(1.0), profile="NEAR_FIELD")
        await dialog.wait_finished()
        assert dialog.result is not None and dialog.result.ok
        assert client.discovery.state in (DiscoveryState.RETRYING, DiscoveryState.SENDING)


async def test_set_gateway_moves_make_before_break_and_is_persisted(tmp_path: Path) -> None:
    """VerifyGateway answered with SetGateway: the client moves to the new gateway (https),
    verifies it there, and a restart starts at the new one."""
    async with Simulator() as old, Simulator() as new:
        old.discovery.move_gateway(new.url)
        path = tmp_path / "device.sqlite3"
        # Both simulators share no CA: trust both.
        ca = tmp_path / "ca.pem"
        ca.write_text(Path(str(old.ca_file)).read_text() + Path(str(new.ca_file)).read_text())
        token = "shared-token"
        old.add_token(token)
        new.add_token(token)
        config = ClientConfig(endpoint=old.url, ca_file=str(ca), endpoint_hosts=("127.0.0.1",))
        client = AVSClient(config, StaticTokenProvider(token), store=path, device=DEVICE)
        async with client:
            await new.wait_for_event("System", "SynchronizeState", timeout=10)
            await client.wait_connected(10)
            assert client.manager.url == new.url
            assert client.api_gateway.verified
        assert [e.name for e in old.events] == ["VerifyGateway"]
        assert [e.name for e in new.events][:3] == [
            "VerifyGateway",
            "AddOrUpdateReport",
            "SynchronizeState",
        ]
        restarted = AVSClient(config, StaticTokenProvider(token), store=path, device=DEVICE)
        async with restarted:
            await restarted.wait_connected(10)
            assert restarted.manager.url == new.url
        assert [e.name for e in old.events] == ["VerifyGateway"]


@pytest.mark.parametrize(
    "gateway",
    [
        "http://127.0.0.1:1",
        "ftp://example.com",
        "https://",
        "https://h/path",
        "",
        "https://avs.attacker.invalid",  # https, but not a host the configuration allows
    ],
)
async def test_set_gateway_refuses_what_is_not_an_https_base_url(
    sim: Simulator, tmp_path: Path, gateway: str
) -> None:
    """SetGateway to a non-https URL or a host not allowed: UNEXPECTED_INFORMATION_RECEIVED,
    nothing stored."""
    from avsclient.simulator import directive

    path = tmp_path / "device.sqlite3"
    client = _client(sim, path)
    async with client:
        await client.wait_connected(10)
        await sim.push_directive(directive("Alexa.ApiGateway", "SetGateway", {"gateway": gateway}))
        report = await sim.wait_for_event("System", "ExceptionEncountered")
        assert client.manager.url == sim.url
    assert report.payload["error"]["type"] == "UNEXPECTED_INFORMATION_RECEIVED"
    with DeviceStore.open(path) as store:
        assert store.get("Alexa.ApiGateway", "gateway") in (None, sim.url)


# -- the report itself (no I/O) ----------------------------------------------------------------


def _report(caps: list[Capability]) -> dict[str, Any]:
    return build_report(DEVICE, caps, token="t", correlation_token="c")


REQUIRED = [Capability("Alexa.ApiGateway", "1.0"), Capability("InteractionModel", "1.2")]


def test_the_client_checks_the_documented_limits() -> None:
    """check_report names the field that breaks a rule of avs-protocol 9.1/9.2."""
    check_report(_report(REQUIRED))
    cases = [
        ([Capability("Alexa.Discovery", "3"), *REQUIRED], "implicit"),
        ([Capability("Alexa.ApiGateway", "1.0")], "InteractionModel"),
        ([*REQUIRED, Capability("InteractionModel", "1.2")], "twice"),
        ([*REQUIRED, Capability("SpeechRecognizer", "2.0")], "2.3"),
        ([*REQUIRED, *[Capability(f"X{i}", "1.0") for i in range(99)]], "1..100"),
        ([*REQUIRED, Capability("X", "1.0", {"blob": "x" * 260_000})], "bytes"),
    ]
    for caps, words in cases:
        with pytest.raises(CapabilityReportError, match=words):
            check_report(_report(caps))
    long_name = _report(REQUIRED)
    long_name["event"]["payload"]["endpoints"][0]["description"] = "d" * 129
    with pytest.raises(CapabilityReportError, match=r"endpoints\[0\]\.description"):
        check_report(long_name)


def _received(document: dict[str, Any]) -> ReceivedEvent:
    event = document["event"]
    return ReceivedEvent(
        namespace=event["header"]["namespace"],
        name=event["header"]["name"],
        message_id=event["header"]["messageId"],
        dialog_request_id=None,
        header=event["header"],
        payload=event["payload"],
        context=[],
        json=json.loads(json.dumps(document)),
        audio=b"",
        stream_id=1,
    )


def test_the_simulator_judges_reports_on_its_own() -> None:
    """The simulator's checks (written from the reference) find the same kinds of faults,
    and more: undocumented versions, a scope token that is not the request's, bad wake words."""
    assert report_problems(_received(_report(REQUIRED)), "t") == []
    bad = _report([*REQUIRED, Capability("Speaker", "2.0"), Capability("Alexa.Discovery", "3")])
    bad["event"]["payload"]["endpoints"][0]["endpointId"] = "not-three-parts"
    problems = report_problems(_received(bad), "other-token")
    assert any("Speaker 2.0 is not a documented version" in p for p in problems)
    assert any("implicit" in p for p in problems)
    assert any("clientId::productId::deviceSerialNumber" in p for p in problems)
    assert any("not the access token" in p for p in problems)
    words = _report(
        [
            *REQUIRED,
            Capability(
                "SpeechRecognizer",
                "2.3",
                {"wakeWords": [{"scopes": ["DEFAULT"], "values": [["alexa"]]}]},
            ),
        ]
    )
    assert any("upper-case" in p for p in report_problems(_received(words), "t"))
