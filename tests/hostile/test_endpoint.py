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


async def _rejects(
    server: HostileServer, h2c_server: HostileServer, endpoint: object, *, system_trust: bool
) -> dict[str, float]:
    """Push SetEndpoint(endpoint); check the rejection; return what was measured."""
    stored: list[str] = []
    config = hostile_config(server, ca_file=None if system_trust else str(server.ca_file))
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


async def test_set_endpoint_to_cleartext_with_the_system_trust_store(
    server: HostileServer, h2c_server: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the system trust store (here: SSL_CERT_FILE naming the test CA), an http://
    endpoint is refused and no `authorization` header ever reaches the h2c server."""
    assert server.ca_file is not None
    monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_file))
    await _rejects(server, h2c_server, h2c_server.url, system_trust=True)


async def test_set_endpoint_to_cleartext_with_a_ca_file(
    server: HostileServer, h2c_server: HostileServer
) -> None:
    """With `ca_file` configured, an http:// endpoint is refused instead of breaking every
    later connection attempt."""
    await _rejects(server, h2c_server, h2c_server.url, system_trust=False)


async def test_set_endpoint_to_a_host_the_configuration_does_not_allow(
    server: HostileServer, h2c_server: HostileServer
) -> None:
    """An https endpoint on a host nobody configured is refused as well."""
    await _rejects(server, h2c_server, "https://avs.attacker.invalid", system_trust=False)


async def test_a_rejected_endpoint_with_a_ca_file_leaves_later_attempts_working(
    server: HostileServer, h2c_server: HostileServer
) -> None:
    """With `ca_file` set, a refused http:// endpoint does not poison the reconnects: after
    the server drops the link, the client connects again to the same server, over TLS."""
    stored: list[str] = []
    config = hostile_config(server)
    assert config.ca_file is not None
    async with hostile_client(server, config, endpoint_store=stored.append) as client:
        await client.wait_connected(5)
        await server.push_directive("System", "SetEndpoint", {"endpoint": h2c_server.url})
        report = await server.wait_for_event("System", "ExceptionEncountered", timeout=3)
        dropped_at = time.monotonic()
        assert server.drop_connections() == 1
        await server.wait_for_event("System", "SynchronizeState", nth=2, timeout=5)
        await client.wait_connected(5)
        reconnected_after = time.monotonic() - dropped_at
        await server.push_directive("Speaker", "SetVolume", {"volume": 23})
        changed = await server.wait_for_event("Speaker", "VolumeChanged", timeout=5)
        assert client.manager.url == server.url
    assert report.payload["error"]["type"] == "UNEXPECTED_INFORMATION_RECEIVED"
    assert changed.payload["volume"] == 23
    assert stored == []
    assert len(server.connections) == 2
    assert reconnected_after < 3.0
    assert h2c_server.connections == []
    assert all(r.tls for r in server.requests)


#: Spellings of a cleartext endpoint, all on the allowed host 127.0.0.1 (`{port}` is the h2c
#: server's): only the scheme is wrong, and that alone must stop them.
CLEARTEXT = [
    "http://127.0.0.1:{port}",
    "HTTP://127.0.0.1:{port}/",
    "http://127.0.0.1:{port}/v20160207",
    "  https://127.0.0.1:{port}",  # leading spaces: not the URL it seems to be
    "h2c://127.0.0.1:{port}",
]


async def test_the_bearer_token_never_travels_in_cleartext(
    server: HostileServer, h2c_server: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever cleartext spelling SetEndpoint uses, with the system trust store (the
    production default), each is answered with ExceptionEncountered and the h2c server
    never sees a connection, let alone an `authorization` header."""
    assert server.ca_file is not None
    monkeypatch.setenv("SSL_CERT_FILE", str(server.ca_file))
    stored: list[str] = []
    config = hostile_config(server, ca_file=None)
    async with hostile_client(server, config, endpoint_store=stored.append) as client:
        await client.wait_connected(5)
        for nth, spelling in enumerate(CLEARTEXT, start=1):
            endpoint = spelling.format(port=h2c_server.port)
            await server.push_directive("System", "SetEndpoint", {"endpoint": endpoint})
            report = await server.wait_for_event("System", "ExceptionEncountered", nth=nth)
            assert report.payload["error"]["type"] == "UNEXPECTED_INFORMATION_RECEIVED"
            assert endpoint in report.payload["unparsedDirective"]
        await asyncio.sleep(0.3)
        assert client.status.name == "CONNECTED"
        assert client.manager.url == server.url
    assert stored == []
    assert h2c_server.connections == [] and h2c_server.requests == []
    assert len(server.connections) == 1
    assert all(r.tls for r in server.requests)


async def test_an_allowed_https_endpoint_is_followed(server: HostileServer) -> None:
    """The check refuses only what it must: an https endpoint on an allowed host (the same
    server, named `localhost`) is stored and the client moves there."""
    stored: list[str] = []
    config = hostile_config(server, endpoint_hosts=("127.0.0.1", "localhost"))
    moved = f"https://LOCALHOST:{server.port}/"
    async with hostile_client(server, config, endpoint_store=stored.append) as client:
        await client.wait_connected(5)
        await server.push_directive("System", "SetEndpoint", {"endpoint": moved})
        await server.wait_for_event("System", "SynchronizeState", nth=2, timeout=5)
        await client.wait_connected(5)
        assert client.manager.url == moved.rstrip("/")
    assert stored == [moved.rstrip("/")]
    assert server.named("System", "ExceptionEncountered") == []
    assert server.requests[-1].headers[":authority"].lower().startswith("localhost")
