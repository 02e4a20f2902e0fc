"""avsclient: a Python SDK for Alexa Built-in devices.

The package speaks the Alexa Voice Service HTTP/2 protocol (API v20160207): a streaming
multipart parser and encoder, an HTTP/2 transport, audio I/O, Login with Amazon, and a local
AVS simulator to develop and test against.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from avsclient import _lazy, _redaction

if TYPE_CHECKING:
    from avsclient.agents import ClientEvent, Dialog, DialogTrace
    from avsclient.client import AVSClient, Subscription
    from avsclient.config import ClientConfig, Region
    from avsclient.exceptions import AVSError
    from avsclient.messages import Directive
else:
    __getattr__, __dir__ = _lazy.exports(
        __name__,
        {
            "avsclient.agents": ("ClientEvent", "Dialog", "DialogTrace"),
            "avsclient.client": ("AVSClient", "Subscription"),
            "avsclient.config": ("ClientConfig", "Region"),
            "avsclient.exceptions": ("AVSError",),
            "avsclient.messages": ("Directive",),
        },
    )

__all__ = [
    "AVSClient",
    "AVSError",
    "ClientConfig",
    "ClientEvent",
    "Dialog",
    "DialogTrace",
    "Directive",
    "Region",
    "Subscription",
    "__version__",
]

__version__ = "0.1.0.dev0"

# Bearer tokens must not reach logs, not even third-party DEBUG logs (see _redaction).
_redaction.install()
