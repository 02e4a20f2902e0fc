"""The connection attempt's hold (the back-off before replacing a link that ended before it
proved healthy) ends early when the manager is woken."""

from __future__ import annotations

import asyncio
import time

import pytest

from avsclient._retry import RetryPolicy
from avsclient.auth import StaticTokenProvider
from avsclient.avs.attempt import Connector
from avsclient.avs.tokens import AttemptFailed, TokenGate
from avsclient.config import ClientConfig


async def test_cut_hold_ends_the_hold_at_once() -> None:
    """A 30 s hold, cut after 0.1 s: the attempt runs (and fails fast, nothing listens on
    port 9) well before the hold would have ended."""
    config = ClientConfig(endpoint="http://127.0.0.1:9", connect_timeout=5.0)
    tokens = StaticTokenProvider("token")
    connector = Connector(
        config,
        tokens,
        TokenGate(tokens, config.connect_timeout),
        sink=None,  # type: ignore[arg-type]  # never reached: the connection is refused
        context=list,
        retry=RetryPolicy(delays=(1.0,)),
        random=lambda: 0.5,
        current_url=config.url,
        post_connect=None,
        on_change=lambda: None,
        manager_closed=lambda: False,
    )
    started = time.monotonic()
    attempt = asyncio.ensure_future(connector.attempt_within(30.0))
    await asyncio.sleep(0.1)
    assert not attempt.done()
    connector.cut_hold()
    with pytest.raises(AttemptFailed):
        await asyncio.wait_for(attempt, 10)
    assert time.monotonic() - started < 5
