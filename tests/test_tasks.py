"""TaskSet: background tasks kept referenced, failures logged, cancelled together."""

from __future__ import annotations

import asyncio
import logging

import pytest

from avsclient._tasks import TaskSet


async def test_tasks_are_held_until_they_end_and_failures_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = TaskSet(logging.getLogger("avsclient.test"), "test")
    release = asyncio.Event()

    async def waits() -> None:
        await release.wait()

    async def fails() -> None:
        raise RuntimeError("boom")

    waiting = tasks.spawn(waits())
    with caplog.at_level(logging.ERROR, logger="avsclient.test"):
        failing = tasks.spawn(fails())
        await asyncio.wait({failing})
        await asyncio.sleep(0)  # the done callback runs
    assert len(tasks) == 1 and list(tasks) == [waiting]
    assert any("test task failed" in r.getMessage() and r.exc_info for r in caplog.records)
    release.set()
    await waiting
    await asyncio.sleep(0)
    assert len(tasks) == 0


async def test_cancel_ends_every_task() -> None:
    tasks = TaskSet(logging.getLogger("avsclient.test"), "test")
    started = [tasks.spawn(asyncio.sleep(3600)) for _ in range(3)]
    await tasks.cancel()
    assert all(t.cancelled() for t in started) and len(tasks) == 0
