"""The asyncio shell against an in-process h2 server over real loopback sockets."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from unittest import mock

import pytest

from avsclient.exceptions import (
    ALPNError,
    ConnectError,
    ConnectionClosed,
    ConnectionDraining,
    ConnectionLost,
    ConnectTimeout,
    PingTimeout,
    ResponseTimeout,
    StreamInactivityTimeout,
    StreamReset,
)
from avsclient.http2 import ConnectionConfig, HTTP2Connection
from avsclient.http2.events import GoAwayReceived
from tests.http2.h2server import H2Server, payload


def connect(server: H2Server, **kwargs: object) -> HTTP2Connection:
    """A client for `server`, trusting its CA when it serves TLS."""
    if server.tls:
        kwargs.setdefault("ca_file", server.ca_file)
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


async def test_response_overlaps_the_upload(server: H2Server) -> None:
    """The response starts and its body flows while the request body is still being sent."""
    async with connect(server) as conn:
        stream = await conn.open_stream("POST", "/echo", body=None)
        async with stream:
            response = await stream.response()  # before any body byte was sent
            assert response.status == 200
            for i in range(5):
                await stream.send_data(b"frame %d;" % i)
                assert await anext(stream) == b"frame %d;" % i
            await stream.end_stream()
            assert [chunk async for chunk in stream] == []
            assert stream.complete


async def test_flush_writes_at_once_and_back_to_back_chunks_share_a_write(
    server: H2Server,
) -> None:
    """`send_data(flush=True)` reaches the transport before it returns (a microphone frame);
    chunks sent without it go out together on the loop's next turn."""
    async with connect(server) as conn:
        stream = await conn.open_stream("POST", "/echo", body=None)
        async with stream:
            await stream.response()
            assert conn._writer is not None
            transport = conn._writer.transport
            writes: list[int] = []
            original = transport.write

            def spy(data: bytes) -> None:
                writes.append(len(data))
                original(data)

            with mock.patch.object(transport, "write", side_effect=spy):
                await stream.send_data(b"a" * 320, flush=True)
                assert writes == [329]  # one DATA frame, written before send_data returned
                await stream.send_data(b"b" * 320)
                await stream.send_data(b"c" * 320)
                assert writes == [329]
                await asyncio.sleep(0)
                assert writes == [329, 2 * 329]  # two frames, one write
            await stream.end_stream()
            body = b"".join([chunk async for chunk in stream])
            assert body == b"a" * 320 + b"b" * 320 + b"c" * 320


async def test_try_send_data_sends_at_once_or_nothing(server: H2Server) -> None:
    """`try_send_data` writes when the windows take the chunk; otherwise it sends nothing
    (more than the window, an ended body) and `send_data` is the way."""
    async with connect(server) as conn:
        stream = await conn.open_stream("POST", "/echo", body=None)
        async with stream:
            await stream.response()
            assert stream.try_send_data(b"now")
            assert await anext(stream) == b"now"
            window = conn._core.send_window(stream.stream_id)
            assert not stream.try_send_data(bytes(window + 1))
            assert conn._core.send_window(stream.stream_id) == window  # nothing was queued
            await stream.end_stream()
            assert not stream.try_send_data(b"late")
            assert [chunk async for chunk in stream] == []


async def test_open_stream_waits_for_the_server_stream_limit(tmp_path: Path) -> None:
    """With SETTINGS_MAX_CONCURRENT_STREAMS=2 a third request waits instead of failing."""
    async with (
        H2Server(tls=False, tmp_path=tmp_path, max_concurrent_streams=2) as server,
        connect(server) as conn,
    ):
        assert conn.max_concurrent_streams == 2
        held = [await conn.open_stream("GET", "/hold") for _ in range(2)]
        third = asyncio.create_task(conn.open_stream("GET", "/hold"))
        await asyncio.sleep(0.05)
        assert not third.done()
        server.release.set()
        for stream in held:
            async with stream:
                assert await stream.read() == b"released"
        async with await third as stream:
            assert await stream.read() == b"released"


async def test_slow_consumer_throttles_the_server_and_others_keep_flowing(tmp_path: Path) -> None:
    """Unread data is bounded by the stream window; another stream completes meanwhile."""
    window = 256 * 1024
    config = ConnectionConfig(stream_window=window, connection_window=4 * window)
    size = 8 * 1024 * 1024
    async with (
        H2Server(tls=False, tmp_path=tmp_path) as server,
        connect(server, config=config) as conn,
    ):
        slow, _ = await conn.request("GET", f"/download?size={size}")
        async with slow:
            await asyncio.sleep(0.1)  # the server runs ahead as far as it may
            assert server.sent[slow.stream_id] <= window
            # Meanwhile a second download completes in full.
            other, _ = await conn.request("GET", "/download?size=3000000")
            async with other:
                assert len(await other.read()) == 3_000_000
            taken = 0
            digest = hashlib.sha256()
            async for chunk in slow:
                taken += len(chunk)
                digest.update(chunk)
                # The server never gets further ahead than the window plus one update.
                assert server.sent[slow.stream_id] - taken <= window
            assert digest.digest() == hashlib.sha256(payload(size)).digest()


