"""HTTP/2 transport: a sans-IO client core on h2 and a thin asyncio shell around it."""

from __future__ import annotations

from avsclient.http2._h2 import FAST_RECEIVE_ACTIVE, VERIFIED_H2_VERSIONS, H2Connection
from avsclient.http2.config import (
    DEFAULT_CONNECTION_WINDOW,
    DEFAULT_STREAM_WINDOW,
    ConnectionConfig,
)
from avsclient.http2.connection import HTTP2Connection
from avsclient.http2.core import ClientCore, ConnectionState
from avsclient.http2.manager import (
    ConnectionManager,
    ContextProvider,
    EventResult,
    ResponseSink,
    ResponseSource,
)
from avsclient.http2.policy import Backoff, ChangedReason, ConnectionStatus, Outcome
from avsclient.http2.stream import DEFAULT, Body, HTTP2Stream, Response

# Plain sorted order, as tests/test_exports.py checks (not ruff's isort-style order).
__all__ = [
    "Backoff",
    "Body",
    "ChangedReason",
    "ClientCore",
    "ConnectionConfig",
    "ConnectionManager",
    "ConnectionState",
    "ConnectionStatus",
    "ContextProvider",
    "DEFAULT",
    "DEFAULT_CONNECTION_WINDOW",
    "DEFAULT_STREAM_WINDOW",
    "EventResult",
    "FAST_RECEIVE_ACTIVE",
    "H2Connection",
    "HTTP2Connection",
    "HTTP2Stream",
    "Outcome",
    "Response",
    "ResponseSink",
    "ResponseSource",
    "VERIFIED_H2_VERSIONS",
]
