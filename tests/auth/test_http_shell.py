"""The httpx shell against a bare HTTP/2 server that misbehaves in ways the simulator does not:
trickling a reply byte by byte, and compressing it although nobody asked."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import pytest

from avsclient.auth import LWAHttpClient, refresh_request
from avsclient.exceptions import AuthError, ResponseTimeout

TOKEN_REPLY = json.dumps(
    {"access_token": "Atza|a", "refresh_token": "Atzr|r", "token_type": "bearer", "expires_in": 60}
).encode()

# (h2 connection, stream id, request headers, flush) -> None: answers one request.
Handler = Callable[
    [h2.connection.H2Connection, int, dict[str, str], Callable[[], Awaitable[None]]],
    Awaitable[None],
]


@dataclass
class BareServer:
    """An h2c server on 127.0.0.1 whose replies come from `handler`."""

    handler: Handler
    url: str = ""
    requests: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
async def bare_server() -> AsyncIterator[Callable[[Handler], Awaitable[BareServer]]]:
    servers: list[asyncio.Server] = []
    tasks: set[asyncio.Task[None]] = set()

    async def start(handler: Handler) -> BareServer:
        bare = BareServer(handler)

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
            conn.initiate_connection()

            async def flush() -> None:
                writer.write(conn.data_to_send())
                await writer.drain()

            await flush()
            headers: dict[int, dict[str, str]] = {}
            try:
                while data := await reader.read(65536):
                    for event in conn.receive_data(data):
                        if isinstance(event, h2.events.RequestReceived):
                            headers[event.stream_id] = {
                                k.decode(): v.decode()
                                for k, v in event.headers  # type: ignore[union-attr]
                            }
                        elif isinstance(event, h2.events.StreamEnded):
                            bare.requests.append(headers[event.stream_id])
                            task = asyncio.create_task(
                                bare.handler(conn, event.stream_id, headers[event.stream_id], flush)
                            )
                            tasks.add(task)
                            task.add_done_callback(tasks.discard)
                    await flush()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        bare.url = f"http://127.0.0.1:{port}"
        return bare

    yield start
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_a_trickling_reply_cannot_outlast_the_request_timeout(
    bare_server: Callable[[Handler], Awaitable[BareServer]],
) -> None:
    """Each byte arrives well within the read timeout, yet the whole reply would take 10 s:
    the request fails with ResponseTimeout after its own timeout."""

    async def trickle(
        conn: h2.connection.H2Connection,
        sid: int,
        _: dict[str, str],
        flush: Callable[[], Awaitable[None]],
    ) -> None:
        conn.send_headers(sid, [(":status", "200"), ("content-type", "application/json")])
        for byte in TOKEN_REPLY:
            conn.send_data(sid, bytes([byte]))
            await flush()
            await asyncio.sleep(10 / len(TOKEN_REPLY))
        conn.end_stream(sid)
        await flush()

    server = await bare_server(trickle)
    async with LWAHttpClient(server.url, timeout=0.5) as http:
        with pytest.raises(ResponseTimeout, match=r"within 0\.5 s"):
            await http.send(refresh_request("Atzr|x", "client"))


async def test_replies_are_requested_uncompressed_and_decoded_if_compressed_anyway(
    bare_server: Callable[[Handler], Awaitable[BareServer]],
) -> None:
    """We ask for identity encoding; a server that gzips regardless is still understood."""

    async def gzipping(
        conn: h2.connection.H2Connection,
        sid: int,
        _: dict[str, str],
        flush: Callable[[], Awaitable[None]],
    ) -> None:
        body = gzip.compress(TOKEN_REPLY)
        conn.send_headers(
            sid,
            [
                (":status", "200"),
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ],
        )
        conn.send_data(sid, body, end_stream=True)
        await flush()

    server = await bare_server(gzipping)
    async with LWAHttpClient(server.url, timeout=5) as http:
        reply = await http.send(refresh_request("Atzr|x", "client"))
    assert reply.status == 200
    assert reply.body == TOKEN_REPLY
    assert server.requests[0]["accept-encoding"] == "identity"


async def test_a_compressed_reply_is_bounded_after_decoding(
    bare_server: Callable[[Handler], Awaitable[BareServer]],
) -> None:
    """A small gzip body that inflates past max_reply_bytes is refused: the limit counts
    decoded bytes."""

    async def bomb(
        conn: h2.connection.H2Connection,
        sid: int,
        _: dict[str, str],
        flush: Callable[[], Awaitable[None]],
    ) -> None:
        body = gzip.compress(b" " * (10 * 1024 * 1024))
        conn.send_headers(sid, [(":status", "200"), ("content-encoding", "gzip")])
        conn.send_data(sid, body, end_stream=True)
        await flush()

    server = await bare_server(bomb)
    async with LWAHttpClient(server.url, timeout=5) as http:
        with pytest.raises(AuthError, match="larger than"):
            await http.send(refresh_request("Atzr|x", "client"))
