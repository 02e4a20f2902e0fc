"""The transport against a real HTTP/2 peer: nghttpd (Debian nghttp2-server), TLS and h2c."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trustme

from avsclient.http2 import HTTP2Connection
from tests.helpers import require_executable

pytestmark = pytest.mark.system

SIZE = 6 * 1024 * 1024 + 123  # multi-MiB, not a multiple of the frame size


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Nghttpd:
    """A running nghttpd serving `htdocs` and echoing uploads."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, tls: bool, ca_file: str):
        self.process = process
        self.port = port
        self.tls = tls
        self.ca_file = ca_file

    def connection(self) -> HTTP2Connection:
        if self.tls:
            return HTTP2Connection("127.0.0.1", self.port, ca_file=self.ca_file)
        return HTTP2Connection("127.0.0.1", self.port, tls=False)


@pytest.fixture(scope="module")
def htdocs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A document root holding one multi-MiB file of random bytes."""
    root = tmp_path_factory.mktemp("htdocs")
    (root / "big.bin").write_bytes(os.urandom(SIZE))
    return root


@pytest.fixture(params=["tls", "h2c"])
def nghttpd(request: pytest.FixtureRequest, htdocs: Path, tmp_path: Path) -> Iterator[Nghttpd]:
    """nghttpd on 127.0.0.1 with a trustme certificate (or --no-tls), echoing POST bodies."""
    executable = require_executable("nghttpd")
    tls = request.param == "tls"
    ca = trustme.CA()
    ca_file = str(tmp_path / "ca.pem")
    ca.cert_pem.write_to_path(ca_file)
    cert = ca.issue_cert("127.0.0.1")
    key_path, cert_path = tmp_path / "key.pem", tmp_path / "cert.pem"
    cert.private_key_pem.write_to_path(str(key_path))
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    port = _free_port()
    args = [executable, "--address=127.0.0.1", f"--htdocs={htdocs}", "--echo-upload", str(port)]
    args += [str(key_path), str(cert_path)] if tls else ["--no-tls"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(200):  # wait until it listens (at most ~4 s)
            if process.poll() is not None:
                assert process.stderr is not None
                pytest.fail(f"nghttpd exited: {process.stderr.read().decode(errors='replace')}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.02)
        yield Nghttpd(process, port, tls, ca_file)
    finally:
        process.terminate()
        process.wait(timeout=5)
        assert process.stderr is not None
        process.stderr.close()


async def test_download_multi_mib_from_nghttpd(nghttpd: Nghttpd, htdocs: Path) -> None:
    """A multi-MiB file arrives byte for byte (sha256) over TLS and h2c."""
    expected = hashlib.sha256((htdocs / "big.bin").read_bytes()).hexdigest()
    async with nghttpd.connection() as conn:
        stream, response = await conn.request("GET", "/big.bin")
        async with stream:
            assert response.status == 200
            digest = hashlib.sha256()
            size = 0
            async for chunk in stream:
                digest.update(chunk)
                size += len(chunk)
    assert size == SIZE
    assert digest.hexdigest() == expected


async def test_upload_multi_mib_to_nghttpd_in_chunks(nghttpd: Nghttpd) -> None:
    """A multi-MiB body sent as chunks is echoed back intact by nghttpd --echo-upload."""
    data = os.urandom(SIZE)

    async def body() -> AsyncIterator[bytes]:
        for offset in range(0, len(data), 100_000):
            yield data[offset : offset + 100_000]
            await asyncio.sleep(0)

    async with nghttpd.connection() as conn:
        stream, response = await conn.request("POST", "/echo", body=body())
        async with stream:
            assert response.status == 200
            echoed = await stream.read()
            await stream.wait_upload()
    assert hashlib.sha256(echoed).digest() == hashlib.sha256(data).digest()


async def test_concurrent_streams_to_nghttpd(nghttpd: Nghttpd, htdocs: Path) -> None:
    """Several downloads and uploads share one connection."""
    expected = (htdocs / "big.bin").read_bytes()
    upload = os.urandom(1024 * 1024)
    async with nghttpd.connection() as conn:

        async def download() -> bytes:
            stream, _ = await conn.request("GET", "/big.bin")
            async with stream:
                return await stream.read()

        async def echo() -> bytes:
            stream, _ = await conn.request("POST", "/echo", body=upload)
            async with stream:
                return await stream.read()

        results = await asyncio.gather(download(), echo(), download(), echo())
    assert results == [expected, upload, expected, upload]
