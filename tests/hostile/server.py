"""A small AVS-like HTTP/2 server with switchable misbehaviours, written directly on h2.

It shares no code with `avsclient` (neither the simulator nor the HTTP/2 layer), so that a
bug the two have in common cannot hide itself: framing, multipart and status handling are
written here from avs-protocol.md sections 1-4 alone.

Paths: `GET /v20160207/directives` (the downchannel, a never-ending `multipart/related`
body), `POST /v20160207/events` (SynchronizeState and other events answer 204, Recognize a
scripted `multipart/related` reply) and `GET /ping` (204). It listens on loopback only, with
TLS (a throwaway `trustme` CA, ALPN h2) or cleartext h2c.

Misbehaviours are the fields of `Behaviour`; change them at any time (`server.behaviour`),
they apply to the next request or connection. Directives are pushed with `push_raw`,
`push_directive`, `push_speak_without_attachment` and `flood`.

Every connection (`connections`) and request (`requests`, with its headers and whether it
came over TLS) is recorded, and every event posted is decoded into `events`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import trustme

__all__ = [
    "Behaviour",
    "ConnectionRecord",
    "EventRecord",
    "HostileServer",
    "RequestRecord",
    "directive_json",
]

CRLF = b"\r\n"
DIRECTIVES = "/v20160207/directives"
EVENTS = "/v20160207/events"
PING = "/ping"

#: A DATA frame on stream 0: a connection error (PROTOCOL_ERROR) for any HTTP/2 peer
#: (RFC 9113 section 6.1).
DATA_ON_STREAM_ZERO = b"\x00\x00\x00\x00\x00\x00\x00\x00\x00"


def _text(value: str | bytes) -> str:
    """A header name or value as text (h2 gives str with `header_encoding` set)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def directive_json(
    namespace: str,
    name: str,
    payload: dict[str, Any] | None = None,
    *,
    dialog_request_id: str | None = None,
) -> bytes:
    """The JSON of one directive part: `{"directive": {"header": ..., "payload": ...}}`."""
    header: dict[str, Any] = {
        "namespace": namespace,
        "name": name,
        "messageId": str(uuid.uuid4()),
    }
    if dialog_request_id is not None:
        header["dialogRequestId"] = dialog_request_id
    return json.dumps({"directive": {"header": header, "payload": payload or {}}}).encode()


@dataclass
class Behaviour:
    """The misbehaviour switches (all off: a well-behaved AVS).

    Attributes:
        goaway_after_sync_ms: send GOAWAY (NO_ERROR) this long after answering each
            connection's SynchronizeState, then close the socket a second later.
        protocol_error_after_sync_ms: this long after answering SynchronizeState, write a
            DATA frame on stream 0 (a connection-level PROTOCOL_ERROR) and close.
        max_concurrent_streams: SETTINGS_MAX_CONCURRENT_STREAMS in the server's first
            SETTINGS frame (0: no stream may ever open).
        lower_streams_after_sync: after answering SynchronizeState, send a SETTINGS frame
            lowering MAX_CONCURRENT_STREAMS to this.
        status: answer every request (downchannel, events, ping) with this status and a
            JSON exception body (403 forever, 500 forever).
        downchannel_content_type: the downchannel's content-type instead of
            `multipart/related; boundary=...`.
        silent: accept TCP (and TLS) but never send a byte of HTTP/2.
        trickle_interval: answer Recognize with 200 and one body byte every this many
            seconds, never finishing.
        recognize_reply: the JSON parts of a Recognize reply (`dialogRequestId` is filled
            in from the request); empty: 204.
        hold_events: do not answer event streams other than SynchronizeState (their
            outcome must come from the client's own deadline).
        hold_pings: never answer `GET /ping`.
    """

    goaway_after_sync_ms: float | None = None
    protocol_error_after_sync_ms: float | None = None
    max_concurrent_streams: int | None = None
    lower_streams_after_sync: int | None = None
    status: int | None = None
    downchannel_content_type: str | None = None
    silent: bool = False
    trickle_interval: float | None = None
    recognize_reply: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    hold_events: bool = False
    hold_pings: bool = False


