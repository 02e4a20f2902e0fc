"""`TaskSet`: the tasks an owner starts and does not await itself.

Each task is kept referenced until it ends (the event loop holds only weak references), a
task that fails is logged with its traceback (never "Task exception was never retrieved"),
and `cancel()` ends them all at close::

    self._tasks = TaskSet(logger, "alerts")
    self._tasks.spawn(self._send_state_report())
    ...
    await self._tasks.cancel()
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterator
from typing import Any

__all__ = ["TaskSet"]


class TaskSet:
    """Background tasks of one owner, started with `spawn()`, cancelled with `cancel()`."""

    def __init__(self, logger: logging.Logger, owner: str) -> None:
        """Create an empty set.

        Args:
            logger: where failures are logged.
            owner: names the owner in those messages ("recognizer", "alerts", ...).
        """
        self._logger = logger
        self._owner = owner
        self._tasks: set[asyncio.Future[Any]] = set()

    def spawn(self, work: Awaitable[Any]) -> asyncio.Future[Any]:
        """Run `work` (a coroutine, or any awaitable) as a task of this set and return it."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            self._logger.error("%s task failed", self._owner, exc_info=error)

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[asyncio.Future[Any]]:
        return iter(list(self._tasks))

    async def cancel(self) -> None:
        """Cancel every task of the set and wait until they all ended."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
