"""Permanent errors fail fast; transient ones keep backing off; a ConnectTimeout says what
held the connection up.

A rejected certificate, a revoked refresh token (invalid_grant) and a wrong LWA client
configuration cannot be mended by retrying: `wait_connected` raises the cause at once and the
manager makes no further attempt until `wake()`. Everything else keeps its back-off.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from avsclient import AVSClient
from avsclient.exceptions import (
    AuthError,
    ConnectError,
    ConnectTimeout,
    ReauthorizationRequired,
    TrustStoreError,
)

from .kit import TOKEN, hostile_config, wait_until
from .server import HostileServer

#: How long a permanent failure may take to be reported (one attempt, no back-off).
FAIL_FAST = 2.0


class FailingTokens:
    """A token provider whose every call raises `error` (after Login with Amazon)."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls = 0

    async def get_token(self) -> str:
        self.calls += 1
        raise self.error

    async def invalidate(self, token: str) -> None:
        pass


class Tokens:
    async def get_token(self) -> str:
        return TOKEN

    async def invalidate(self, token: str) -> None:
        pass


async def test_a_revoked_refresh_token_is_reported_at_once_and_not_retried(
    server: HostileServer,
) -> None:
    """invalid_grant: ReauthorizationRequired from wait_connected within FAIL_FAST (not at
    its 10 s timeout), no AVS connection, no second LWA call until wake()."""
    tokens = FailingTokens(ReauthorizationRequired("invalid_grant: the refresh token is revoked"))
    client = AVSClient(hostile_config(server), tokens)  # type: ignore[arg-type]
    await client.start()
    try:
        started = time.monotonic()
        with pytest.raises(ReauthorizationRequired, match="revoked"):
            await client.wait_connected(10)
        assert time.monotonic() - started < FAIL_FAST
        assert client.status.name == "DISCONNECTED"
        assert not await wait_until(lambda: tokens.calls > 1, timeout=1.0)
        client.manager.wake()  # the device was linked again
        assert await wait_until(lambda: tokens.calls == 2, timeout=FAIL_FAST)
    finally:
        await client.aclose()
    assert server.connections == []


async def test_a_transient_token_failure_keeps_backing_off(server: HostileServer) -> None:
    """LWA failing another way (a 500, say): the manager keeps retrying on its back-off."""
    tokens = FailingTokens(AuthError("LWA answered 500"))
    client = AVSClient(hostile_config(server), tokens)  # type: ignore[arg-type]
    await client.start()
    try:
        assert await wait_until(lambda: tokens.calls >= 3, timeout=3.0)
        assert client.status.name == "PENDING"
    finally:
        await client.aclose()


async def test_a_rejected_certificate_is_reported_at_once_and_not_retried(
    server: HostileServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The system trust store does not know the server's CA: ConnectError naming the
    certificate within FAIL_FAST, and no second attempt over the next second (the server
    records no connection: its TLS handshake never completes)."""
    client = AVSClient(hostile_config(server, ca_file=None), Tokens())  # type: ignore[arg-type]
    await client.start()

    def attempts() -> int:
        return sum("connecting to" in r.getMessage() for r in caplog.records)

    try:
        started = time.monotonic()
        with pytest.raises(ConnectError, match="certificate"):
            await client.wait_connected(10)
        assert time.monotonic() - started < FAIL_FAST
        await wait_until(lambda: attempts() > 1, timeout=1.0)
    finally:
        await client.aclose()
    assert attempts() == 1


async def test_a_connect_timeout_names_the_step_that_holds_the_attempt_up(
    server: HostileServer,
) -> None:
    """MAX_CONCURRENT_STREAMS=0 and a long connect_timeout: waiting 1 s, the ConnectTimeout
    says the attempt under way is stuck opening the downchannel."""
    server.behaviour.max_concurrent_streams = 0
    client = AVSClient(hostile_config(server, connect_timeout=8.0), Tokens())  # type: ignore[arg-type]
    await client.start()
    try:
        with pytest.raises(ConnectTimeout, match="opening the downchannel for 1"):
            await client.wait_connected(1.0)
    finally:
        await client.aclose()


async def test_a_ca_file_that_cannot_be_loaded_is_reported_at_once_and_not_retried(
    server: HostileServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A configured CA file that is missing or not PEM is a configuration error: the client
    refuses it when built, and one that goes bad later (garbled after start) ends the first
    attempt with TrustStoreError naming the file, with no second attempt over the next
    second."""
    with pytest.raises(TrustStoreError, match=r"missing\.pem"):
        AVSClient(hostile_config(server, ca_file=tmp_path / "missing.pem"), Tokens())  # type: ignore[arg-type]
    assert server.ca_file is not None
    ca = tmp_path / "ca.pem"
    ca.write_bytes(Path(server.ca_file).read_bytes())
    client = AVSClient(hostile_config(server, ca_file=ca), Tokens())  # type: ignore[arg-type]
    ca.write_text("not a certificate\n")
    await client.start()

    def attempts() -> int:
        return sum("connecting to" in r.getMessage() for r in caplog.records)

    try:
        started = time.monotonic()
        with pytest.raises(TrustStoreError, match=r"ca\.pem"):
            await client.wait_connected(10)
        assert time.monotonic() - started < FAIL_FAST
        await wait_until(lambda: attempts() > 1, timeout=1.0)
    finally:
        await client.aclose()
    assert attempts() == 1