@dataclass
class ConnectionRecord:
    """One accepted connection."""

    id: int
    tls: bool
    opened_at: float  # time.monotonic()
    closed_at: float | None = None


@dataclass
class RequestRecord:
    """One request stream: its headers as received and whether they came over TLS."""

    connection_id: int
    tls: bool
    headers: dict[str, str]
    at: float

    @property
    def path(self) -> str:
        return self.headers.get(":path", "")


@dataclass
class EventRecord:
    """One event posted to /events, decoded from its metadata part."""

    connection_id: int
    namespace: str
    name: str
    header: dict[str, Any]
    payload: dict[str, Any]
    at: float


@dataclass
class _Stream:
    id: int
    headers: dict[str, str]
    body: bytearray = field(default_factory=bytearray)
    ended: bool = False
    answered: bool = False
    event: EventRecord | None = None


class _Connection:
    """One server side of an HTTP/2 connection: reads frames, answers streams."""

    def __init__(
        self,
        server: HostileServer,
        record: ConnectionRecord,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.server = server
        self.record = record
        self.reader = reader
        self.writer = writer
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        self.streams: dict[int, _Stream] = {}
        self.downchannel: int | None = None
        self.boundary = "------hostile-" + uuid.uuid4().hex[:16]
        self.window_open = asyncio.Event()
        self.closed = False
        self.tasks: set[asyncio.Task[None]] = set()

    # -- plumbing ------------------------------------------------------------------------

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def close(self) -> None:
        self.closed = True
        self.window_open.set()
        if not self.writer.is_closing():
            self.writer.close()

    async def send(self, stream_id: int, data: bytes, *, end: bool = False) -> bool:
        """Send `data` within flow control; False if the stream or connection went away."""
        view = memoryview(data)
        while True:
            if self.closed:
                return False
            try:
                window = min(
                    self.h2.local_flow_control_window(stream_id),
                    self.h2.max_outbound_frame_size,
                )
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                return False
            if window <= 0 and view:
                self.window_open.clear()
                await self.window_open.wait()
                continue
            chunk, view = view[:window], view[window:]
            try:
                self.h2.send_data(stream_id, bytes(chunk), end_stream=end and not view)
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                return False
            self.flush()
            with contextlib.suppress(ConnectionError):
                await self.writer.drain()
            if not view:
                return True

    def respond(
        self,
        stream_id: int,
        status: int,
        headers: Iterable[tuple[str, str]] = (),
        *,
        end: bool = False,
    ) -> None:
        with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self.h2.send_headers(stream_id, [(":status", str(status)), *headers], end_stream=end)
            self.flush()

    def exception_body(self, status: int) -> bytes:
        code = {403: "UNAUTHORIZED_REQUEST_EXCEPTION", 429: "THROTTLING_EXCEPTION"}.get(
            status, "INTERNAL_SERVICE_EXCEPTION"
        )
        return json.dumps(
            {
                "header": {"namespace": "System", "name": "Exception", "messageId": "x"},
                "payload": {"code": code, "description": "hostile server"},
            }
        ).encode()

    # -- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        behaviour = self.server.behaviour
        if behaviour.silent:
            with contextlib.suppress(ConnectionError):
                while await self.reader.read(65536):
                    pass
            return
        settings: dict[h2.settings.SettingCodes, int] = {}
        if behaviour.max_concurrent_streams is not None:
            settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = (
                behaviour.max_concurrent_streams
            )
        self.h2.local_settings = h2.settings.Settings(client=False, initial_values=settings)
        self.h2.initiate_connection()
        self.flush()
        try:
            while not self.closed:
                data = await self.reader.read(65536)
                if not data:
                    break
                try:
                    events = self.h2.receive_data(data)
                except h2.exceptions.ProtocolError:
                    self.flush()
                    break
                for event in events:
                    self.handle(event)
                self.flush()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            self.close()
            for task in list(self.tasks):
                task.cancel()
            if self.tasks:
                await asyncio.gather(*self.tasks, return_exceptions=True)

    def handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            headers = {_text(k): _text(v) for k, v in event.headers}
            self.streams[event.stream_id] = _Stream(event.stream_id, headers)
            self.server.requests.append(
                RequestRecord(self.record.id, self.record.tls, headers, time.monotonic())
            )
            self.request_started(event.stream_id)
            if event.stream_ended is not None:
                self.request_ended(event.stream_id)
        elif isinstance(event, h2.events.DataReceived):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.body += event.data
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            if stream is not None:
                self.request_data(stream)
        elif isinstance(event, h2.events.StreamEnded):
            self.request_ended(event.stream_id)
        elif isinstance(event, h2.events.StreamReset):
            self.streams.pop(event.stream_id, None)
            if event.stream_id == self.downchannel:
                self.downchannel = None
        elif isinstance(event, h2.events.WindowUpdated):
            self.window_open.set()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.closed = True

    # -- requests ------------------------------------------------------------------------

    def request_started(self, stream_id: int) -> None:
        stream = self.streams[stream_id]
        status = self.server.behaviour.status
        if status is not None:
            stream.answered = True
            self.respond(stream_id, status, [("content-type", "application/json")])
            self.spawn(self.send(stream_id, self.exception_body(status), end=True))
            return
        path = stream.headers.get(":path", "")
        if path == DIRECTIVES:
            stream.answered = True
            self.downchannel = stream_id
            content_type = self.server.behaviour.downchannel_content_type or (
                f"multipart/related; boundary={self.boundary}; type=application/json"
            )
            self.respond(stream_id, 200, [("content-type", content_type)])
            self.spawn(self.send(stream_id, b"--" + self.boundary.encode() + CRLF))
        elif path == PING:
            stream.answered = True
            if not self.server.behaviour.hold_pings:
                self.respond(stream_id, 204, end=True)
        elif path != EVENTS:
            stream.answered = True
            self.respond(stream_id, 404, end=True)

    def request_data(self, stream: _Stream) -> None:
        """Decode an event as soon as its metadata part is complete (Recognize streams)."""
        if stream.event is not None or stream.headers.get(":path") != EVENTS:
            return
        stream.event = self.decode_event(stream)
        if stream.event is not None and stream.event.name == "Recognize":
            self.answer_event(stream)

    def request_ended(self, stream_id: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        stream.ended = True
        if stream.headers.get(":path") != EVENTS or stream.answered:
            return
        if stream.event is None:
            stream.event = self.decode_event(stream)
        self.answer_event(stream)

    def decode_event(self, stream: _Stream) -> EventRecord | None:
        """The event in the first multipart/form-data part, once it is complete."""
        content_type = stream.headers.get("content-type", "")
        marker = "boundary="
        if marker not in content_type:
            return None
        boundary = content_type.split(marker, 1)[1].split(";", 1)[0].strip().strip('"')
        dash = b"--" + boundary.encode()
        body = bytes(stream.body)
        start = body.find(dash)
        if start < 0:
            return None
        head_end = body.find(CRLF + CRLF, start)
        if head_end < 0:
            return None
        end = body.find(CRLF + dash, head_end)
        if end < 0:
            return None
        try:
            document = json.loads(body[head_end + 4 : end])
            header = document["event"]["header"]
            record = EventRecord(
                self.record.id,
                str(header["namespace"]),
                str(header["name"]),
                header,
                document["event"].get("payload") or {},
                time.monotonic(),
            )
        except (ValueError, KeyError, TypeError):
            return None
        self.server.events.append(record)
        self.server.event_arrived.set()
        return record

    def answer_event(self, stream: _Stream) -> None:
        behaviour = self.server.behaviour
        event = stream.event
        if stream.answered:
            return
        if event is not None and event.name == "SynchronizeState":
            stream.answered = True
            self.respond(stream.id, 204, end=True)
            self.after_sync()
            return
        if behaviour.hold_events:
            return  # never answered
        if event is not None and event.name == "Recognize":
            stream.answered = True
            if behaviour.trickle_interval is not None:
                self.spawn(self.trickle(stream.id, behaviour.trickle_interval))
            elif behaviour.recognize_reply:
                dialog = event.header.get("dialogRequestId")
                self.spawn(self.reply(stream.id, behaviour.recognize_reply, dialog))
            else:
                self.respond(stream.id, 204, end=True)
            return
        if not stream.ended:
            return  # other events are answered once their body is complete
        stream.answered = True
        self.respond(stream.id, 204, end=True)

    async def reply(
        self, stream_id: int, parts: list[tuple[str, str, dict[str, Any]]], dialog: Any
    ) -> None:
        boundary = "------reply-" + uuid.uuid4().hex[:12]
        self.respond(
            stream_id,
            200,
            [("content-type", f"multipart/related; boundary={boundary}; type=application/json")],
        )
        dash = b"--" + boundary.encode()
        body = bytearray(dash + CRLF)
        for index, (namespace, name, payload) in enumerate(parts):
            raw = directive_json(
                namespace,
                name,
                payload,
                dialog_request_id=dialog if isinstance(dialog, str) else None,
            )
            last = index == len(parts) - 1
            body += b"Content-Type: application/json; charset=UTF-8" + CRLF + CRLF + raw
            body += CRLF + dash + (b"--" if last else b"") + CRLF
        await self.send(stream_id, bytes(body), end=True)

    async def trickle(self, stream_id: int, interval: float) -> None:
        boundary = "------trickle-" + uuid.uuid4().hex[:12]
        self.respond(
            stream_id,
            200,
            [("content-type", f"multipart/related; boundary={boundary}; type=application/json")],
        )
        # The opening delimiter, then a part header that never ends: one byte at a time.
        if not await self.send(stream_id, b"--" + boundary.encode() + CRLF):
            return
        while True:
            await asyncio.sleep(interval)
            if not await self.send(stream_id, b"X"):
                return

    # -- after SynchronizeState --------------------------------------------------------------

    def after_sync(self) -> None:
        behaviour = self.server.behaviour
        if behaviour.goaway_after_sync_ms is not None:
            self.spawn(self.goaway_later(behaviour.goaway_after_sync_ms / 1000))
        if behaviour.protocol_error_after_sync_ms is not None:
            self.spawn(self.protocol_error_later(behaviour.protocol_error_after_sync_ms / 1000))
        if behaviour.lower_streams_after_sync is not None:
            limit = behaviour.lower_streams_after_sync
            self.h2.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: limit})
            self.flush()

    async def goaway_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self.h2.close_connection(error_code=h2.errors.ErrorCodes.NO_ERROR)
            self.flush()
        await asyncio.sleep(1.0)
        self.close()

    async def protocol_error_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        if not self.writer.is_closing():
            self.writer.write(DATA_ON_STREAM_ZERO)
            with contextlib.suppress(ConnectionError):
                await self.writer.drain()
        self.close()

    # -- directives ------------------------------------------------------------------------

    def part(self, raw: bytes, headers: Iterable[tuple[str, str]]) -> bytes:
        head = b"".join(f"{k}: {v}".encode() + CRLF for k, v in headers)
        return head + CRLF + raw + CRLF + b"--" + self.boundary.encode() + CRLF

    async def push(self, parts: list[bytes]) -> bool:
        if self.downchannel is None:
            return False
        return await self.send(self.downchannel, b"".join(parts))


