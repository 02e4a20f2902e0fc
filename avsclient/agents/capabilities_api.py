"""The legacy Capabilities API (avs-protocol 9.7): products registered before Alexa.Discovery
declare their interfaces with `PUT /v1/devices/@self/capabilities` instead.

`capabilities_document()` and `put_outcome()` are plain functions (no I/O): the body
(`envelopeVersion` 20160207 and the capabilities) and what an answer means: 204 success;
400 (its `{"message"}` said) and 403 fatal; 500 retried on the reconnect back-off of
avs-protocol 1.4; any other status fatal. `CapabilitiesApi` is the thin httpx shell that
sends the PUT with the access token in `x-amz-access-token` (not `Authorization`).

It is an opt-in of `DiscoveryAgent` (`capabilities_api=`, or `ClientConfig.capabilities_api`
for the default agents): the same post-connect step, the same state and the same record of
the last accepted declaration in the device store, re-sent only when the body, the device's
ids or the host changed.
"""

from __future__ import annotations

import enum
import json
import os
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from avsclient._httpx import http2_client, map_httpx_errors
from avsclient._retry import RetryPolicy
from avsclient.config import DEFAULT_BACKOFF, check_endpoint

if TYPE_CHECKING:
    from avsclient.agents.base import Capability

__all__ = [
    "CAPABILITIES_API_PATH",
    "CAPABILITIES_API_RETRY",
    "CapabilitiesApi",
    "DEFAULT_CAPABILITIES_API_URL",
    "PutOutcome",
    "PutReply",
    "capabilities_document",
    "put_outcome",
]

#: The host the reference names (avs-protocol 9.7); regional hosts are unconfirmed, so the
#: URL is configurable.
DEFAULT_CAPABILITIES_API_URL = "https://api.amazonalexa.com"
CAPABILITIES_API_PATH = "/v1/devices/@self/capabilities"
#: A 500 is retried with the reconnect back-off (avs-protocol 9.7 -> 1.4): 0.25, 1, 3, 5,
#: 10, 20 s (the last repeating), each +/-50 %.
CAPABILITIES_API_RETRY = RetryPolicy(delays=DEFAULT_BACKOFF, jitter=(0.5, 1.5))
_ENVELOPE_VERSION = "20160207"
# Declared only for Alexa.Discovery (EventProcessed, avs-protocol 9.1): not a legacy interface.
_DISCOVERY_ONLY = frozenset({"Alexa"})
# An error body is a short JSON message; more is not read.
_MAX_REPLY_BYTES = 64 * 1024


def capabilities_document(capabilities: Sequence[Capability]) -> dict[str, Any]:
    """The PUT body: `{"envelopeVersion": "20160207", "capabilities": [...]}` (9.7), each
    capability `type`, `interface`, `version` and its `configurations` if any."""
    return {
        "envelopeVersion": _ENVELOPE_VERSION,
        "capabilities": [c.to_json() for c in capabilities if c.interface not in _DISCOVERY_ONLY],
    }


class PutOutcome(enum.Enum):
    """What one PUT's answer means (avs-protocol 9.7)."""

    ACCEPTED = "accepted"  # 204: store what was sent
    RETRY = "retry"  # 500: again on the back-off
    FATAL = "fatal"  # 400, 403, anything else: stop and say why


@dataclass(frozen=True, slots=True)
class PutReply:
    """A complete answer: its status and the first `_MAX_REPLY_BYTES` of its body."""

    status: int
    body: bytes


def put_outcome(reply: PutReply) -> tuple[PutOutcome, str]:
    """The meaning of an answer and a sentence saying why."""
    if reply.status == 204:
        return PutOutcome.ACCEPTED, "accepted (204)"
    if reply.status == 500:
        return PutOutcome.RETRY, "server error (500)"
    message = ""
    try:
        doc: Any = json.loads(reply.body) if reply.body else None
    except (ValueError, RecursionError):
        doc = None
    if isinstance(doc, Mapping) and isinstance(doc.get("message"), str):
        message = f": {doc['message'][:500]}"
    if reply.status == 400:
        return PutOutcome.FATAL, f"the declaration was refused (400){message}"
    if reply.status == 403:
        return PutOutcome.FATAL, f"the access token was refused (403){message}"
    return PutOutcome.FATAL, f"unexpected status {reply.status}{message}"


class CapabilitiesApi:
    """Sends the capabilities PUT over HTTP/2 (httpx), one client per call.

    Args:
        url: the API's base URL (default `https://api.amazonalexa.com`; the simulator's URL
            in tests).
        ca_file: a PEM file of CAs to trust instead of the system's.
        ssl_context: a ready TLS context (takes precedence over `ca_file`).
        timeout: seconds for connecting and for each read and write.

    Raises:
        ValueError: `url` is not an http(s) base URL.
    """

    def __init__(
        self,
        url: str = DEFAULT_CAPABILITIES_API_URL,
        *,
        ca_file: str | os.PathLike[str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.url = check_endpoint(url)
        self._ca_file = ca_file
        self._ssl_context = ssl_context
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"CapabilitiesApi({self.url!r})"

    async def put(self, document: Mapping[str, Any], token: str) -> PutReply:
        """PUT `document` with `token` in `x-amz-access-token`; the complete answer.

        Raises:
            TransportError: the API could not be reached or broke off.
        """
        body = json.dumps(document, separators=(",", ":")).encode()
        headers = {
            "content-type": "application/json",
            "content-length": str(len(body)),
            "x-amz-access-token": token,
        }
        client = http2_client(
            self.url, ca_file=self._ca_file, ssl_context=self._ssl_context, timeout=self.timeout
        )
        async with client:
            with map_httpx_errors("the Capabilities API"):
                async with client.stream(
                    "PUT", CAPABILITIES_API_PATH, content=body, headers=headers
                ) as response:
                    data = bytearray()
                    async for chunk in response.aiter_bytes():
                        data += chunk[: _MAX_REPLY_BYTES - len(data)]
                        if len(data) >= _MAX_REPLY_BYTES:
                            break
                    return PutReply(response.status_code, bytes(data))
