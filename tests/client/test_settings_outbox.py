"""Settings events must reach AVS: they go through the client's one persisted outbox.

A real client process changes settings while the simulator is offline and is killed with
SIGKILL; the events it stored reach the simulator (over TLS) exactly once, with their own
messageIds, after a new client on the same store file connects, and not again after a second
restart. The client's Alerts agent shares that outbox."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from pathlib import Path

from avsclient.auth import StaticTokenProvider
from avsclient.avs import ConnectionStatus
from avsclient.client import AVSClient
from avsclient.config import ClientConfig
from avsclient.simulator import Simulator
from avsclient.store import DeviceStore

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from avsclient.auth import StaticTokenProvider
    from avsclient.client import AVSClient
    from avsclient.config import ClientConfig

    async def main():
        url, ca_file, token, store = sys.argv[1:5]
        config = ClientConfig(endpoint=url, ca_file=ca_file, queue_timeout=0.5)
        client = AVSClient(config, StaticTokenProvider(token), store=store)
        await client.start()
        await client.wait_connected(20)
        print("connected", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        await client.system.set_time_zone("Europe/Berlin")
        await client.recognizer.settings.set_speech_confirmation("TONE")
        print("changed", flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)

SETTINGS_EVENTS = (("System", "TimeZoneChanged"), ("SpeechRecognizer", "SpeechConfirmationChanged"))


def _settings_events(sim: Simulator) -> list[tuple[str, str, str]]:
    return [
        (e.namespace, e.name, str(e.header["messageId"]))
        for e in sim.events
        if (e.namespace, e.name) in SETTINGS_EVENTS
    ]


async def _line(stream: asyncio.StreamReader) -> str:
    async with asyncio.timeout(30):
        return (await stream.readline()).decode().strip()


async def test_settings_changed_offline_reach_avs_once_after_a_sigkill_and_restart(
    tmp_path: Path,
) -> None:
    store_file = tmp_path / "device.sqlite3"
    async with Simulator() as sim:
        token = sim.add_token()
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CHILD, sim.url, str(sim.ca_file), token, str(store_file),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert child.stdin is not None
        assert child.stdout is not None
        try:
            assert await _line(child.stdout) == "connected"
            sim.faults.go_offline()  # the network goes: every connection drops
            async with asyncio.timeout(10):
                while sim.open_connections:
                    await asyncio.sleep(0.01)
            child.stdin.write(b"change\n")
            await child.stdin.drain()
            assert await _line(child.stdout) == "changed"
            await asyncio.sleep(0.5)  # the outbox tries, and fails, while offline
        finally:
            child.send_signal(signal.SIGKILL)
            await child.wait()
        assert child.returncode == -signal.SIGKILL
        assert _settings_events(sim) == []

        with DeviceStore.open(store_file) as store:
            pending = {
                (e.event["event"]["header"]["namespace"], e.event["event"]["header"]["name"]):
                e.message_id
                for e in store.outbox_pending()
            }
            assert store.get("System", "timeZone") == "Europe/Berlin"
            assert store.get("SpeechRecognizer", "speechConfirmation") == "TONE"
        assert set(pending) == set(SETTINGS_EVENTS)

        sim.faults.go_online()
        config = ClientConfig(endpoint=sim.url, ca_file=str(sim.ca_file))
        async with AVSClient(config, StaticTokenProvider(token), store=store_file) as client:
            assert client.alerts.outbox is client.outbox  # one outbox per store
            assert client.system.time_zone == "Europe/Berlin"
            assert client.recognizer.settings.speech_confirmation == "TONE"
            await client.wait_connected(20)
            await client.outbox.flush(20)
            assert client.outbox.delivered == 2
        received = _settings_events(sim)
        assert sorted(received) == sorted((ns, name, mid) for (ns, name), mid in pending.items())
        [zone] = [e for e in sim.events if e.name == "TimeZoneChanged"]
        assert zone.payload == {"timeZone": "Europe/Berlin"}
        assert zone.json.get("context") is None

        # Another restart: nothing is left to send, nothing goes out twice.
        async with AVSClient(config, StaticTokenProvider(token), store=store_file) as client:
            await client.wait_connected(20)
            assert client.status is ConnectionStatus.CONNECTED
            assert client.outbox.pending() == 0
            await asyncio.sleep(0.5)
        assert _settings_events(sim) == received


async def test_a_setting_event_that_failed_goes_out_once_when_the_link_returns(
    tmp_path: Path,
) -> None:
    """Within one run: the network goes, a time zone change's event fails NOT_CONNECTED and
    stays stored; it reaches AVS once when the connection is back."""
    async with Simulator() as sim:
        config = ClientConfig(endpoint=sim.url, ca_file=str(sim.ca_file), queue_timeout=0.3)
        tokens = StaticTokenProvider(sim.add_token())
        async with AVSClient(config, tokens, store=tmp_path / "device.sqlite3") as client:
            await client.wait_connected(20)
            sim.faults.go_offline()
            async with asyncio.timeout(10):
                while client.status is ConnectionStatus.CONNECTED:
                    await asyncio.sleep(0.01)
            await client.system.set_time_zone("Asia/Tokyo")
            async with asyncio.timeout(10):
                while client.outbox.failed_attempts == 0:
                    await asyncio.sleep(0.01)
            assert client.outbox.pending() == 1
            sim.faults.go_online()
            client.manager.wake()
            event = await sim.wait_for_event("System", "TimeZoneChanged", timeout=20)
            assert event.payload == {"timeZone": "Asia/Tokyo"}
            await client.outbox.flush(10)
        assert [e.name for e in sim.events].count("TimeZoneChanged") == 1
