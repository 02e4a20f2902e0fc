"""Every exception avsclient raises, in one tree rooted at `AVSError`.

```
AVSError
├── ProtocolError
│   ├── LocalProtocolError          we were about to break the protocol (a bug, or API misuse)
│   ├── RemoteProtocolError         the peer broke it (malformed frames, bodies, JSON)
│   │   └── AttachmentError         a `cid:` attachment is missing, cut off or over its limits
│   └── MultipartError              a multipart body could not be parsed; carries `offset`
│       ├── ParserError             malformed input
│       ├── ParserLimitReached      a configured limit was exceeded
│       └── ParserStateError        the parser was used after it failed or finished
├── TransportError
│   ├── ConnectionClosed            the owner closed the connection; it takes no more work
│   ├── NetworkError                connection refused, dropped, TLS or ALPN failure
│   │   ├── ConnectError
│   │   │   └── TrustStoreError     the CA file cannot be loaded (a configuration error)
│   │   ├── ConnectionLost
│   │   └── ALPNError
│   ├── StreamReset                 RST_STREAM on one stream; carries `stream_id`, `error_code`
│   ├── ConnectionDraining          GOAWAY received: no new streams on this connection
│   └── TimeoutException
│       ├── ConnectTimeout
│       ├── ResponseTimeout
│       ├── StreamInactivityTimeout
│       └── PingTimeout
├── AuthError                       Login with Amazon failed; carries `error` (the LWA code)
│   ├── ReauthorizationRequired     invalid_grant: the device must be linked again
│   ├── LinkingExpired              the code pair expired before the user finished
│   ├── ClientConfigError           invalid_client, unauthorized_client, invalid_request, ...
│   └── TokenStoreError             the token file is unreadable, corrupt or unwritable
├── AudioError                      no PortAudio, no device, device busy, unsupported format
├── DeviceStoreError                the device store cannot be opened, read or written; `path`
│   ├── DeviceStoreCorrupt          damaged, truncated or not a device store; the file is kept
│   └── DeviceStoreLocked           another process held the database past the busy timeout
├── DirectiveError                  a directive could not be handled; carries `error_type`
│   └── EndpointRejected            an endpoint or gateway URL from AVS the client may not use
├── CapabilityReportError           a Discovery report breaks the documented limits
├── StateError                      an operation is not allowed in the current state
└── ServerError                     AVS answered with an exception; carries `status`, `code`
    └── GatewayError                the event gateway or Skill Messaging API refused a request
        ├── InvalidGatewayRequest   400 INVALID_REQUEST_EXCEPTION: fix the message
        ├── InvalidAccessToken      401 again after one refresh: re-link the user
        ├── SkillDisabled           403 SKILL_DISABLED_EXCEPTION: delete the user's tokens
        ├── InsufficientPermission  403 INSUFFICIENT_PERMISSION_EXCEPTION: grant the permission
        ├── SkillNotFound           404 SKILL_NOT_FOUND_EXCEPTION: wrong skill or region
        ├── ReportTooLarge          413 for a message that cannot be split any further
        └── GatewayUnavailable      429 or 5xx still after every retry: try again later
```

Exceptions carry what a caller needs to react (the HTTP status, the AVS exception code, the
HTTP/2 stream id and error code, the byte offset of a parse error), never secrets.
"""

from __future__ import annotations

__all__ = [
    "ALPNError",
    "AVSError",
    "AttachmentError",
    "AudioError",
    "AuthError",
    "CapabilityReportError",
    "ClientConfigError",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionClosed",
    "ConnectionDraining",
    "ConnectionLost",
    "DeviceStoreCorrupt",
    "DeviceStoreError",
    "DeviceStoreLocked",
    "DirectiveError",
    "EndpointRejected",
    "GatewayError",
    "GatewayUnavailable",
    "InsufficientPermission",
    "InvalidAccessToken",
    "InvalidGatewayRequest",
    "LinkingExpired",
    "LocalProtocolError",
    "MultipartError",
    "NetworkError",
    "ParserError",
    "ParserLimitReached",
    "ParserStateError",
    "PingTimeout",
    "ProtocolError",
    "ReauthorizationRequired",
    "RemoteProtocolError",
    "ReportTooLarge",
    "ResponseTimeout",
    "ServerError",
    "SkillDisabled",
    "SkillNotFound",
    "StateError",
    "StreamInactivityTimeout",
    "StreamReset",
    "TimeoutException",
    "TokenStoreError",
    "TransportError",
    "TrustStoreError",
]


