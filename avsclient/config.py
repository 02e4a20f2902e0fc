"""Client configuration: AVS regions and hosts, timeouts, back-off and queue bounds (no I/O).

One frozen dataclass, `ClientConfig`, checked when it is built and passed to the
`ConnectionManager` (and the `AVSClient` built on it). Defaults follow the AVS Device SDK as
avs-protocol.md sections 1.1 and 1.4 describe it; every value is in seconds unless noted.
"""

from __future__ import annotations

import enum
import math
import ssl
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    # Only for annotations: avsclient.http2 imports this module (no import cycle at run time).
    from avsclient.http2.config import ConnectionConfig

__all__ = [
    "ClientConfig",
    "DEFAULT_BACKOFF",
    "DEFAULT_BACKOFF_JITTER",
    "Region",
    "check_endpoint",
]

#: Reconnect back-off of the AVS Device SDK: 0.25, 1, 3, 5, 10, 20 s, the last repeating
#: (avs-protocol.md 1.4, [R6]).
DEFAULT_BACKOFF: tuple[float, ...] = (0.25, 1.0, 3.0, 5.0, 10.0, 20.0)

#: Each back-off delay is drawn uniformly from [0.667 x, 1.5 x] of its table entry ([R6]).
DEFAULT_BACKOFF_JITTER: tuple[float, float] = (0.667, 1.5)

KiB = 1024


class Region(enum.Enum):
    """An AVS region, with its current and legacy gateway hosts (avs-protocol.md 1.1).

    India is listed under FE by the newest documentation and under EU by older pages; pass
    `ClientConfig(endpoint=...)` where the region table is not enough.
    """

    NA = ("https://alexa.na.gateway.devices.a2z.com", "https://avs-alexa-na.amazon.com")
    EU = ("https://alexa.eu.gateway.devices.a2z.com", "https://avs-alexa-eu.amazon.com")
    FE = ("https://alexa.fe.gateway.devices.a2z.com", "https://avs-alexa-fe.amazon.com")

    @property
    def host(self) -> str:
        """The current gateway URL."""
        return self.value[0]

    @property
    def legacy_host(self) -> str:
        """The legacy (AVS Device SDK 1.x era) URL."""
        return self.value[1]


def check_endpoint(url: str) -> str:
    """Check that `url` is an `https://host[:port]` (or `http://` for h2c) base URL.

    Returns:
        The URL without a trailing slash.

    Raises:
        ValueError: another scheme, no host, or a path, query or fragment.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"an endpoint must be an http(s) URL with a host, not {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"an endpoint is a base URL without a path or query, not {url!r}")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise ValueError(f"bad port in endpoint {url!r}") from exc
    return url.rstrip("/")


def _positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientConfig:
    """How the client reaches AVS and how patient it is.

    Attributes:
        endpoint: a custom base URL (`https://host[:port]`, or `http://` for cleartext h2c,
            e.g. the local simulator); None picks the region's host.
        region: the AVS region when no endpoint is given.
        legacy_host: use the region's legacy host instead of the current one.
        ca_file: a PEM file of CAs to trust instead of the system's.
        ssl_context: a ready client context (ALPN must offer h2); overrides `ca_file`.
        ping_interval: send `GET /ping` after this long without receiving anything
            (AVS closes idle connections after 5 minutes).
        ping_timeout: how long a ping may take; no answer means the link is dead.
        event_timeout: an event stream without progress for this long ends TIMEDOUT and
            triggers an immediate ping.
        connect_timeout: the downchannel's response headers must arrive within this.
        backoff: the reconnect delay table; the last entry repeats for ever.
        backoff_jitter: each delay is drawn from [low x, high x] of its table entry.
        queue_size: events that may wait for a connection at once; more fail NOT_CONNECTED.
        queue_timeout: an event waiting for a connection longer than this fails NOT_CONNECTED.
        max_json_part: the largest JSON (directive) part handed on, in bytes (the directive
            pipeline enforces it; kept here so that one object configures the client).
        transport: HTTP/2 windows and limits; its timeouts are derived from the values above
            when left None.
    """

    endpoint: str | None = None
    region: Region = Region.NA
    legacy_host: bool = False
    ca_file: str | None = None
    ssl_context: ssl.SSLContext | None = None
    # AVS Device SDK: ping after 5 idle minutes, wait 30 s for the answer (avs-protocol 1.4).
    ping_interval: float = 300.0
    ping_timeout: float = 30.0
    # SDK: an event stream without progress for 30 s is dead, then ping (avs-protocol 1.4).
    event_timeout: float = 30.0
    # SDK: the downchannel gets 60 s to answer (avs-protocol 1.4).
    connect_timeout: float = 60.0
    backoff: tuple[float, ...] = DEFAULT_BACKOFF
    backoff_jitter: tuple[float, float] = DEFAULT_BACKOFF_JITTER
    # 32 events cover a burst of state reports while the link is down without letting an
    # application queue unbounded work behind a dead network.
    queue_size: int = 32
    queue_timeout: float = 30.0
    # Directives are a few KiB; 256 KiB bounds a hostile part while fitting any real one.
    max_json_part: int = 256 * KiB
    transport: ConnectionConfig | None = None

    def __post_init__(self) -> None:
        if self.endpoint is not None:
            object.__setattr__(self, "endpoint", check_endpoint(self.endpoint))
        if not isinstance(self.region, Region):
            raise TypeError(f"region must be a Region, not {self.region!r}")
        for name in (
            "ping_interval",
            "ping_timeout",
            "event_timeout",
            "connect_timeout",
            "queue_timeout",
        ):
            _positive(name, getattr(self, name))
        if not self.backoff or any(not (math.isfinite(d) and d >= 0) for d in self.backoff):
            raise ValueError("backoff must be a non-empty tuple of delays >= 0")
        low, high = self.backoff_jitter
        if not (math.isfinite(low) and math.isfinite(high) and 0 < low <= high):
            raise ValueError("backoff_jitter must be (low, high) with 0 < low <= high")
        if self.queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        if self.max_json_part < 1024:
            raise ValueError("max_json_part must be at least 1024 bytes")

    def url(self) -> str:
        """The base URL to connect to: the custom endpoint, else the region's host."""
        if self.endpoint is not None:
            return self.endpoint
        return self.region.legacy_host if self.legacy_host else self.region.host

    def connection_config(self) -> ConnectionConfig:
        """The HTTP/2 transport settings: `transport` with timeouts taken from this config.

        TCP, TLS and SETTINGS get at most 10 s each (the transport's default), or less when
        `connect_timeout` is shorter; the transport's own keep-alive stays off because the
        manager pings with `GET /ping` itself.
        """
        from avsclient.http2.config import ConnectionConfig

        base = self.transport or ConnectionConfig()
        handshake = min(10.0, self.connect_timeout)
        return replace(
            base,
            connect_timeout=handshake,
            tls_handshake_timeout=handshake,
            response_timeout=self.event_timeout,
            stream_inactivity_timeout=self.event_timeout,
            ping_timeout=self.ping_timeout,
            keepalive_interval=None,
        )
