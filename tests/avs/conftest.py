"""Fixtures of the AVS session tests: a local AVS simulator over loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from avsclient.simulator import Simulator


@pytest.fixture(params=["tls", "h2c"])
async def sim(request: pytest.FixtureRequest) -> AsyncIterator[Simulator]:
    """A started AVS simulator, once over TLS and once over h2c."""
    async with Simulator(tls=request.param == "tls") as simulator:
        yield simulator
