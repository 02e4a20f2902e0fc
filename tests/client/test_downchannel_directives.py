"""Directives pushed on the downchannel: Speaker, System, unknown and malformed ones."""

from __future__ import annotations

import json

from avsclient.agents import ClientEvent, ExceptionReceived, VolumeStateChanged
from avsclient.client import AVSClient
from avsclient.simulator import Simulator, directive, speech_asset

from .conftest import ClientFactory


async def test_speaker_directives_change_volume_and_report_it(
    sim: Simulator, make_client: ClientFactory
) -> None:
    """SetVolume, AdjustVolume and SetMute answer VolumeChanged / MuteChanged; the state shows
    in the context; an out-of-range volume is reported and changes nothing."""
    applied: list[tuple[int, bool]] = []
    seen: list[ClientEvent] = []

    def apply(volume: int, muted: bool) -> None:
        applied.append((volume, muted))

    async with make_client(apply_volume=apply, listener=seen.append) as client:
        await client.wait_connected(20)
        await sim.push_directive(directive("Speaker", "SetMute", {"mute": True}))
        muted = await sim.wait_for_event("Speaker", "MuteChanged")
        await sim.push_directive(directive("Speaker", "SetVolume", {"volume": 30}))
        set_event = await sim.wait_for_event("Speaker", "VolumeChanged")
        await sim.push_directive(directive("Speaker", "AdjustVolume", {"volume": -40}))
        adjusted = await sim.wait_for_event("Speaker", "VolumeChanged", nth=2)
        await sim.push_directive(directive("Speaker", "SetVolume", {"volume": 150}))
        rejected = await sim.wait_for_event("System", "ExceptionEncountered")
        context = client.context()
    assert muted.payload == {"volume": 50, "muted": True}
    assert set_event.payload == {"volume": 30, "muted": False}  # setting the volume unmutes
    assert adjusted.payload == {"volume": 0, "muted": False}  # clamped at 0
    assert rejected.payload["error"]["type"] == "UNEXPECTED_INFORMATION_RECEIVED"
    assert json.loads(rejected.payload["unparsedDirective"])["directive"]["payload"] == {
        "volume": 150
    }
    assert applied == [(50, True), (30, False), (0, False)]
    assert [e.volume for e in seen if isinstance(e, VolumeStateChanged)] == [50, 30, 0]
    volume_state = [c for c in context if c["header"]["name"] == "VolumeState"]
    assert volume_state[0]["payload"] == {"volume": 0, "muted": False}


async def test_local_volume_changes_are_reported(
    sim: Simulator, make_client: ClientFactory
) -> None:
    """Changes made on the device send the same events as cloud-initiated ones."""
    async with make_client() as client:
        await client.wait_connected(20)
        await client.speaker.set_volume(70)
        await client.speaker.set_mute(True)
        changed = await sim.wait_for_event("Speaker", "VolumeChanged")
        muted = await sim.wait_for_event("Speaker", "MuteChanged")
    assert changed.payload == {"volume": 70, "muted": False}
    assert muted.payload == {"volume": 70, "muted": True}


async def test_malformed_directive_json_is_reported_and_the_loop_goes_on(
    sim: Simulator, make_client: ClientFactory
) -> None:
    """Truncated JSON answers UNEXPECTED_INFORMATION_RECEIVED; the next directive works."""
    async with make_client() as client:
        await client.wait_connected(20)
        sim.faults.malformed_directive_json_next()
        await sim.push_directive(directive("Speaker", "SetVolume", {"volume": 10}))
        report = await sim.wait_for_event("System", "ExceptionEncountered")
        await sim.push_directive(directive("Speaker", "SetVolume", {"volume": 20}))
        changed = await sim.wait_for_event("Speaker", "VolumeChanged")
    assert report.payload["error"]["type"] == "UNEXPECTED_INFORMATION_RECEIVED"
    assert report.payload["unparsedDirective"]  # the broken text, as received
    assert changed.payload == {"volume": 20, "muted": False}
    assert [e.name for e in sim.events].count("VolumeChanged") == 1


async def test_unknown_directive_answers_unsupported_operation(
    sim: Simulator, make_client: ClientFactory
) -> None:
    """An unknown directive is answered with ExceptionEncountered and nothing else breaks."""
    async with make_client() as client:
        await client.wait_connected(20)
        # (Notifications.SetIndicator served here before Notifications 1.0 was implemented.)
        await sim.push_directive(directive("Acme.Unknown", "DoThing", {}))
        report = await sim.wait_for_event("System", "ExceptionEncountered")
        await sim.push_directive(directive("System", "ResetUserInactivity"))
        await client.speaker.set_volume(5)
        await sim.wait_for_event("Speaker", "VolumeChanged")
    assert report.payload["error"]["type"] == "UNSUPPORTED_OPERATION"
    assert "Acme.Unknown.DoThing" in report.payload["error"]["message"]