async def test_ping_measures_a_round_trip(server: H2Server) -> None:
    """An acknowledged PING returns its round-trip time."""
    async with connect(server) as conn:
        rtt = await conn.ping()
        assert rtt >= 0


async def test_unanswered_ping_raises_ping_timeout(tmp_path: Path) -> None:
    """A server that ignores PINGs makes ping() raise PingTimeout; the connection stays."""
    async with (
        H2Server(tls=False, tmp_path=tmp_path, ignore_pings=True) as server,
        connect(server) as conn,
    ):
        with pytest.raises(PingTimeout):
            await conn.ping(timeout=0.05)
        stream, response = await conn.request("GET", "/download?size=10")
        async with stream:
            assert response.status == 200


async def test_goaway_lets_in_flight_streams_finish_and_refuses_new_ones(server: H2Server) -> None:
    """After GOAWAY the owner is told, new streams fail, the in-flight stream completes."""
    told: list[GoAwayReceived] = []
    async with connect(server, on_goaway=told.append) as conn:
        stream = await conn.open_stream("GET", "/goaway")
        goaway = await conn.wait_goaway()
        assert goaway.last_stream_id == stream.stream_id
        assert told == [goaway]
        assert not conn.is_open
        with pytest.raises(ConnectionDraining) as info:
            await conn.open_stream("GET", "/download?size=1")
        assert info.value.last_stream_id == stream.stream_id
        server.release.set()
        async with stream:
            assert await stream.read() == b"finished after GOAWAY"


async def test_goaway_refuses_streams_above_last_stream_id(server: H2Server) -> None:
    """A stream the GOAWAY did not cover fails with ConnectionDraining (safe to retry)."""
    async with connect(server) as conn:
        held = await conn.open_stream("GET", "/hold")
        trigger = await conn.open_stream("GET", "/goaway")
        # The GOAWAY names `trigger` as last: `held` (lower id) is covered, a later one is not.
        assert held.stream_id < trigger.stream_id
        await conn.wait_goaway()
        server.release.set()
        async with held, trigger:
            assert await held.read() == b"released"
            assert await trigger.read() == b"finished after GOAWAY"


async def test_rst_stream_fails_only_that_stream(server: H2Server) -> None:
    """RST_STREAM surfaces as StreamReset on its stream; another stream is unaffected."""
    async with connect(server) as conn:
        other = await conn.open_stream("GET", "/hold")
        stream = await conn.open_stream("GET", "/reset?code=11")
        async with stream:
            with pytest.raises(StreamReset) as info:
                await stream.response()
            assert info.value.stream_id == stream.stream_id
            assert info.value.error_code == 11
            with pytest.raises(StreamReset):
                await stream.read()
        server.release.set()
        async with other:
            assert await other.read() == b"released"


async def test_malformed_status_resets_that_stream(server: H2Server) -> None:
    """A response with a malformed :status is a stream error, not a connection error."""
    async with connect(server) as conn:
        stream = await conn.open_stream("GET", "/bad-status")
        async with stream:
            with pytest.raises(StreamReset) as info:
                await stream.response()
            assert info.value.error_code == 1  # PROTOCOL_ERROR
        assert (await conn.ping()) >= 0


async def test_connection_loss_fails_open_streams(server: H2Server) -> None:
    """A dropped TCP connection fails every open stream with ConnectionLost."""
    async with connect(server) as conn:
        waiting = await conn.open_stream("GET", "/hold")
        dropper = await conn.open_stream("GET", "/drop")
        async with waiting, dropper:
            for stream in (waiting, dropper):
                with pytest.raises(ConnectionLost):
                    await stream.response()
        assert isinstance(await conn.wait_closed(), ConnectionLost)
        with pytest.raises(ConnectionLost):
            await conn.ping()


