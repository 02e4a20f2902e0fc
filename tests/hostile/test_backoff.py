"""Defect 4: back-off holds until a connection has proven healthy.

A server that ends every connection right after accepting it (GOAWAY 100 ms after
SynchronizeState, or a connection-level PROTOCOL_ERROR) must see the client's reconnects
slow down along its back-off table instead of restarting from its first entry every time.
"""

from __future__ import annotations

import asyncio

from .kit import hostile_client, hostile_config
from .server import HostileServer

#: Back-off for these tests: 0.1, 0.4, 1.6 s, then 3.2 s for ever (no jitter).
BACKOFF = (0.1, 0.4, 1.6, 3.2)
#: How long connections are counted.
WINDOW = 4.0
#: With the back-off holding, WINDOW allows the first connection plus one per delay that
#: fits (0.1 + 0.4 + 1.6 < 4 < 0.1 + 0.4 + 1.6 + 3.2): 4 connections; 6 leaves room.
MAX_CONNECTIONS = 6


async def _count_connections(server: HostileServer) -> int:
    async with hostile_client(server, hostile_config(server, backoff=BACKOFF)):
        await asyncio.sleep(WINDOW)
    return len(server.connections)


async def test_goaway_after_every_connect_backs_off(server: HostileServer) -> None:
    """GOAWAY 100 ms after each connection is accepted: reconnects follow the back-off."""
    server.behaviour.goaway_after_sync_ms = 100
    connections = await _count_connections(server)
    assert connections <= MAX_CONNECTIONS, f"{connections} connections in {WINDOW} s"


async def test_protocol_error_after_every_connect_backs_off(server: HostileServer) -> None:
    """A connection-level PROTOCOL_ERROR right after each connect: the same bound."""
    server.behaviour.protocol_error_after_sync_ms = 20
    connections = await _count_connections(server)
    assert connections <= MAX_CONNECTIONS, f"{connections} connections in {WINDOW} s"