class AVSError(Exception):
    """Base class of every exception raised by avsclient."""


# -- protocol ------------------------------------------------------------------------------


class ProtocolError(AVSError):
    """A protocol was violated, by us (`LocalProtocolError`) or by the peer."""


class LocalProtocolError(ProtocolError):
    """We were asked to do something the protocol forbids."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol forbids."""


class AttachmentError(RemoteProtocolError):
    """A `cid:` attachment cannot be read: its response ended without it, broke off, or it was
    dropped unread (expired, or larger than the unread limit)."""


class MultipartError(ProtocolError):
    """A multipart body could not be parsed.

    Attributes:
        offset: the byte offset into the whole body (counted from the first byte ever fed)
            at which the problem was detected, or -1 when it does not apply.
    """

    def __init__(self, message: str, *, offset: int = -1) -> None:
        super().__init__(message if offset < 0 else f"{message} (at byte {offset})")
        self.offset = offset


class ParserError(MultipartError):
    """The multipart input is malformed."""


class ParserLimitReached(MultipartError):
    """The multipart input exceeded one of the configured `MultipartLimits`."""


class ParserStateError(MultipartError):
    """The parser was used after it had failed or finished."""


# -- transport -----------------------------------------------------------------------------


class TransportError(AVSError):
    """The HTTP/2 connection or one of its streams failed."""


class ConnectionClosed(TransportError):
    """The connection was closed by its owner (`aclose()`), not broken: it takes no more work."""


class NetworkError(TransportError):
    """The network connection failed."""


class ConnectError(NetworkError):
    """The connection could not be opened."""


class TrustStoreError(ConnectError):
    """The configured CA file (`ca_file`) cannot be loaded: missing, unreadable or not PEM.
    A configuration error: retrying does not mend it."""


class ConnectionLost(NetworkError):
    """An open connection broke (reset, closed by the peer, or a fatal protocol error)."""


class ALPNError(NetworkError):
    """TLS succeeded but the server did not select HTTP/2 through ALPN."""


class StreamReset(TransportError):
    """The peer reset one stream (RST_STREAM).

    Attributes:
        stream_id: the HTTP/2 stream that was reset.
        error_code: the HTTP/2 error code the peer gave.
    """

    def __init__(self, message: str, *, stream_id: int, error_code: int) -> None:
        super().__init__(message)
        self.stream_id = stream_id
        self.error_code = error_code


class ConnectionDraining(TransportError):
    """The peer sent GOAWAY: this connection takes no new streams.

    Attributes:
        last_stream_id: the highest stream id the peer will still process.
        error_code: the GOAWAY error code.
    """

    def __init__(self, message: str, *, last_stream_id: int = 0, error_code: int = 0) -> None:
        super().__init__(message)
        self.last_stream_id = last_stream_id
        self.error_code = error_code


class TimeoutException(TransportError):
    """An operation did not finish in time."""


class ConnectTimeout(TimeoutException):
    """Connecting (TCP, TLS or the HTTP/2 preface) took too long."""


class ResponseTimeout(TimeoutException):
    """The response headers did not arrive in time."""


class StreamInactivityTimeout(TimeoutException):
    """A stream made no progress for too long."""


class PingTimeout(TimeoutException):
    """A PING was not acknowledged in time: the link is dead."""


# -- auth ----------------------------------------------------------------------------------


class AuthError(AVSError):
    """Login with Amazon failed.

    Attributes:
        error: the LWA error code (`invalid_grant`, ...), or None.
        status: the HTTP status of the LWA reply, or None.
    """

    def __init__(self, message: str, *, error: str | None = None, status: int | None = None):
        super().__init__(message)
        self.error = error
        self.status = status


class ReauthorizationRequired(AuthError):
    """The refresh token or code was rejected (`invalid_grant`): link the device again."""


class LinkingExpired(AuthError):
    """The code pair expired before the user finished linking."""


class ClientConfigError(AuthError):
    """LWA rejected the client configuration (client id, secret, grant or request)."""


class TokenStoreError(AuthError):
    """The token file could not be read, parsed or written."""


