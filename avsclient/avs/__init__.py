"""The AVS session: a link to AVS (HTTP/2 connection, downchannel, liveness), event exchanges
with streamed audio and replay, and the supervisor that keeps the link up.

It knows AVS (paths, 403 and GOAWAY rules, exception bodies, SynchronizeState) and drives the
pure HTTP/2 transport below it (`avsclient.http2`).
"""

from __future__ import annotations

from avsclient.avs.manager import (
    MAX_REPLAY_BYTES,
    ConnectionManager,
    ContextCallback,
    EventResult,
    LinkSender,
    PostConnectStep,
    ResponseSink,
    ResponseSource,
)
from avsclient.avs.policy import ChangedReason, ConnectionStatus, EventOutcome

# Plain sorted order, as tests/test_exports.py checks (not ruff's isort-style order).
__all__ = [
    "ChangedReason",
    "ConnectionManager",
    "ConnectionStatus",
    "ContextCallback",
    "EventOutcome",
    "EventResult",
    "LinkSender",
    "MAX_REPLAY_BYTES",
    "PostConnectStep",
    "ResponseSink",
    "ResponseSource",
]
