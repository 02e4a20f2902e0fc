"""`AsyncResource`, the base of everything that holds connections, tasks or devices, and
`AsyncService`, one that starts when its `async with` block is entered."""

from __future__ import annotations

import abc
from types import TracebackType
from typing import Self

__all__ = ["AsyncResource", "AsyncService"]


class AsyncResource(abc.ABC):
    """Close it with `aclose()`, or use it as `async with resource:`, which closes it on the
    way out whatever happened inside (trio's `AsyncResource`)."""

    __slots__ = ()

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release what the resource holds; calling it again does nothing more."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class AsyncService(AsyncResource):
    """An `AsyncResource` with a `start()`: `async with service:` starts it on the way in
    and closes it on the way out."""

    __slots__ = ()

    @abc.abstractmethod
    async def start(self) -> None:
        """Start the service."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self
