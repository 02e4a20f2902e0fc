"""The token gate's one rule for a rejected token: report it once, get another, try once more."""

from __future__ import annotations

import asyncio

import pytest

from avsclient.auth import StaticTokenProvider
from avsclient.avs.policy import ChangedReason
from avsclient.avs.tokens import AttemptFailed, TokenGate
from avsclient.exceptions import ConnectError


class Rotating:
    """A token provider that hands out t1, t2, ... and records what was reported."""

    def __init__(self, *, fail_after: int | None = None, delay: float = 0.0) -> None:
        self.issued = 0
        self.invalidated: list[str] = []
        self._fail_after = fail_after
        self._delay = delay

    async def get_token(self) -> str:
        if self._delay:
            await asyncio.sleep(self._delay)
        if self._fail_after is not None and self.issued >= self._fail_after:
            raise ConnectError("the token service is down")
        return f"t{self.issued + 1}"

    async def invalidate(self, token: str) -> None:
        self.invalidated.append(token)
        self.issued += 1


async def test_an_accepted_token_is_used_once() -> None:
    provider = Rotating()
    gate = TokenGate(provider, timeout=1.0)
    seen: list[str] = []

    async def attempt(token: str) -> int:
        seen.append(token)
        return 204

    assert await gate.with_renewal(attempt, rejected=lambda status: status == 403) == 204
    assert seen == ["t1"]
    assert provider.invalidated == []


async def test_a_rejected_token_is_reported_and_the_attempt_runs_once_more() -> None:
    """403 then 204: the first token is reported, the second try gets the new one."""
    provider = Rotating()
    gate = TokenGate(provider, timeout=1.0)
    seen: list[str] = []

    async def attempt(token: str) -> int:
        seen.append(token)
        return 403 if token == "t1" else 204

    assert await gate.with_renewal(attempt, rejected=lambda status: status == 403) == 204
    assert seen == ["t1", "t2"]
    assert provider.invalidated == ["t1"]


async def test_never_a_third_try() -> None:
    """403 twice: the second answer is returned as final."""
    provider = Rotating()
    gate = TokenGate(provider, timeout=1.0)
    seen: list[str] = []

    async def attempt(token: str) -> int:
        seen.append(token)
        return 403

    assert await gate.with_renewal(attempt, rejected=lambda status: status == 403) == 403
    assert seen == ["t1", "t2"]


async def test_a_token_rejected_by_many_streams_is_reported_once() -> None:
    provider = Rotating()
    gate = TokenGate(provider, timeout=1.0)

    async def attempt(token: str) -> int:
        await asyncio.sleep(0)
        return 403 if token == "t1" else 204

    results = await asyncio.gather(
        *(gate.with_renewal(attempt, rejected=lambda s: s == 403) for _ in range(5))
    )
    assert results == [204] * 5
    assert provider.invalidated == ["t1"]


async def test_the_given_first_token_is_used() -> None:
    gate = TokenGate(Rotating(), timeout=1.0)
    seen: list[str] = []

    async def attempt(token: str) -> int:
        seen.append(token)
        return 200

    await gate.with_renewal(attempt, rejected=lambda s: s == 403, token="mine")
    assert seen == ["mine"]


async def test_no_new_token_raises_attempt_failed_with_the_reason() -> None:
    """A static token that AVS rejects cannot be renewed: INVALID_AUTH; a token service that
    is down: NETWORK_ERROR; a slow one: CONNECTION_TIMEDOUT."""
    gate = TokenGate(StaticTokenProvider("static"), timeout=1.0)

    async def rejected_always(token: str) -> int:
        return 403

    with pytest.raises(AttemptFailed) as info:
        await gate.with_renewal(rejected_always, rejected=lambda s: s == 403)
    assert info.value.reason is ChangedReason.INVALID_AUTH

    down = TokenGate(Rotating(fail_after=1), timeout=1.0)
    with pytest.raises(AttemptFailed) as info:
        await down.with_renewal(rejected_always, rejected=lambda s: s == 403)
    assert info.value.reason is ChangedReason.NETWORK_ERROR

    slow = TokenGate(Rotating(delay=1.0), timeout=0.05)
    with pytest.raises(AttemptFailed) as info:
        await slow.token()
    assert info.value.reason is ChangedReason.CONNECTION_TIMEDOUT
