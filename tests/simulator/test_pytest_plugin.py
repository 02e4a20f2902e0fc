"""The `avs_simulator` fixtures arrive through the pytest11 entry point, as for any user."""

from __future__ import annotations

from importlib.metadata import entry_points

import httpx

from avsclient.simulator import Simulator


def test_plugin_is_registered_as_pytest11_entry_point() -> None:
    """Installing avsclient registers avsclient.simulator.pytest_plugin with pytest."""
    plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert plugins.get("avsclient") == "avsclient.simulator.pytest_plugin"


async def test_avs_simulator_fixture_is_a_started_tls_simulator(avs_simulator: Simulator) -> None:
    """avs_simulator is running over TLS and answers a ping."""
    token = avs_simulator.add_token()
    async with httpx.AsyncClient(http2=True, verify=avs_simulator.ssl_context()) as client:
        response = await client.get(
            avs_simulator.url + "/ping", headers={"authorization": f"Bearer {token}"}
        )
    assert response.status_code == 204
    assert response.http_version == "HTTP/2"


async def test_avs_simulator_h2c_fixture(avs_simulator_h2c: Simulator) -> None:
    """avs_simulator_h2c is running cleartext HTTP/2."""
    assert avs_simulator_h2c.url.startswith("http://")
    async with httpx.AsyncClient(http1=False, http2=True) as client:
        response = await client.get(avs_simulator_h2c.url + "/ping")
    assert response.status_code == 403
