"""Fixtures for the client tests: a real Simulator and AVSClients pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest

from avsclient.audio import ArraySource
from avsclient.auth import StaticTokenProvider
from avsclient.client import AVSClient
from avsclient.config import ClientConfig
from avsclient.simulator import Simulator

ClientFactory = Callable[..., AVSClient]

#: The simulator's host names (its certificate's): where System.SetEndpoint may move a client
#: in these tests, instead of the Amazon hosts of the default configuration.
SIMULATOR_HOSTS = ("127.0.0.1", "localhost")


def speech_like(seconds: float = 1.0, rate: int = 16_000) -> np.ndarray[Any, Any]:
    """A 16-bit tone with a little noise: loud enough to count as voice for endpointing."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(7)
    signal = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.02 * rng.standard_normal(t.size)
    return (signal * 32767).astype(np.int16)


def tone_source(seconds: float = 1.0, *, realtime: bool = False) -> ArraySource:
    """An AVS-format source of `seconds` of tone."""
    return ArraySource(speech_like(seconds), 16_000, realtime=realtime)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """A started TLS simulator."""
    async with Simulator(tls=True) as simulator:
        yield simulator


@pytest.fixture
async def make_client(sim: Simulator) -> AsyncIterator[ClientFactory]:
    """Builds started-on-enter clients for `sim`; closes the ones left open."""
    clients: list[AVSClient] = []

    def factory(**kwargs: Any) -> AVSClient:
        token = sim.add_token()
        # AVS (the simulator) may move the client only to the simulator's own host names.
        config = ClientConfig(
            endpoint=sim.url,
            ca_file=sim.ca_file,
            endpoint_hosts=SIMULATOR_HOSTS,
        )
        client = AVSClient(config, StaticTokenProvider(token), **kwargs)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.aclose()
