"""Fixtures of the transport tests: in-process HTTP/2 servers over loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.http2.h2server import H2Server


@pytest.fixture(params=["tls", "h2c"])
async def server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[H2Server]:
    """A default in-process server, once over TLS and once over h2c."""
    async with H2Server(tls=request.param == "tls", tmp_path=tmp_path) as srv:
        yield srv
