"""Access tokens for the AVS session: one gate shared by every link, and the one rule for a
rejected token: report it, get another, try once more.

AVS answers 403 to a request whose token it does not accept (avs-protocol 4.1). The
downchannel, the `GET /ping` and every event stream follow the same rule through
`TokenGate.with_renewal`, so a token rejected by several streams at once is reported once,
and no request is tried a third time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from avsclient.avs.policy import ChangedReason, reason_for_error
from avsclient.exceptions import AuthError, TransportError

if TYPE_CHECKING:
    from avsclient.auth.provider import TokenProvider

# Plain sorted order, as tests/test_exports.py checks (not ruff's isort-style order).
__all__ = [
    "AttemptFailed",
    "TokenGate",
]

# The session's modules log as one, so that an application's logging setup sees one name.
logger = logging.getLogger("avsclient.avs")

T = TypeVar("T")


class AttemptFailed(Exception):
    """A connect attempt (or a step a link needs) failed for a known reason (internal)."""

    def __init__(self, reason: ChangedReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class TokenGate:
    """Access tokens for every link: bounded waits, and one report per rejected token.

    Args:
        provider: where bearer tokens come from.
        timeout: how long getting a token may take (the connect timeout).
    """

    def __init__(self, provider: TokenProvider, timeout: float) -> None:
        self.provider = provider
        self._timeout = timeout
        self._lock = asyncio.Lock()
        self._invalidated: str | None = None

    async def token(self) -> str:
        """A token, within the timeout.

        Raises:
            AttemptFailed: INVALID_AUTH, CONNECTION_TIMEDOUT or NETWORK_ERROR.
        """
        try:
            async with asyncio.timeout(self._timeout):
                return await self.provider.get_token()
        except AuthError as exc:
            raise AttemptFailed(ChangedReason.INVALID_AUTH, f"no access token: {exc}") from exc
        except TimeoutError as exc:
            raise AttemptFailed(
                ChangedReason.CONNECTION_TIMEDOUT, "getting an access token took too long"
            ) from exc
        except TransportError as exc:
            raise AttemptFailed(
                reason_for_error(exc), f"getting an access token failed: {exc}"
            ) from exc

    async def renew(self, rejected: str) -> str:
        """Report a token AVS rejected (once, however many streams saw it); get another.

        Raises:
            AttemptFailed: no new token (INVALID_AUTH, or the token service failed).
        """
        async with self._lock:
            if self._invalidated != rejected:
                self._invalidated = rejected
                logger.warning("AVS rejected the access token (403): refreshing it")
                await self.provider.invalidate(rejected)
        return await self.token()

    async def with_renewal(
        self,
        attempt: Callable[[str], Awaitable[T]],
        *,
        rejected: Callable[[T], bool],
        token: str | None = None,
    ) -> T:
        """Run `attempt` with a token; if its answer says the token was rejected, run it again
        once with a renewed token.

        Args:
            attempt: sends the request with the bearer token it is given; returns its answer.
            rejected: whether an answer is a rejection worth one more try (a 403).
            token: the token for the first try (default: `token()`).

        Returns:
            The answer of the last try: the caller treats a rejection there as final.

        Raises:
            AttemptFailed: no token, or no new token after the rejection.
            Exception: what `attempt` raises.
        """
        if token is None:
            token = await self.token()
        answer = await attempt(token)
        if not rejected(answer):
            return answer
        return await attempt(await self.renew(token))
