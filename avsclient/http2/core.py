"""The sans-IO HTTP/2 client core: an h2 connection plus stream bookkeeping (no I/O, no clock).

Bytes from the network go in through `receive_data()`, which returns `avsclient.http2.events`;
bytes for the network collect in one buffer that `data_to_send()` drains. The asyncio shell
(`connection.py`) owns the socket, the tasks and the timers; every protocol decision lives
here: when a stream may be opened, how much of a chunk fits the windows and frame size, what a
GOAWAY means for each stream, what is lost when the connection ends.
"""

from __future__ import annotations

import contextlib
import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

import h2.config
import h2.events
import h2.exceptions
import h2.settings
from h2.errors import ErrorCodes

from avsclient._fsm import StateMachine, Table
from avsclient.config import ConnectionConfig
from avsclient.exceptions import (
    ConnectionClosed,
    ConnectionDraining,
    LocalProtocolError,
    RemoteProtocolError,
)
from avsclient.http2._h2 import H2Connection
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
    WindowUpdated,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = [
    "ClientCore",
    "ConnectionState",
]

logger = logging.getLogger("avsclient.http2")

_SettingCodes = h2.settings.SettingCodes


class ConnectionState(enum.Enum):
    """Where a `ClientCore` is in its life."""

    OPEN = "open"
    DRAINING = "draining"  # the peer sent GOAWAY: existing streams finish, no new ones
    CLOSED = "closed"  # we closed it, or the peer ended it
    ERROR = "error"  # a protocol error broke it; sticky


class _Input(enum.Enum):
    GOAWAY_RECEIVED = "goaway received"
    CLOSE = "close"
    END_OF_INPUT = "end of input"
    PROTOCOL_ERROR = "protocol error"


# Theory of operation: a connection starts OPEN. A GOAWAY from the peer makes it DRAINING (and
# more GOAWAYs keep it there, RFC 9113 section 6.8 allows a peer to send several). Our close(),
# or the end of the peer's bytes, makes it CLOSED; a protocol error makes it ERROR. Closing is
# idempotent, and closing a broken connection leaves it broken. Any pair missing here (say,
# bytes after the end of input) moves the machine to ERROR: a caller bug or a hostile peer.
_TRANSITIONS: Table[ConnectionState, _Input, None] = {
    (ConnectionState.OPEN, _Input.GOAWAY_RECEIVED): (None, ConnectionState.DRAINING),
    (ConnectionState.DRAINING, _Input.GOAWAY_RECEIVED): (None, ConnectionState.DRAINING),
    (ConnectionState.OPEN, _Input.CLOSE): (None, ConnectionState.CLOSED),
    (ConnectionState.DRAINING, _Input.CLOSE): (None, ConnectionState.CLOSED),
    (ConnectionState.CLOSED, _Input.CLOSE): (None, ConnectionState.CLOSED),
    (ConnectionState.ERROR, _Input.CLOSE): (None, ConnectionState.ERROR),
    (ConnectionState.OPEN, _Input.END_OF_INPUT): (None, ConnectionState.CLOSED),
    (ConnectionState.DRAINING, _Input.END_OF_INPUT): (None, ConnectionState.CLOSED),
    (ConnectionState.CLOSED, _Input.END_OF_INPUT): (None, ConnectionState.CLOSED),
    (ConnectionState.OPEN, _Input.PROTOCOL_ERROR): (None, ConnectionState.ERROR),
    (ConnectionState.DRAINING, _Input.PROTOCOL_ERROR): (None, ConnectionState.ERROR),
}


@dataclass(slots=True)
class _Stream:
    """What the core remembers of one open stream."""

    local_closed: bool = False  # we sent END_STREAM
    response_started: bool = False


def _decode_headers(raw: Iterable[tuple[bytes, bytes]]) -> tuple[tuple[str, str], ...]:
    # Header bytes are opaque octets (RFC 9110 section 5.5); latin-1 maps each to one code point
    # and never fails, so a hostile value cannot break decoding.
    return tuple(
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in raw
        if not name.startswith(b":")
    )


