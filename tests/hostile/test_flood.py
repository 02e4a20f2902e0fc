"""Defect 2: a directive flood must not grow memory or tasks without bound.

The downchannel reader applies back-pressure (it stops reading, so HTTP/2 flow control stops
the server) once in-flight handlers and queued replies reach their bounds; the client stays
responsive and shuts down fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from .kit import Sampler, hostile_client
from .server import HostileServer

#: Directives pushed: enough to show growth (today: one pending task each), few enough to
#: stay within seconds.
FLOOD = 20_000
#: Tasks the whole process may add during the flood: the client's bounded handlers and
#: replies, plus the server's few.
MAX_EXTRA_TASKS = 256
#: RSS the process may grow by during the flood.
MAX_RSS_GROWTH = 48 * 1024 * 1024
#: How long aclose() may take with a flood in progress.
MAX_SHUTDOWN = 3.0


async def test_directive_flood_is_bounded(server: HostileServer) -> None:
    """20,000 SetVolume directives: bounded tasks and memory, fast shutdown."""
    sampler = Sampler()
    async with hostile_client(server) as client:
        await client.wait_connected(5)
        sampler.start()
        flood = asyncio.create_task(server.flood(FLOOD))
        # Back-pressure may hold the flood back; 8 s of it is enough to see any growth.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(8):
                await asyncio.shield(flood)
        await asyncio.sleep(0.5)
        await sampler.stop()
        closing = time.monotonic()
        await client.aclose()
        shutdown = time.monotonic() - closing
        flood.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flood
    print(
        f"flood: peak extra tasks {sampler.peak_tasks}, peak RSS growth "
        f"{sampler.peak_rss_growth / 2**20:.1f} MiB, shutdown {shutdown:.2f} s"
    )
    assert sampler.peak_tasks <= MAX_EXTRA_TASKS
    assert sampler.peak_rss_growth <= MAX_RSS_GROWTH
    assert shutdown <= MAX_SHUTDOWN
