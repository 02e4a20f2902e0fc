"""Notifications 1.0 against the simulator over TLS (assets from a local HTTPS media server):
indicators set, played on the Alert channel, kept across a restart, cleared; bad assets
refused with nothing stored; the built-in chime when the asset cannot be fetched."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from avsclient.agents import (
    CapabilityAgent,
    ClientEvent,
    FocusChanged,
    IndicatorChanged,
    NotificationsAgent,
)
from avsclient.agents.notifications import chime
from avsclient.audio import PLAYBACK_FORMAT, Mixer, WavFileSink
from avsclient.auth import StaticTokenProvider
from avsclient.client import AVSClient, default_agents
from avsclient.config import ClientConfig
from avsclient.simulator import Simulator, directive, speech_asset
from avsclient.simulator.media import MediaServer
from avsclient.store import DeviceStore

from .test_discovery import DEVICE


@pytest.fixture
async def media() -> AsyncIterator[MediaServer]:
    server = MediaServer()
    await server.start()
    yield server
    await server.aclose()


def _client(
    sim: Simulator, path: Path, media: MediaServer, out: Path, events: list[ClientEvent]
) -> tuple[AVSClient, NotificationsAgent, WavFileSink]:
    sink = WavFileSink(out, PLAYBACK_FORMAT)
    notifications = NotificationsAgent(Mixer(sink).channel("Alert"), verify=media.ssl_context())
    agents: list[CapabilityAgent] = [
        a for a in default_agents() if not isinstance(a, NotificationsAgent)
    ]
    agents.append(notifications)
    config = ClientConfig(endpoint=sim.url, ca_file=str(sim.ca_file))
    client = AVSClient(
        config, StaticTokenProvider(sim.add_token()), agents=agents, store=path, device=DEVICE
    )
    client.add_listener(events.append)
    return client, notifications, sink


def _set(url: str, asset_id: str = "a-1", *, persist: bool = True) -> dict[str, Any]:
    return directive(
        "Notifications",
        "SetIndicator",
        {
            "persistVisualIndicator": persist,
            "playAudioIndicator": True,
            "asset": {"assetId": asset_id, "url": url},
        },
    )


async def _until(check: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


async def test_indicator_plays_on_the_alert_channel_and_survives_a_restart(
    sim: Simulator, media: MediaServer, tmp_path: Path
) -> None:
    """SetIndicator: the asset plays on the Alert channel, the visual indicator is on and
    observable; after a restart the IndicatorState context still says so; the same assetId
    is not replayed; ClearIndicator clears it."""
    url = media.add("/notify.mp3", speech_asset("hello"))
    path = tmp_path / "device.sqlite3"
    events: list[ClientEvent] = []
    client, agent, sink = _client(sim, path, media, tmp_path / "a.wav", events)
    async with client:
        await client.wait_connected(10)
        await sim.push_directive(_set(url))
        await _until(lambda: agent.played == 1)
    await sink.aclose()
    assert agent.visual_indicator and agent.enabled
    assert IndicatorChanged(enabled=True, visual=True) in events
    assert any(isinstance(e, FocusChanged) and e.channel == "Alert" for e in events)
    assert (tmp_path / "a.wav").stat().st_size > 10_000

    events2: list[ClientEvent] = []
    again, agent2, sink2 = _client(sim, path, media, tmp_path / "b.wav", events2)
    async with again:
        await again.wait_connected(10)
        sync = await sim.wait_for_event("System", "SynchronizeState", nth=2)
        state = next(c["payload"] for c in sync.context if c["header"]["name"] == "IndicatorState")
        assert state == {"isEnabled": True, "isVisualIndicatorPersisted": True}
        assert IndicatorChanged(enabled=True, visual=True) in events2
        await sim.push_directive(_set(url))  # same assetId: not replayed
        await sim.push_directive(directive("Notifications", "ClearIndicator"))
        await _until(lambda: not agent2.enabled)
    await sink2.aclose()
    assert agent2.played == 0 and not agent2.visual_indicator
    with DeviceStore.open(path) as store:
        assert store.get("Notifications", "indicator") == {
            "isEnabled": False,
            "isVisualIndicatorPersisted": False,
            "assetId": None,
        }


@pytest.mark.parametrize("kind", ["not audio", "too big", "http url", "no asset"])
async def test_bad_assets_are_refused_and_nothing_is_stored(
    sim: Simulator, media: MediaServer, tmp_path: Path, kind: str
) -> None:
    """An asset that is not audio, too big, not https, or missing while audio is asked for:
    UNEXPECTED_INFORMATION_RECEIVED, and the stored state is unchanged."""
    if kind == "not audio":
        message = _set(media.add("/page", b"<html></html>", content_type="text/html"))
    elif kind == "too big":
        message = _set(media.add("/big.mp3", b"\xff" * (600 * 1024)))
    elif kind == "http url":
        message = _set("http://127.0.0.1:1/a.mp3")
    else:
        message = directive(
            "Notifications",
            "SetIndicator",
            {"persistVisualIndicator": True, "playAudioIndicator": True},
        )
    path = tmp_path / "device.sqlite3"
    events: list[ClientEvent] = []
    client, agent, sink = _client(sim, path, media, tmp_path / "a.wav", events)
    async with client:
        await client.wait_connected(10)
        await sim.push_directive(message)
        report = await sim.wait_for_event("System", "ExceptionEncountered")
    await sink.aclose()
    assert report.payload["error"]["type"] == "UNEXPECTED_INFORMATION_RECEIVED"
    assert not agent.enabled and agent.played == 0
    with DeviceStore.open(path) as store:
        assert store.get("Notifications", "indicator") is None


async def test_an_unreachable_asset_plays_the_builtin_chime(
    sim: Simulator, media: MediaServer, tmp_path: Path
) -> None:
    """Offline (the asset server is down): the built-in chime plays instead."""
    path = tmp_path / "device.sqlite3"
    events: list[ClientEvent] = []
    client, agent, sink = _client(sim, path, media, tmp_path / "a.wav", events)
    async with client:
        await client.wait_connected(10)
        await sim.push_directive(_set("https://127.0.0.1:9/gone.mp3", persist=False))
        await _until(lambda: agent.played == 1)
        assert agent.enabled and not agent.visual_indicator
    await sink.aclose()
    assert (tmp_path / "a.wav").stat().st_size >= len(chime(PLAYBACK_FORMAT.rate)) // 2
