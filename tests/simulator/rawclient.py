"""A small HTTP/2 client on raw h2 and asyncio streams, for driving the simulator frame by frame.

Independent of avsclient's own transport: tests need to see GOAWAY, RST_STREAM, PING ACKs and
partial responses exactly as the simulator sends them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

from avsclient.simulator import Simulator

READ_SIZE = 256 * 1024


class _GoawayTolerantConnection(h2.connection.H2Connection):
    """h2 refuses to send anything after receiving GOAWAY, even on the streams GOAWAY lets
    finish (RFC 9113 6.8). The tests need to finish in-flight streams, and to play a client
    that ignores GOAWAY, so the state machine is kept open after recording the event."""

    def _receive_goaway_frame(self, frame):  # type: ignore[no-untyped-def]
        state = self.state_machine.state
        frames, events = super()._receive_goaway_frame(frame)
        self.state_machine.state = state
        return frames, events


@dataclass
class StreamState:
    headers: asyncio.Future[dict[str, str]]
    ended: asyncio.Future[None]
    data: bytearray = field(default_factory=bytearray)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    reset_code: int | None = None


def parse_related(body: bytes, boundary: str) -> list[tuple[dict[str, str], bytes]]:
    """Split a complete or partial multipart/related body into (headers, content) parts.

    Only parts followed by a complete delimiter line are returned; raises ValueError on a
    delimiter followed by anything but CRLF or "--".
    """
    dash = b"--" + boundary.encode()
    if not body.startswith(dash + b"\r\n"):
        return []
    parts = []
    pos = len(dash) + 2
    while True:
        end = body.find(b"\r\n" + dash, pos)
        if end < 0 or len(body) < end + 2 + len(dash) + 2:
            return parts
        tail = body[end + 2 + len(dash) : end + 4 + len(dash)]
        if tail not in (b"\r\n", b"--"):
            raise ValueError(f"bad delimiter tail {tail!r}")
        head, _, content = body[pos:end].partition(b"\r\n\r\n")
        headers = {}
        for line in head.split(b"\r\n"):
            if line:
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
        parts.append((headers, content))
        if tail == b"--":
            return parts
        pos = end + 4 + len(dash)


class RawClient:
    """One HTTP/2 client connection with a reader task that records everything."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = _GoawayTolerantConnection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.streams: dict[int, StreamState] = {}
        self.goaway: asyncio.Future[h2.events.ConnectionTerminated] = (
            asyncio.get_running_loop().create_future()
        )
        self.closed = asyncio.Event()
        self.ping_acks: list[bytes] = []
        self.ping_acked = asyncio.Event()
        self.window = asyncio.Event()
        self.conn.initiate_connection()
        self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 8 * 1024 * 1024})
        self.conn.increment_flow_control_window(16 * 1024 * 1024)
        self.flush()
        self.task = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def connect(cls, sim: Simulator, *, alpn: list[str] | None = None) -> RawClient:
        ctx = None
        if sim.tls:
            ctx = sim.ssl_context()
            if alpn is not None:
                ctx.set_alpn_protocols(alpn)
        reader, writer = await asyncio.open_connection(sim.host, sim.port, ssl=ctx)
        return cls(reader, writer)

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)

    async def _read(self) -> None:
        try:
            while True:
                data = await self.reader.read(READ_SIZE)
                if not data:
                    break
                try:
                    events = self.conn.receive_data(data)
                except h2.exceptions.ProtocolError:
                    break
                for event in events:
                    self._handle(event)
                self.flush()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            self.closed.set()
            for state in self.streams.values():
                state.changed.set()
                if not state.headers.done():
                    state.headers.cancel()
                if not state.ended.done():
                    state.ended.cancel()

    def _handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            self.streams[event.stream_id].headers.set_result(
                {str(k): str(v) for k, v in event.headers or ()}
            )
        elif isinstance(event, h2.events.DataReceived):
            state = self.streams[event.stream_id]
            state.data += event.data
            state.changed.set()
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            state = self.streams[event.stream_id]
            state.ended.set_result(None)
            state.changed.set()
        elif isinstance(event, h2.events.StreamReset):
            state = self.streams[event.stream_id]
            state.reset_code = event.error_code
            state.changed.set()
            for fut in (state.headers, state.ended):
                if not fut.done():
                    fut.cancel()
        elif isinstance(event, h2.events.ConnectionTerminated):
            if not self.goaway.done():
                self.goaway.set_result(event)
        elif isinstance(event, h2.events.PingAckReceived):
            self.ping_acks.append(event.ping_data)
            self.ping_acked.set()
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self.window.set()

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        *,
        end: bool = True,
    ) -> int:
        sid = self.conn.get_next_available_stream_id()
        loop = asyncio.get_running_loop()
        self.streams[sid] = StreamState(loop.create_future(), loop.create_future())
        all_headers = [
            (":method", method),
            (":scheme", "https"),
            (":authority", "localhost"),
            (":path", path),
            *(headers or {}).items(),
        ]
        self.conn.send_headers(sid, all_headers, end_stream=end)
        self.flush()
        return sid

    async def send(self, sid: int, data: bytes, *, end: bool = False) -> None:
        offset = 0
        while offset < len(data):
            size = min(
                self.conn.local_flow_control_window(sid),
                self.conn.max_outbound_frame_size,
                len(data) - offset,
            )
            if size <= 0:
                self.window.clear()
                await self.window.wait()
                continue
            self.conn.send_data(sid, data[offset : offset + size])
            offset += size
            self.flush()
            await self.writer.drain()
        if end:
            self.conn.end_stream(sid)
            self.flush()

    async def response(self, sid: int, timeout: float = 5.0) -> dict[str, str]:
        async with asyncio.timeout(timeout):
            return await self.streams[sid].headers

    async def body(self, sid: int, timeout: float = 5.0) -> bytes:
        async with asyncio.timeout(timeout):
            await self.streams[sid].ended
        return bytes(self.streams[sid].data)

    async def wait_data(self, sid: int, needle: bytes, timeout: float = 5.0) -> bytes:
        """Wait until the stream's body so far contains `needle`; return the body so far."""
        state = self.streams[sid]
        async with asyncio.timeout(timeout):
            while needle not in state.data:
                if self.closed.is_set() or state.reset_code is not None:
                    raise AssertionError(f"stream {sid} ended without {needle!r}")
                state.changed.clear()
                await state.changed.wait()
        return bytes(state.data)

    async def wait_reset(self, sid: int, timeout: float = 5.0) -> int:
        state = self.streams[sid]
        async with asyncio.timeout(timeout):
            while state.reset_code is None:
                state.changed.clear()
                await state.changed.wait()
        return state.reset_code

    def ping(self, data: bytes = b"12345678") -> None:
        self.ping_acked.clear()
        self.conn.ping(data)
        self.flush()

    async def aclose(self) -> None:
        if not self.writer.is_closing():
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self.conn.close_connection()
                self.flush()
            self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
