"""What the hostile-server tests share: building a client for a `HostileServer`, sampling
task counts and memory, and waiting with deadlines.

Only the client's public face is imported here (`AVSClient`, `ClientConfig`, the token
providers); the connection manager is reached through `client.manager` and its results are
compared by name, so these tests do not depend on where the session modules live.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from avsclient import AVSClient, ClientConfig
from avsclient.auth import StaticTokenProvider

from .server import HostileServer

__all__ = [
    "TOKEN",
    "Sampler",
    "event_document",
    "hostile_client",
    "hostile_config",
    "rss_bytes",
    "speech_activity",
    "tone",
    "wait_until",
]

#: The bearer token every client here presents; it must never travel over cleartext.
TOKEN = "hostile-test-token-0123456789"


def hostile_config(server: HostileServer, **overrides: Any) -> ClientConfig:
    """A client config for `server`: its CA, fast back-off and short timeouts. AVS may move
    the client to 127.0.0.1 (the servers' host) and nowhere else."""
    values: dict[str, Any] = {
        "endpoint": server.url,
        "endpoint_hosts": ("127.0.0.1",),
        "ca_file": str(server.ca_file) if server.ca_file is not None else None,
        "backoff": (0.05, 0.1, 0.2, 0.4),
        "backoff_jitter": (1.0, 1.0),
        "event_timeout": 2.0,
        "ping_timeout": 1.0,
        "connect_timeout": 3.0,
        "queue_timeout": 5.0,
    }
    values.update(overrides)
    return ClientConfig(**values)


@contextlib.asynccontextmanager
async def hostile_client(
    server: HostileServer, config: ClientConfig | None = None, **kwargs: Any
) -> AsyncIterator[AVSClient]:
    """A started client for `server`, closed (with a deadline) on exit."""
    client = AVSClient(config or hostile_config(server), StaticTokenProvider(TOKEN), **kwargs)
    await client.start()
    try:
        yield client
    finally:
        async with asyncio.timeout(10):
            await client.aclose()


async def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    """Poll `predicate` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(step)
    return True


def rss_bytes() -> int:
    """This process's resident set size (Linux /proc)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass
class Sampler:
    """Samples the event loop's task count and the RSS every `interval` seconds."""

    interval: float = 0.05
    tasks: list[int] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.tasks.append(len(asyncio.all_tasks()))
        self.rss.append(rss_bytes())
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.tasks.append(len(asyncio.all_tasks()))
            self.rss.append(rss_bytes())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def peak_tasks(self) -> int:
        return max(self.tasks) - self.tasks[0]

    @property
    def peak_rss_growth(self) -> int:
        return max(self.rss) - self.rss[0]


def event_document(name: str = "Probe", namespace: str = "Hostile") -> dict[str, Any]:
    """An event document with a fresh messageId, for `client.manager.send_event`."""
    import uuid

    return {
        "context": [],
        "event": {
            "header": {"namespace": namespace, "name": name, "messageId": str(uuid.uuid4())},
            "payload": {},
        },
    }


def tone(seconds: float = 0.5) -> Any:
    """An AVS-format audio source: `seconds` of a 220 Hz tone, delivered at once."""
    import numpy as np

    from avsclient.audio import ArraySource

    t = np.arange(int(seconds * 16_000)) / 16_000
    return ArraySource((0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype(np.int16), 16_000)


def speech_activity(client: AVSClient) -> str:
    """The SpeechSynthesizer's playerActivity, as the client reports it in its context."""
    for state in client.context():
        if state["header"]["name"] == "SpeechState":
            return str(state["payload"]["playerActivity"])
    raise AssertionError("no SpeechState in the context")
