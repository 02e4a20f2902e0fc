"""What the connection manager tells an application that cannot connect."""

from __future__ import annotations

import asyncio

import pytest

from avsclient.avs.manager import ConnectionStatus, EventOutcome
from avsclient.exceptions import ConnectError
from avsclient.simulator import Simulator

from .managerkit import make_event, running_manager


async def test_a_rejected_certificate_is_reported_at_once_and_not_retried() -> None:
    """Not trusting the server's certificate is permanent: wait_connected raises the
    ConnectError naming the TLS failure at once (not after its timeout), the status is
    DISCONNECTED, and the manager makes no further attempt until wake()."""
    async with Simulator() as sim, running_manager(sim, ca_file=None) as run:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ConnectError) as info:
            await run.manager.wait_connected(10.0)
        assert loop.time() - started < 5.0
        assert run.manager.status is ConnectionStatus.DISCONNECTED
        attempts = run.manager._schedule.failures
        await asyncio.sleep(0.3)  # several back-off delays of FAST_BACKOFF
        assert run.manager._schedule.failures == attempts
        # An event fails at once instead of waiting queue_timeout for a link.
        result = await run.manager.send_event(make_event())
        assert result.outcome is EventOutcome.NOT_CONNECTED
        assert loop.time() - started < 5.0
    assert "certificate" in str(info.value).lower()


async def test_last_failure_is_forgotten_after_a_success() -> None:
    """Once connected, an old failure is not reported again."""
    async with Simulator() as sim, running_manager(sim) as run:
        await run.manager.wait_connected(10.0)
        assert run.manager._last_failure is None