class ClientCore:
    """The client side of one HTTP/2 connection, fed bytes, producing events and bytes.

    Args:
        config: windows and limits (timeouts are the shell's business).
    """

    def __init__(self, config: ConnectionConfig | None = None) -> None:
        self.config = config or ConnectionConfig()
        self._h2 = H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self._machine = StateMachine(
            _TRANSITIONS, ConnectionState.OPEN, name="ClientCore", error_state=ConnectionState.ERROR
        )
        self._streams: dict[int, _Stream] = {}
        self._goaway: GoAwayReceived | None = None
        self._ping_counter = 0
        self._preface: bytes | None = b""  # the server's first bytes, until 9 are checked
        self._initiated = False

    # -- state ------------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """The connection's state."""
        return self._machine.state

    @property
    def goaway(self) -> GoAwayReceived | None:
        """The most recent GOAWAY received, or None."""
        return self._goaway

    @property
    def open_stream_ids(self) -> tuple[int, ...]:
        """Streams opened here and not yet finished in both directions, nor reset."""
        return tuple(self._streams)

    @property
    def max_concurrent_streams(self) -> int:
        """The peer's SETTINGS_MAX_CONCURRENT_STREAMS (unlimited until it says otherwise)."""
        return self._h2.remote_settings.max_concurrent_streams

    @property
    def max_outbound_frame_size(self) -> int:
        """The largest DATA payload the peer accepts in one frame."""
        return self._h2.max_outbound_frame_size

    def _check_usable(self) -> None:
        """Raise the sticky error, or ConnectionClosed, when the connection takes no work."""
        machine = self._machine
        if machine.error is not None:
            raise machine.error
        if machine.state is ConnectionState.CLOSED:
            raise ConnectionClosed("the HTTP/2 connection is closed")

    # -- output -----------------------------------------------------------------------------

    def initiate(self) -> None:
        """Queue the connection preface, our SETTINGS and the connection window update.

        Raises:
            LocalProtocolError: when called twice.
        """
        if self._initiated:
            raise LocalProtocolError("the connection was already initiated")
        self._initiated = True
        cfg = self.config
        # Settings replaced before the preface are in force at once (httpcore does the same):
        # server push off, large windows (see config.py), our frame and header limits.
        self._h2.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                _SettingCodes.ENABLE_PUSH: 0,
                _SettingCodes.MAX_CONCURRENT_STREAMS: 100,
                _SettingCodes.INITIAL_WINDOW_SIZE: cfg.stream_window,
                _SettingCodes.MAX_FRAME_SIZE: cfg.max_inbound_frame_size,
                _SettingCodes.MAX_HEADER_LIST_SIZE: cfg.max_header_list_size,
            },
        )
        self._h2.max_inbound_frame_size = cfg.max_inbound_frame_size
        self._h2.decoder.max_header_list_size = cfg.max_header_list_size
        self._h2.initiate_connection()
        # The connection window cannot be set by SETTINGS (RFC 9113 section 6.9.2): grow it.
        if cfg.connection_window > 65_535:
            self._h2.increment_flow_control_window(cfg.connection_window - 65_535)

    def data_to_send(self) -> bytes:
        """Return (and forget) every byte queued for the network."""
        return self._h2.data_to_send()

    # -- streams ----------------------------------------------------------------------------

    def can_open_stream(self) -> bool:
        """True when a new stream fits the peer's SETTINGS_MAX_CONCURRENT_STREAMS now.

        Raises:
            ConnectionDraining: after GOAWAY (waiting will not help).
            ConnectionClosed: after close() or the end of input.
            LocalProtocolError, RemoteProtocolError: the connection failed earlier.
        """
        self._check_open()
        return self._h2.open_outbound_streams < self._h2.remote_settings.max_concurrent_streams

    def _check_open(self) -> None:
        self._check_usable()
        if self._goaway is not None:
            raise ConnectionDraining(
                "the server sent GOAWAY: this connection takes no new streams",
                last_stream_id=self._goaway.last_stream_id,
                error_code=self._goaway.error_code,
            )

    def open_stream(
        self,
        method: str,
        path: str,
        *,
        scheme: str,
        authority: str,
        headers: Sequence[tuple[str, str]] = (),
        end_stream: bool = False,
    ) -> int:
        """Queue the HEADERS of a new request stream and return its id.

        Args:
            method: the request method (`GET`, `POST`).
            path: the request target (`/v20160207/events`).
            scheme: `https` or `http`.
            authority: `host[:port]`.
            headers: further request headers; names are sent lower-case.
            end_stream: True when the request has no body.

        Returns:
            The new stream's id.

        Raises:
            ConnectionDraining: after GOAWAY.
            ConnectionClosed: after close() or the end of input.
            LocalProtocolError: no stream slot is free (check `can_open_stream()` first), the
                headers are invalid, or the connection failed earlier.
            RemoteProtocolError: the connection failed earlier because of the peer.
        """
        if not self.can_open_stream():
            raise LocalProtocolError(
                f"the peer allows {self.max_concurrent_streams} concurrent streams: wait for one"
            )
        request_headers = [
            (":method", method),
            (":scheme", scheme),
            (":authority", authority),
            (":path", path),
            *((name.lower(), value) for name, value in headers),
        ]
        stream_id = self._h2.get_next_available_stream_id()
        try:
            self._h2.send_headers(stream_id, request_headers, end_stream=end_stream)
        except h2.exceptions.ProtocolError as exc:
            raise LocalProtocolError(f"cannot send these request headers: {exc}") from exc
        self._streams[stream_id] = _Stream(local_closed=end_stream)
        logger.debug("stream %d opened: %s %s", stream_id, method, path)
        return stream_id

    def send_window(self, stream_id: int) -> int:
        """How many body bytes may be sent on `stream_id` now (0 means: wait for the peer).

        Raises:
            LocalProtocolError: the stream is not open for sending.
        """
        stream = self._streams.get(stream_id)
        if stream is None or stream.local_closed:
            raise LocalProtocolError(f"stream {stream_id} is not open for sending")
        return self._h2.local_flow_control_window(stream_id)

    def send_data(
        self, stream_id: int, data: bytes | memoryview, *, end_stream: bool = False
    ) -> int:
        """Queue as much of `data` as the flow-control windows allow, in frames the peer accepts.

        Nothing is joined or copied beyond h2's framing: a large chunk is cut into frames of at
        most `max_outbound_frame_size` bytes (STYLE.md section 8).

        Args:
            stream_id: an open stream of ours.
            data: body bytes.
            end_stream: end the request body after the last byte, if all of it fits.

        Returns:
            How many bytes of `data` were queued; the caller sends the rest once a
            `WindowUpdated` event says the window grew.

        Raises:
            ConnectionClosed, LocalProtocolError, RemoteProtocolError: as `open_stream`
                (a GOAWAY does not stop existing streams).
            LocalProtocolError: the stream is not open for sending.
        """
        self._check_usable()
        window = self.send_window(stream_id)
        total = len(data)
        budget = min(total, window)
        frame_size = self._h2.max_outbound_frame_size
        view = memoryview(data)
        sent = 0
        try:
            while sent < budget:
                size = min(budget - sent, frame_size)
                last = end_stream and sent + size == total
                self._h2.send_data(stream_id, view[sent : sent + size], end_stream=last)
                sent += size
            if end_stream and total == 0:
                self._h2.end_stream(stream_id)
        except h2.exceptions.ProtocolError as exc:  # pragma: no cover - guarded above
            raise LocalProtocolError(f"cannot send data on stream {stream_id}: {exc}") from exc
        if end_stream and sent == total:
            self._local_closed(stream_id)
        return sent

    def try_send_frame(self, stream_id: int, data: bytes) -> bool:
        """Queue `data` as one DATA frame if nothing stands in the way, else queue nothing.

        The short form of `send_data` for a live producer's small chunk: nothing is queued
        unless the connection takes work, the stream takes a body, and `data` fits both
        flow-control windows and the peer's frame size; `send_data` then reports why.

        Returns:
            Whether the frame was queued.
        """
        state = self._machine.state  # read once: this runs for every chunk a producer streams
        if state is not ConnectionState.OPEN and state is not ConnectionState.DRAINING:
            return False
        stream = self._streams.get(stream_id)
        if stream is None or stream.local_closed:
            return False
        return self._h2.try_send_plain_data(stream_id, data)

    def end_stream(self, stream_id: int) -> None:
        """Queue the end of the request body (an empty DATA frame with END_STREAM).

        Raises:
            ConnectionClosed, LocalProtocolError, RemoteProtocolError: as `send_data`.
        """
        self.send_data(stream_id, b"", end_stream=True)

    def _local_closed(self, stream_id: int) -> None:
        stream = self._streams[stream_id]
        stream.local_closed = True

    def reset_stream(self, stream_id: int, error_code: int = ErrorCodes.CANCEL) -> None:
        """Queue RST_STREAM for a stream of ours and forget it; a no-op if it already ended.

        Args:
            stream_id: the stream.
            error_code: the HTTP/2 error code (CANCEL by default: we lost interest).
        """
        if self._streams.pop(stream_id, None) is None:
            return
        if self._machine.state not in (ConnectionState.OPEN, ConnectionState.DRAINING):
            return
        # The peer may have ended the stream meanwhile: then there is nothing to reset.
        with contextlib.suppress(h2.exceptions.StreamClosedError):
            self._h2.reset_stream(stream_id, error_code)

    def acknowledge(self, stream_id: int, flow_controlled_length: int) -> None:
        """Hand back window for body bytes the consumer has taken.

        Called when the consumer takes a chunk, not when it arrives, so a slow consumer holds
        the server back through HTTP/2 flow control (STYLE.md section 9).

        Args:
            stream_id: the stream the data came on.
            flow_controlled_length: the `DataReceived.flow_controlled_length` of the chunk.
        """
        if (
            self._machine.state in (ConnectionState.CLOSED, ConnectionState.ERROR)
            or not flow_controlled_length
        ):
            return
        self._h2.acknowledge_received_data(flow_controlled_length, stream_id)

    def send_ping(self, payload: bytes | None = None) -> bytes:
        """Queue a PING and return its 8 opaque bytes (matched by `PingAcknowledged.payload`).

        Args:
            payload: 8 bytes to use; by default a counter.

        Raises:
            ConnectionClosed, LocalProtocolError, RemoteProtocolError: the connection is over.
            ValueError: the payload is not 8 bytes.
        """
        self._check_usable()
        if payload is None:
            self._ping_counter += 1
            payload = self._ping_counter.to_bytes(8, "big")
        if len(payload) != 8:
            raise ValueError("a PING payload is exactly 8 bytes")
        self._h2.ping(payload)
        return payload

    def close(self, error_code: int = ErrorCodes.NO_ERROR) -> None:
        """Queue GOAWAY and stop: no more streams, no more input.

        Args:
            error_code: NO_ERROR for a normal close.
        """
        was = self._machine.state
        self._machine.feed(_Input.CLOSE)
        if was in (ConnectionState.OPEN, ConnectionState.DRAINING):
            self._h2.close_connection(error_code)

    # -- input ------------------------------------------------------------------------------

    def connection_lost(self, reason: str) -> list[TransportEvent]:
        """Report that the transport broke or ended; every open stream is lost.

        Args:
            reason: a short explanation for the events and exceptions.

        Returns:
            One `ConnectionTerminated` event (none if the connection was already over).
        """
        if self._machine.state in (ConnectionState.CLOSED, ConnectionState.ERROR):
            lost = tuple(self._streams)
            self._streams.clear()
            if not lost:
                return []
            return [ConnectionTerminated(open_stream_ids=lost, reason=reason, clean=False)]
        self._machine.feed(_Input.END_OF_INPUT)
        lost = tuple(self._streams)
        self._streams.clear()
        return [ConnectionTerminated(open_stream_ids=lost, reason=reason, clean=not lost)]

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[TransportEvent]:
        """Feed bytes from the network and return what they mean.

        Args:
            data: the bytes; `b""` means the peer closed the connection.

        Returns:
            The events, in order.

        Raises:
            RemoteProtocolError: the peer broke HTTP/2 (a GOAWAY is queued for it); sticky.
            LocalProtocolError: called after close(), or after an error; sticky.
        """
        self._machine.check()
        if not data:
            return self.connection_lost("the server closed the connection")
        if self._machine.state is ConnectionState.CLOSED:
            self._machine.feed(_Input.PROTOCOL_ERROR)  # data after the end: a caller bug
        if self._preface is not None:
            self._check_preface(data)
        try:
            h2_events = self._h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            error = RemoteProtocolError(f"the server broke HTTP/2: {exc}")
            raise self._machine.fail(_Input.PROTOCOL_ERROR, error) from exc
        events: list[TransportEvent] = []
        for h2_event in h2_events:
            handler = _HANDLERS.get(type(h2_event))
            if handler is not None:
                handler(self, h2_event, events)
        return events

    def _check_preface(self, data: bytes | bytearray | memoryview) -> None:
        # RFC 9113 section 3.4: the server's preface is a SETTINGS frame. Check the first frame
        # header here, because h2 would first buffer a whole "frame" of up to 16 MiB from,
        # say, an HTTP/1.1 server whose "HTTP/1.1 " reads as a 4.7 MB frame length.
        assert self._preface is not None
        self._preface += bytes(data[: 9 - len(self._preface)])
        if len(self._preface) < 9:
            return
        frame_type = self._preface[3]
        self._preface = None
        if frame_type != 0x4:
            raise self._machine.fail(
                _Input.PROTOCOL_ERROR,
                RemoteProtocolError(
                    "the server is not speaking HTTP/2: its first frame is not SETTINGS"
                ),
            )

    # Each handler appends the events one h2 event means (dispatch table, STYLE.md section 8).

    def _on_response(self, ev: h2.events.Event, out: list[TransportEvent]) -> None:
        assert isinstance(ev, h2.events.ResponseReceived)
        stream_id = ev.stream_id
        assert stream_id is not None
        assert ev.headers is not None
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        raw = [(bytes(k), bytes(v)) for k, v in ev.headers]
        status_raw = next((v for k, v in raw if k == b":status"), b"")
        # RFC 9113 section 8.3.2: :status is a three-digit code; anything else is malformed,
        # a stream error of type PROTOCOL_ERROR (section 8.1.1) that spares other streams.
        if len(status_raw) != 3 or not status_raw.isdigit():
            self._reset_malformed(stream_id, f"malformed :status {status_raw!r}", out)
            return
        stream.response_started = True
        out.append(
            ResponseReceived(
                stream_id=stream_id, status=int(status_raw), headers=_decode_headers(raw)
            )
        )

    def _reset_malformed(self, stream_id: int, why: str, out: list[TransportEvent]) -> None:
        logger.warning("stream %d: %s; resetting it", stream_id, why)
        self._streams.pop(stream_id, None)
        self._h2.reset_stream(stream_id, ErrorCodes.PROTOCOL_ERROR)
        out.append(
            StreamResetReceived(
                stream_id=stream_id, error_code=ErrorCodes.PROTOCOL_ERROR, remote=False
            )
        )

    def _on_data(self, ev: h2.events.Event, out: list[TransportEvent]) -> None:
        assert isinstance(ev, h2.events.DataReceived)
        stream_id = ev.stream_id
        assert stream_id is not None
        assert ev.data is not None
        length = ev.flow_controlled_length or 0
        if not ev.data or stream_id not in self._streams:
            # Nothing to hand out (an empty frame, maybe with padding), or a stream we reset:
            # give the window back at once, nobody will read it.
            if length:
                self._h2.acknowledge_received_data(length, stream_id)
            return
        out.append(DataReceived(stream_id=stream_id, data=ev.data, flow_controlled_length=length))

    def _on_trailers(self, ev: h2.events.Event, out: list[TransportEvent]) -> None:
        assert isinstance(ev, h2.events.TrailersReceived)
        assert ev.stream_id is not None
        assert ev.headers is not None
        if ev.stream_id in self._streams:
            raw = [(bytes(k), bytes(v)) for k, v in ev.headers]
            out.append(TrailersReceived(stream_id=ev.stream_id, headers=_decode_headers(raw)))

    def _on_stream_ended(self, ev: h2.events.Event, out: list[TransportEvent]) -> None:
        assert isinstance(ev, h2.events.StreamEnded)
        stream_id = ev.stream_id
        assert stream_id is not None
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        # The response is complete. If our upload is still going, RFC 9113 section 8.1 lets the
        # server answer early; h2 keeps the stream half-closed (remote) and send_data goes on.
        if stream.local_closed:
            del self._streams[stream_id]
        out.append(StreamEnded(stream_id=stream_id))

    def _on_reset(self, ev: h2.events.Event, out: list[TransportEvent]) -> None:
        assert isinstance(ev, h2.events.StreamReset)
        stream_id = ev.stream_id
        assert stream_id is not None
        if self._streams.pop(stream_id, None) is None:
            return
        out.append(
            StreamResetReceived(
                stream_id=stream_id, error_code=int(ev.error_code or 0), remote=ev.remote_reset
            )
        )

    def _on_window(self, ev: h2.events.Event, out: list[TransportEvent]) -> None:
        assert isinstance(ev, h2.events.WindowUpdated)
        out.append(WindowUpdated(stream_id=ev.stream_id or 0))

    def _on_settings(self, ev: h2.events.Event, out: list[TransportEvent]) -> None:
        settings = self._h2.remote_settings
        out.append(
            SettingsReceived(
                max_concurrent_streams=settings.max_concurrent_streams,
                max_frame_size=self._h2.max_outbound_frame_size,
            )
        )

    def _on_ping_ack(self, ev: h2.events.Event, out: list[TransportEvent]) -> None:
        assert isinstance(ev, h2.events.PingAckReceived)
        assert ev.ping_data is not None
        out.append(PingAcknowledged(payload=bytes(ev.ping_data)))

    def _on_goaway(self, ev: h2.events.Event, out: list[TransportEvent]) -> None:
        assert isinstance(ev, h2.events.ConnectionTerminated)
        last = ev.last_stream_id or 0
        code = int(ev.error_code or 0)
        goaway = GoAwayReceived(
            last_stream_id=last, error_code=code, additional_data=ev.additional_data or b""
        )
        self._goaway = goaway
        if self._machine.state in (ConnectionState.OPEN, ConnectionState.DRAINING):
            self._machine.feed(_Input.GOAWAY_RECEIVED)
        logger.info("GOAWAY received: last stream %d, error code %d", last, code)
        out.append(goaway)
        # RFC 9113 section 6.8: streams above last_stream_id were not processed and never will be.
        for stream_id in [s for s in self._streams if s > last]:
            del self._streams[stream_id]
            out.append(StreamRefused(stream_id=stream_id, last_stream_id=last, error_code=code))


_Handler: TypeAlias = Callable[[ClientCore, h2.events.Event, list[TransportEvent]], None]
_HANDLERS: dict[type[h2.events.Event], _Handler] = {
    h2.events.ResponseReceived: ClientCore._on_response,
    h2.events.DataReceived: ClientCore._on_data,
    h2.events.TrailersReceived: ClientCore._on_trailers,
    h2.events.StreamEnded: ClientCore._on_stream_ended,
    h2.events.StreamReset: ClientCore._on_reset,
    h2.events.WindowUpdated: ClientCore._on_window,
    h2.events.RemoteSettingsChanged: ClientCore._on_settings,
    h2.events.PingAckReceived: ClientCore._on_ping_ack,
    h2.events.ConnectionTerminated: ClientCore._on_goaway,
}
