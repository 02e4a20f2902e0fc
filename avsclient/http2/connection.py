"""The asyncio shell around `ClientCore`: sockets, TLS and ALPN, tasks, waits and timeouts.

It makes no protocol decisions (the core does): it connects, reads all the time, writes what
the core queues, wakes waiting callers, and turns foreign exceptions (OSError, ssl, timeouts,
h2 through the core) into `avsclient.exceptions`, once, with `from exc`.

Writing: every change to the core is followed by `_flush()`, which moves `data_to_send()` into
the transport in one synchronous step. asyncio transports never block on `write()`, so that
one step is the single write path (no lock is needed: nothing can interleave between taking
the bytes and writing them), and the reader can answer PINGs and SETTINGS without ever waiting
for the socket. Uploads then await `drain()`, so a fast producer waits for a slow network.

Upload chunks that a body produces back to back (a file, a buffer) are written together:
`_flush_soon()` leaves them in the core until the event loop's next turn, or until
`_COALESCE_BYTES` are queued, so the TLS layer and the kernel see one write per 256 KiB
instead of one per chunk. Each chunk is still its own DATA frame. A sender with nothing more
to send right now (an upload waiting for a microphone's next frame) passes `flush=True` and
is written at once, a loop turn sooner; so is the end of a body.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from h2.errors import ErrorCodes

from avsclient._resource import AsyncResource
from avsclient.config import ConnectionConfig
from avsclient.exceptions import (
    ALPNError,
    ConnectError,
    ConnectionClosed,
    ConnectionDraining,
    ConnectionLost,
    ConnectTimeout,
    LocalProtocolError,
    PingTimeout,
    RemoteProtocolError,
    ResponseTimeout,
    StreamInactivityTimeout,
    StreamReset,
    TransportError,
    TrustStoreError,
)
from avsclient.http2.core import ClientCore
from avsclient.http2.events import (
    ConnectionTerminated,
    DataReceived,
    GoAwayReceived,
    PingAcknowledged,
    ResponseReceived,
    SettingsReceived,
    StreamEnded,
    StreamRefused,
    StreamResetReceived,
    TrailersReceived,
    TransportEvent,
)

# HTTP2Stream, Response, Body and DEFAULT live in stream.py; they stay importable from here.
from avsclient.http2.stream import DEFAULT, Body, HTTP2Stream, Response, _Default, _timeout

# Plain sorted order, as tests/test_exports.py checks (not ruff's isort-style order).
__all__ = [
    "DEFAULT",
    "Body",
    "HTTP2Connection",
    "HTTP2Stream",
    "Response",
]

logger = logging.getLogger("avsclient.http2")

#: Upload bytes queued in the core before `_flush_soon()` writes them at once. A write costs
#: a TLS record pass and a send() call whatever its size; with 16 KiB chunks that per-write
#: cost was about a third of an upload's CPU time (benchmarks/bench_transport.py).
_COALESCE_BYTES = 256 * 1024


def _slot_limit(response: float | None, inactivity: float | None) -> float | None:
    """How long a new stream may wait for a slot: no longer than for its response headers,
    nor than it may go without progress (a stream that cannot open makes none)."""
    limits = [limit for limit in (response, inactivity) if limit is not None]
    return min(limits) if limits else None


class HTTP2Connection(AsyncResource):
    """One HTTP/2 client connection over TLS (ALPN h2) or cleartext with prior knowledge (h2c).

    Args:
        host: the server name or address.
        port: the TCP port.
        tls: True for TLS (certificates verified), False for h2c (loopback use).
        ca_file: a PEM file of CAs to trust instead of the system's (the simulator's CA).
        ssl_context: a ready client context (its ALPN must offer h2); overrides `ca_file`.
        server_hostname: the name to verify and send in SNI (default: `host`).
        config: timeouts, windows and limits.
        on_goaway: called (in the loop) with the `GoAwayReceived` event when the server
            sends GOAWAY: the owner should open a new connection for new requests.

    Use `async with HTTP2Connection(...) as conn:` or `await conn.connect()` and
    `await conn.aclose()`.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: bool = True,
        ca_file: str | os.PathLike[str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        config: ConnectionConfig | None = None,
        on_goaway: Callable[[GoAwayReceived], object] | None = None,
    ) -> None:
        if not tls and (ca_file is not None or ssl_context is not None):
            raise ValueError("ca_file and ssl_context need tls=True")
        self.host = host
        self.port = port
        self.tls = tls
        self.config = config or ConnectionConfig()
        self._ca_file = ca_file
        self._ssl_context = ssl_context
        self._server_hostname = server_hostname or host
        self._on_goaway = on_goaway
        self._scheme = "https" if tls else "http"
        default_port = 443 if tls else 80
        host_part = f"[{host}]" if ":" in host else host
        self.authority = host_part if port == default_port else f"{host_part}:{port}"
        self._core = ClientCore(self.config)
        self._streams: dict[int, HTTP2Stream] = {}
        self._pings: dict[bytes, asyncio.Future[None]] = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._transport: asyncio.BaseTransport | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._progress: asyncio.Future[None] | None = None
        self._settings_received: asyncio.Future[None] | None = None
        self._goaway_future: asyncio.Future[GoAwayReceived] | None = None
        self._closed_future: asyncio.Future[BaseException | None] | None = None
        self._uploads: set[asyncio.Task[None]] = set()
        self._last_activity = 0.0
        self._unflushed = 0  # upload bytes queued in the core since the last write
        self._flush_handle: asyncio.Handle | None = None
        self._drain_below = 0  # the write buffer's low-water mark: below it, drain() is a no-op
        self._state = "new"  # new, connecting, open, closed

    @classmethod
    def from_url(cls, url: str, **kwargs: object) -> HTTP2Connection:
        """Build a connection from `https://host[:port]` (TLS) or `http://host[:port]` (h2c).

        Args:
            url: the base URL, as `Simulator.url` prints it.
            **kwargs: the other `HTTP2Connection` arguments.

        Raises:
            ValueError: the URL is not http(s) or has no host.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL with a host, not {url!r}")
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        return cls(parts.hostname, port, tls=tls, **kwargs)  # type: ignore[arg-type]

    # -- state -------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """True while new streams may be opened (connected, no GOAWAY, not closed)."""
        return self._state == "open" and self._core.goaway is None

    @property
    def goaway(self) -> GoAwayReceived | None:
        """The GOAWAY the server sent, or None."""
        return self._core.goaway

    @property
    def open_stream_count(self) -> int:
        """Streams in use (including those whose body is still being read)."""
        return len(self._streams)

    @property
    def max_concurrent_streams(self) -> int:
        """The server's SETTINGS_MAX_CONCURRENT_STREAMS."""
        return self._core.max_concurrent_streams

    @property
    def last_received_at(self) -> float:
        """When bytes last arrived from the server (`loop.time()`; the connect time at first).

        An owner's liveness check reads it to decide when to `ping()` an idle connection.
        """
        return self._last_activity

    # -- connecting --------------------------------------------------------------------------

    def _client_ssl_context(self) -> ssl.SSLContext:
        if self._ssl_context is not None:
            return self._ssl_context
        context = ssl.create_default_context(cafile=self._ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2  # avs-protocol.md section 1.3
        context.set_alpn_protocols(["h2"])
        return context

    async def connect(self) -> None:
        """Open TCP, then TLS with ALPN h2 (unless h2c), then exchange HTTP/2 SETTINGS.

        Raises:
            ConnectTimeout: TCP, TLS or the server's SETTINGS took too long.
            ConnectError: refused, unreachable, certificate rejected, or not an HTTP/2 server.
            ALPNError: TLS worked but the server did not select h2.
            LocalProtocolError: called twice.
        """
        if self._state != "new":
            raise LocalProtocolError("connect() may be called once per HTTP2Connection")
        self._state = "connecting"
        cfg = self.config
        loop = asyncio.get_running_loop()
        self._progress = loop.create_future()
        self._settings_received = loop.create_future()
        self._goaway_future = loop.create_future()
        self._closed_future = loop.create_future()
        where = f"{self.host}:{self.port}"
        try:
            try:
                async with asyncio.timeout(cfg.connect_timeout):
                    reader, writer = await asyncio.open_connection(
                        self.host, self.port, limit=max(cfg.read_size, 2**16)
                    )
            except TimeoutError as exc:
                raise ConnectTimeout(
                    f"TCP connect to {where} took over {cfg.connect_timeout} s"
                ) from exc
            except OSError as exc:
                raise ConnectError(f"cannot connect to {where}: {exc}") from exc
            self._reader, self._writer = reader, writer
            if self.tls:
                try:
                    await self._start_tls(writer, where)
                except BaseException:
                    # A failed start_tls leaves the stream protocol detached from the socket,
                    # so wait_closed() would never return: abort the socket and forget it.
                    writer.transport.abort()
                    self._writer = None
                    raise
            transport = writer.transport
            self._transport = transport
            transport.set_write_buffer_limits(high=cfg.write_buffer_limit)
            self._drain_below = transport.get_write_buffer_limits()[0]
            self._core.initiate()
            self._flush()
            self._last_activity = loop.time()
            self._supervisor = asyncio.create_task(self._run(), name=f"http2 {where}")
            try:
                async with asyncio.timeout(cfg.connect_timeout):
                    await asyncio.shield(self._settings_received)
            except TimeoutError as exc:
                raise ConnectTimeout(
                    f"{where} sent no HTTP/2 SETTINGS within {cfg.connect_timeout} s"
                ) from exc
            except TransportError as exc:
                raise ConnectError(f"{where} did not open an HTTP/2 connection: {exc}") from exc
        except BaseException:
            await self._abort()
            raise
        self._state = "open"
        logger.info("HTTP/2 connection to %s open (%s)", where, self._scheme)

    async def _start_tls(self, writer: asyncio.StreamWriter, where: str) -> None:
        cfg = self.config
        try:
            context = self._client_ssl_context()
        except (OSError, ssl.SSLError) as exc:
            raise TrustStoreError(f"cannot load the CA file {self._ca_file!r}: {exc}") from exc
        try:
            async with asyncio.timeout(cfg.tls_handshake_timeout):
                await writer.start_tls(context, server_hostname=self._server_hostname)
        except TimeoutError as exc:
            raise ConnectTimeout(
                f"TLS handshake with {where} took over {cfg.tls_handshake_timeout} s"
            ) from exc
        except ssl.SSLCertVerificationError as exc:
            raise ConnectError(
                f"the certificate of {where} was rejected: {exc.verify_message}"
            ) from exc
        except (OSError, ssl.SSLError) as exc:
            raise ConnectError(f"TLS handshake with {where} failed: {exc}") from exc
        ssl_object = writer.get_extra_info("ssl_object")
        selected = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        if selected != "h2":
            chosen = "no protocol" if selected is None else repr(selected)
            raise ALPNError(
                f"{where} did not agree to HTTP/2 in the TLS handshake (ALPN chose {chosen}, "
                "expected 'h2'): the server, or a proxy in between, speaks only HTTP/1.1"
            )

    async def _abort(self) -> None:
        """Tear down a half-open connection after a failed connect()."""
        self._state = "closed"
        supervisor = self._supervisor
        if supervisor is not None:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        if self._writer is not None:
            self._writer.transport.abort()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        closed = self._closed_future
        if closed is not None and not closed.done():
            closed.set_result(None)

    # -- tasks -------------------------------------------------------------------------------

    async def _run(self) -> None:
        """Own the reader task in a TaskGroup.

        The group lives in this dedicated task, not in connect()'s caller: a TaskGroup cancels
        the task that entered it when a child fails, and that must never be the owner's task.
        """
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._read_loop(), name="http2 reader")
        except Exception as exc:  # pragma: no cover - a bug in the loops themselves
            logger.exception("HTTP/2 connection tasks failed")
            self._fail(ConnectionLost(f"internal error in the HTTP/2 connection: {exc!r}"))

    async def _read_loop(self) -> None:
        """Read without pause and feed the core: the downchannel must never stall."""
        reader = self._reader
        assert reader is not None
        core = self._core
        read_size = self.config.read_size
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    data = await reader.read(read_size)
                except (OSError, ssl.SSLError) as exc:
                    self._fail(ConnectionLost(f"reading from the server failed: {exc}"), cause=exc)
                    return
                if not data:
                    ended = core.receive_data(b"")
                    self._handle(ended)
                    clean = core.goaway is not None and all(
                        isinstance(e, ConnectionTerminated) and e.clean for e in ended
                    )
                    self._fail(ConnectionLost("the server closed the connection"), clean=clean)
                    return
                self._last_activity = loop.time()
                try:
                    events = core.receive_data(data)
                except (RemoteProtocolError, LocalProtocolError) as exc:
                    self._flush()  # the GOAWAY h2 queued for the server
                    self._fail(ConnectionLost(f"HTTP/2 protocol error: {exc}"), cause=exc)
                    return
                self._flush()
                self._handle(events)
        finally:
            # Whatever ends the loop (cancellation included), every waiter is told.
            if self._closed_future is not None and not self._closed_future.done():
                self._fail(ConnectionClosed("the HTTP/2 connection was closed"))

    def _handle(self, events: list[TransportEvent]) -> None:
        streams = self._streams
        for event in events:
            if type(event) is DataReceived:
                stream = streams.get(event.stream_id)
                if stream is not None:
                    stream.on_data(event.data, event.flow_controlled_length)
                else:
                    self._core.acknowledge(event.stream_id, event.flow_controlled_length)
            elif isinstance(event, ResponseReceived):
                stream = streams.get(event.stream_id)
                if stream is not None:
                    stream.on_response(Response(event.stream_id, event.status, event.headers))
            elif isinstance(event, StreamEnded):
                stream = streams.get(event.stream_id)
                if stream is not None:
                    stream.on_end()
            elif isinstance(event, TrailersReceived):
                stream = streams.get(event.stream_id)
                if stream is not None:
                    stream.on_trailers(event.headers)
            elif isinstance(event, StreamResetReceived):
                self._on_reset(event)
            elif isinstance(event, StreamRefused):
                stream = streams.get(event.stream_id)
                if stream is not None:
                    stream.fail(
                        ConnectionDraining(
                            f"stream {event.stream_id} was not processed: the server sent "
                            f"GOAWAY (last stream {event.last_stream_id}); retry elsewhere",
                            last_stream_id=event.last_stream_id,
                            error_code=event.error_code,
                        )
                    )
            elif isinstance(event, PingAcknowledged):
                waiter = self._pings.get(event.payload)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
            elif isinstance(event, SettingsReceived):
                settings = self._settings_received
                if settings is not None and not settings.done():
                    settings.set_result(None)
            elif isinstance(event, GoAwayReceived):
                self._on_goaway_received(event)
            elif isinstance(event, ConnectionTerminated):
                error = ConnectionLost(f"the HTTP/2 connection ended: {event.reason}")
                for stream_id in event.open_stream_ids:
                    stream = streams.get(stream_id)
                    if stream is not None:
                        stream.fail(error)
        self._notify_progress()

    def _on_reset(self, event: StreamResetReceived) -> None:
        stream = self._streams.get(event.stream_id)
        if stream is None:
            return
        if stream.ended and event.error_code == ErrorCodes.NO_ERROR:
            # RFC 9113 section 8.1: a complete response followed by RST_STREAM(NO_ERROR)
            # asks the client to stop sending; the response stands.
            stream.stop_upload()
            return
        why = (
            "reset by the server" if event.remote else "reset: the server's response was malformed"
        )
        stream.fail(
            StreamReset(
                f"stream {event.stream_id} was {why} (error code {event.error_code})",
                stream_id=event.stream_id,
                error_code=event.error_code,
            )
        )

    def _on_goaway_received(self, event: GoAwayReceived) -> None:
        future = self._goaway_future
        if future is not None and not future.done():
            future.set_result(event)
        if self._on_goaway is not None:
            try:
                self._on_goaway(event)
            except Exception:  # the owner's bug must not stop the reader
                logger.exception("the on_goaway callback failed")

    # -- waiting and writing -----------------------------------------------------------------

    def _notify_progress(self) -> None:
        """Wake every task waiting for a window, a stream slot or the connection's end."""
        progress = self._progress
        if progress is not None and not progress.done():
            progress.set_result(None)
            self._progress = asyncio.get_running_loop().create_future()

    async def _wait_progress(self, timeout: float | None, stream: HTTP2Stream) -> None:
        progress = self._progress
        assert progress is not None
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(progress)
        except TimeoutError as exc:
            error = StreamInactivityTimeout(
                f"stream {stream.stream_id}: the server gave no flow-control window for {timeout} s"
            )
            self.stream_reset(stream, error)
            raise error from exc

    def _flush(self) -> None:
        """The single write path: move the core's pending bytes into the transport."""
        self._unflushed = 0
        handle = self._flush_handle
        if handle is not None:
            handle.cancel()
            self._flush_handle = None
        data = self._core.data_to_send()
        if data and self._writer is not None and not self._writer.transport.is_closing():
            self._writer.write(data)

    def _flush_soon(self, queued: int) -> None:
        """Write upload bytes on the loop's next turn, or now if `_COALESCE_BYTES` are queued.

        Args:
            queued: body bytes just queued in the core.
        """
        self._unflushed += queued
        if self._unflushed >= _COALESCE_BYTES:
            self._flush()
        elif self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    def _writable(self) -> bool:
        """Whether the transport takes writes without holding them back (drain is a no-op)."""
        writer = self._writer
        if writer is None:
            return False
        transport = writer.transport
        return transport.get_write_buffer_size() <= self._drain_below and not transport.is_closing()

    async def stream_drain(self, stream: HTTP2Stream) -> None:
        """Wait while the transport holds writes back (`StreamOwner`).

        Raises:
            StreamInactivityTimeout: the network took nothing for `stream.inactivity_timeout`
                (the stream is reset).
            ConnectionLost: writing failed.
        """
        writer = self._writer
        assert writer is not None
        if self._writable():
            # Not paused, so drain() would return at once: skip its timeout scope (a timer
            # armed and cancelled per chunk).
            return
        try:
            async with asyncio.timeout(stream.inactivity_timeout):
                await writer.drain()
        except TimeoutError as exc:
            error = StreamInactivityTimeout(
                f"stream {stream.stream_id}: the network took nothing for "
                f"{stream.inactivity_timeout} s"
            )
            self.stream_reset(stream, error)
            raise error from exc
        except (OSError, ssl.SSLError) as exc:
            lost = ConnectionLost(f"writing to the server failed: {exc}")
            self._fail(lost, cause=exc)
            raise lost from exc

    def _error_for(self, exc: BaseException) -> BaseException:
        closed = self._closed_future
        if closed is not None and closed.done():
            reason = closed.result()
            if reason is not None:
                return reason
        return exc

    def stream_reset(
        self, stream: HTTP2Stream, error: BaseException, error_code: int = ErrorCodes.CANCEL
    ) -> None:
        """Fail `stream` with `error`, tell the server with RST_STREAM, forget it
        (`StreamOwner`)."""
        stream.fail(error)
        self._core.reset_stream(stream.stream_id, error_code)
        self._flush()
        self.stream_release(stream)
        self._notify_progress()

    def stream_release(self, stream: HTTP2Stream) -> None:
        """Forget a stream that is over: nothing more is routed to it (`StreamOwner`)."""
        if self._streams.get(stream.stream_id) is stream:
            del self._streams[stream.stream_id]
            self._notify_progress()

    def _fail(
        self, error: TransportError, *, cause: BaseException | None = None, clean: bool = False
    ) -> None:
        """End the connection: every stream and ping waiter gets `error`.

        Args:
            error: what waiters raise.
            cause: set as `error.__cause__` (the foreign exception it translates); the socket
                is aborted rather than closed.
            clean: the server ended the connection after GOAWAY with nothing lost, so
                `wait_closed()` returns None.
        """
        closed = self._closed_future
        if closed is None or closed.done():
            return
        if cause is not None:
            error.__cause__ = cause
        self._state = "closed"
        # The core forgets its streams; every stream of ours gets this very error below.
        self._core.connection_lost(str(error))
        for stream in list(self._streams.values()):
            stream.fail(error)
        for waiter in self._pings.values():
            if not waiter.done():
                waiter.set_exception(error)
                waiter.exception()
        for future in (self._settings_received, self._goaway_future):
            if future is not None and not future.done():
                future.set_exception(error)
                future.exception()
        closed.set_result(None if clean or isinstance(error, ConnectionClosed) else error)
        if self._writer is not None:
            if cause is not None:
                self._writer.transport.abort()
            else:
                self._writer.close()
        self._notify_progress()
        logger.info("HTTP/2 connection to %s:%s ended: %s", self.host, self.port, error)

    # -- the interface its streams use (`stream.StreamOwner`) ------------------------------

    def stream_send(
        self, stream_id: int, data: memoryview, *, end_stream: bool, flush: bool
    ) -> int:
        """Queue as much of `data` as the windows allow on `stream_id` and write it.

        Written at once when `flush` or `end_stream`, else on the loop's next turn together
        with what follows (`_flush_soon`).

        Returns:
            How many bytes were queued (0: wait for `stream_wait_window`).

        Raises:
            ConnectionLost, ConnectionDraining, ConnectionClosed: the connection's error.
            LocalProtocolError, RemoteProtocolError: the stream or the connection is over.
        """
        try:
            sent = self._core.send_data(stream_id, data, end_stream=end_stream)
        except (LocalProtocolError, RemoteProtocolError, ConnectionClosed) as exc:
            raise self._error_for(exc) from exc
        if flush or end_stream:
            self._flush()
        else:
            self._flush_soon(sent)
        return sent

    def stream_try_send(self, stream_id: int, data: bytes) -> bool:
        """Frame and write `data` now if the transport is not holding writes back and it fits
        one DATA frame within both windows (`ClientCore.try_send_frame`); else do nothing.

        Returns:
            Whether `data` was written.
        """
        if self._writable() and self._core.try_send_frame(stream_id, data):
            self._flush()
            return True
        return False

    def stream_acknowledge(self, stream_id: int, length: int) -> None:
        """Give back the window of `length` flow-controlled bytes a consumer took, and write."""
        self._core.acknowledge(stream_id, length)
        self._flush()

    async def stream_wait_window(self, stream: HTTP2Stream) -> None:
        """Wait until the windows may have grown (any progress of the connection).

        Raises:
            StreamInactivityTimeout: nothing within `stream.inactivity_timeout` (the stream
                is reset).
        """
        await self._wait_progress(stream.inactivity_timeout, stream)

    # -- public operations -------------------------------------------------------------------

    async def open_stream(
        self,
        method: str,
        path: str,
        headers: Sequence[tuple[str, str]] = (),
        *,
        body: Body | None = b"",
        response_timeout: float | _Default | None = DEFAULT,
        inactivity_timeout: float | _Default | None = DEFAULT,
    ) -> HTTP2Stream:
        """Open a request stream, waiting for a free slot under the server's stream limit.

        The wait for a slot ends at the stream's `response_timeout` or `inactivity_timeout`,
        whichever is shorter, and counts toward the response's total wait.

        Returns once the HEADERS are written; the body (if any) is sent by a task of its own,
        so the response can be read while the upload goes on.

        Args:
            method: `GET`, `POST`, ...
            path: the request target.
            headers: further request headers (`authorization`, `content-type`, ...).
            body: `b""` for none (END_STREAM on the HEADERS); bytes, or an async iterable of
                chunks sent as they arrive; None to send it yourself with
                `HTTP2Stream.send_data()` and `end_stream()`.
            response_timeout: wait for the response headers (default from the config).
            inactivity_timeout: longest stall of the stream (default from the config; None
                for a downchannel).

        Returns:
            The stream.

        Raises:
            ResponseTimeout: no stream slot came free in time.
            ConnectionDraining: the server sent GOAWAY.
            ConnectionLost: the connection broke.
            ConnectionClosed: the connection was closed (or never opened).
            LocalProtocolError: invalid headers.
        """
        if self._state != "open":
            if self._state == "closed":
                raise self._closed_error()
            raise ConnectionClosed("the HTTP/2 connection is not open: call connect() first")
        response_limit = _timeout(response_timeout, self.config.response_timeout)
        inactivity_limit = _timeout(inactivity_timeout, self.config.stream_inactivity_timeout)
        waited = await self._wait_stream_slot(_slot_limit(response_limit, inactivity_limit))
        if response_limit is not None:
            # The wait for a slot counts toward the wait for the response headers.
            response_limit = max(response_limit - waited, 0.001)
        core = self._core
        end_stream = isinstance(body, (bytes, bytearray, memoryview)) and not body
        try:
            stream_id = core.open_stream(
                method,
                path,
                scheme=self._scheme,
                authority=self.authority,
                headers=headers,
                end_stream=end_stream,
            )
        except ConnectionClosed:
            raise self._closed_error() from None
        stream = HTTP2Stream(
            self,
            stream_id,
            response_timeout=response_limit,
            inactivity_timeout=inactivity_limit,
            upload_open=not end_stream,
        )
        self._streams[stream_id] = stream
        self._flush()
        if body is not None and not end_stream:
            task = stream.start_upload(body)
            self._uploads.add(task)
            task.add_done_callback(self._uploads.discard)
        return stream

    async def _wait_stream_slot(self, limit: float | None) -> float:
        """Wait until a new stream fits the server's SETTINGS_MAX_CONCURRENT_STREAMS.

        A server may announce 0, or lower the limit once streams are open (RFC 9113 section
        6.5.2), so a slot may never come: the wait ends at `limit`.

        Returns:
            How long it waited, in seconds.

        Raises:
            ResponseTimeout: no slot within `limit` seconds.
            ConnectionDraining, ConnectionLost, ConnectionClosed: the connection's error.
        """
        core = self._core
        loop = asyncio.get_running_loop()
        start = loop.time()
        deadline = None if limit is None else start + limit
        while True:
            try:
                if core.can_open_stream():
                    return loop.time() - start
            except (ConnectionDraining, LocalProtocolError, RemoteProtocolError) as exc:
                raise self._error_for(exc) from None
            except ConnectionClosed:
                raise self._closed_error() from None
            progress = self._progress
            assert progress is not None
            try:
                async with asyncio.timeout_at(deadline):
                    await asyncio.shield(progress)
            except TimeoutError as exc:
                raise ResponseTimeout(
                    f"no free stream slot on {self.authority} within {limit} s (the server "
                    f"allows {core.max_concurrent_streams} concurrent streams, "
                    f"{self.open_stream_count} are open)"
                ) from exc

    async def request(
        self,
        method: str,
        path: str,
        headers: Sequence[tuple[str, str]] = (),
        *,
        body: Body | None = b"",
        response_timeout: float | _Default | None = DEFAULT,
        inactivity_timeout: float | _Default | None = DEFAULT,
    ) -> tuple[HTTP2Stream, Response]:
        """Open a stream and wait for its response headers (`open_stream` + `response`).

        Returns:
            The stream (read its body from it, then close it) and the response.

        Raises:
            As `open_stream` and `HTTP2Stream.response`.
        """
        stream = await self.open_stream(
            method,
            path,
            headers,
            body=body,
            response_timeout=response_timeout,
            inactivity_timeout=inactivity_timeout,
        )
        try:
            return stream, await stream.response()
        except BaseException:
            await stream.aclose()
            raise

    async def ping(self, timeout: float | _Default | None = DEFAULT) -> float:
        """Send an HTTP/2 PING and wait for its acknowledgement.

        Args:
            timeout: seconds to wait (default `ConnectionConfig.ping_timeout`).

        Returns:
            The round-trip time in seconds.

        Raises:
            PingTimeout: no acknowledgement in time (the connection is probably dead; the
                owner decides whether to give up on it).
            ConnectionLost, ConnectionClosed: the connection is over.
        """
        if self._state != "open":
            raise self._closed_error()
        try:
            payload = self._core.send_ping()
        except (ConnectionClosed, LocalProtocolError, RemoteProtocolError) as exc:
            raise self._error_for(exc) from None
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._pings[payload] = waiter
        self._flush()
        start = loop.time()
        limit = _timeout(timeout, self.config.ping_timeout)
        try:
            async with asyncio.timeout(limit):
                await waiter
        except TimeoutError as exc:
            raise PingTimeout(f"no PING acknowledgement within {limit} s") from exc
        finally:
            del self._pings[payload]
        return loop.time() - start

    async def wait_goaway(self) -> GoAwayReceived:
        """Wait until the server sends GOAWAY.

        Returns:
            The GOAWAY.

        Raises:
            ConnectionLost, ConnectionClosed: the connection ended without a GOAWAY.
        """
        future = self._goaway_future
        if future is None:
            raise ConnectionClosed("the HTTP/2 connection is not open: call connect() first")
        return await asyncio.shield(future)

    async def wait_closed(self) -> BaseException | None:
        """Wait until the connection is over.

        Returns:
            What ended it (`ConnectionLost`, with the foreign error as its `__cause__`), or
            None when the owner closed it or the server ended it cleanly.
        """
        future = self._closed_future
        if future is None:
            return None
        return await asyncio.shield(future)

    def _closed_error(self) -> TransportError:
        future = self._closed_future
        if future is not None and future.done():
            reason = future.result()
            if isinstance(reason, TransportError):
                return reason
        return ConnectionClosed("the HTTP/2 connection is closed")

    async def aclose(self) -> None:
        """Close the connection: GOAWAY, fail open streams with `ConnectionClosed`, stop tasks.

        Safe to call more than once, and after the connection broke.
        """
        if self._state == "new":
            self._state = "closed"
            return
        if self._state == "open":
            with contextlib.suppress(LocalProtocolError):
                self._core.close()
            self._flush()
        self._fail(ConnectionClosed("the HTTP/2 connection was closed by its owner"))
        # Cleanup is shielded from the caller's cancellation, so no task or socket leaks.
        await asyncio.shield(self._shutdown())

    async def _shutdown(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        tasks = [t for t in (self._supervisor, *self._uploads) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        writer = self._writer
        if writer is not None:
            try:
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()
            except (TimeoutError, OSError, ssl.SSLError):
                writer.transport.abort()

    async def __aenter__(self) -> HTTP2Connection:
        await self.connect()
        return self
