"""HTTP/2 transport: a sans-IO client core on h2 and a thin asyncio shell around it.

It knows nothing of AVS: streams carry bytes, and what they mean is the business of the
AVS session above it (`avsclient.avs`).
"""

from __future__ import annotations

from avsclient.config import (
    DEFAULT_CONNECTION_WINDOW,
    DEFAULT_STREAM_WINDOW,
    ConnectionConfig,
)
from avsclient.http2._h2 import FAST_RECEIVE_ACTIVE, VERIFIED_H2_VERSIONS, H2Connection
from avsclient.http2.connection import HTTP2Connection
from avsclient.http2.core import ClientCore, ConnectionState
from avsclient.http2.stream import DEFAULT, Body, HTTP2Stream, Response

# Plain sorted order, as tests/test_exports.py checks (not ruff's isort-style order).
__all__ = [
    "Body",
    "ClientCore",
    "ConnectionConfig",
    "ConnectionState",
    "DEFAULT",
    "DEFAULT_CONNECTION_WINDOW",
    "DEFAULT_STREAM_WINDOW",
    "FAST_RECEIVE_ACTIVE",
    "H2Connection",
    "HTTP2Connection",
    "HTTP2Stream",
    "Response",
    "VERIFIED_H2_VERSIONS",
]
