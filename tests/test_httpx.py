"""The one httpx error mapping and the shared HTTP/2 client factory."""

from __future__ import annotations

import httpx
import pytest

from avsclient._httpx import http2_client, map_httpx_errors, transport_error
from avsclient.exceptions import (
    ConnectError,
    ConnectionLost,
    ConnectTimeout,
    NetworkError,
    ResponseTimeout,
    TransportError,
)


@pytest.mark.parametrize(
    ("raised", "expected", "words"),
    [
        (httpx.ConnectTimeout("slow"), ConnectTimeout, "connecting to LWA timed out"),
        (httpx.ReadTimeout("slow"), ResponseTimeout, "LWA did not answer in time"),
        (httpx.WriteTimeout("slow"), ResponseTimeout, "did not answer"),
        (httpx.PoolTimeout("slow"), ResponseTimeout, "did not answer"),
        (httpx.ConnectError("refused"), ConnectError, "cannot connect to LWA"),
        (httpx.RemoteProtocolError("bad"), ConnectionLost, "the connection to LWA broke"),
        (httpx.ReadError("reset"), ConnectionLost, "broke"),
        (httpx.WriteError("pipe"), ConnectionLost, "broke"),
        (httpx.UnsupportedProtocol("gopher"), NetworkError, "the request to LWA failed"),
        (httpx.ProxyError("proxy"), NetworkError, "failed"),
    ],
)
def test_each_httpx_failure_maps_to_one_avsclient_error(
    raised: httpx.TransportError, expected: type[TransportError], words: str
) -> None:
    """The mapping picks the most precise avsclient class and names the peer."""
    error = transport_error(raised, "LWA")
    assert type(error) is expected
    assert words in str(error)
    assert str(raised) in str(error)


def test_the_context_manager_chains_the_original() -> None:
    """map_httpx_errors raises the mapped error `from` the httpx one."""
    original = httpx.ConnectError("refused")
    with (
        pytest.raises(ConnectError, match="the event gateway") as info,
        map_httpx_errors("the event gateway"),
    ):
        raise original
    assert info.value.__cause__ is original


def test_other_exceptions_pass_through_untouched() -> None:
    """Only httpx transport failures are translated."""
    with pytest.raises(ValueError, match="mine"), map_httpx_errors("LWA"):
        raise ValueError("mine")
    with pytest.raises(httpx.DecodingError), map_httpx_errors("LWA"):
        raise httpx.DecodingError("gzip")


def test_an_empty_httpx_message_falls_back_to_its_class_name() -> None:
    """A message-less httpx error still says what happened."""
    assert "ReadError" in str(transport_error(httpx.ReadError(""), "LWA"))


async def test_http2_client_is_locked_down() -> None:
    """The factory makes HTTP/2 clients that follow no redirects and ignore the environment;
    cleartext URLs use HTTP/2 only (prior knowledge)."""
    async with http2_client("https://api.example", timeout=3.0) as tls:
        assert not tls.follow_redirects
        assert tls.timeout.connect == 3.0
        assert not tls._trust_env
    async with http2_client("http://127.0.0.1:1", timeout=3.0) as h2c:
        assert str(h2c.base_url) == "http://127.0.0.1:1"
    with pytest.raises(ValueError, match="http"):
        http2_client("ftp://x", timeout=1.0)


async def test_refuse_cleartext_stops_a_redirect_to_http_before_it_is_sent() -> None:
    """The request hook for media and asset fetches: an https URL redirected to http fails
    with UnsupportedProtocol, and the http URL is never requested."""
    import httpx

    from avsclient._httpx import refuse_cleartext

    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(302, headers={"location": "http://media.example/a.mp3"})

    async with httpx.AsyncClient(
        transport=httpx.MockTransport(answer),
        follow_redirects=True,
        event_hooks={"request": [refuse_cleartext]},
    ) as client:
        with pytest.raises(httpx.UnsupportedProtocol, match="non-https"):
            await client.get("https://media.example/a.mp3")
    assert seen == ["https://media.example/a.mp3"]
