"""The asyncio shell against an in-process h2 server over real loopback sockets."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from avsclient.http2 import ConnectionConfig, HTTP2Connection
from tests.http2.h2server import H2Server, payload


def connect(server: H2Server, **kwargs: object) -> HTTP2Connection:
    """A client for `server`, trusting its CA when it serves TLS."""
    if server.tls:
        kwargs.setdefault("ca_file", server.ca_path)
    return HTTP2Connection.from_url(server.url, **kwargs)


async def chunks(sizes: list[int], gate: asyncio.Event | None = None) -> AsyncIterator[bytes]:
    """Yield chunks of `payload()` with the given sizes, optionally pausing at `gate`."""
    data = payload(sum(sizes))
    offset = 0
    for size in sizes:
        yield data[offset : offset + size]
        offset += size
        await asyncio.sleep(0)


async def test_download_delivers_every_byte(server: H2Server) -> None:
    """A 5 MiB body arrives complete and in order, as chunks."""
    size = 5 * 1024 * 1024 + 17
    async with connect(server) as conn:
        stream, response = await conn.request("GET", f"/download?size={size}")
        async with stream:
            assert response.status == 200
            assert response.header("content-length") == str(size)
            body = await stream.read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(payload(size)).digest()


async def test_upload_streams_chunks_without_joining(server: H2Server) -> None:
    """Chunks from an async iterator reach the server in order; large ones are split."""
    sizes = [320] * 50 + [100_000, 70_000, 1]
    async with connect(server) as conn:
        stream, response = await conn.request("POST", "/upload", body=chunks(sizes))
        async with stream:
            assert response.status == 200
            result = json.loads(await stream.read())
    expected = payload(sum(sizes))
    assert result == {"size": len(expected), "sha256": hashlib.sha256(expected).hexdigest()}
    # 320-byte audio frames travel as they came; nothing bigger than a frame was sent.
    assert server.upload_chunks[:50] == [320] * 50
    assert max(server.upload_chunks) <= 16384
