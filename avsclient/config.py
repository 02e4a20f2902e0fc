"""Configuration (no I/O): the client's AVS regions, timeouts, back-off and queue bounds, and the
HTTP/2 transport's timeouts, windows and limits; and `check_cloud_endpoint`, the one check of
every endpoint URL AVS sends (SetEndpoint, SetGateway) against the configured hosts.

Two frozen dataclasses, each checked when it is built: `ClientConfig`, passed to the
`ConnectionManager` (and the `AVSClient` built on it), and `ConnectionConfig`, the transport's
own (`avsclient.http2` imports it from here, so this bottom-layer module imports nothing
above it). `ClientConfig.connection_config()` derives the second from the first. Defaults
follow the AVS Device SDK as avs-protocol.md sections 1.1 and 1.4 describe it; every value
is in seconds unless noted.
"""

from __future__ import annotations

import enum
import math
import os
import re
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from avsclient.exceptions import EndpointRejected

# Plain sorted order, as tests/test_exports.py checks (not ruff's isort-style order).
__all__ = [
    "AMAZON_ENDPOINT_HOSTS",
    "ClientConfig",
    "ConnectionConfig",
    "DEFAULT_BACKOFF",
    "DEFAULT_BACKOFF_JITTER",
    "DEFAULT_CONNECTION_WINDOW",
    "DEFAULT_STREAM_WINDOW",
    "DeviceInfo",
    "MAX_CLOUD_ENDPOINT",
    "Region",
    "check_cloud_endpoint",
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

    @classmethod
    def parse(cls, name: str) -> Region:
        """The region called `name`, in any case (`"eu"`, `"EU"`).

        Raises:
            ValueError: no region has this name; the message lists them.
        """
        try:
            return cls[name.strip().upper()]
        except KeyError:
            names = ", ".join(r.name for r in cls)
            raise ValueError(f"unknown region {name!r} (choose one of {names})") from None

    @property
    def host(self) -> str:
        """The current gateway URL."""
        return self.value[0]

    @property
    def legacy_host(self) -> str:
        """The legacy (AVS Device SDK 1.x era) URL."""
        return self.value[1]


#: The hosts AVS may move a device to (System.SetEndpoint, Alexa.ApiGateway.SetGateway): the
#: current and legacy gateway hosts of every region (avs-protocol.md 1.1). The region table is
#: partly unconfirmed (India), so `ClientConfig.endpoint_hosts` replaces this where needed.
AMAZON_ENDPOINT_HOSTS: tuple[str, ...] = tuple(
    sorted(urlsplit(url).hostname or "" for region in Region for url in region.value)
)

#: Longest endpoint URL accepted from AVS: a host name, a port and a little more.
MAX_CLOUD_ENDPOINT = 2048

# Visible ASCII only: no spaces, tabs, line breaks (urlsplit would silently drop some of
# them) or non-ASCII look-alikes; a host name from AVS is plain ASCII (IDNA form).
_VISIBLE_ASCII = re.compile(r"[!-~]+")


def _host_allowed(host: str, allowed: Iterable[str]) -> bool:
    for entry in allowed:
        if entry.startswith("."):
            if host.endswith(entry) and len(host) > len(entry):
                return True
        elif host == entry:
            return True
    return False


def _host_names(hosts: object) -> tuple[str, ...]:
    """`ClientConfig.endpoint_hosts` checked and in lower case."""
    if isinstance(hosts, str) or not isinstance(hosts, Iterable):
        raise ValueError(f"endpoint_hosts must be a sequence of host names, not {hosts!r}")
    names = tuple(hosts)
    for host in names:
        if not (isinstance(host, str) and _VISIBLE_ASCII.fullmatch(host) and host.strip(".")):
            raise ValueError(f"endpoint_hosts must hold host names, not {host!r}")
    return tuple(host.lower() for host in names)


def check_cloud_endpoint(url: object, allowed_hosts: Iterable[str]) -> str:
    """Check a base URL that AVS sent, before anything stores or uses it.

    This is the one gate for every endpoint that comes from the cloud (System.SetEndpoint,
    Alexa.ApiGateway.SetGateway): what it refuses is never persisted, never connected to and
    changes nothing. Unlike `check_endpoint` (the application's own choice, which may be a
    cleartext `http://` simulator), a cloud endpoint must be:

    - a string of at most `MAX_CLOUD_ENDPOINT` visible ASCII characters;
    - `https://`: every request carries the bearer token, so it never goes over cleartext;
    - a bare base URL: no user info, path, query or fragment, and a port in 1..65535 if any;
    - on an allowed host: compared case-insensitively with each entry of `allowed_hosts`;
      an entry starting with a dot (`.gateway.devices.a2z.com`) allows the hosts below
      that domain, not the domain itself.

    Args:
        url: the value from the directive's payload, of any JSON type.
        allowed_hosts: host names (lower case), usually `ClientConfig.endpoint_hosts`.

    Returns:
        The URL without a trailing slash.

    Raises:
        EndpointRejected: any rule is broken (a `DirectiveError` and a `ValueError`).
    """
    if not isinstance(url, str):
        raise EndpointRejected(f"an endpoint must be a string, not {type(url).__name__}")
    shown = url if len(url) <= 80 else url[:77] + "..."
    if len(url) > MAX_CLOUD_ENDPOINT:
        raise EndpointRejected(f"an endpoint is at most {MAX_CLOUD_ENDPOINT} characters long")
    if not _VISIBLE_ASCII.fullmatch(url):
        raise EndpointRejected(f"an endpoint is visible ASCII without spaces, not {shown!r}")
    parts = urlsplit(url)
    if parts.scheme.lower() != "https":
        raise EndpointRejected(f"an endpoint from AVS must be https://, not {shown!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or "?" in url or "#" in url:
        raise EndpointRejected(f"an endpoint is a base URL without a path or query: {shown!r}")
    if "@" in parts.netloc:
        raise EndpointRejected(f"an endpoint carries no user name or password: {shown!r}")
    try:
        port = parts.port
    except ValueError:  # not a number, or above 65535
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise EndpointRejected(f"bad port in endpoint {shown!r}")
    host = parts.hostname
    if not host:
        raise EndpointRejected(f"an endpoint needs a host: {shown!r}")
    if not _host_allowed(host, allowed_hosts):
        raise EndpointRejected(
            f"the endpoint host {host!r} is not one the configuration allows "
            "(ClientConfig.endpoint_hosts)"
        )
    return url.rstrip("/")


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


# -- the HTTP/2 transport ---------------------------------------------------------------

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
        stream_inactivity_timeout: default longest pause in a stream's progress, either way
            (headers or a chunk received, upload bytes sent), while a caller waits on it: for
            the response headers, a body chunk, or room to send. None (no limit) suits the
            AVS downchannel, which is silent for hours.
        ping_timeout: how long a PING may stay unacknowledged (the default of `ping()`).
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


# -- the client ------------------------------------------------------------------------------


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
        endpoint_hosts: the hosts AVS may move the device to with System.SetEndpoint or
            Alexa.ApiGateway.SetGateway (`check_cloud_endpoint`); by default the Amazon
            gateway hosts of every region. A test or simulator setup names its own
            (`("127.0.0.1", "localhost")`); `endpoint` itself needs no entry here.
        ca_file: a PEM file of CAs to trust instead of the system's.
        ssl_context: a ready client context (ALPN must offer h2); overrides `ca_file`.
        ping_interval: send `GET /ping` after this long without an AVS exchange (AVS closes
            idle connections after 5 minutes).
        ping_timeout: how long a `GET /ping` may take; no answer means the link is dead.
        liveness_interval: send an HTTP/2 PING frame after this long without receiving a
            byte (a cheap check that finds a dead link long before `ping_interval`); None
            leaves liveness to `GET /ping` alone.
        liveness_timeout: how long that PING may stay unacknowledged; no answer means the
            link is dead. With the defaults a silent dead link is found within 20 s.
        event_timeout: an event stream without progress for this long, or whose response
            has not ended this long after its upload finished (time spent handling its parts
            not counted), ends TIMEDOUT and triggers an immediate ping.
        connect_timeout: a whole connection attempt (token, TCP, TLS, downchannel,
            SynchronizeState) must succeed within this.
        backoff: the reconnect delay table; the last entry repeats for ever.
        backoff_jitter: each delay is drawn from [low x, high x] of its table entry.
        healthy_after: a link must stay up this long before the back-off starts over; one
            that ends sooner (GOAWAY, a connection error) counts as a failed attempt.
        queue_size: events that may wait for a connection at once; more fail NOT_CONNECTED.
        queue_timeout: an event waiting for a connection longer than this fails NOT_CONNECTED.
        max_json_part: the largest JSON (directive) part handed on, in bytes (the directive
            pipeline enforces it; kept here so that one object configures the client).
        transport: HTTP/2 windows and limits; its timeouts are derived from the values above
            when left None.
        capabilities_api: the base URL of the legacy Capabilities API (e.g.
            `https://api.amazonalexa.com`): set it for a product registered before
            Alexa.Discovery, and the default agents declare the device's capabilities there
            (`PUT /v1/devices/@self/capabilities`, avs-protocol 9.7) instead of sending an
            Alexa.Discovery report; None (the default) uses Alexa.Discovery.
    """

    endpoint: str | None = None
    region: Region = Region.NA
    legacy_host: bool = False
    endpoint_hosts: tuple[str, ...] = AMAZON_ENDPOINT_HOSTS
    ca_file: str | os.PathLike[str] | None = None
    ssl_context: ssl.SSLContext | None = None
    # AVS Device SDK: ping after 5 idle minutes, wait 30 s for the answer (avs-protocol 1.4).
    ping_interval: float = 300.0
    ping_timeout: float = 30.0
    # A PING frame costs 17 bytes each way and no AVS request: probe an idle link every 15 s
    # and give the answer 5 s (a loopback or LAN round trip is milliseconds, a congested
    # mobile link a few hundred), so a dead link is noticed within about 20 s.
    liveness_interval: float | None = 15.0
    liveness_timeout: float = 5.0
    # SDK: an event stream without progress for 30 s is dead, then ping (avs-protocol 1.4).
    event_timeout: float = 30.0
    # SDK: the downchannel gets 60 s to answer (avs-protocol 1.4).
    connect_timeout: float = 60.0
    backoff: tuple[float, ...] = DEFAULT_BACKOFF
    backoff_jitter: tuple[float, float] = DEFAULT_BACKOFF_JITTER
    # A link that served for a minute is not part of a reconnect storm; one that a server
    # ends within seconds of SynchronizeState is, and must not restart the back-off table.
    healthy_after: float = 60.0
    # 32 events cover a burst of state reports while the link is down without letting an
    # application queue unbounded work behind a dead network.
    queue_size: int = 32
    queue_timeout: float = 30.0
    # Directives are a few KiB; 256 KiB bounds a hostile part while fitting any real one.
    max_json_part: int = 256 * KiB
    transport: ConnectionConfig | None = None
    capabilities_api: str | None = None

    def __post_init__(self) -> None:
        if self.endpoint is not None:
            object.__setattr__(self, "endpoint", check_endpoint(self.endpoint))
        if self.capabilities_api is not None:
            object.__setattr__(self, "capabilities_api", check_endpoint(self.capabilities_api))
        object.__setattr__(self, "endpoint_hosts", _host_names(self.endpoint_hosts))
        if not isinstance(self.region, Region):
            raise TypeError(f"region must be a Region, not {self.region!r}")
        for name in (
            "ping_interval",
            "ping_timeout",
            "liveness_timeout",
            "event_timeout",
            "connect_timeout",
            "queue_timeout",
            "healthy_after",
        ):
            _positive(name, getattr(self, name))
        if self.liveness_interval is not None:
            _positive("liveness_interval", self.liveness_interval)
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

    def check_cloud_endpoint(self, url: object) -> str:
        """`check_cloud_endpoint(url, self.endpoint_hosts)`: an endpoint or gateway URL AVS
        sent, checked before it is stored or used.

        Raises:
            EndpointRejected: not an https base URL on one of `endpoint_hosts`.
        """
        return check_cloud_endpoint(url, self.endpoint_hosts)

    def connection_config(self) -> ConnectionConfig:
        """The HTTP/2 transport settings: `transport` with timeouts taken from this config.

        TCP, TLS and SETTINGS get at most 10 s each (the transport's default), or less when
        `connect_timeout` is shorter; a PING waits `liveness_timeout` by default (the
        session's liveness check, `avsclient.avs.link`, decides when to send one).
        """
        base = self.transport or ConnectionConfig()
        handshake = min(10.0, self.connect_timeout)
        return replace(
            base,
            connect_timeout=handshake,
            tls_handshake_timeout=handshake,
            response_timeout=self.event_timeout,
            stream_inactivity_timeout=self.event_timeout,
            ping_timeout=self.liveness_timeout,
        )


# Documented limits of the device's own endpoint fields (avs-protocol 9.2, [R29][R30]).
_MAX_ID_PART = 256
_MAX_NAME = 128
_MAX_FIRMWARE = 2_147_483_647  # SoftwareInfo: an integer 1..2**31-1 (avs-protocol 12.2)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceInfo:
    """Who the device is: what Alexa.Discovery publishes about it and what System reports.

    The same identity as `avsclient login` uses (the AVS Device SDK's `deviceInfo` section).

    Attributes:
        client_id: the LWA client id of the device's security profile.
        product_id: the AVS product id.
        device_serial_number: the device serial number (DSN).
        manufacturer_name: the maker's name (1..128 characters).
        description: what the device is, e.g. "Acme kitchen speaker" (1..128 characters).
        firmware_version: the firmware version sent with System.SoftwareInfo, an integer in
            1..2147483647, or None to send none.
    """

    client_id: str
    product_id: str
    device_serial_number: str
    manufacturer_name: str = "avsclient"
    description: str = "A device built with avsclient"
    firmware_version: int | None = None

    def __post_init__(self) -> None:
        for name in ("client_id", "product_id", "device_serial_number"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value or "::" in value:
                raise ValueError(f"{name} must be a non-empty string without '::'")
        if len(self.endpoint_id) > _MAX_ID_PART:
            raise ValueError(f"clientId::productId::serial must be <= {_MAX_ID_PART} characters")
        for name in ("manufacturer_name", "description"):
            value = getattr(self, name)
            if not isinstance(value, str) or not 1 <= len(value) <= _MAX_NAME:
                raise ValueError(f"{name} must be 1..{_MAX_NAME} characters")
        version = self.firmware_version
        if version is not None and (
            isinstance(version, bool)
            or not isinstance(version, int)
            or not 1 <= version <= _MAX_FIRMWARE
        ):
            raise ValueError(f"firmware_version must be an integer in 1..{_MAX_FIRMWARE}")

    @property
    def endpoint_id(self) -> str:
        """The device's endpoint id in Discovery: `clientId::productId::deviceSerialNumber`."""
        return f"{self.client_id}::{self.product_id}::{self.device_serial_number}"
