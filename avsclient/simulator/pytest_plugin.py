"""pytest fixtures for testing against the local AVS simulator (loaded through `pytest11`).

Installing avsclient makes two async fixtures available to any pytest run (they need
pytest-asyncio):

- `avs_simulator`: a started TLS `Simulator` (trust it with `sim.ssl_context()` or
  `sim.ca_file`);
- `avs_simulator_h2c`: a started cleartext HTTP/2 (prior knowledge) `Simulator`.

Each test gets a fresh simulator, closed after the test. Example:

```python
async def test_my_device_talks_to_avs(avs_simulator):
    token = avs_simulator.add_token()
    await run_my_device(url=avs_simulator.url, cafile=avs_simulator.ca_file, token=token)
    event = await avs_simulator.wait_for_event("SpeechRecognizer", "Recognize")
    assert event.audio
```
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from avsclient.simulator.server import Simulator

__all__ = ["avs_simulator", "avs_simulator_h2c"]


def _async_fixture(func: Any) -> Any:
    try:
        import pytest_asyncio
    except ImportError:  # pragma: no cover - depends on the user's environment

        @pytest.fixture(name=func.__name__)
        def missing() -> None:
            pytest.fail("the avs_simulator fixtures need pytest-asyncio")

        missing.__doc__ = func.__doc__
        return missing
    return pytest_asyncio.fixture(func)


@_async_fixture
async def avs_simulator() -> AsyncIterator[Simulator]:
    """A started TLS AVS simulator (`avsclient.simulator.Simulator`), closed after the test."""
    # Imported here so that pytest runs that do not use the fixture never import h2 and trustme.
    from avsclient.simulator.server import Simulator

    async with Simulator(tls=True) as sim:
        yield sim


@_async_fixture
async def avs_simulator_h2c() -> AsyncIterator[Simulator]:
    """A started cleartext HTTP/2 AVS simulator, closed after the test."""
    from avsclient.simulator.server import Simulator

    async with Simulator(tls=False) as sim:
        yield sim
