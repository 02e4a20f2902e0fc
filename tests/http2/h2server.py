"""An in-process HTTP/2 server on asyncio and h2 for the transport tests (TLS or h2c).

Routes (the query string carries parameters):
- `GET /download?size=N`: N bytes of `payload(N)`, sent within the flow-control windows.
- `POST /upload`: reads the body, answers 200 with `{"size": n, "sha256": hex}`.
- `POST /echo`: answers 200 at once, then sends back every chunk as it arrives.
- `GET /hold`: answers 200 once `server.release` is set.
- `GET /silent`: never answers. `GET /stall`: sends headers, then nothing.
- `GET /reset?code=N`: RST_STREAM with error code N.
- `GET /goaway`: GOAWAY (last stream = this one), then a 200 with a small body.
- `GET /drop`: closes the TCP connection abruptly.
- `GET /bad-status`: a response whose `:status` is not three digits.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import h2.config
import h2.events
import h2.settings
import trustme
from hyperframe.frame import HeadersFrame

from avsclient.http2 import H2Connection

if TYPE_CHECKING:
    from pathlib import Path

    from hyperframe.frame import Frame

_BLOCK = hashlib.sha256(b"avsclient").digest() * 2048  # 64 KiB of fixed, non-trivial bytes


def payload(size: int) -> bytes:
    """The deterministic body `/download?size=N` serves."""
    whole, rest = divmod(size, len(_BLOCK))
    return _BLOCK * whole + _BLOCK[:rest]


class _ServerH2(H2Connection):
    """Server side; can stop answering PINGs (a dead peer)."""

    ignore_pings = False

    def _receive_ping_frame(self, frame: Any) -> tuple[list[Frame], list[h2.events.Event]]:
        if self.ignore_pings:
            return [], []
        return super()._receive_ping_frame(frame)


@dataclass
class _Stream:
    method: str
    path: str
    query: dict[str, list[str]]
    body: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None


class _ServerConnection:
    def __init__(
        self, server: H2Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ):
        self.server = server
        self.reader = reader
        self.writer = writer
        config = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        self.h2 = _ServerH2(config)
        self.h2.ignore_pings = server.ignore_pings
        self.streams: dict[int, _Stream] = {}
        self.window_changed = asyncio.Event()
        self.closed = False
        self.unacked: dict[int, int] = {}  # flow-controlled bytes received in this read

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and not self.writer.transport.is_closing():
            self.writer.write(data)

    async def run(self) -> None:
        h2c = self.h2
        h2c.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.server.max_concurrent_streams,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: self.server.stream_window,
            },
        )
        h2c.initiate_connection()
        if self.server.connection_window > 65_535:
            h2c.increment_flow_control_window(self.server.connection_window - 65_535)
        self.flush()
        try:
            while True:
                data = await self.reader.read(256 * 1024)
                if not data:
                    break
                for event in h2c.receive_data(data):
                    self.handle(event)
                for stream_id, length in self.unacked.items():  # one call per stream per read
                    h2c.acknowledge_received_data(length, stream_id)
                self.unacked.clear()
                self.flush()
        except (OSError, ssl.SSLError, h2.exceptions.ProtocolError):
            pass
        finally:
            self.closed = True
            for stream in self.streams.values():
                if stream.task is not None:
                    stream.task.cancel()
            self.writer.close()

    def handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            assert event.stream_id is not None
            assert event.headers is not None
            headers = dict(event.headers)
            target = urlsplit(str(headers[":path"]))
            stream = _Stream(str(headers[":method"]), target.path, parse_qs(target.query))
            self.streams[event.stream_id] = stream
            self.server.requests.append((stream.method, stream.path))
            stream.task = asyncio.create_task(self.respond(event.stream_id, stream))
        elif isinstance(event, h2.events.DataReceived):
            stream = self.streams.get(event.stream_id or 0)
            assert event.data is not None
            if stream is not None:
                stream.body.put_nowait(event.data)
            if self.server.ack_uploads and event.flow_controlled_length:
                sid = event.stream_id or 0
                self.unacked[sid] = self.unacked.get(sid, 0) + event.flow_controlled_length
        elif isinstance(event, h2.events.StreamEnded):
            stream = self.streams.get(event.stream_id or 0)
            if stream is not None:
                stream.body.put_nowait(None)
        elif isinstance(event, h2.events.StreamReset):
            stream = self.streams.pop(event.stream_id or 0, None)
            self.server.resets.append((event.stream_id, event.error_code))
            if stream is not None and stream.task is not None:
                stream.task.cancel()
        elif isinstance(event, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
            self.window_changed.set()

    async def send_headers(
        self, stream_id: int, status: str, end: bool = False, **extra: str
    ) -> None:
        self.h2.send_headers(stream_id, [(":status", status), *extra.items()], end_stream=end)
        self.flush()

    async def send(self, stream_id: int, data: bytes, end: bool = True) -> None:
        """Send within the windows, counting what left in `server.sent`."""
        view = memoryview(data)
        while view:
            window = self.h2.local_flow_control_window(stream_id)
            if window <= 0:
                self.window_changed.clear()
                await self.window_changed.wait()
                continue
            # Queue frames while the window lasts, up to 256 KiB, and write them at once: one
            # TLS pass and one send() per batch rather than per frame.
            batch = min(window, len(view), 256 * 1024)
            frame_size = self.h2.max_outbound_frame_size
            for offset in range(0, batch, frame_size):
                self.h2.send_data(stream_id, view[offset : min(batch, offset + frame_size)])
            self.server.sent[stream_id] = self.server.sent.get(stream_id, 0) + batch
            view = view[batch:]
            self.flush()
            await self.writer.drain()
        if end:
            self.h2.end_stream(stream_id)
            self.flush()

    async def read_body(self, stream: _Stream) -> bytes:
        parts = []
        while (chunk := await stream.body.get()) is not None:
            parts.append(chunk)
        return b"".join(parts)

    async def respond(self, stream_id: int, stream: _Stream) -> None:
        # The client may go away or reset the stream at any point.
        with contextlib.suppress(
            OSError, ssl.SSLError, h2.exceptions.ProtocolError, asyncio.CancelledError
        ):
            await self._respond(stream_id, stream)

    async def _respond(self, stream_id: int, stream: _Stream) -> None:
        path = stream.path
        server = self.server
        if path == "/download":
            size = int(stream.query["size"][0])
            await self.read_body(stream)
            await self.send_headers(stream_id, "200", **{"content-length": str(size)})
            await self.send(stream_id, payload(size))
        elif path == "/upload":
            digest = hashlib.sha256()
            size = 0
            while (chunk := await stream.body.get()) is not None:
                digest.update(chunk)
                size += len(chunk)
                server.upload_chunks.append(len(chunk))
            body = json.dumps({"size": size, "sha256": digest.hexdigest()}).encode()
            await self.send_headers(stream_id, "200", **{"content-type": "application/json"})
            await self.send(stream_id, body)
        elif path == "/echo":
            await self.send_headers(stream_id, "200")
            while (chunk := await stream.body.get()) is not None:
                await self.send(stream_id, chunk, end=False)
            self.h2.end_stream(stream_id)
            self.flush()
        elif path == "/hold":
            await self.read_body(stream)
            await server.release.wait()
            await self.send_headers(stream_id, "200")
            await self.send(stream_id, b"released")
        elif path == "/silent":
            await asyncio.Event().wait()
        elif path == "/stall":
            await self.send_headers(stream_id, "200")
            await asyncio.Event().wait()
        elif path == "/reset":
            self.h2.reset_stream(stream_id, int(stream.query["code"][0]))
            self.flush()
        elif path == "/goaway":
            self.h2.announce_goaway(last_stream_id=stream_id)
            self.flush()
            server.goaway_sent.set()
            await server.release.wait()
            await self.send_headers(stream_id, "200")
            await self.send(stream_id, b"finished after GOAWAY")
        elif path == "/drop":
            self.writer.transport.abort()
        elif path == "/bad-status":
            # h2 validates outbound headers; build the HEADERS frame by hand.
            frame = HeadersFrame(stream_id)
            frame.data = self.h2.encoder.encode([(":status", "2x0")])
            frame.flags.add("END_HEADERS")
            self.writer.write(frame.serialize())
        else:
            await self.send_headers(stream_id, "404", end=True)


class H2Server:
    """An HTTP/2 server on 127.0.0.1 for tests.

    Args:
        tls: serve TLS (a trustme CA; `ca_file` trusts it) or h2c.
        alpn: the ALPN protocols the TLS server accepts.
        max_concurrent_streams: SETTINGS_MAX_CONCURRENT_STREAMS advertised.
        stream_window, connection_window: the server's receive windows.
        ignore_pings: never acknowledge PINGs.
        ack_uploads: hand back flow-control window for request bodies (False: never).
        tmp_path: where to write the CA file.
    """

    def __init__(
        self,
        *,
        tls: bool,
        tmp_path: Path,
        alpn: tuple[str, ...] = ("h2",),
        max_concurrent_streams: int = 100,
        stream_window: int = 4 * 1024 * 1024,
        connection_window: int = 16 * 1024 * 1024,
        ignore_pings: bool = False,
        ack_uploads: bool = True,
    ) -> None:
        self.ack_uploads = ack_uploads
        self.tls = tls
        self.alpn = alpn
        self.max_concurrent_streams = max_concurrent_streams
        self.stream_window = stream_window
        self.connection_window = connection_window
        self.ignore_pings = ignore_pings
        self.ca = trustme.CA()
        self.ca_file = str(tmp_path / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)
        self.port = 0
        self.release = asyncio.Event()
        self.goaway_sent = asyncio.Event()
        self.requests: list[tuple[str, str]] = []
        self.resets: list[tuple[int | None, Any]] = []
        self.sent: dict[int, int] = {}
        self.upload_chunks: list[int] = []
        self.connections: list[_ServerConnection] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        context.set_alpn_protocols(list(self.alpn))
        return context

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.tls and self.alpn == ("http/1.1",):
            writer.close()  # an HTTP/1.1-only server: the client must refuse it after ALPN
            return
        connection = _ServerConnection(self, reader, writer)
        self.connections.append(connection)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await connection.run()
        finally:
            self._tasks.discard(task)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    async def __aenter__(self) -> H2Server:
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", 0, ssl=self._ssl_context()
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for connection in self.connections:
            connection.writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        for connection in self.connections:
            for stream in connection.streams.values():
                if stream.task is not None:
                    stream.task.cancel()
        tasks = [s.task for c in self.connections for s in c.streams.values() if s.task]
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, *tasks, return_exceptions=True)
        await self._server.wait_closed()
