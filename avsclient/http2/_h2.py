"""`H2Connection`: h2's connection with faster receive and send paths and graceful GOAWAY.

1. **No `repr(frame)` per received frame.** h2 4.4.1 starts `H2Connection._receive_frame`
   with ``self.config.logger.trace("Received frame: %s", repr(frame))``. The `repr` is built
   before the logger can decline it, even with h2's default `DummyLogger`, and for a DATA
   frame hyperframe's `Frame.__repr__` calls `serialize_body()`, which copies the whole
   payload (16 KiB per frame) to show its first 20 bytes: about 30% of the receive time of a
   download. No setting avoids it, so `_receive_frame` is overridden with h2's own body minus
   that statement. Being a copy of private code, it is installed only for the h2 versions it
   was compared with (`VERIFIED_H2_VERSIONS`); other versions run h2's method unchanged.
   `tests/http2/test_h2.py` checks on the installed h2 that the copy's syntax tree equals
   h2's minus the trace call, and fails when h2 changes.

2. **Streams finish after GOAWAY.** RFC 9113 section 6.8: after GOAWAY no new streams may be
   opened, but streams up to the last stream id "might still complete successfully". h2
   moves its connection state machine to CLOSED on receiving GOAWAY (python-hyper/h2 issue
   #1181), after which every DATA or HEADERS frame of those streams raises `ProtocolError`,
   and it throws away the unsent output. Here a received GOAWAY is reported the same way
   (`h2.events.ConnectionTerminated`) but leaves the connection open for existing streams,
   keeps the output, and refuses new streams (`send_headers` raises `ProtocolError`). For
   the server side, `announce_goaway()` sends a GOAWAY that likewise lets in-flight streams
   finish (`close_connection()` keeps h2's closing behaviour).

3. **A short path for plain DATA frames.** h2's `send_data` builds a hyperframe `DataFrame`
   with its flag set, runs both state machines and serialises the frame: about 5 us per
   frame on a warm CPU, but about 65 us when it runs once every 10 ms after the process
   slept (a microphone's upload, where it was the largest part of the client's CPU). For
   the common case (no END_STREAM, no padding, a stream in OPEN or HALF_CLOSED_REMOTE, an
   open connection, the frame within both windows and the frame size) both state machine
   inputs are identity transitions with no side effect, so `send_data` writes the 9-byte
   frame header and the payload straight into h2's output buffer and lowers both windows,
   as h2 would. Every other call goes to h2's method. Installed for the verified h2
   versions only; `tests/http2/test_h2.py` checks those identity transitions on the
   installed h2 and compares the output and windows with h2's own method.

The simulator's server side can use the same class.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Final

import h2
import h2.connection
import h2.events
from h2.connection import ConnectionState
from h2.errors import ErrorCodes, _error_code_from_int
from h2.exceptions import ProtocolError, StreamClosedError, StreamIDTooLowError
from h2.stream import StreamState
from hyperframe.frame import GoAwayFrame, RstStreamFrame

if TYPE_CHECKING:
    from collections.abc import Iterable

    from h2.config import H2Configuration
    from h2.events import Event
    from hpack.struct import HeaderWeaklyTyped
    from hyperframe.frame import Frame

# Plain sorted order, as tests/test_exports.py checks (not ruff's isort-style order).
__all__ = [
    "FAST_RECEIVE_ACTIVE",
    "FAST_SEND_ACTIVE",
    "H2Connection",
    "VERIFIED_H2_VERSIONS",
]

#: h2 versions whose `H2Connection._receive_frame` matches the override below.
VERIFIED_H2_VERSIONS = frozenset({"4.4.1"})

#: True when the installed h2 gets the faster receive path (False: h2's own method runs).
FAST_RECEIVE_ACTIVE = h2.__version__ in VERIFIED_H2_VERSIONS

#: True when plain DATA frames take the short send path (fix 3).
FAST_SEND_ACTIVE = h2.__version__ in VERIFIED_H2_VERSIONS

# hyperframe's frame header: 24-bit length (as 16 + 8 bits), type, flags, stream id.
_FRAME_HEADER: Final = struct.Struct(">HBBBL")
_DATA_TYPE: Final = 0x0
_STREAM_SENDS_DATA: Final = frozenset({StreamState.OPEN, StreamState.HALF_CLOSED_REMOTE})
_CONNECTION_OPEN: Final = frozenset({ConnectionState.CLIENT_OPEN, ConnectionState.SERVER_OPEN})


class H2Connection(h2.connection.H2Connection):
    """`h2.connection.H2Connection` with faster receive and send paths and graceful GOAWAY.

    Use it wherever an `h2.connection.H2Connection` would be built, client or server side.

    Attributes:
        goaway_received: the last stream id of the most recent GOAWAY received, or None.
    """

    def __init__(self, config: H2Configuration | None = None) -> None:
        super().__init__(config)
        self.goaway_received: int | None = None

    def send_headers(
        self,
        stream_id: int,
        headers: Iterable[HeaderWeaklyTyped],
        end_stream: bool = False,
        priority_weight: int | None = None,
        priority_depends_on: int | None = None,
        priority_exclusive: bool | None = None,
    ) -> None:
        """Send headers, refusing to open a stream once the peer sent GOAWAY.

        Raises:
            h2.exceptions.ProtocolError: as h2 does, and for a new stream after GOAWAY.
        """
        if self.goaway_received is not None and stream_id not in self.streams:
            raise ProtocolError("GOAWAY received: the connection takes no new streams")
        super().send_headers(
            stream_id,
            headers,
            end_stream,
            priority_weight,
            priority_depends_on,
            priority_exclusive,
        )

    def send_data(
        self,
        stream_id: int,
        data: bytes | memoryview,
        end_stream: bool = False,
        pad_length: int | None = None,
    ) -> None:
        """Queue one DATA frame, as h2 does; plain frames take a short path (fix 3).

        Raises:
            As h2's `send_data`.
        """
        if (
            FAST_SEND_ACTIVE
            and not end_stream
            and pad_length is None
            and self.try_send_plain_data(stream_id, data)
        ):
            return
        super().send_data(stream_id, data, end_stream, pad_length)

    def try_send_plain_data(self, stream_id: int, data: bytes | memoryview) -> bool:
        """Queue `data` as one DATA frame (no END_STREAM, no padding) if it may go now.

        It may when the stream is open for sending, the connection is open, and `data` is
        not empty and fits both flow-control windows and the peer's frame size. Otherwise
        nothing is queued and `send_data` says why.

        Returns:
            Whether the frame was queued.
        """
        stream = self.streams.get(stream_id)
        if isinstance(data, memoryview):
            size, flat = data.nbytes, data.c_contiguous
        else:
            size, flat = len(data), True
        if not (
            flat
            and stream is not None
            and 0 < size <= self.max_outbound_frame_size
            and size <= self.outbound_flow_control_window
            and size <= stream.outbound_flow_control_window
            and stream.state_machine.state in _STREAM_SENDS_DATA
            and self.state_machine.state in _CONNECTION_OPEN
        ):
            return False
        if FAST_SEND_ACTIVE:
            out = self._data_to_send
            out += _FRAME_HEADER.pack(size >> 8, size & 0xFF, _DATA_TYPE, 0, stream_id)
            out += data
            stream.outbound_flow_control_window -= size
            self.outbound_flow_control_window -= size
        else:
            super().send_data(stream_id, data)
        return True

    def announce_goaway(
        self,
        error_code: int = 0,
        *,
        last_stream_id: int | None = None,
        additional_data: bytes = b"",
    ) -> None:
        """Queue a GOAWAY frame that lets streams up to `last_stream_id` finish.

        Unlike `close_connection()` the connection stays usable for existing streams; the
        caller stops accepting new ones and closes the socket when they are done.

        Args:
            error_code: the HTTP/2 error code (0, NO_ERROR, for a graceful shutdown).
            last_stream_id: the highest peer-initiated stream still processed; defaults to
                the highest one seen so far.
            additional_data: opaque debug data.
        """
        frame = GoAwayFrame(
            stream_id=0,
            last_stream_id=(
                self.highest_inbound_stream_id if last_stream_id is None else last_stream_id
            ),
            error_code=error_code,
            additional_data=additional_data,
        )
        self._prepare_for_sending([frame])

    def _receive_goaway_frame(self, frame: GoAwayFrame) -> tuple[list[Frame], list[Event]]:
        # Report the GOAWAY as h2 does, without closing the state machine or dropping the
        # unsent output (see the module docstring, fix 2).
        self.goaway_received = frame.last_stream_id
        event = h2.events.ConnectionTerminated()
        event.error_code = _error_code_from_int(frame.error_code)
        event.last_stream_id = frame.last_stream_id
        event.additional_data = frame.additional_data or None
        return [], [event]

    if FAST_RECEIVE_ACTIVE:

        def _receive_frame(self, frame: Frame) -> list[Event]:
            # Copied from h2 4.4.1 `H2Connection._receive_frame`, without its first statement
            # (the trace call that formats `repr(frame)`); see the module docstring, fix 1.
            events: list[Event]
            try:
                frames, events = self._frame_dispatch_table[frame.__class__](frame)
            except StreamClosedError as e:
                # A stream closed by RST_STREAM answers with RST_STREAM; otherwise this is a
                # connection error.
                if self._stream_is_closed_by_reset(e.stream_id):
                    f = RstStreamFrame(e.stream_id)
                    f.error_code = e.error_code
                    self._prepare_for_sending([f])
                    events = e._events
                else:
                    raise
            except StreamIDTooLowError as e:
                # Closed by RST_STREAM: stream error. Closed by END_STREAM or implicitly:
                # connection error (RFC 9113 section 5.1).
                if self._stream_is_closed_by_reset(e.stream_id):
                    f = RstStreamFrame(e.stream_id)
                    f.error_code = ErrorCodes.STREAM_CLOSED
                    self._prepare_for_sending([f])
                    events = []
                elif self._stream_is_closed_by_end(e.stream_id):
                    raise StreamClosedError(e.stream_id) from e
                else:
                    raise
            else:
                self._prepare_for_sending(frames)

            return events
