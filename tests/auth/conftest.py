"""Fixtures for the auth tests: a fake clock and sleep, and LWA clients for the simulator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from avsclient.auth import LWAHttpClient
from avsclient.simulator import Simulator


class FakeTime:
    """A clock that only moves when `sleep` is awaited; records every requested sleep."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@pytest.fixture
def fake_time() -> FakeTime:
    """A fresh fake clock."""
    return FakeTime()


@pytest.fixture
async def sim_http(avs_simulator: Simulator) -> AsyncIterator[LWAHttpClient]:
    """An LWA client (HTTP/2 over TLS) pointed at the simulator, trusting its CA."""
    assert avs_simulator.ca_file is not None
    async with LWAHttpClient(
        avs_simulator.url, ca_file=avs_simulator.ca_file, timeout=5
    ) as http:
        yield http
