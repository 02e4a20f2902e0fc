"""Bearer tokens never reach logs, even with every logger (hpack's included) at DEBUG."""

from __future__ import annotations

import logging
import ssl

import httpx
import pytest
from hpack import HeaderTuple, NeverIndexedHeaderTuple
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH

import avsclient  # noqa: F401 - installs the filter
from avsclient.http2 import HTTP2Connection
from avsclient.simulator import Simulator


def _all_log_text(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(record.getMessage() for record in caplog.records)


async def test_token_is_absent_from_debug_logs_of_an_authorized_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Our transport and the simulator, at DEBUG: neither the token nor its HPACK form leaks."""
    caplog.set_level(logging.DEBUG)
    async with Simulator() as sim:
        token = sim.add_token("Atza|" + "s3cr3t-token-" * 30)
        async with HTTP2Connection.from_url(sim.url, ca_file=sim.ca_file) as connection:
            stream, response = await connection.request(
                "GET", "/ping", headers=[("authorization", f"Bearer {token}")]
            )
            await stream.read()
        assert response.status == 204
        # The same request through httpx (as auth/ and gateway/ use it).
        verify = ssl.create_default_context(cafile=str(sim.ca_file))
        async with httpx.AsyncClient(http2=True, verify=verify) as client:
            headers = {"authorization": f"Bearer {token}"}
            reply = await client.get(f"{sim.url}/ping", headers=headers)
        assert reply.status_code == 204
    text = _all_log_text(caplog)
    assert any(r.name == "hpack.hpack" for r in caplog.records), "hpack logged nothing: vacuous"
    assert "header block of" in text
    huffman = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH).encode(
        f"Bearer {token}".encode()
    )
    for secret in ("s3cr3t-token", repr(huffman)[2:40], huffman.hex()[:40]):
        assert secret not in text


def test_decoded_never_indexed_headers_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    """A decoded sensitive header shows its name only; ordinary headers are untouched."""
    caplog.set_level(logging.DEBUG, logger="hpack.hpack")
    log = logging.getLogger("hpack.hpack")
    log.debug("Decoded %s, consumed %d", NeverIndexedHeaderTuple("authorization", "Bearer x1"), 3)
    log.debug("Decoded %s, consumed %d", HeaderTuple(":status", "204"), 1)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "Decoded ('authorization', '<redacted>'), consumed 3",
        "Decoded (':status', '204'), consumed 1",
    ]
