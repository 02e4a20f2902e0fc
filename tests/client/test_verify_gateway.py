"""VerifyGateway retried until done (avs-protocol 9.5, 9.6) against the simulator over TLS: on
the 9.3 schedule (time-compressed) inside the connection attempt, for a bounded time; then the
client connects unverified, a voice turn goes through, and the retries finish the job in the
background. Fatal statuses stop at once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from avsclient.agents import ApiGatewayAgent, CapabilityAgent, DiscoveryAgent
from avsclient.agents.api_gateway import DEFAULT_VERIFY_DEADLINE, VERIFY_RETRY
from avsclient.auth import StaticTokenProvider
from avsclient.client import AVSClient, default_agents
from avsclient.config import ClientConfig
from avsclient.simulator import Simulator

from .conftest import tone_source
from .test_discovery import DEVICE, FAST, _client, _names


def _agents(gateway: ApiGatewayAgent) -> list[CapabilityAgent]:
    agents: list[CapabilityAgent] = []
    for agent in default_agents():
        if isinstance(agent, ApiGatewayAgent):
            agent = gateway
        elif isinstance(agent, DiscoveryAgent):
            agent = DiscoveryAgent(retry=FAST, ack_timeout=0.5)
        agents.append(agent)
    return agents


async def _verified(client: AVSClient, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not client.api_gateway.verified:
            await asyncio.sleep(0.01)


def test_the_default_schedule_is_the_documented_one_within_a_deadline() -> None:
    """1, 2, 4, ... 256 s, the last repeating, without a retry limit; the attempt holds a
    connection for the first attempt and the retries after 1, 2 and 4 s at most."""
    assert [VERIFY_RETRY.nominal(n) for n in range(1, 11)] == [
        1, 2, 4, 8, 16, 32, 64, 128, 256, 256
    ]
    assert VERIFY_RETRY.max_retries is None
    assert 1 + 2 + 4 < DEFAULT_VERIFY_DEADLINE < 1 + 2 + 4 + 8
    with pytest.raises(ValueError, match="deadline"):
        ApiGatewayAgent(deadline=0)


async def test_failures_are_retried_inside_the_attempt_before_discovery(
    sim: Simulator, tmp_path: Path
) -> None:
    """Two 500s: VerifyGateway is sent three times on the connection, then Discovery and
    SynchronizeState follow; the gateway is verified when the client reports connected."""
    sim.discovery.fail_verify_next(2, status=500)
    gateway = ApiGatewayAgent(retry=FAST, deadline=5.0)
    client = _client(sim, tmp_path / "device.sqlite3", agents=_agents(gateway))
    async with client:
        await client.wait_connected(10)
        assert client.api_gateway.verified
        assert gateway.last_result == "verified" and gateway.failures == 0
    assert _names(sim, 1)[:5] == [
        "Alexa.ApiGateway.VerifyGateway",
        "Alexa.ApiGateway.VerifyGateway",
        "Alexa.ApiGateway.VerifyGateway",
        "Alexa.Discovery.AddOrUpdateReport",
        "System.SynchronizeState",
    ]


async def test_a_silent_gateway_holds_the_connection_for_the_deadline_only(
    sim: Simulator, tmp_path: Path
) -> None:
    """The simulator leaves the first VerifyGateways unanswered (for 30 s): after the 0.5 s
    deadline the client connects unverified, a voice turn completes, and the background
    retries verify the gateway on the live connection."""
    sim.discovery.ignore_verify_next(1)
    sim.discovery.ignore_seconds = 30.0
    gateway = ApiGatewayAgent(retry=FAST, deadline=0.5)
    client = _client(sim, tmp_path / "device.sqlite3", agents=_agents(gateway))
    async with client:
        began = time.monotonic()
        await client.wait_connected(10)
        waited = time.monotonic() - began
        assert waited < 10  # far from the 30 s the gateway stays silent
        dialog = await client.recognize(tone_source(1.0), profile="NEAR_FIELD")
        await dialog.wait_finished()
        assert dialog.result is not None and dialog.result.ok
        await _verified(client)
        assert gateway.last_result == "verified"
    # The silent one (its stream reset by the client at the deadline), then the retry.
    assert len(sim.discovery.verifications) == 2
    names = _names(sim, 1)
    assert names[:2] == ["Alexa.Discovery.AddOrUpdateReport", "System.SynchronizeState"]
    assert names.count("Alexa.ApiGateway.VerifyGateway") == 1  # answered on the live link


async def test_background_retries_follow_the_schedule_until_verified(
    sim: Simulator, tmp_path: Path
) -> None:
    """Failures outlasting the deadline: the connection goes on, and the retries (20, 40,
    80, 80 ms ...) continue until the simulator answers 204."""
    sim.discovery.fail_verify_next(6, status=500)
    gateway = ApiGatewayAgent(retry=FAST, deadline=0.05)
    client = _client(sim, tmp_path / "device.sqlite3", agents=_agents(gateway))
    async with client:
        await client.wait_connected(10)
        await _verified(client)
    assert _names(sim).count("Alexa.ApiGateway.VerifyGateway") == 7


# 403 is fatal too, but on any stream it first means a rejected token (2.4): the connection
# manager renews the token and sends again, before the agent sees a status.
@pytest.mark.parametrize("status", [400, 503])
async def test_fatal_statuses_stop_at_once(sim: Simulator, tmp_path: Path, status: int) -> None:
    """400 and 503 are fatal (9.6): one VerifyGateway, connected unverified, no retry."""
    sim.discovery.fail_verify_next(1, status=status)
    gateway = ApiGatewayAgent(retry=FAST, deadline=5.0)
    client = _client(sim, tmp_path / "device.sqlite3", agents=_agents(gateway))
    async with client:
        await client.wait_connected(10)
        await asyncio.sleep(0.3)  # several FAST periods: no retry comes
        assert not client.api_gateway.verified
        assert gateway.last_result == f"fatal {status}"
    assert _names(sim).count("Alexa.ApiGateway.VerifyGateway") == 1


async def test_the_deadline_leaves_half_of_connect_timeout_to_the_later_steps(
    sim: Simulator, tmp_path: Path
) -> None:
    """A silent gateway, an 8 s VerifyGateway deadline but a 3 s connect_timeout: the step
    gives up within half of the attempt, Discovery and SynchronizeState follow, and the
    first attempt connects."""
    sim.discovery.ignore_verify_next(1)
    config = ClientConfig(endpoint=sim.url, ca_file=str(sim.ca_file), connect_timeout=3.0)
    client = AVSClient(
        config, StaticTokenProvider(sim.add_token()), store=tmp_path / "device.sqlite3",
        device=DEVICE, agents=_agents(ApiGatewayAgent(retry=FAST)),
    )
    async with client:
        await client.wait_connected(10)
        assert client.manager.url == sim.url
        await _verified(client)
    assert {e.connection_id for e in sim.events if e.name == "SynchronizeState"} == {1}