class HostileServer:
    """The server: `async with HostileServer(tls=True) as server: ... server.url ...`.

    Attributes:
        behaviour: the misbehaviour switches (mutable at any time).
        connections: every accepted connection, in order.
        requests: every request's headers, in order of arrival.
        events: every event decoded from /events.
        ca_file: the PEM of the throwaway CA (TLS only).
    """

    def __init__(self, *, tls: bool = True, behaviour: Behaviour | None = None) -> None:
        self.tls = tls
        self.behaviour = behaviour or Behaviour()
        self.connections: list[ConnectionRecord] = []
        self.requests: list[RequestRecord] = []
        self.events: list[EventRecord] = []
        self.event_arrived = asyncio.Event()
        self._live: list[_Connection] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._dir = tempfile.TemporaryDirectory(prefix="hostile-")
        self.ca_file: Path | None = None
        self._ssl: ssl.SSLContext | None = None
        if tls:
            ca = trustme.CA()
            cert = ca.issue_cert("127.0.0.1", "localhost")
            self.ca_file = Path(self._dir.name) / "ca.pem"
            ca.cert_pem.write_to_path(str(self.ca_file))
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            cert.configure_cert(context)
            context.set_alpn_protocols(["h2"])
            self._ssl = context
        self.port = 0

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    async def __aenter__(self) -> HostileServer:
        try:
            self._server = await asyncio.start_server(
                self._accept,
                "127.0.0.1",
                0,
                ssl=self._ssl,
                ssl_handshake_timeout=5 if self._ssl is not None else None,
            )
        except BaseException:
            self._dir.cleanup()
            raise
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._live):
            conn.close()
        if self._tasks:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await self._server.wait_closed()
        self._dir.cleanup()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        record = ConnectionRecord(len(self.connections) + 1, self.tls, time.monotonic())
        self.connections.append(record)
        conn = _Connection(self, record, reader, writer)
        self._live.append(conn)
        try:
            await conn.run()
        finally:
            record.closed_at = time.monotonic()
            self._live.remove(conn)
            self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    # -- observation -------------------------------------------------------------------------

    def authorized_cleartext(self) -> list[RequestRecord]:
        """Requests that carried an `authorization` header over cleartext (h2c)."""
        return [r for r in self.requests if not r.tls and "authorization" in r.headers]

    def connections_between(self, start: float, end: float) -> int:
        return sum(1 for c in self.connections if start <= c.opened_at < end)

    def named(self, namespace: str, name: str) -> list[EventRecord]:
        return [e for e in self.events if e.namespace == namespace and e.name == name]

    async def wait_for_event(
        self, namespace: str, name: str, *, nth: int = 1, timeout: float = 5.0
    ) -> EventRecord:
        async with asyncio.timeout(timeout):
            while len(found := self.named(namespace, name)) < nth:
                self.event_arrived.clear()
                await self.event_arrived.wait()
        return found[nth - 1]

    async def wait_downchannel(self, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while self._downchannel() is None:
                await asyncio.sleep(0.01)

    def _downchannel(self) -> _Connection | None:
        for conn in reversed(self._live):
            if conn.downchannel is not None and not conn.closed:
                return conn
        return None

    def drop_connections(self) -> int:
        """Close every live connection's socket at once (no GOAWAY); returns how many."""
        live = list(self._live)
        for conn in live:
            conn.close()
        return len(live)

    # -- pushing directives --------------------------------------------------------------------

    async def push_raw(self, raw: bytes, *, attachments: dict[str, bytes] | None = None) -> bool:
        """Push one JSON part (any bytes) and its attachments on the newest downchannel."""
        conn = self._downchannel()
        if conn is None:
            return False
        parts = [conn.part(raw, [("Content-Type", "application/json; charset=UTF-8")])]
        for cid, data in (attachments or {}).items():
            parts.append(
                conn.part(
                    data,
                    [("Content-Type", "application/octet-stream"), ("Content-ID", f"<{cid}>")],
                )
            )
        return await conn.push(parts)

    async def push_directive(
        self, namespace: str, name: str, payload: dict[str, Any] | None = None, **kw: Any
    ) -> bool:
        return await self.push_raw(directive_json(namespace, name, payload), **kw)

    async def push_speak_without_attachment(self, token: str = "never") -> bool:
        """A Speak whose `cid:` attachment never comes (the downchannel stays open)."""
        payload = {"url": f"cid:missing-{token}", "format": "AUDIO_MPEG", "token": token}
        return await self.push_directive("SpeechSynthesizer", "Speak", payload)

    async def flood(
        self, count: int, namespace: str = "Speaker", name: str = "SetVolume", batch: int = 200
    ) -> int:
        """Push `count` small directives as fast as flow control lets them through.

        Returns:
            How many were written (fewer if the downchannel went away).
        """
        conn = self._downchannel()
        if conn is None:
            return 0
        sent = 0
        while sent < count:
            n = min(batch, count - sent)
            parts = [
                conn.part(
                    directive_json(namespace, name, {"volume": (sent + i) % 100}),
                    [("Content-Type", "application/json; charset=UTF-8")],
                )
                for i in range(n)
            ]
            if not await conn.push(parts):
                break
            sent += n
        return sent
