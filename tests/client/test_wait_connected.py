"""`AVSClient.wait_connected` raises what its docstring says."""

from __future__ import annotations

import asyncio
import socket

import pytest

from avsclient.auth import StaticTokenProvider
from avsclient.client import AVSClient
from avsclient.config import ClientConfig
from avsclient.exceptions import ConnectionClosed, ConnectTimeout, TimeoutException
from avsclient.simulator import Simulator


def _closed_port() -> int:
    """A loopback port with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_wait_connected_returns_once_connected(sim: Simulator) -> None:
    """Against a working AVS it returns, and the status is CONNECTED."""
    config = ClientConfig(endpoint=sim.url, ca_file=sim.ca_file)
    async with AVSClient(config, StaticTokenProvider(sim.add_token())) as client:
        await client.wait_connected(10)
        assert client.status.name == "CONNECTED"


async def test_wait_connected_times_out_with_connect_timeout() -> None:
    """Nobody answers: ConnectTimeout (a TimeoutException, not the built-in TimeoutError),
    naming the last failure."""
    config = ClientConfig(endpoint=f"http://127.0.0.1:{_closed_port()}", backoff=(0.01,))
    async with AVSClient(config, StaticTokenProvider("token")) as client:
        with pytest.raises(ConnectTimeout) as info:
            await client.wait_connected(0.3)
        assert isinstance(info.value, TimeoutException)
        assert not isinstance(info.value, TimeoutError)
        assert "not connected" in str(info.value)


async def test_wait_connected_raises_connection_closed_when_closed() -> None:
    """Closing the client while a caller waits ends the wait with ConnectionClosed."""
    config = ClientConfig(endpoint=f"http://127.0.0.1:{_closed_port()}", backoff=(0.01,))
    client = AVSClient(config, StaticTokenProvider("token"))
    await client.start()
    waiter = asyncio.create_task(client.wait_connected(None))
    await asyncio.sleep(0.05)
    await client.aclose()
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(waiter, 5)
    with pytest.raises(ConnectionClosed):
        await client.wait_connected(1)
