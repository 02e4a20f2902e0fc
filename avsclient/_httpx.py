"""What every httpx shell in avsclient shares: the client factory and the one error mapping.

Login with Amazon (`avsclient.auth.http`) and the event gateway and Skill Messaging clients
(`avsclient.gateway.http`) call HTTPS APIs with httpx. They build their clients here, so
every one has the same safety settings, and they translate httpx exceptions into avsclient
ones here, once, at their boundary, chaining the original with `from exc` (httpx
`map_httpcore_exceptions`, httpcore `map_exceptions`). Only those shells import this module.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import httpx

from avsclient.exceptions import (
    ConnectError,
    ConnectionLost,
    ConnectTimeout,
    NetworkError,
    ResponseTimeout,
    TransportError,
)

__all__ = ["http2_client", "map_httpx_errors", "refuse_cleartext", "transport_error"]


def http2_client(
    url: str,
    *,
    ca_file: str | os.PathLike[str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float,
) -> httpx.AsyncClient:
    """An httpx client for one HTTPS API over HTTP/2 (HTTP/1.1 only as a TLS fallback).

    `http://` URLs use cleartext HTTP/2 with prior knowledge (httpx does not upgrade from
    HTTP/1.1). No redirects are followed and no proxy or CA settings come from the
    environment, so a token is only ever sent where the caller pointed it.

    Args:
        url: the API's base URL.
        ca_file: a PEM file of CAs to trust instead of the system store.
        ssl_context: a ready TLS context (takes precedence over `ca_file`).
        timeout: seconds for connecting and for each read and write.

    Raises:
        ValueError: the URL is not http(s).
    """
    scheme = urlsplit(url).scheme
    if scheme not in ("https", "http"):
        raise ValueError(f"url must be an http(s) URL, got {url!r}")
    if ssl_context is None:
        ssl_context = ssl.create_default_context(cafile=ca_file)
    return httpx.AsyncClient(
        base_url=url,
        verify=ssl_context,
        http2=True,
        http1=scheme == "https",
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        trust_env=False,
    )


def transport_error(exc: httpx.TransportError, peer: str) -> TransportError:
    """The avsclient exception for an httpx transport failure (not raised, not chained).

    Args:
        exc: what httpx raised.
        peer: the service as a noun phrase for messages ("LWA", "the event gateway").
            httpx messages never carry request bodies, so no secret reaches the message.

    Returns:
        `ConnectTimeout`, `ResponseTimeout` (any other httpx timeout), `ConnectError`,
        `ConnectionLost` (the connection broke mid-request), or `NetworkError`.
    """
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout):
        return ConnectTimeout(f"connecting to {peer} timed out: {detail}")
    if isinstance(exc, httpx.TimeoutException):
        return ResponseTimeout(f"{peer} did not answer in time: {detail}")
    if isinstance(exc, httpx.ConnectError):
        return ConnectError(f"cannot connect to {peer}: {detail}")
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return ConnectionLost(f"the connection to {peer} broke: {detail}")
    return NetworkError(f"the request to {peer} failed: {detail}")


@contextmanager
def map_httpx_errors(peer: str) -> Iterator[None]:
    """Translate httpx transport failures raised in the block, chaining with `from exc`.

    Use it around everything that touches the httpx client (opening the stream and reading
    the body); it also works around `await`s, since it only catches.

    Args:
        peer: the service as a noun phrase for messages ("LWA", "the event gateway").

    Raises:
        TransportError: a subclass chosen by `transport_error`, with the httpx exception as
            its `__cause__`.
    """
    try:
        yield
    except httpx.TransportError as exc:
        raise transport_error(exc, peer) from exc


async def refuse_cleartext(request: httpx.Request) -> None:
    """An httpx request hook (`event_hooks={"request": [refuse_cleartext]}`): every request,
    redirects included, stays on https; a redirect to http fails before anything is sent.

    Raises:
        httpx.UnsupportedProtocol: the request is not https.
    """
    if request.url.scheme != "https":
        raise httpx.UnsupportedProtocol(f"refused a non-https URL: {request.url}", request=request)
