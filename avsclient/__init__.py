"""avsclient: a Python SDK for Alexa Built-in devices.

The package speaks the Alexa Voice Service HTTP/2 protocol (API v20160207): a streaming
multipart parser and encoder, an HTTP/2 transport, audio I/O, Login with Amazon, and a local
AVS simulator to develop and test against.
"""

from __future__ import annotations

from avsclient.config import ClientConfig, Region
from avsclient.exceptions import AVSError

__all__ = ["AVSError", "ClientConfig", "Region", "__version__"]

__version__ = "0.1.0.dev0"
