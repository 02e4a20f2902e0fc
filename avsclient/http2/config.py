"""Configuration of the HTTP/2 transport: one frozen dataclass, checked when built."""

from __future__ import annotations

import math
from dataclasses import dataclass

# Plain sorted order, as tests/test_exports.py checks (not ruff's isort-style order).
__all__ = [
    "ConnectionConfig",
    "DEFAULT_CONNECTION_WINDOW",
    "DEFAULT_STREAM_WINDOW",
]

# RFC 9113 section 6.9.1: windows cannot exceed 2**31 - 1; section 6.5.2: frame sizes live in
# [2**14, 2**24 - 1].
_MAX_WINDOW = 2**31 - 1
_MIN_FRAME = 2**14
_MAX_FRAME = 2**24 - 1

#: Receive window of the whole connection. The RFC default (64 KiB) costs 35-50% of the
#: throughput of a multi-MiB download even on loopback: the server stalls every 64 KiB waiting
#: for a WINDOW_UPDATE. 16 MiB keeps a 100 Mbit/s, 1 s round trip link busy.
DEFAULT_CONNECTION_WINDOW = 16 * 1024 * 1024

#: Receive window of each stream. It is also the bound on what one stream buffers while its
#: consumer is slow (data is acknowledged only when the consumer takes it), so memory per
#: stream stays at most this large. Four such streams fit in the connection window, so a slow
#: consumer never blocks the others (AVS allows 10 streams, of which at most two carry
#: large bodies: the downchannel and one event response).
DEFAULT_STREAM_WINDOW = 4 * 1024 * 1024


def _check_timeout(name: str, value: float | None) -> None:
    if value is not None and not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive number of seconds or None, not {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionConfig:
    """Timeouts, windows and limits of one HTTP/2 client connection.

    Every timeout is in seconds; None disables it.

    Attributes:
        connect_timeout: TCP connect, and then receiving the server's first SETTINGS frame.
        tls_handshake_timeout: the TLS handshake.
        response_timeout: default wait for a stream's response headers (per stream override).
        stream_inactivity_timeout: default longest pause in a stream's progress while a caller
            waits for it: a body chunk, or room in the flow-control window to send one.
            None (no limit) suits the AVS downchannel, which is silent for hours.
        ping_timeout: how long a PING may stay unacknowledged.
        keepalive_interval: send a PING after this long without received bytes; a PING that
            times out breaks the connection. None leaves pinging to the owner.
        connection_window: receive window advertised for the connection.
        stream_window: receive window advertised for every stream (SETTINGS_INITIAL_WINDOW_SIZE);
            also the most one stream buffers for a slow consumer.
        max_inbound_frame_size: SETTINGS_MAX_FRAME_SIZE we advertise.
        max_header_list_size: SETTINGS_MAX_HEADER_LIST_SIZE we advertise and enforce.
        read_size: bytes asked from the socket per read.
        write_buffer_limit: an upload waits when this many bytes are queued for the socket, so
            a fast producer cannot outrun a slow network.
    """

    connect_timeout: float | None = 10.0
    tls_handshake_timeout: float | None = 10.0
    response_timeout: float | None = 30.0
    # AVS Device SDK: an event stream without progress for 30 s is considered dead
    # (avs-protocol.md section 1.4).
    stream_inactivity_timeout: float | None = 30.0
    # AVS Device SDK waits at most 30 s for a ping answer (avs-protocol.md section 1.4).
    ping_timeout: float | None = 30.0
    keepalive_interval: float | None = None
    connection_window: int = DEFAULT_CONNECTION_WINDOW
    stream_window: int = DEFAULT_STREAM_WINDOW
    max_inbound_frame_size: int = _MIN_FRAME
    max_header_list_size: int = 64 * 1024
    read_size: int = 256 * 1024
    write_buffer_limit: int = 1024 * 1024

    def __post_init__(self) -> None:
        for name in (
            "connect_timeout",
            "tls_handshake_timeout",
            "response_timeout",
            "stream_inactivity_timeout",
            "ping_timeout",
            "keepalive_interval",
        ):
            _check_timeout(name, getattr(self, name))
        if not 65_535 <= self.connection_window <= _MAX_WINDOW:
            raise ValueError(f"connection_window must be in [65535, {_MAX_WINDOW}]")
        if not 1 <= self.stream_window <= _MAX_WINDOW:
            raise ValueError(f"stream_window must be in [1, {_MAX_WINDOW}]")
        if self.stream_window > self.connection_window:
            raise ValueError("stream_window must not exceed connection_window")
        if not _MIN_FRAME <= self.max_inbound_frame_size <= _MAX_FRAME:
            raise ValueError(f"max_inbound_frame_size must be in [{_MIN_FRAME}, {_MAX_FRAME}]")
        if self.max_header_list_size < 1024:
            raise ValueError("max_header_list_size must be at least 1024")
        if self.read_size < 1024:
            raise ValueError("read_size must be at least 1024")
        if self.write_buffer_limit < 1024:
            raise ValueError("write_buffer_limit must be at least 1024")
