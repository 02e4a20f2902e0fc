"""The legacy Capabilities API (avs-protocol 9.7) as an opt-in instead of Alexa.Discovery,
against the simulator over TLS: the PUT the simulator's validator (written from the reference)
accepts, sent once and again only when the body, the ids or the host change, 500 retried on
the back-off, 400 and 403 stopping with the reason; and the validator itself."""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path

import httpx
import pytest

from avsclient.agents import CapabilityAgent, DiscoveryAgent, DiscoveryState
from avsclient.agents.capabilities_api import (
    CAPABILITIES_API_RETRY,
    CapabilitiesApi,
    PutOutcome,
    PutReply,
    capabilities_document,
    put_outcome,
)
from avsclient.auth import StaticTokenProvider
from avsclient.client import AVSClient, default_agents
from avsclient.config import ClientConfig
from avsclient.simulator import Simulator

from .test_discovery import DEVICE, FAST


def _client(sim: Simulator, store: Path, *, api: str | None = None, **config: object) -> AVSClient:
    options = ClientConfig(
        endpoint=sim.url, ca_file=str(sim.ca_file), capabilities_api=api or sim.url, **config  # type: ignore[arg-type]
    )
    return AVSClient(options, StaticTokenProvider(sim.add_token()), store=store, device=DEVICE)


async def _state(client: AVSClient, *states: DiscoveryState, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while client.discovery.state not in states:
            await asyncio.sleep(0.01)


def test_the_body_and_the_meaning_of_answers() -> None:
    """envelopeVersion 20160207 and every capability but Discovery's own `Alexa`; 204 done,
    500 again, 400/403/others stop (the 400 message kept)."""
    agents = default_agents()
    document = capabilities_document([a.capability() for a in agents])
    assert document["envelopeVersion"] == "20160207"
    interfaces = [c["interface"] for c in document["capabilities"]]
    assert "Alexa" not in interfaces and "SpeechRecognizer" in interfaces
    assert all(c["type"] == "AlexaInterface" for c in document["capabilities"])
    assert put_outcome(PutReply(204, b""))[0] is PutOutcome.ACCEPTED
    assert put_outcome(PutReply(500, b""))[0] is PutOutcome.RETRY
    outcome, why = put_outcome(PutReply(400, b'{"message": "bad Alerts version"}'))
    assert outcome is PutOutcome.FATAL and "bad Alerts version" in why
    assert put_outcome(PutReply(403, b"not json"))[0] is PutOutcome.FATAL
    assert put_outcome(PutReply(404, b""))[0] is PutOutcome.FATAL
    assert CAPABILITIES_API_RETRY.delays == (0.25, 1.0, 3.0, 5.0, 10.0, 20.0)
    assert CAPABILITIES_API_RETRY.jitter == (0.5, 1.5)
    with pytest.raises(ValueError, match="endpoint"):
        ClientConfig(capabilities_api="https://api.amazonalexa.com/v1/devices")


async def test_opted_in_client_puts_its_capabilities_instead_of_discovery(
    sim: Simulator, tmp_path: Path
) -> None:
    """One valid PUT (token in x-amz-access-token), no AddOrUpdateReport; a restart with
    the same store sends nothing; another host gets it again."""
    path = tmp_path / "device.sqlite3"
    async with _client(sim, path) as client:
        await client.wait_connected(10)
        await _state(client, DiscoveryState.ACCEPTED)
    [put] = sim.capabilities_api.requests
    assert put.problems == () and put.status == 204
    assert sim.token_accepted(put.headers["x-amz-access-token"])
    assert "authorization" not in put.headers
    declared = {c["interface"]: c["version"] for c in put.document["capabilities"]}
    assert declared["SpeechRecognizer"] == "2.3" and "Alexa" not in declared
    assert not [e for e in sim.events if e.namespace == "Alexa.Discovery"]

    async with _client(sim, path) as client:
        await client.wait_connected(10)
        await _state(client, DiscoveryState.UNCHANGED)
    assert len(sim.capabilities_api.requests) == 1

    # The same simulator under another name: the host changed, so the PUT goes again.
    other = sim.url.replace("127.0.0.1", "localhost")
    async with _client(sim, path, api=other) as client:
        await client.wait_connected(10)
        await _state(client, DiscoveryState.ACCEPTED)
    assert len(sim.capabilities_api.accepted) == 2


async def test_server_errors_are_retried_and_refusals_stop(sim: Simulator, tmp_path: Path) -> None:
    """Two 500s, then accepted (retries time-compressed); a 400 and a 403 stop with why."""
    sim.capabilities_api.fail_next(2, status=500)
    assert sim.ca_file is not None
    api = CapabilitiesApi(sim.url, ca_file=sim.ca_file)

    def agents() -> list[CapabilityAgent]:
        return [
            DiscoveryAgent(retry=FAST, capabilities_api=api)
            if isinstance(agent, DiscoveryAgent)
            else agent
            for agent in default_agents()
        ]

    config = ClientConfig(endpoint=sim.url, ca_file=str(sim.ca_file))
    tokens = StaticTokenProvider(sim.add_token())
    async with AVSClient(
        config, tokens, agents=agents(), store=tmp_path / "a.sqlite3", device=DEVICE
    ) as client:
        await client.wait_connected(10)
        await _state(client, DiscoveryState.ACCEPTED)
    assert [r.status for r in sim.capabilities_api.requests] == [500, 500, 204]

    for status, reason in ((400, "refused (400): injected failure"), (403, "(403)")):
        sim.capabilities_api.fail_next(1, status=status)
        async with AVSClient(
            config, tokens, agents=agents(), store=tmp_path / f"{status}.sqlite3", device=DEVICE
        ) as client:
            await client.wait_connected(10)
            await _state(client, DiscoveryState.REJECTED)
            assert reason in (client.discovery.state_reason or "")
            await asyncio.sleep(0.2)  # several FAST periods: no retry
        assert sim.capabilities_api.requests[-1].status == status
    assert len(sim.capabilities_api.requests) == 5


async def test_the_simulator_judges_requests_by_the_reference(sim: Simulator) -> None:
    """Wrong envelope, an undocumented version, the token in Authorization, a missing token:
    400 with every problem named, or 403."""
    assert sim.ca_file is not None
    token = sim.add_token()
    path = "/v1/devices/@self/capabilities"
    good = {"envelopeVersion": "20160207",
            "capabilities": [{"type": "AlexaInterface", "interface": "Alerts", "version": "1.3"}]}
    trust = ssl.create_default_context(cafile=str(sim.ca_file))
    async with httpx.AsyncClient(base_url=sim.url, verify=trust, http2=True) as http:
        reply = await http.put(path, json=good, headers={"x-amz-access-token": token})
        assert reply.status_code == 204
        bad = {"envelopeVersion": "2016", "capabilities": [
            {"type": "AlexaInterface", "interface": "Alerts", "version": "9.9"}]}
        reply = await http.put(path, json=bad, headers={"x-amz-access-token": token})
        assert reply.status_code == 400
        message = reply.json()["message"]
        assert "envelopeVersion" in message and "Alerts 9.9 is not a documented" in message
        reply = await http.put(path, json=good, headers={"authorization": f"Bearer {token}",
                                                         "x-amz-access-token": token})
        assert reply.status_code == 400 and "x-amz-access-token" in reply.json()["message"]
        reply = await http.put(path, content=json.dumps(good), headers={
            "authorization": f"Bearer {token}", "content-type": "application/json"})
        assert reply.status_code == 403
        reply = await http.post(path, json=good, headers={"x-amz-access-token": token})
        assert reply.status_code == 405
