"""The obvious ways to connect: `AVSClient.for_simulator`, `AVSClient.from_login` (arguments or
`AVSCLIENT_*` environment), against a real simulator over TLS and h2c."""

from __future__ import annotations

from pathlib import Path

import pytest

from avsclient import AVSClient, Region
from avsclient.environment import read_environment
from avsclient.exceptions import ReauthorizationRequired
from avsclient.simulator import Simulator


@pytest.mark.parametrize("tls", [True, False], ids=["tls", "h2c"])
async def test_for_simulator_connects(tls: bool) -> None:
    async with Simulator(tls=tls) as sim, AVSClient.for_simulator(sim) as client:
        await client.wait_connected(10)
        event = await sim.wait_for_event("System", "SynchronizeState")
        assert event.namespace == "System"
        assert client.config.url() == sim.url


async def test_for_simulator_takes_a_config_of_the_simulator() -> None:
    async with Simulator() as sim:
        config = sim.client_config(connect_timeout=5)
        assert config.connect_timeout == 5 and config.ca_file == str(sim.ca_file)
        async with AVSClient.for_simulator(sim, config=config) as client:
            await client.wait_connected(10)


async def test_from_login_with_arguments_refreshes_and_closes_what_it_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The token file simulate writes connects; an expired access token is refreshed with the
    simulator's LWA and saved back; closing the client closes the token provider."""
    from avsclient.auth import RefreshingTokenProvider

    closed: list[RefreshingTokenProvider] = []
    original = RefreshingTokenProvider.aclose

    async def aclose(self: RefreshingTokenProvider) -> None:
        closed.append(self)
        await original(self)

    monkeypatch.setattr(RefreshingTokenProvider, "aclose", aclose)
    async with Simulator() as sim:
        sim.lwa.access_token_lifetime = 0  # the stored token is refreshed at once
        path = sim.write_token_file(tmp_path / "tokens.json")
        sim.lwa.access_token_lifetime = 3600
        before = path.read_bytes()
        client = AVSClient.from_login(
            token_file=path, endpoint=sim.url, lwa_url=sim.url, ca_file=str(sim.ca_file)
        )
        async with client:
            await client.wait_connected(10)
        assert path.read_bytes() != before  # the refreshed tokens were stored
        assert any(p == "/auth/o2/token" for p, _ in sim.lwa.requests)
        assert len(closed) == 1 and "closed" in repr(closed[0])


async def test_from_login_reads_the_environment(tmp_path: Path) -> None:
    async with Simulator(tls=False) as sim:
        path = sim.write_token_file(tmp_path / "tokens.json")
        environ = {
            "AVSCLIENT_TOKEN_FILE": str(path),
            "AVSCLIENT_ENDPOINT": sim.url,
            "AVSCLIENT_LWA_URL": sim.url,
            "AVSCLIENT_REGION": "eu",
        }
        async with AVSClient.from_login(environ=environ) as client:
            assert client.config.region is Region.EU
            await client.wait_connected(10)


def test_from_login_without_tokens_says_to_log_in(tmp_path: Path) -> None:
    with pytest.raises(ReauthorizationRequired, match="avsclient login"):
        AVSClient.from_login(token_file=tmp_path / "none.json", environ={})


def test_region_names_in_any_case() -> None:
    assert Region.parse("eu") is Region.EU
    assert Region.parse(" Fe ") is Region.FE
    with pytest.raises(ValueError, match="NA, EU, FE"):
        Region.parse("us")


def test_environment_values_are_checked_and_named() -> None:
    env = read_environment(
        {"AVSCLIENT_DEVICE": "3", "AVSCLIENT_OUTPUT_DEVICE": "USB", "AVSCLIENT_CA_FILE": ""}
    )
    assert (env.input_device, env.output_device, env.ca_file) == (3, "USB", None)
    with pytest.raises(ValueError, match="AVSCLIENT_REGION"):
        read_environment({"AVSCLIENT_REGION": "mars"})
    with pytest.raises(ValueError, match="AVSCLIENT_ENDPOINT"):
        read_environment({"AVSCLIENT_ENDPOINT": "ftp://x"})
