"""Defect 1: endpoints from the cloud (System.SetEndpoint).

An endpoint AVS sends must be https, on a host the configuration allows, and validated
before anything is stored or used; a rejected one is answered with ExceptionEncountered and
changes nothing. Above all the bearer token never travels over cleartext.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from .kit import hostile_client, hostile_config, wait_until
from .server import HostileServer

DEFECT_1 = "defect 1: SetEndpoint to http:// or a foreign host is followed, not rejected"


async def _rejects(
    server: HostileServer, h2c_server: HostileServer, endpoint: object, *, system_trust: bool
) -> dict[str, float]:
    """Push SetEndpoint(endpoint); check the rejection; return what was measured."""
    stored: list[str] = []
    config = hostile_config(server, ca_file=None if system_trust else str(server.ca_path))
    async with hostile_client(server, config, endpoint_store=stored.append) as client:
        await client.wait_connected(5)
        url_before = client.manager.url
        pushed_at = time.monotonic()
        await server.push_directive("System", "SetEndpoint", {"endpoint": endpoint})
        # Give the client every chance to misbehave: wait for its answer or for it to leave.
        await wait_until(
            lambda: (
                bool(server.named("System", "ExceptionEncountered"))
                or bool(h2c_server.requests)
                or client.status.name != "CONNECTED"
            ),
            timeout=3.0,
        )
        await asyncio.sleep(0.5)
        leaked = h2c_server.authorized_cleartext()
        figures = {
            "cleartext_authorizations": float(len(leaked)),
            "seconds_to_leak": (leaked[0].at - pushed_at) if leaked else -1.0,
        }
        assert leaked == [], "the bearer token was sent over cleartext"
        report = await server.wait_for_event("System", "ExceptionEncountered", timeout=3)
        assert report.payload["error"]["type"] == "UNEXPECTED_INFORMATION_RECEIVED"
        assert stored == [], "a rejected endpoint must not be persisted"
        assert client.manager.url == url_before
        # Nothing changed: still connected to the same server, and it still works.
        assert client.status.name == "CONNECTED"
        await server.push_directive("Speaker", "SetVolume", {"volume": 42})
        changed = await server.wait_for_event("Speaker", "VolumeChanged", timeout=5)
        assert changed.payload["volume"] == 42
        assert len(server.connections) == 1
    return figures


@pytest.mark.xfail(strict=True, reason=DEFECT_1)
async def test_set_endpoint_to_cleartext_with_the_system_trust_store(
    server: HostileServer, h2c_server: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the system trust store (here: SSL_CERT_FILE naming the test CA), an http://
    endpoint is refused and no `authorization` header ever reaches the h2c server."""
    assert server.ca_path is not None
    monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_path))
    await _rejects(server, h2c_server, h2c_server.url, system_trust=True)


@pytest.mark.xfail(strict=True, reason=DEFECT_1)
async def test_set_endpoint_to_cleartext_with_a_ca_file(
    server: HostileServer, h2c_server: HostileServer
) -> None:
    """With `ca_file` configured, an http:// endpoint is refused instead of breaking every
    later connection attempt."""
    await _rejects(server, h2c_server, h2c_server.url, system_trust=False)


@pytest.mark.xfail(strict=True, reason=DEFECT_1)
async def test_set_endpoint_to_a_host_the_configuration_does_not_allow(
    server: HostileServer, h2c_server: HostileServer
) -> None:
    """An https endpoint on a host nobody configured is refused as well."""
    await _rejects(server, h2c_server, "https://avs.attacker.invalid", system_trust=False)
