"""The outbox and the connection coming back: an event that failed during an outage and is
backing off goes out as soon as the client reports CONNECTED, not after the back-off."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from avsclient._retry import RetryPolicy
from avsclient.agents import AlertsAgent, ConnectionStatusChanged
from avsclient.auth import StaticTokenProvider
from avsclient.avs.policy import ConnectionStatus
from avsclient.client import AVSClient, default_agents
from avsclient.config import ClientConfig
from avsclient.outbox import EventOutbox
from avsclient.simulator import Simulator
from avsclient.store import DeviceStore

from .kit import FMT, PacedSink

#: A back-off far longer than the test may wait: only the reconnection can cut it short.
LONG_BACK_OFF = RetryPolicy(delays=(120.0,))


async def test_a_backed_off_event_goes_out_within_a_second_of_reconnecting(
    tmp_path: Path,
) -> None:
    """The network goes (the simulator drops every connection), a local alert volume change
    stores VolumeChanged, its attempt fails NOT_CONNECTED and the outbox backs off for two
    minutes; the network returns and the event reaches the simulator within a second of the
    client reporting CONNECTED."""
    store = DeviceStore.open(tmp_path / "device.sqlite3")
    outbox = EventOutbox(store, retry=LONG_BACK_OFF)
    async with Simulator(tls=True) as sim:
        config = ClientConfig(endpoint=sim.url, ca_file=str(sim.ca_file), queue_timeout=0.3)
        agents = default_agents(sink=PacedSink(FMT))
        index = next(i for i, agent in enumerate(agents) if isinstance(agent, AlertsAgent))
        agents[index] = AlertsAgent(agents[index].output, store=store, outbox=outbox)  # type: ignore[attr-defined]
        client = AVSClient(config, StaticTokenProvider(sim.add_token()), agents=agents)
        connected: list[float] = []

        def on_event(event: object) -> None:
            if (
                isinstance(event, ConnectionStatusChanged)
                and event.status is ConnectionStatus.CONNECTED
            ):
                connected.append(time.monotonic())

        client.add_listener(on_event)
        async with client:
            await client.wait_connected(10)
            sim.faults.go_offline()
            async with asyncio.timeout(10):
                while client.status is ConnectionStatus.CONNECTED:
                    await asyncio.sleep(0.01)
            await client.alerts.set_volume(30)
            async with asyncio.timeout(10):
                while outbox.failed_attempts == 0:
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0.5)  # well into the two-minute back-off
            assert outbox.pending() == 1
            before = len(connected)
            sim.faults.go_online()
            client.manager.wake()  # the connection's own back-off is not under test
            event = await sim.wait_for_event("Alerts", "VolumeChanged", timeout=10)
            arrived = time.monotonic()
            assert len(connected) == before + 1
            assert arrived - connected[-1] < 1.0
            assert event.payload == {"volume": 30}
            await outbox.flush(5)
            assert outbox.failed_attempts >= 1 and outbox.delivered == 1
    store.close()
