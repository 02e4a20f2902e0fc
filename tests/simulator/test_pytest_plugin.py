"""The `avs_simulator` fixtures arrive through the pytest11 entry point, as for any user."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

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


def test_registered_plugin_costs_nothing_until_a_fixture_is_used(tmp_path: Path) -> None:
    """A pytest run that uses no fixture of the plugin imports neither the simulator's server
    nor h2, httpx, trustme or numpy: registering the plugin loads only its own small module."""
    (tmp_path / "test_light.py").write_text(
        "import json, sys\n"
        "\n"
        "def test_report():\n"
        "    assert 'avsclient.simulator.pytest_plugin' in sys.modules\n"
        "    heavy = ['avsclient.simulator.server', 'avsclient.simulator.connection',\n"
        "             'h2', 'httpx', 'trustme', 'numpy']\n"
        "    print('LOADED', json.dumps([m for m in heavy if m in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "test_light.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    loaded = [line for line in done.stdout.splitlines() if line.startswith("LOADED ")]
    assert loaded == ["LOADED []"], done.stdout