async def test_system_exception_is_surfaced(sim: Simulator, make_client: ClientFactory) -> None:
    """System.Exception is logged and delivered to subscribers."""
    async with make_client() as client:
        await client.wait_connected(20)
        async with client.subscribe() as events:
            payload = {"code": "THROTTLING_EXCEPTION", "description": "slow down"}
            await sim.push_directive(directive("System", "Exception", payload))
            while not isinstance(event := await events.get(timeout=5), ExceptionReceived):
                pass
    assert event.code == "THROTTLING_EXCEPTION" and event.description == "slow down"
    assert client.system.last_exception == ("THROTTLING_EXCEPTION", "slow down")


async def test_speak_pushed_on_the_downchannel_plays(
    sim: Simulator, make_client: ClientFactory
) -> None:
    """A cloud-initiated Speak (no dialog id) plays its attachment from the downchannel."""
    speak = directive(
        "SpeechSynthesizer",
        "Speak",
        {"url": "cid:push-1", "format": "AUDIO_MPEG", "token": "pushed"},
    )
    async with make_client() as client:
        await client.wait_connected(20)
        await sim.push_directive(speak, attachments={"push-1": speech_asset("hello")})
        finished = await sim.wait_for_event("SpeechSynthesizer", "SpeechFinished")
    assert finished.payload == {"token": "pushed"}


async def test_user_inactivity_report_is_periodic(
    sim: Simulator, make_client: ClientFactory
) -> None:
    """UserInactivityReport goes out every interval with the inactive time in seconds."""
    async with make_client(inactivity_report_interval=0.1) as client:
        await client.wait_connected(20)
        report = await sim.wait_for_event("System", "UserInactivityReport")
        await sim.wait_for_event("System", "UserInactivityReport", nth=2)
    assert isinstance(report.payload["inactiveTimeInSeconds"], int)
    assert report.payload["inactiveTimeInSeconds"] >= 0


async def test_set_endpoint_persists_and_reconnects(
    sim: Simulator, make_client: ClientFactory
) -> None:
    """SetEndpoint hands the URL to the manager, which persists it and reconnects there."""
    stored: list[str] = []
    moved = f"https://localhost:{sim.port}"  # the same simulator under another host name
    async with make_client(endpoint_store=stored.append) as client:
        await client.wait_connected(20)
        await sim.push_directive(directive("System", "SetEndpoint", {"endpoint": moved}))
        sync = await sim.wait_for_event("System", "SynchronizeState", nth=2, timeout=10)
        await client.wait_connected(20)
    assert stored == [moved]
    assert sync.connection_id == 2
    assert sync.http_headers.get(":authority", "").startswith("localhost")


async def test_the_simulators_client_config_follows_it_to_its_own_names_only(
    sim: Simulator,
) -> None:
    """`Simulator.client_config()` (and so `AVSClient.for_simulator`) lets SetEndpoint move the
    client to the simulator's certificate names, over https only; other hosts keep the
    default's refusal."""
    stored: list[str] = []
    config = sim.client_config()
    assert set(config.endpoint_hosts) == {"127.0.0.1", "::1", "localhost"}
    async with AVSClient.for_simulator(sim, endpoint_store=stored.append) as client:
        await client.wait_connected(20)
        for refused in (f"http://localhost:{sim.port}", f"https://alexa.invalid:{sim.port}"):
            await sim.push_directive(directive("System", "SetEndpoint", {"endpoint": refused}))
        first = await sim.wait_for_event("System", "ExceptionEncountered")
        second = await sim.wait_for_event("System", "ExceptionEncountered", nth=2)
        moved = f"https://localhost:{sim.port}"
        await sim.push_directive(directive("System", "SetEndpoint", {"endpoint": moved}))
        sync = await sim.wait_for_event("System", "SynchronizeState", nth=2, timeout=10)
        await client.wait_connected(20)
    assert {first.payload["error"]["type"], second.payload["error"]["type"]} == {
        "UNEXPECTED_INFORMATION_RECEIVED"
    }
    assert stored == [moved]
    assert sync.http_headers.get(":authority", "").startswith("localhost")
