"""What the connection manager tells an application that cannot connect."""

from __future__ import annotations

import pytest

from avsclient.exceptions import ConnectTimeout
from avsclient.simulator import Simulator

from .managerkit import running_manager


async def test_connect_timeout_says_why_the_last_attempt_failed() -> None:
    """Not trusting the server's certificate: the timeout names the TLS failure, not only
    the status, so `avsclient talk` can print something actionable."""
    async with Simulator() as sim, running_manager(sim, ca_file=None) as run:
        with pytest.raises(ConnectTimeout) as info:
            await run.manager.wait_connected(2.0)
    message = str(info.value)
    assert "the last attempt failed" in message
    assert "certificate" in message.lower()


async def test_last_failure_is_forgotten_after_a_success() -> None:
    """Once connected, an old failure is not reported again."""
    async with Simulator() as sim, running_manager(sim) as run:
        await run.manager.wait_connected(10.0)
        assert run.manager._last_failure is None
