"""Settings of the event gateway and Skill Messaging clients: regions, hosts, limits, retries.

Hosts follow avs-protocol.md 7.1 (event gateway) and 8 (Skill Messaging). Every host can be
replaced with `base_url` (the simulator's `sim.url` in tests), so an unconfirmed host never
locks a user in.
"""

from __future__ import annotations

import enum
import math
import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from avsclient._retry import RetryPolicy

__all__ = [
    "EVENT_GATEWAY_HOSTS",
    "EVENT_GATEWAY_PATH",
    "GATEWAY_RETRY",
    "MAX_ENDPOINTS_PER_REPORT",
    "MAX_PAYLOAD_BYTES",
    "SKILL_MESSAGING_HOSTS",
    "SKILL_MESSAGING_PATH",
    "GatewayConfig",
    "GatewayRegion",
    "ReportLimits",
    "RetryPolicy",
    "SkillMessagingConfig",
]


class GatewayRegion(enum.Enum):
    """Where the user enabled the skill: its events go to that region's host (7.1)."""

    NA = "NA"
    EU = "EU"
    FE = "FE"


EVENT_GATEWAY_PATH = "/v3/events"
SKILL_MESSAGING_PATH = "/v1/skillmessages/users/{user_id}"

EVENT_GATEWAY_HOSTS: dict[GatewayRegion, str] = {
    GatewayRegion.NA: "https://api.amazonalexa.com",
    GatewayRegion.EU: "https://api.eu.amazonalexa.com",  # Europe and India
    GatewayRegion.FE: "https://api.fe.amazonalexa.com",  # Far East and Australia
}

SKILL_MESSAGING_HOSTS: dict[GatewayRegion, str] = {
    GatewayRegion.NA: "https://api.amazonalexa.com",
    GatewayRegion.EU: "https://api.eu.amazonalexa.com",
    # As printed in the Skill Messaging API reference; `api.fe.amazonalexa.com` may be the
    # intended host (unconfirmed, avs-protocol.md 8). Pass `base_url` to use another.
    GatewayRegion.FE: "https://api.fe.amazon.com",
}

# 300 endpoints per customer and 256 KB per AddOrUpdateReport payload (avs-protocol.md 7.2).
# "KB" is read as 1000 bytes, the stricter reading, and applied to the whole event body.
MAX_ENDPOINTS_PER_REPORT = 300
MAX_PAYLOAD_BYTES = 256_000
MAX_CAPABILITIES_PER_ENDPOINT = 100
# The Skill Messaging `data` limit is truncated in the only copy of the docs: "about 6 KB".
MAX_MESSAGE_DATA_BYTES = 6_000
# Error bodies are a few hundred bytes; anything past 64 KiB is not read (a hostile server).
MAX_REPLY_BYTES = 64 * 1024

# Retries are never closer than this (the "at least 1 s apart").
MIN_RETRY_DELAY = 1.0
# One event-gateway client retries 429, 5xx and network errors 3 times at 1, 2 and 4 s
# (avs-protocol.md 7.3, [R28]). Jitter only lengthens a delay, by up to 25 %, so retries
# stay at least their table entry apart.
GATEWAY_RETRY = RetryPolicy(delays=(1.0, 2.0, 4.0), jitter=(1.0, 1.25), max_retries=3)
# A Retry-After header is not documented (unconfirmed); honoured up to this many seconds.
MAX_RETRY_AFTER = 60.0


def _check_retry(policy: RetryPolicy) -> None:
    """Refuse a retry policy the gateway rules forbid (avs-protocol.md 7.3).

    Raises:
        ValueError: a delay could come out under `MIN_RETRY_DELAY`, or `max_retries` is
            None (a report must end).
    """
    if min(policy.delays) * policy.jitter[0] < MIN_RETRY_DELAY:
        raise ValueError(f"every retry delay must be a finite number >= {MIN_RETRY_DELAY} s")
    if policy.max_retries is None:
        raise ValueError("a gateway retry policy needs a finite max_retries")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportLimits:
    """How large one event-gateway message may be; larger reports are split into batches.

    Attributes:
        max_endpoints: endpoints per AddOrUpdateReport or DeleteReport message.
        max_body_bytes: bytes per encoded event body (the token in it included).
        max_capabilities: capabilities per endpoint.
    """

    max_endpoints: int = MAX_ENDPOINTS_PER_REPORT
    max_body_bytes: int = MAX_PAYLOAD_BYTES
    max_capabilities: int = MAX_CAPABILITIES_PER_ENDPOINT

    def __post_init__(self) -> None:
        if self.max_endpoints < 1 or self.max_capabilities < 1:
            raise ValueError("max_endpoints and max_capabilities must be >= 1")
        if self.max_body_bytes < 8192:
            raise ValueError("max_body_bytes must be >= 8192 (a token alone may take 4096)")


def _check_url(url: str | None) -> None:
    if url is None:
        return
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.path not in ("", "/"):
        raise ValueError(f"base_url must be an http(s) URL without a path, got {url!r}")


def _check_timeout(timeout: float) -> None:
    if not math.isfinite(timeout) or timeout <= 0:
        raise ValueError("timeout must be > 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayConfig:
    """Where and how the `EventGatewayClient` sends reports.

    Attributes:
        region: the user's region; picks the host from `EVENT_GATEWAY_HOSTS`.
        base_url: a URL that replaces the regional host (`https://host[:port]`, no path).
        ca_file: a PEM file of CAs to trust instead of the system store.
        timeout: seconds allowed for connecting, and for each read and write.
        retry: how 429, 5xx and network failures are retried (`GATEWAY_RETRY`).
        limits: batch limits; reports are split to respect them before sending.
    """

    region: GatewayRegion = GatewayRegion.NA
    base_url: str | None = None
    ca_file: str | os.PathLike[str] | None = None
    timeout: float = 10.0
    retry: RetryPolicy = GATEWAY_RETRY
    limits: ReportLimits = field(default_factory=ReportLimits)

    def __post_init__(self) -> None:
        _check_url(self.base_url)
        _check_timeout(self.timeout)
        _check_retry(self.retry)

    @property
    def url(self) -> str:
        """The base URL in use (the override, or the region's host)."""
        return (self.base_url or EVENT_GATEWAY_HOSTS[self.region]).rstrip("/")


@dataclass(frozen=True, slots=True, kw_only=True)
class SkillMessagingConfig:
    """Where and how the `SkillMessagingClient` sends messages.

    Attributes:
        region: the skill's region; picks the host from `SKILL_MESSAGING_HOSTS`.
        base_url: a URL that replaces the regional host (`https://host[:port]`, no path).
        ca_file: a PEM file of CAs to trust instead of the system store.
        timeout: seconds allowed for connecting, and for each read and write.
        retry: how 429, 5xx and network failures are retried (`GATEWAY_RETRY`).
        max_data_bytes: the largest encoded `data` object accepted.
    """

    region: GatewayRegion = GatewayRegion.NA
    base_url: str | None = None
    ca_file: str | os.PathLike[str] | None = None
    timeout: float = 10.0
    retry: RetryPolicy = GATEWAY_RETRY
    max_data_bytes: int = MAX_MESSAGE_DATA_BYTES

    def __post_init__(self) -> None:
        _check_url(self.base_url)
        _check_timeout(self.timeout)
        _check_retry(self.retry)
        if self.max_data_bytes < 2:
            raise ValueError("max_data_bytes must be >= 2 (the empty object)")

    @property
    def url(self) -> str:
        """The base URL in use (the override, or the region's host)."""
        return (self.base_url or SKILL_MESSAGING_HOSTS[self.region]).rstrip("/")