async def test_response_timeout_resets_the_stream(server: H2Server) -> None:
    """No response headers in time raises ResponseTimeout and resets the stream."""
    async with connect(server) as conn:
        stream = await conn.open_stream("GET", "/silent", response_timeout=0.05)
        async with stream:
            with pytest.raises(ResponseTimeout):
                await stream.response()
            with pytest.raises(ResponseTimeout):
                await stream.read()
        async with asyncio.timeout(20):  # until the server has read the RST_STREAM
            while (stream.stream_id, 8) not in server.resets:  # CANCEL
                await asyncio.sleep(0.005)
        assert (await conn.ping()) >= 0


async def test_stream_inactivity_timeout(server: H2Server) -> None:
    """A body that stops flowing raises StreamInactivityTimeout."""
    async with connect(server) as conn:
        stream = await conn.open_stream("GET", "/stall", inactivity_timeout=0.05)
        async with stream:
            assert (await stream.response()).status == 200
            with pytest.raises(StreamInactivityTimeout):
                await anext(stream)


async def test_upload_inactivity_timeout_when_the_server_gives_no_window(tmp_path: Path) -> None:
    """An upload stuck on a closed flow-control window times out."""
    async with (
        H2Server(tls=False, tmp_path=tmp_path, stream_window=1000, ack_uploads=False) as server,
        connect(server) as conn,
    ):
        stream = await conn.open_stream("POST", "/silent", body=None, inactivity_timeout=0.05)
        async with stream:
            with pytest.raises(StreamInactivityTimeout):
                await stream.send_data(b"x" * 5000)


async def test_body_iterator_failure_reaches_the_response_reader(server: H2Server) -> None:
    """An exception from the body iterator resets the stream and is raised to the reader."""

    async def failing() -> AsyncIterator[bytes]:
        yield b"start"
        raise OSError("microphone unplugged")

    async with connect(server) as conn:
        stream = await conn.open_stream("POST", "/upload", body=failing())
        async with stream:
            with pytest.raises(OSError, match="microphone unplugged"):
                await stream.response()
            with pytest.raises(OSError, match="microphone unplugged"):
                await stream.wait_upload()


async def test_cancelled_reader_leaves_the_connection_usable(server: H2Server) -> None:
    """Cancelling a task waiting for a response does not hurt the connection."""
    async with connect(server) as conn:
        stream = await conn.open_stream("GET", "/silent", response_timeout=None)
        waiter = asyncio.create_task(stream.response())
        await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await stream.aclose()
        stream, _response = await conn.request("GET", "/download?size=100")
        async with stream:
            assert len(await stream.read()) == 100


async def test_aclose_fails_pending_streams_with_connection_closed(server: H2Server) -> None:
    """Closing the connection wakes every waiter with ConnectionClosed; tasks are gone."""
    conn = connect(server)
    await conn.connect()
    stream = await conn.open_stream("GET", "/silent", response_timeout=None)
    waiter = asyncio.create_task(stream.response())
    await asyncio.sleep(0.01)
    await conn.aclose()
    with pytest.raises(ConnectionClosed):
        await waiter
    assert await conn.wait_closed() is None
    with pytest.raises(ConnectionClosed):
        await conn.open_stream("GET", "/")
    await conn.aclose()  # idempotent


async def test_cancelled_connect_leaves_nothing_open(tmp_path: Path) -> None:
    """Cancelling connect() mid-way closes the socket (warnings would fail the test)."""
    async with silent_server(tmp_path) as port:
        conn = HTTP2Connection("127.0.0.1", port, tls=False)
        task = asyncio.create_task(conn.connect())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await conn.aclose()


@contextlib.asynccontextmanager
async def silent_server(tmp_path: Path, reply: bytes = b"") -> AsyncIterator[int]:
    """A TCP server on 127.0.0.1 that accepts, optionally writes `reply`, and says no more."""
    writers: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        writer.write(reply)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.transport.abort()
        await server.wait_closed()


async def test_refused_connection_raises_connect_error() -> None:
    """Nothing listening: ConnectError chained from the OSError."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(ConnectError) as info:
        await HTTP2Connection("127.0.0.1", port, tls=False).connect()
    assert isinstance(info.value.__cause__, OSError)


async def test_tcp_connect_timeout() -> None:
    """A listener whose accept queue is full never completes the TCP handshake."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):  # fill the accept queue (its length is backlog + 1 on Linux)
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        await asyncio.sleep(0.05)
        config = ConnectionConfig(connect_timeout=0.2)
        with pytest.raises(ConnectTimeout, match="TCP connect"):
            await HTTP2Connection("127.0.0.1", port, tls=False, config=config).connect()
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


