"""One HTTP/2 server connection of the simulator: an asyncio protocol driving a server-side h2.

Every read goes straight into h2 (asyncio hands over up to 256 KiB per read) and received data is
acknowledged within the same read, one acknowledgement per stream per read, so the client's
windows stay open. Bodies go out in frames that fit the stream and connection windows and the
peer's frame size, waiting for WINDOW_UPDATE and for the socket buffer to drain; all writes
happen on the event loop thread through `_flush()`, which a body's frames share in batches of
`_WRITE_BATCH` bytes (one TLS pass and one send() per batch rather than per frame).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import secrets
import ssl
import urllib.parse
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import replace
from typing import Any, Protocol

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from hyperframe.frame import GoAwayFrame

from avsclient.exceptions import ConnectionLost
from avsclient.http2 import H2Connection
from avsclient.simulator.config import SimulatorConfig
from avsclient.simulator.discovery import CAPABILITIES_API_PATH, CapabilitiesApiService
from avsclient.simulator.faults import Faults
from avsclient.simulator.gateway import GatewayReply, GatewayService
from avsclient.simulator.gateway import route as gateway_route
from avsclient.simulator.lwa import LWAService
from avsclient.simulator.mime import (
    RelatedWriter,
    UploadError,
    UploadParser,
    avs_exception_body,
    parse_content_type,
)
from avsclient.simulator.scenarios import ReceivedEvent, Script, ScriptedReply, check_wake_word

__all__: list[str] = []


class SimulatorHost(Protocol):
    """What a connection uses of the simulator that owns it (`Simulator`, which imports this
    module): its configuration, script, faults and services, and the hooks it reports to."""

    config: SimulatorConfig
    script: Script
    faults: Faults
    lwa: LWAService
    gateway: GatewayService
    capabilities_api: CapabilitiesApiService
    _tasks: set[asyncio.Task[None]]

    def token_accepted(self, token: str) -> bool: ...

    async def push_directive(
        self,
        message: Mapping[str, Any],
        attachments: Mapping[str, bytes] | None = None,
        *,
        timeout: float = 5.0,
    ) -> int: ...

    def _record_event(self, event: ReceivedEvent) -> None: ...

    def _downchannel_changed(self) -> None: ...

    def _connection_opened(self, conn: Connection) -> None: ...

    def _connection_closed(self, conn: Connection) -> None: ...

    def _directive_chunks(
        self,
        writer: RelatedWriter,
        message: dict[str, Any],
        attachments: Mapping[str, bytes],
        *,
        last: bool,
        corrupt_framing: bool | None = None,
        corrupt_json: bool | None = None,
    ) -> list[bytes]: ...

    def _reply_chunks(self, writer: RelatedWriter, reply: ScriptedReply) -> list[bytes]: ...

logger = logging.getLogger("avsclient.simulator")

DIRECTIVES_PATH = "/v20160207/directives"
EVENTS_PATH = "/v20160207/events"
PING_PATH = "/ping"
_LWA_PATHS = frozenset({"/auth/o2/token", "/auth/o2/create/codepair"})
CODE_PAGE_PATH = "/code"  # the verification page: GET /code?code=USERCODE approves a code
_JSON = "application/json"

#: Body bytes queued in h2 before `send_chunks` writes them out: each write costs a TLS pass
#: and a send() call whatever its size, so writing per 16 KiB frame cost a third of a
#: download's CPU time (benchmarks/bench_transport.py).
_WRITE_BATCH = 256 * 1024


class _ServerH2Connection(H2Connection):
    """h2's connection, able to leave PING frames unanswered (the ignore-pings fault).

    h2 acknowledges every PING inside `_receive_ping_frame` with no public switch, so this
    override drops the ACK frame while the fault is on.
    """

    ignore_pings = False

    def _receive_ping_frame(self, frame: Any) -> Any:
        frames, events = super()._receive_ping_frame(frame)
        if self.ignore_pings:
            frames = []
        return frames, events


class Connection(asyncio.Protocol):
    """The simulator's side of one client connection."""

    def __init__(self, sim: SimulatorHost, connection_id: int) -> None:
        self.sim = sim
        self.connection_id = connection_id
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.downchannel: _Downchannel | None = None
        self.goaway_last_stream: int | None = None
        self._h2: _ServerH2Connection | None = None
        self._streams: dict[int, _Stream] = {}
        self._window_waiters: dict[int, asyncio.Future[None]] = {}
        self._drained: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._unacked: dict[int, int] = {}  # flow-controlled bytes received in this read

    @property
    def h2c(self) -> _ServerH2Connection:
        assert self._h2 is not None
        return self._h2

    # -- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.sim.faults.offline:  # faults.go_offline(): the network is gone
            self.closed = True
            transport.abort()
            return
        ssl_object = transport.get_extra_info("ssl_object")
        if isinstance(ssl_object, ssl.SSLObject) and ssl_object.selected_alpn_protocol() != "h2":
            logger.info("connection %d: ALPN did not select h2; closing", self.connection_id)
            self.closed = True
            transport.abort()
            return
        config = self.sim.config
        transport.set_write_buffer_limits(high=config.write_buffer_high)
        conn = _ServerH2Connection(
            config=h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        conn.initiate_connection()
        conn.update_settings(
            {
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: config.max_concurrent_streams,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: config.initial_window_size,
                h2.settings.SettingCodes.MAX_FRAME_SIZE: config.max_frame_size,
            }
        )
        # h2 raises its inbound frame limit only when the client ACKs these settings, and applies
        # the new limit from the next read on: an ACK and a large DATA frame arriving in one read
        # would fail with FRAME_SIZE_ERROR. Accepting large frames from the start is harmless.
        conn.max_inbound_frame_size = config.max_frame_size
        conn.increment_flow_control_window(config.connection_window_size - 65_535)
        self._h2 = conn
        self.sim._connection_opened(self)
        self._flush()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        conn = self.h2c
        conn.ignore_pings = self.sim.faults.ignoring_pings
        try:
            events = conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            logger.info("connection %d: HTTP/2 protocol error: %s", self.connection_id, exc)
            self._flush()  # h2 queued a GOAWAY
            self.close()
            return
        for event in events:
            handler = _DISPATCH.get(type(event))
            if handler is not None:
                handler(self, event)
        if self._unacked:
            # One acknowledgement per stream per read instead of one per DATA frame.
            for stream_id, length in self._unacked.items():
                conn.acknowledge_received_data(length, stream_id)
            self._unacked.clear()
        self._flush()

    def pause_writing(self) -> None:
        if self._drained is None:
            self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        for waiter in [*self._window_waiters.values(), self._drained]:
            if waiter is not None and not waiter.done():
                waiter.set_exception(ConnectionLost("connection closed"))
                waiter.exception()  # retrieved: nobody may be waiting any more
        self._window_waiters.clear()
        for stream in list(self._streams.values()):
            stream.on_reset()
        self._streams.clear()
        if self.downchannel is not None:
            self.downchannel.close()
        for task in self._tasks:
            task.cancel()
        self.sim._connection_closed(self)

    # -- h2 events -----------------------------------------------------------------------

    def _on_request(self, event: h2.events.RequestReceived) -> None:
        sid = event.stream_id
        headers = {str(k).lower(): str(v) for k, v in event.headers or ()}
        if self.goaway_last_stream is not None and sid > self.goaway_last_stream:
            self.h2c.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
            return
        method = headers.get(":method", "")
        path = urllib.parse.urlsplit(headers.get(":path", "")).path
        if path.lower() in _LWA_PATHS:
            self._streams[sid] = _LWAStream(self, sid, headers, path)
        elif path == EVENTS_PATH:
            self._streams[sid] = _EventStream(self, sid, headers)
        elif gateway_route(path) is not None:
            self._streams[sid] = _GatewayStream(self, sid, headers, path)
        elif path == CAPABILITIES_API_PATH:
            self._streams[sid] = _CapabilitiesStream(self, sid, headers, path)
        elif path == DIRECTIVES_PATH:
            self._streams[sid] = _DownchannelRequest(self, sid, headers)
        elif path == PING_PATH:
            self._streams[sid] = _PingStream(self, sid, headers)
        elif path == CODE_PAGE_PATH:
            self._streams[sid] = _CodePageStream(self, sid, headers)
        else:
            self._streams[sid] = _Stream(self, sid, headers)
            self.respond_error(sid, 404, f"no such path: {path}")
            return
        posts = path == EVENTS_PATH or path.lower() in _LWA_PATHS or gateway_route(path) is not None
        expected = "PUT" if path == CAPABILITIES_API_PATH else "POST" if posts else "GET"
        if method != expected:
            self.respond_error(sid, 405, f"{path} takes {expected}, not {method}")
            return
        self._streams[sid].start()

    def _on_data(self, event: h2.events.DataReceived) -> None:
        # Acknowledged at the end of this read (data_received): the simulator never lets a
        # client stall on flow control.
        if event.flow_controlled_length:
            unacked = self._unacked
            unacked[event.stream_id] = (
                unacked.get(event.stream_id, 0) + event.flow_controlled_length
            )
        stream = self._streams.get(event.stream_id)
        if stream is not None and event.data:
            stream.on_data(event.data)

    def _on_stream_ended(self, event: h2.events.StreamEnded) -> None:
        stream = self._streams.get(event.stream_id)
        if stream is not None:
            stream.on_end()

    def _on_stream_reset(self, event: h2.events.StreamReset) -> None:
        stream = self._streams.pop(event.stream_id, None)
        if stream is not None:
            stream.on_reset()
        self._wake(event.stream_id)

    def _on_window_updated(self, event: h2.events.WindowUpdated) -> None:
        if event.stream_id:
            self._wake(event.stream_id)
        else:
            self._wake_all()

    def _on_settings(self, event: h2.events.RemoteSettingsChanged) -> None:
        self._wake_all()

    def _on_terminated(self, event: h2.events.ConnectionTerminated) -> None:
        self._flush()
        self.close()

    # -- writing -------------------------------------------------------------------------

    def _flush(self) -> None:
        if self._h2 is None or self.transport is None:
            return
        data = self._h2.data_to_send()
        if data and not self.closed:
            self.transport.write(data)

    def _wake(self, stream_id: int) -> None:
        waiter = self._window_waiters.pop(stream_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_all(self) -> None:
        for sid in list(self._window_waiters):
            self._wake(sid)

    async def send_chunks(self, stream_id: int, chunks: Iterable[bytes], *, end: bool) -> None:
        """Send body chunks on a stream within flow control; end the stream if `end`.

        Raises:
            ConnectionLost: the connection closed.
            h2.exceptions.StreamClosedError: the client reset the stream.
        """
        conn = self.h2c
        queued = 0  # bytes queued in h2 and not yet written
        for chunk in chunks:
            view = memoryview(chunk)  # frames are slices of the chunk, not copies
            offset, length = 0, len(view)
            while offset < length:
                if self.closed:
                    raise ConnectionLost("connection closed")
                if self._drained is not None:
                    await self._drained
                size = min(
                    conn.local_flow_control_window(stream_id),
                    conn.max_outbound_frame_size,
                    length - offset,
                )
                if size <= 0:
                    self._flush()  # before waiting, write what is queued
                    queued = 0
                    waiter = asyncio.get_running_loop().create_future()
                    self._window_waiters[stream_id] = waiter
                    await waiter
                    continue
                conn.send_data(stream_id, view[offset : offset + size])
                offset += size
                queued += size
                if queued >= _WRITE_BATCH:
                    self._flush()
                    queued = 0
        self._flush()
        if end:
            if self.closed:
                raise ConnectionLost("connection closed")
            conn.end_stream(stream_id)
            self._flush()

    def send_headers(
        self, stream_id: int, status: int, headers: list[tuple[str, str]], *, end: bool
    ) -> None:
        """Send response headers (with an `x-amzn-requestid`, as AVS does)."""
        if self.closed:
            return
        all_headers = [
            (":status", str(status)),
            ("x-amzn-requestid", secrets.token_hex(16)),
            *headers,
        ]
        self.h2c.send_headers(stream_id, all_headers, end_stream=end)
        self._flush()

    def respond(self, stream_id: int, status: int, body: bytes, content_type: str) -> None:
        """Send a complete small response (headers now, body within flow control)."""
        if not body:
            self.send_headers(stream_id, status, [], end=True)
            self.finish(stream_id)
            return
        headers = [("content-type", content_type), ("content-length", str(len(body)))]
        self.send_headers(stream_id, status, headers, end=False)
        self.spawn(self._send_and_finish(stream_id, body))

    def respond_error(self, stream_id: int, status: int, description: str | None) -> None:
        """Answer with an AVS JSON exception body (avs-protocol.md 4.1)."""
        self.respond(stream_id, status, avs_exception_body(status, description), _JSON)

    async def _send_and_finish(self, stream_id: int, body: bytes) -> None:
        with contextlib.suppress(h2.exceptions.StreamClosedError, ConnectionLost):
            await self.send_chunks(stream_id, [body], end=True)
        self.finish(stream_id)

    def finish(self, stream_id: int) -> None:
        """Forget a stream once the response is complete (its upload may still be read)."""
        stream = self._streams.get(stream_id)
        if stream is not None:
            stream.responded = True

    def reset(self, stream_id: int, error_code: int) -> None:
        """RST_STREAM one stream."""
        if self.closed:
            return
        with contextlib.suppress(h2.exceptions.StreamClosedError):
            self.h2c.reset_stream(stream_id, error_code)
        self._flush()
        stream = self._streams.pop(stream_id, None)
        if stream is not None:
            stream.on_reset()
        self._wake(stream_id)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run a task owned by this connection (cancelled when the connection closes)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        self.sim._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self.sim._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "connection %d: task failed", self.connection_id, exc_info=task.exception()
            )

    # -- faults --------------------------------------------------------------------------

    def goaway(self, error_code: int, close_after: float | None) -> None:
        """Send GOAWAY but keep serving the streams already open (RFC 9113 6.8).

        h2's `close_connection()` moves its state machine to CLOSED, after which it rejects
        every frame of the streams still open; a graceful GOAWAY therefore goes out as a raw
        frame, and `_on_request` refuses the streams above `last_stream_id`.
        """
        if self.closed or self.goaway_last_stream is not None:
            return
        self._flush()
        last = self.h2c.highest_inbound_stream_id
        frame = GoAwayFrame(0)
        frame.last_stream_id = last
        frame.error_code = error_code
        assert self.transport is not None
        self.transport.write(frame.serialize())
        self.goaway_last_stream = last
        if close_after is not None:
            asyncio.get_running_loop().call_later(close_after, self.close)

    def close(self) -> None:
        """Close the connection (after sending what h2 has queued)."""
        if self.transport is not None and not self.transport.is_closing():
            self._flush()
            self.transport.close()

    def abort(self) -> None:
        """Drop the TCP connection at once."""
        if self.transport is not None:
            self.transport.abort()

    def authorized(self, headers: dict[str, str]) -> bool:
        """True if the request carries a bearer token the simulator accepts."""
        scheme, _, token = headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and self.sim.token_accepted(token.strip())


# -- streams ------------------------------------------------------------------------------


class _Stream:
    """A request stream; the base class answers nothing and ignores the body."""

    def __init__(self, conn: Connection, stream_id: int, headers: dict[str, str]) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self.headers = headers
        self.responded = False

    def start(self) -> None:
        """The request headers are valid for this route: begin."""

    def on_data(self, data: bytes) -> None:
        """Body bytes arrived."""

    def on_end(self) -> None:
        """The request body ended."""

    def on_reset(self) -> None:
        """The stream was reset or the connection closed."""


class _PingStream(_Stream):
    def start(self) -> None:
        if not self.conn.authorized(self.headers):
            self.conn.respond_error(self.stream_id, 403, "invalid or missing access token")
        elif not self.conn.sim.faults.ignoring_pings:
            delay = self.conn.sim.faults.response_delay
            if delay:
                self.conn.spawn(self._answer_later(delay))
            else:
                self.conn.respond(self.stream_id, 204, b"", _JSON)

    async def _answer_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self.conn.respond(self.stream_id, 204, b"", _JSON)


class _CodePageStream(_Stream):
    """GET /code[?code=USERCODE]: the verification page, where the simulated user enters a
    code (`LWAService.enter_code`); answered in plain text."""

    def start(self) -> None:
        query = urllib.parse.urlsplit(self.headers.get(":path", "")).query
        codes = urllib.parse.parse_qs(query).get("code", [])
        status, text = self.conn.sim.lwa.enter_code(codes[0] if codes else None)
        self.conn.respond(self.stream_id, status, text.encode(), "text/plain; charset=utf-8")


class _LWAStream(_Stream):
    """POST /auth/o2/token and /auth/O2/create/codepair, answered by `sim.lwa`."""

    def __init__(
        self, conn: Connection, stream_id: int, headers: dict[str, str], path: str
    ) -> None:
        super().__init__(conn, stream_id, headers)
        self.path = path
        self.body = bytearray()
        self.failed = False

    def _fail(self, description: str) -> None:
        body = json.dumps({"error": "invalid_request", "error_description": description})
        self.conn.respond(self.stream_id, 400, body.encode(), _JSON)
        self.failed = True

    def start(self) -> None:
        media_type, _ = parse_content_type(self.headers.get("content-type", ""))
        if media_type != "application/x-www-form-urlencoded":
            self._fail("Content-Type must be application/x-www-form-urlencoded")

    def on_data(self, data: bytes) -> None:
        if self.failed:
            return
        self.body += data
        if len(self.body) > self.conn.sim.config.max_form_bytes:
            self._fail("form body too large")

    def on_end(self) -> None:
        if self.failed:
            return
        try:
            pairs = urllib.parse.parse_qsl(
                self.body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(self.body)
            )
        except (UnicodeDecodeError, ValueError) as exc:
            self._fail(f"malformed form body: {exc}")
            return
        lwa = self.conn.sim.lwa
        reply = lwa.handle(self.path, dict(pairs), lwa.clock())
        self.conn.spawn(self._answer(reply.status, reply.body, reply.delay, reply.drop))

    async def _answer(self, status: int, body: bytes, delay: float, drop: bool) -> None:
        if delay:
            await asyncio.sleep(delay)
        if drop:
            self.conn.abort()
            return
        self.conn.respond(self.stream_id, status, body, "application/json;charset=UTF-8")


class _GatewayStream(_LWAStream):
    """POST /v3/events and /v1/skillmessages/users/{userId}, answered by `sim.gateway`."""

    def start(self) -> None:
        """The gateway checks headers and body together once the body is complete."""

    def on_data(self, data: bytes) -> None:
        # Keep one byte past the limit: enough for the gateway to answer 413.
        room = self.conn.sim.gateway.max_body_bytes + 1 - len(self.body)
        if room > 0:
            self.body += data[:room]

    def on_end(self) -> None:
        reply = self.conn.sim.gateway.handle(self.path, self.headers, bytes(self.body))
        self.conn.spawn(self._reply(reply))

    async def _reply(self, reply: GatewayReply) -> None:
        if reply.delay:
            await asyncio.sleep(reply.delay)
        conn, sid, extra = self.conn, self.stream_id, list(reply.headers)
        if reply.drop:
            conn.abort()
        elif not reply.body:
            conn.send_headers(sid, reply.status, extra, end=True)
            conn.finish(sid)
        else:
            extra += [("content-type", _JSON), ("content-length", str(len(reply.body)))]
            conn.send_headers(sid, reply.status, extra, end=False)
            await conn._send_and_finish(sid, reply.body)


class _CapabilitiesStream(_GatewayStream):
    """PUT /v1/devices/@self/capabilities (the legacy Capabilities API), answered by
    `sim.capabilities_api` once the body is complete."""

    def on_data(self, data: bytes) -> None:
        room = 256 * 1024 + 1 - len(self.body)  # one byte past the limit: enough to refuse
        if room > 0:
            self.body += data[:room]

    def on_end(self) -> None:
        status, body = self.conn.sim.capabilities_api.handle(self.headers, bytes(self.body))
        self.conn.respond(self.stream_id, status, body, _JSON)


class _Downchannel:
    """An open downchannel: a never-ending multipart/related body fed from a bounded queue."""

    def __init__(self, conn: Connection, stream_id: int) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self.writer = RelatedWriter()
        self.queue: asyncio.Queue[tuple[list[bytes], asyncio.Future[None]]] = asyncio.Queue(
            conn.sim.config.downchannel_queue
        )
        self.open = True
        self.task = conn.spawn(self._run())

    async def _run(self) -> None:
        while True:
            chunks, done = await self.queue.get()
            try:
                await self.conn.send_chunks(self.stream_id, chunks, end=False)
            except (h2.exceptions.StreamClosedError, ConnectionLost) as exc:
                if not done.done():
                    done.set_exception(ConnectionLost(f"downchannel closed: {exc}"))
                self.close()
                return
            if not done.done():
                done.set_result(None)

    async def push(self, chunks: list[bytes]) -> None:
        """Queue one message and wait until it was handed to the socket."""
        if not self.open:
            raise ConnectionLost("downchannel closed")
        done = asyncio.get_running_loop().create_future()
        await self.queue.put((chunks, done))
        await done

    def close(self) -> None:
        """The downchannel ended: fail queued pushes and unregister."""
        if not self.open:
            return
        self.open = False
        while not self.queue.empty():
            _, done = self.queue.get_nowait()
            if not done.done():
                done.set_exception(ConnectionLost("downchannel closed"))
        self.task.cancel()
        if self.conn.downchannel is self:
            self.conn.downchannel = None
        self.conn.sim._downchannel_changed()


class _DownchannelRequest(_Stream):
    """GET /v20160207/directives: exactly one per connection (avs-protocol.md 1.2)."""

    def start(self) -> None:
        conn, sid = self.conn, self.stream_id
        if not conn.authorized(self.headers):
            conn.respond_error(sid, 403, "invalid or missing access token")
            return
        status = conn.sim.faults.take_downchannel_failure()
        if status is not None:
            conn.respond_error(sid, status, "injected failure")
            return
        if conn.downchannel is not None:
            conn.respond_error(sid, 400, "only one downchannel per connection")
            return
        channel = _Downchannel(conn, sid)
        conn.send_headers(sid, 200, [("content-type", channel.writer.content_type)], end=False)
        conn.downchannel = channel
        conn.sim._downchannel_changed()

    def on_reset(self) -> None:
        channel = self.conn.downchannel
        if channel is not None and channel.stream_id == self.stream_id:
            channel.close()


_NOT_EVALUATED = -1


class _EventStream(_Stream):
    """POST /v20160207/events: parse the upload as it arrives, answer per the script.

    NEAR_FIELD/FAR_FIELD Recognize: the 200 headers and StopCapture go out as soon as enough
    audio arrived, while the upload continues (avs-protocol.md 3.3); the rest follows when the
    upload ends.
    """

    def __init__(self, conn: Connection, stream_id: int, headers: dict[str, str]) -> None:
        super().__init__(conn, stream_id, headers)
        self.parser: UploadParser | None = None
        self.error: UploadError | None = None
        self.ended = False
        self.stop_after = _NOT_EVALUATED
        self.stop_due = False
        self.audio_started_at: float | None = None
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        conn, sid = self.conn, self.stream_id
        if not conn.authorized(self.headers):
            conn.respond_error(sid, 403, "invalid or missing access token")
            return
        media_type, params = parse_content_type(self.headers.get("content-type", ""))
        boundary = params.get("boundary", "")
        if media_type != "multipart/form-data" or not boundary:
            conn.respond_error(sid, 400, "Content-Type must be multipart/form-data with a boundary")
            return
        config = conn.sim.config
        try:
            self.parser = UploadParser(
                boundary,
                max_metadata=config.max_metadata_bytes,
                max_audio=config.max_audio_bytes,
                keep_audio=config.keep_audio,
            )
        except UploadError as exc:
            conn.respond_error(sid, 400, str(exc))
            return
        self.task = conn.spawn(self._run())

    def on_data(self, data: bytes) -> None:
        if self.parser is None or self.error is not None:
            return
        try:
            self.parser.feed(data)
        except UploadError as exc:
            self.error = exc
            self.wake.set()
            return
        if self.audio_started_at is None and self.parser.audio_length:
            self.audio_started_at = asyncio.get_running_loop().time()
        metadata = self.parser.metadata
        if metadata is not None and self.stop_after == _NOT_EVALUATED:
            threshold = self.conn.sim.script.stop_capture_after(metadata)
            self.stop_after = -2 if threshold is None else threshold
        if 0 <= self.stop_after <= self.parser.audio_length and not self.stop_due:
            self.stop_due = True
            self.wake.set()

    def on_end(self) -> None:
        if self.parser is None or self.error is not None:
            return
        try:
            self.parser.close()
        except UploadError as exc:
            self.error = exc
        self.ended = True
        self.wake.set()

    def on_reset(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def _build_record(self) -> ReceivedEvent:
        parser = self.parser
        assert parser is not None
        assert parser.metadata is not None
        document = parser.metadata
        event = document["event"]
        header = event["header"]
        return ReceivedEvent(
            namespace=header["namespace"],
            name=header["name"],
            message_id=header["messageId"],
            dialog_request_id=header.get("dialogRequestId"),
            header=header,
            payload=event["payload"],
            context=document.get("context", []),
            json=document,
            audio=parser.audio,
            stream_id=self.stream_id,
            connection_id=self.conn.connection_id,
            http_headers=dict(self.headers),
            extra_parts=tuple((p.name, p.content_type, p.data) for p in parser.other_parts),
            wake_word=check_wake_word(event["payload"], parser.audio_length),
            audio_started_at=self.audio_started_at,
        )

    async def _wait(self) -> None:
        await self.wake.wait()
        self.wake.clear()

    async def _run(self) -> None:
        try:
            await self._serve()
        except (h2.exceptions.StreamClosedError, ConnectionLost):
            return

    def _metadata(self) -> dict[str, Any]:
        assert self.parser is not None
        assert self.parser.metadata is not None
        return self.parser.metadata

    def _current_error(self) -> UploadError | None:
        # A method, not the attribute: mypy would keep `self.error` narrowed across awaits.
        return self.error

    async def _serve(self) -> None:
        conn, sid, sim = self.conn, self.stream_id, self.conn.sim
        fail_status = sim.faults.take_event_failure()
        if fail_status is not None:
            conn.respond_error(sid, fail_status, "injected failure")
            while not self.ended and self._current_error() is None:
                await self._wait()
            if self._current_error() is None:
                sim._record_event(replace(self._build_record(), status=fail_status))
            return
        if sim.faults.response_delay:
            await asyncio.sleep(sim.faults.response_delay)
        while not self.ended and self._current_error() is None and not self.stop_due:
            await self._wait()
        if self._current_error() is not None:
            conn.respond_error(sid, 400, str(self._current_error()))
            return
        writer: RelatedWriter | None = None
        if self.stop_due and sim.script.stop_capture_on_downchannel(self._metadata()):
            await sim.push_directive(sim.script.stop_capture(self._metadata()))
        elif self.stop_due:
            assert self.parser is not None
            assert self.parser.metadata is not None
            writer = RelatedWriter()
            conn.send_headers(sid, 200, [("content-type", writer.content_type)], end=False)
            stop = sim.script.stop_capture(self.parser.metadata)
            chunks = sim._directive_chunks(writer, stop, {}, last=False)
            await conn.send_chunks(sid, chunks, end=False)
        while not self.ended and self._current_error() is None:
            await self._wait()
        if self._current_error() is not None:
            if writer is None:
                conn.respond_error(sid, 400, str(self._current_error()))
            else:
                conn.reset(sid, h2.errors.ErrorCodes.PROTOCOL_ERROR)
            return
        record = self._build_record()
        try:
            result = sim.script.reply(record)
            reply = await result if inspect.isawaitable(result) else result
            if not isinstance(reply, ScriptedReply):
                raise TypeError(f"a reply handler returned {type(reply).__name__}, not Reply")
        except Exception as exc:
            logger.exception("reply handler failed for %r", record)
            if writer is None:
                sim._record_event(replace(record, status=500))
                conn.respond_error(sid, 500, f"reply handler failed: {exc}")
            else:
                sim._record_event(replace(record, status=200))
                await conn.send_chunks(sid, [writer.close()], end=True)
            return
        sim._record_event(replace(record, status=200 if writer is not None else reply.status))
        if writer is None:
            if reply.status >= 400:
                conn.respond_error(sid, reply.status, reply.description)
                return
            if not reply.directives and not reply.attachments:
                conn.respond(sid, reply.status, b"", _JSON)
                return
            writer = RelatedWriter()
            conn.send_headers(sid, 200, [("content-type", writer.content_type)], end=False)
        chunks = sim._reply_chunks(writer, reply)
        await conn.send_chunks(sid, chunks, end=True)
        conn.finish(sid)


_DISPATCH: dict[type[h2.events.Event], Any] = {
    h2.events.RequestReceived: Connection._on_request,
    h2.events.DataReceived: Connection._on_data,
    h2.events.StreamEnded: Connection._on_stream_ended,
    h2.events.StreamReset: Connection._on_stream_reset,
    h2.events.WindowUpdated: Connection._on_window_updated,
    h2.events.RemoteSettingsChanged: Connection._on_settings,
    h2.events.ConnectionTerminated: Connection._on_terminated,
}
