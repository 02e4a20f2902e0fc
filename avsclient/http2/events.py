"""Events the sans-IO HTTP/2 client core returns from `receive_data` (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ConnectionTerminated",
    "DataReceived",
    "GoAwayReceived",
    "PingAcknowledged",
    "ResponseReceived",
    "SettingsReceived",
    "StreamEnded",
    "StreamRefused",
    "StreamResetReceived",
    "TrailersReceived",
    "TransportEvent",
    "WindowUpdated",
]

Headers = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportEvent:
    """Base class of the transport core's events."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseReceived(TransportEvent):
    """The final response headers of a stream arrived (1xx responses are skipped).

    Attributes:
        stream_id: the stream.
        status: the `:status` code.
        headers: the other headers, names lower-case, in order.
    """

    stream_id: int
    status: int
    headers: Headers


@dataclass(frozen=True, slots=True, kw_only=True)
class DataReceived(TransportEvent):
    """A chunk of a response body arrived.

    Attributes:
        stream_id: the stream.
        data: the bytes (immutable: slices of it may be kept).
        flow_controlled_length: what to pass to `acknowledge()` once the chunk is consumed
            (the data plus any padding).
    """

    stream_id: int
    data: bytes
    flow_controlled_length: int

    def __repr__(self) -> str:
        # Bodies carry audio: show a length and a short prefix, never the whole chunk.
        return (
            f"DataReceived(stream_id={self.stream_id}, "
            f"flow_controlled_length={self.flow_controlled_length}, "
            f"data=<{len(self.data)} bytes {self.data[:16]!r}...>)"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class TrailersReceived(TransportEvent):
    """Trailing headers of a response arrived.

    Attributes:
        stream_id: the stream.
        headers: the trailers.
    """

    stream_id: int
    headers: Headers


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamEnded(TransportEvent):
    """The response body of a stream is complete (END_STREAM).

    Attributes:
        stream_id: the stream.
    """

    stream_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamResetReceived(TransportEvent):
    """The peer reset a stream (RST_STREAM), or h2 reset it for a stream-level error.

    Attributes:
        stream_id: the stream.
        error_code: the HTTP/2 error code.
        remote: True when the peer sent the RST_STREAM.
    """

    stream_id: int
    error_code: int
    remote: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamRefused(TransportEvent):
    """A GOAWAY said the peer never processed this stream (id above `last_stream_id`).

    The request had no effect on the server, so it is safe to send again elsewhere
    (RFC 9113 section 6.8).

    Attributes:
        stream_id: the stream.
        last_stream_id: the GOAWAY's last stream id.
        error_code: the GOAWAY's error code.
    """

    stream_id: int
    last_stream_id: int
    error_code: int


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowUpdated(TransportEvent):
    """The peer opened a send window (WINDOW_UPDATE).

    Attributes:
        stream_id: the stream whose window grew, or 0 for the connection.
    """

    stream_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SettingsReceived(TransportEvent):
    """The peer's SETTINGS arrived (the first one completes the connection preface).

    New limits can unblock waiting senders: a larger SETTINGS_MAX_CONCURRENT_STREAMS, or a
    larger SETTINGS_INITIAL_WINDOW_SIZE.

    Attributes:
        max_concurrent_streams: how many streams we may open at once.
        max_frame_size: the largest frame payload the peer accepts.
    """

    max_concurrent_streams: int
    max_frame_size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PingAcknowledged(TransportEvent):
    """The peer acknowledged one of our PINGs.

    Attributes:
        payload: the 8 opaque bytes of the PING.
    """

    payload: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class GoAwayReceived(TransportEvent):
    """The peer sent GOAWAY: no new streams; streams up to `last_stream_id` may finish.

    Attributes:
        last_stream_id: the highest stream id the peer processes.
        error_code: the HTTP/2 error code (0: a graceful shutdown).
        additional_data: the debug data the peer attached.
    """

    last_stream_id: int
    error_code: int
    additional_data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionTerminated(TransportEvent):
    """The connection is over: the peer closed it, or it broke.

    Attributes:
        open_stream_ids: streams that were still open and are now lost.
        reason: a short human-readable explanation.
        clean: True when the connection ended without losing any stream.
    """

    open_stream_ids: tuple[int, ...]
    reason: str
    clean: bool
