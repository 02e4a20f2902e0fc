"""Fixtures: hostile servers on loopback, TLS (a throwaway CA) and cleartext h2c."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .server import HostileServer


@pytest.fixture
async def server() -> AsyncIterator[HostileServer]:
    """A TLS server (ALPN h2), well-behaved until its `behaviour` is changed."""
    async with HostileServer(tls=True) as hostile:
        yield hostile


@pytest.fixture
async def h2c_server() -> AsyncIterator[HostileServer]:
    """A cleartext (h2c) server: any `authorization` it receives travelled in the clear."""
    async with HostileServer(tls=False) as hostile:
        yield hostile