async def test_tls_handshake_timeout(tmp_path: Path) -> None:
    """A server that never answers the ClientHello raises ConnectTimeout."""
    config = ConnectionConfig(tls_handshake_timeout=0.1)
    async with silent_server(tmp_path) as port:
        with pytest.raises(ConnectTimeout, match="TLS handshake"):
            await HTTP2Connection("127.0.0.1", port, config=config).connect()


async def test_no_settings_from_the_server_times_out(tmp_path: Path) -> None:
    """An h2c peer that never sends SETTINGS raises ConnectTimeout."""
    config = ConnectionConfig(connect_timeout=0.1)
    async with silent_server(tmp_path) as port:
        with pytest.raises(ConnectTimeout, match="SETTINGS"):
            await HTTP2Connection("127.0.0.1", port, tls=False, config=config).connect()


async def test_http1_server_over_h2c_raises_connect_error(tmp_path: Path) -> None:
    """An HTTP/1.1 answer to the HTTP/2 preface is not HTTP/2: ConnectError."""
    reply = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n"
    async with silent_server(tmp_path, reply) as port:
        with pytest.raises(ConnectError, match="HTTP/2"):
            await HTTP2Connection("127.0.0.1", port, tls=False).connect()


async def test_alpn_without_h2_raises_alpn_error(tmp_path: Path) -> None:
    """A TLS server offering only http/1.1 makes connect() raise ALPNError."""
    async with H2Server(tls=True, tmp_path=tmp_path, alpn=("http/1.1",)) as server:
        with pytest.raises(ALPNError, match="ALPN chose no protocol, expected 'h2'"):
            await connect(server).connect()


async def test_untrusted_certificate_is_rejected(tmp_path: Path) -> None:
    """Certificates are verified by default: the test CA is not trusted without ca_file."""
    async with H2Server(tls=True, tmp_path=tmp_path) as server:
        conn = HTTP2Connection("127.0.0.1", server.port)
        with pytest.raises(ConnectError, match="certificate") as info:
            await conn.connect()
        assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)


async def test_wrong_hostname_is_rejected(tmp_path: Path) -> None:
    """A trusted certificate for another name is rejected too."""
    async with H2Server(tls=True, tmp_path=tmp_path) as server:
        conn = HTTP2Connection(
            "127.0.0.1", server.port, ca_file=server.ca_file, server_hostname="avs.example"
        )
        with pytest.raises(ConnectError, match="certificate"):
            await conn.connect()


async def test_ssl_context_argument_is_used(tmp_path: Path) -> None:
    """A caller-built SSLContext (trusting the CA, offering h2) is used as given."""
    async with H2Server(tls=True, tmp_path=tmp_path) as server:
        context = ssl.create_default_context(cafile=server.ca_file)
        context.set_alpn_protocols(["h2"])
        async with HTTP2Connection("127.0.0.1", server.port, ssl_context=context) as conn:
            assert (await conn.ping()) >= 0


def test_from_url_rejects_other_schemes() -> None:
    """Only http:// and https:// URLs make connections."""
    with pytest.raises(ValueError, match="URL"):
        HTTP2Connection.from_url("ftp://127.0.0.1:1")
    with pytest.raises(ValueError, match="tls=True"):
        HTTP2Connection("127.0.0.1", 1, tls=False, ca_file="x.pem")


async def test_upload_progress_keeps_the_wait_for_the_response_alive(server: H2Server) -> None:
    """An upload that keeps moving is progress: the response headers, which /upload sends only
    after the whole body, may come later than inactivity_timeout after the stream opened."""
    async with connect(server) as conn:
        stream = await conn.open_stream(
            "POST", "/upload", body=None, response_timeout=None, inactivity_timeout=0.3
        )
        async with stream:

            async def upload() -> None:
                for _ in range(10):  # 10 x 0.06 s: twice the inactivity timeout in all
                    await stream.send_data(b"x" * 100, flush=True)
                    await asyncio.sleep(0.06)
                await stream.end_stream()

            task = asyncio.create_task(upload())
            response = await stream.response()
            await task
            assert response.status == 200
            assert json.loads(await stream.read())["size"] == 1000


async def test_no_progress_either_way_fails_the_wait_for_the_response(server: H2Server) -> None:
    """No response headers and nothing sent for inactivity_timeout: StreamInactivityTimeout,
    even without a response_timeout, and the stream is reset."""
    async with connect(server) as conn:
        stream = await conn.open_stream(
            "POST", "/silent", body=None, response_timeout=None, inactivity_timeout=0.1
        )
        async with stream:
            await stream.send_data(b"x" * 10, flush=True)
            with pytest.raises(StreamInactivityTimeout):
                await stream.response()
            with pytest.raises(StreamInactivityTimeout):
                await stream.send_data(b"more")
