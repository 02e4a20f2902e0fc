"""Throughput of the HTTP/2 transport: 32 MiB up and down over loopback TLS.

Compares, in one run:
- the transport (`avsclient.http2.HTTP2Connection`, TLS on 127.0.0.1) against an in-process
  h2 server: the test server of tests/http2/h2server.py (transport only), and the simulator
  (`avsclient.simulator.Simulator`: a Recognize event carrying 32 MiB of audio, and a 32 MiB
  attachment pushed on the downchannel, both through its multipart code);
- an in-memory loop of two stock h2 connections handing bytes to each other (no sockets, no
  TLS, no asyncio), with the same windows, frame size and chunk sizes: the ceiling h2 sets;
- the transport with and without the receive fast path of `avsclient.http2.H2Connection`
  (h2 formats `repr(frame)` of every received frame; see avsclient/http2/_h2.py), and the same
  for the in-memory loop.

Prints medians of RUNS runs after a warm-up, in MB/s (10**6 bytes), and the ratios. Run from
the repository root: `.venv/bin/python benchmarks/bench_transport.py [--runs N] [--size MiB]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import avsclient.http2.core as transport_core
from avsclient.http2 import ConnectionConfig, H2Connection, HTTP2Connection
from tests.http2.h2server import H2Server

MIB = 1024 * 1024
CHUNK = 16 * 1024  # upload chunk size, everywhere
CONFIG = ConnectionConfig()  # 16 MiB connection window, 4 MiB stream window, 16 KiB frames


# -- the in-memory loop: two h2 connections, no I/O -------------------------------------------


def _pair(cls: type[h2.connection.H2Connection]) -> tuple[h2.connection.H2Connection, ...]:
    def settings(client: bool) -> h2.settings.Settings:
        return h2.settings.Settings(
            client=client,
            initial_values={
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: CONFIG.stream_window,
                h2.settings.SettingCodes.MAX_FRAME_SIZE: CONFIG.max_inbound_frame_size,
            },
        )

    client = cls(h2.config.H2Configuration(client_side=True))
    server = cls(h2.config.H2Configuration(client_side=False))
    for conn, is_client in ((client, True), (server, False)):
        conn.local_settings = settings(is_client)
        conn.initiate_connection()
        conn.increment_flow_control_window(CONFIG.connection_window - 65_535)
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    return client, server


def memory_transfer(cls: type[h2.connection.H2Connection], size: int, upload: bool) -> float:
    """Move `size` bytes client->server (upload) or server->client in memory; seconds."""
    client, server = _pair(cls)
    start = time.perf_counter()
    client.send_headers(
        1,
        [(":method", "POST"), (":path", "/"), (":scheme", "https"), (":authority", "b")],
        end_stream=not upload,
    )
    server.receive_data(client.data_to_send())
    sender, receiver = (client, server) if upload else (server, client)
    if not upload:
        server.send_headers(1, [(":status", "200")])
    chunk = b"\x55" * CHUNK
    remaining = size
    received = 0
    while received < size:
        while remaining:
            window = sender.local_flow_control_window(1)
            n = min(window, remaining, CHUNK, sender.max_outbound_frame_size)
            if n <= 0:
                break
            sender.send_data(1, chunk[:n], end_stream=n == remaining)
            remaining -= n
        for event in receiver.receive_data(sender.data_to_send()):
            if isinstance(event, h2.events.DataReceived):
                received += len(event.data or b"")
                receiver.acknowledge_received_data(event.flow_controlled_length or 0, 1)
        sender.receive_data(receiver.data_to_send())
    return time.perf_counter() - start


# -- the transport against the test server ----------------------------------------------------


async def _chunks(size: int) -> AsyncIterator[bytes]:
    chunk = b"\x55" * CHUNK
    for offset in range(0, size, CHUNK):
        yield chunk[: min(CHUNK, size - offset)]


async def server_download(conn: HTTP2Connection, size: int) -> float:
    start = time.perf_counter()
    stream, _ = await conn.request("GET", f"/download?size={size}")
    received = 0
    async with stream:
        async for chunk in stream:
            received += len(chunk)
    assert received == size
    return time.perf_counter() - start


async def server_upload(conn: HTTP2Connection, size: int) -> float:
    start = time.perf_counter()
    stream, _ = await conn.request("POST", "/upload", body=_chunks(size))
    async with stream:
        body = await stream.read()
    assert str(size) in body.decode()
    return time.perf_counter() - start


# -- the transport against the simulator ------------------------------------------------------


async def simulator_runs(size: int, runs: int) -> dict[str, list[float]] | None:
    try:
        from avsclient.multipart.encoder import MultipartEncoder
        from avsclient.simulator import Simulator
    except ImportError:
        return None
    results: dict[str, list[float]] = {"upload": [], "download": []}
    async with Simulator(tls=True) as sim:
        token = sim.add_token()
        auth = [("authorization", f"Bearer {token}")]
        sim.script.recognize(stop_capture_after=None)
        async with HTTP2Connection.from_url(sim.url, ca_file=sim.ca_path, config=CONFIG) as conn:
            down = await conn.open_stream(
                "GET", "/v20160207/directives", auth, response_timeout=10, inactivity_timeout=None
            )
            await down.response()
            attachment = b"\x55" * size
            for run in range(runs + 1):
                # Upload: a Recognize event whose audio part is `size` bytes, in CHUNK chunks.
                encoder = MultipartEncoder()
                metadata = {
                    "context": [],
                    "event": {
                        "header": {
                            "namespace": "SpeechRecognizer",
                            "name": "Recognize",
                            "messageId": f"bench-{run}",
                            "dialogRequestId": f"dialog-{run}",
                        },
                        "payload": {
                            "profile": "CLOSE_TALK",
                            "format": "AUDIO_L16_RATE_16000_CHANNELS_1",
                        },
                    },
                }

                async def body(
                    enc: MultipartEncoder = encoder, meta: dict[str, object] = metadata
                ) -> AsyncIterator[bytes]:
                    yield enc.metadata_part(meta) + enc.audio_part_start()
                    async for chunk in _chunks(size):
                        yield chunk
                    yield enc.end()

                start = time.perf_counter()
                stream, response = await conn.request(
                    "POST",
                    "/v20160207/events",
                    [*auth, ("content-type", f"multipart/form-data; boundary={encoder.boundary}")],
                    body=body(),
                )
                async with stream:
                    await stream.read()
                elapsed = time.perf_counter() - start
                assert response.status in (200, 204), response
                # Download: one directive with a `size`-byte attachment on the downchannel.
                start = time.perf_counter()
                push = asyncio.create_task(
                    sim.push_directive(
                        {
                            "directive": {
                                "header": {
                                    "namespace": "Bench",
                                    "name": "Big",
                                    "messageId": f"m{run}",
                                },
                                "payload": {"url": "cid:big"},
                            }
                        },
                        {"big": attachment},
                        timeout=60,
                    )
                )
                received = 0
                while received < size:
                    received += len(await anext(down))
                await push
                down_elapsed = time.perf_counter() - start
                if run:  # the first run is the warm-up
                    results["upload"].append(elapsed)
                    results["download"].append(down_elapsed)
            await down.aclose()
    return results


# -- driver -----------------------------------------------------------------------------------


def median_mbps(size: int, seconds: list[float]) -> float:
    return size / statistics.median(seconds) / 1e6


async def measure(run: Callable[[], Awaitable[float]], runs: int) -> list[float]:
    await run()  # warm-up
    return [await run() for _ in range(runs)]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size", type=int, default=32, help="MiB per transfer")
    args = parser.parse_args()
    size = args.size * MIB
    runs = args.runs
    rows: dict[str, float] = {}

    for name, cls in (("fast", H2Connection), ("stock", h2.connection.H2Connection)):
        for direction, upload in (("upload", True), ("download", False)):
            memory_transfer(cls, size, upload)
            times = [memory_transfer(cls, size, upload) for _ in range(runs)]
            rows[f"memory {direction} {name}"] = median_mbps(size, times)

    with tempfile.TemporaryDirectory() as tmp:
        async with H2Server(tls=True, tmp_path=Path(tmp)) as server:
            for name, cls in (("fast", H2Connection), ("stock", h2.connection.H2Connection)):
                # The client core builds its h2 connection from this module-level name.
                transport_core.H2Connection = cls  # type: ignore[misc]
                async with HTTP2Connection.from_url(
                    server.url, ca_file=server.ca_path, config=CONFIG
                ) as conn:
                    for direction, fn in (("upload", server_upload), ("download", server_download)):
                        times = await measure(lambda fn=fn: fn(conn, size), runs)  # type: ignore[misc]
                        rows[f"transport {direction} {name}"] = median_mbps(size, times)
            transport_core.H2Connection = H2Connection  # type: ignore[misc]

    sim = await simulator_runs(size, runs)
    if sim is not None:
        for direction, times in sim.items():
            rows[f"simulator {direction} fast"] = median_mbps(size, times)

    print(f"{args.size} MiB per transfer, median of {runs} runs after a warm-up (MB/s = 1e6 B/s)")
    for key, value in rows.items():
        print(f"  {key:<28} {value:8.1f} MB/s")
    print("ratios (target: transport >= 0.7x the stock in-memory loop)")
    for direction in ("upload", "download"):
        base = rows[f"memory {direction} stock"]
        for source in ("transport", "simulator"):
            key = f"{source} {direction} fast"
            if key in rows:
                print(f"  {source} {direction} / memory stock: {rows[key] / base:5.2f}x")
    print("repr fast path gain (fast / stock, same run)")
    for where in ("memory", "transport"):
        for direction in ("upload", "download"):
            gain = rows[f"{where} {direction} fast"] / rows[f"{where} {direction} stock"]
            print(f"  {where} {direction}: {gain:5.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
