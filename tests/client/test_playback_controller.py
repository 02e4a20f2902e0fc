"""PlaybackController: each button is an event with the full context and no dialog id."""

from __future__ import annotations

import pytest

from avsclient.agents.playback_controller import PlaybackControllerAgent
from avsclient.simulator import Simulator

from .conftest import ClientFactory


async def test_buttons_send_command_events_with_context(
    sim: Simulator, make_client: ClientFactory
) -> None:
    client = make_client()
    buttons = client.playback
    assert isinstance(buttons, PlaybackControllerAgent)
    async with client:
        await client.wait_connected(20)
        await buttons.play()
        await buttons.pause()
        await buttons.next()
        await buttons.previous()
        await buttons.button("SKIPFORWARD")
        await buttons.toggle("SHUFFLE", True)
        await buttons.toggle("LOOP", False)
        with pytest.raises(ValueError, match="unknown button"):
            await buttons.button("EJECT")
        with pytest.raises(ValueError, match="unknown toggle"):
            await buttons.toggle("DISCO", True)
        await client.messenger.flush()
    sent = [e for e in sim.events if e.namespace == "PlaybackController"]
    assert [e.name for e in sent] == [
        "PlayCommandIssued",
        "PauseCommandIssued",
        "NextCommandIssued",
        "PreviousCommandIssued",
        "ButtonCommandIssued",
        "ToggleCommandIssued",
        "ToggleCommandIssued",
    ]
    assert [e.payload for e in sent[4:]] == [
        {"name": "SKIPFORWARD"},
        {"name": "SHUFFLE", "action": "SELECT"},
        {"name": "LOOP", "action": "DESELECT"},
    ]
    assert all(e.dialog_request_id is None for e in sent)
    names = {f"{c['header']['namespace']}.{c['header']['name']}" for c in sent[0].context}
    assert "Speaker.VolumeState" in names
    assert sent[0].payload == {}