# -- audio ---------------------------------------------------------------------------------


class AudioError(AVSError):
    """Audio input or output failed: no PortAudio, no device, busy device, bad format."""


# -- device store --------------------------------------------------------------------------


class DeviceStoreError(AVSError):
    """The device store (`avsclient.store`) cannot be opened, read or written: an unwritable
    directory, a full disk, a database written by a newer version.

    Attributes:
        path: the database file.
    """

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class DeviceStoreCorrupt(DeviceStoreError):
    """The database file is damaged, truncated or not a device store. It is left in place
    (or, when the application asked to start fresh, renamed aside), never overwritten."""


class DeviceStoreLocked(DeviceStoreError):
    """Another process held the database locked for longer than the busy timeout."""


# -- directives and agents ----------------------------------------------------------------


class DirectiveError(AVSError):
    """A directive could not be handled; AVS is told with `System.ExceptionEncountered`.

    Attributes:
        error_type: the ExceptionEncountered `error.type`: `UNEXPECTED_INFORMATION_RECEIVED`
            (malformed or out-of-range values), `UNSUPPORTED_OPERATION` or `INTERNAL_ERROR`.
    """

    def __init__(self, message: str, *, error_type: str = "UNEXPECTED_INFORMATION_RECEIVED"):
        super().__init__(message)
        self.error_type = error_type


class CapabilityReportError(AVSError):
    """A Discovery report (or a capability in it) breaks the documented limits
    (avs-protocol 9.2): it is not sent, and says which field is wrong.

    Attributes:
        field: the JSON path of the offending field, e.g. `endpoints[0].description`.
    """

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class EndpointRejected(DirectiveError, ValueError):
    """An endpoint or gateway URL sent by AVS (System.SetEndpoint, Alexa.ApiGateway.SetGateway)
    is not one the client may move to: not a string, not `https://`, not a bare base URL, or
    on a host the configuration does not allow (`ClientConfig.endpoint_hosts`).

    Nothing was stored or used; AVS is told with `System.ExceptionEncountered`
    (UNEXPECTED_INFORMATION_RECEIVED). It is also a `ValueError`, as a bad URL argument is.
    """


class StateError(AVSError):
    """The operation is not allowed in the current state (e.g. `recognize()` while a
    recognition is already streaming)."""


# -- server --------------------------------------------------------------------------------


class ServerError(AVSError):
    """AVS answered with an error status and (usually) a JSON exception body.

    Attributes:
        status: the HTTP status.
        code: the AVS exception code (`THROTTLING_EXCEPTION`, ...), or None.
        description: the exception description, or None.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str | None = None,
        description: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.description = description


class GatewayError(ServerError):
    """The Alexa event gateway or the Skill Messaging API refused a request
    (avs-protocol.md 7.3 and 8). `code` is the error body's `payload.code` (or
    `payload.type`), and the message says what to do about it."""


class InvalidGatewayRequest(GatewayError):
    """400 INVALID_REQUEST_EXCEPTION: the message is malformed; fix it, do not resend it."""


class InvalidAccessToken(GatewayError):
    """401 INVALID_ACCESS_TOKEN_EXCEPTION even after one token refresh: link the user again."""


class SkillDisabled(GatewayError):
    """403 SKILL_DISABLED_EXCEPTION: the user disabled or unlinked the skill; delete the
    user's stored tokens and send nothing more until the next AcceptGrant."""


class InsufficientPermission(GatewayError):
    """403 INSUFFICIENT_PERMISSION_EXCEPTION: the skill lacks the "Send Alexa Events"
    permission; enable it in the developer console and have the user link again."""


class SkillNotFound(GatewayError):
    """404 SKILL_NOT_FOUND_EXCEPTION: the skill is unknown in this region; check the skill id
    and the region the user enabled it in, and delete tokens issued for the wrong one."""


class ReportTooLarge(GatewayError):
    """413 REQUEST_ENTITY_TOO_LARGE_EXCEPTION for a message that cannot be split further
    (a ChangeReport or a one-endpoint discovery report): make the endpoint smaller."""


class GatewayUnavailable(GatewayError):
    """429, 5xx or no connection after every retry: the gateway is throttling or down; send
    the report again later. `status` is 0 when no reply came (the network error is chained)."""
