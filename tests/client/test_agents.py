"""Agents plug into the client: the registry (add_agent, lookup, duplicates), generic routing,
context, capabilities and closing, audio focus (how agents coordinate), and a custom agent
end to end against the simulator."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from avsclient.activity import UserActivity
from avsclient.agents import (
    AlertsAgent,
    AudioPlayerAgent,
    Capability,
    CapabilityAgent,
    DirectiveHandler,
    PlaybackControllerAgent,
    SpeakerAgent,
    SpeechRecognizerAgent,
    SpeechSynthesizerAgent,
    SystemAgent,
)
from avsclient.audio import NullSink
from avsclient.auth import StaticTokenProvider
from avsclient.client import AVSClient, default_agents
from avsclient.config import ClientConfig
from avsclient.dialog import Disposition
from avsclient.exceptions import DirectiveError, StateError
from avsclient.focus import FocusManager, FocusState
from avsclient.messages import ContextState, Directive, Event, parse_directive
from avsclient.simulator import Simulator, directive

from .conftest import ClientFactory, tone_source

# -- a custom agent ---------------------------------------------------------------------------


class LampAgent(CapabilityAgent):
    """A made-up interface: SetColor (directive), ColorChanged (event), LampState (context)."""

    namespace = "Acme.Lamp"
    version = "1.0"

    def __init__(self, color: str = "white") -> None:
        super().__init__()
        self.color = color
        self.started = 0
        self.closed = False

    def capability(self) -> Capability:
        return Capability(self.namespace, self.version, {"colors": ["white", "blue"]})

    def handlers(self) -> dict[str, DirectiveHandler]:
        return {"SetColor": self._on_set_color}

    def context_states(self) -> list[ContextState]:
        return [
            ContextState(namespace=self.namespace, name="LampState", payload={"color": self.color})
        ]

    def start(self) -> None:
        self.started += 1

    async def _on_set_color(self, directive: Directive) -> None:
        color = directive.payload.get("color")
        if color not in ("white", "blue"):
            raise DirectiveError(f"unknown color {color!r}")
        self.color = color
        await self.messenger.post_event(
            Event.build(self.namespace, "ColorChanged", {"color": color})
        )

    async def aclose(self) -> None:
        self.closed = True


class Closing(CapabilityAgent):
    """Records the order agents are closed in; may fail."""

    version = "1.0"

    def __init__(self, namespace: str, log: list[str], *, fail: bool = False) -> None:
        super().__init__()
        self.namespace = namespace
        self.log = log
        self.fail = fail

    async def aclose(self) -> None:
        self.log.append(self.namespace)
        if self.fail:
            raise RuntimeError(f"{self.namespace} cannot close")


def offline_client(**kwargs: Any) -> AVSClient:
    """A client that is never started (nothing connects)."""
    config = ClientConfig(endpoint="https://127.0.0.1:9")
    return AVSClient(config, StaticTokenProvider("token"), **kwargs)


# -- the registry -----------------------------------------------------------------------------


async def test_the_core_agents_are_the_default() -> None:
    """Without agents=, the client holds System, Speaker, SpeechSynthesizer,
    SpeechRecognizer, AudioPlayer, PlaybackController and Alerts, then what a Discovery device
    declares (Alexa, Alexa.ApiGateway, InteractionModel) and Notifications, reachable by
    interface and through attributes; speech and music play through the client's one mixer."""
    client = offline_client()
    assert [a.namespace for a in client.agents] == [
        "System",
        "Speaker",
        "SpeechSynthesizer",
        "SpeechRecognizer",
        "AudioPlayer",
        "PlaybackController",
        "Alerts",
        "Alexa",
        "Alexa.ApiGateway",
        "InteractionModel",
        "Notifications",
    ]
    assert isinstance(client.player, AudioPlayerAgent)
    assert isinstance(client.playback, PlaybackControllerAgent)
    assert client.player.output.mixer is client.mixer
    assert client.synthesizer.mp3.sink is client.mixer.channel("Dialog")
    assert isinstance(client.alerts, AlertsAgent)
    assert isinstance(client.system, SystemAgent)
    assert isinstance(client.speaker, SpeakerAgent)
    assert isinstance(client.synthesizer, SpeechSynthesizerAgent)
    assert isinstance(client.recognizer, SpeechRecognizerAgent)
    assert client.agent("Speaker") is client.speaker
    await client.aclose()


async def test_capabilities_use_the_protocol_versions() -> None:
    """capabilities() lists each agent's declaration in agent order (avs-protocol 9.8)."""
    client = offline_client()
    client.add_agent(LampAgent())
    caps = client.capabilities()
    assert [(c.interface, c.version) for c in caps] == [
        ("System", "1.4"),
        ("Speaker", "1.0"),
        ("SpeechSynthesizer", "1.3"),
        ("SpeechRecognizer", "2.3"),
        ("AudioPlayer", "1.3"),
        ("PlaybackController", "1.1"),
        ("Alerts", "1.3"),
        ("Alexa", "3"),
        ("Alexa.ApiGateway", "1.0"),
        ("InteractionModel", "1.2"),
        ("Notifications", "1.0"),
        ("Acme.Lamp", "1.0"),
    ]
    assert caps[-1].to_json() == {
        "type": "AlexaInterface",
        "interface": "Acme.Lamp",
        "version": "1.0",
        "configurations": {"colors": ["white", "blue"]},
    }
    assert "configurations" not in caps[1].to_json()  # Speaker declares none
    assert "en-US" in caps[0].to_json()["configurations"]["locales"]  # System 12.1
    await client.aclose()


def test_capability_is_checked_and_read_only() -> None:
    """A capability needs an interface and a dotted version; its configuration is frozen."""
    cap = Capability("Alexa", "3")
    assert cap.configurations is None
    with pytest.raises(ValueError, match="interface"):
        Capability("", "1.0")
    with pytest.raises(ValueError, match="version"):
        Capability("X", "one")
    with pytest.raises(ValueError, match="mapping"):
        Capability("X", "1.0", ["a"])  # type: ignore[arg-type]
    source = {"a": 1}
    frozen = Capability("X", "1.0", source)
    source["a"] = 2
    assert frozen.configurations == {"a": 1}
    with pytest.raises(TypeError):
        frozen.configurations["a"] = 3  # type: ignore[index]


async def test_a_second_agent_for_an_interface_is_rejected() -> None:
    """Two agents for one interface: ValueError naming the interface; nothing changes."""
    client = offline_client()
    with pytest.raises(ValueError, match="already an agent for Speaker"):
        client.add_agent(SpeakerAgent(volume=10))
    assert client.speaker.volume == 50
    with pytest.raises(ValueError, match=r"already an agent for Acme\.Lamp"):
        offline_client(agents=[LampAgent(), LampAgent()])
    await client.aclose()


async def test_an_agent_without_interface_or_version_is_rejected() -> None:
    """The interface and version must be declared before the agent is added."""
    client = offline_client(agents=[])

    class Nameless(CapabilityAgent):
        version = "1.0"

    class Versionless(CapabilityAgent):
        namespace = "Acme.Thing"

    with pytest.raises(ValueError, match="no interface name"):
        client.add_agent(Nameless())
    with pytest.raises(ValueError, match="bad capability"):
        client.add_agent(Versionless())
    assert client.agents == ()
    await client.aclose()


async def test_agents_replace_the_defaults_and_their_options_do_not_mix() -> None:
    """agents= replaces the core set; options of the default agents with it are an error;
    the old attributes say clearly when their agent is missing or of another kind."""
    client = offline_client(agents=[LampAgent(), *default_agents()[:1]])
    assert [a.namespace for a in client.agents] == ["Acme.Lamp", "System"]
    with pytest.raises(KeyError, match="no agent for Speaker"):
        _ = client.speaker

    class OtherSpeaker(CapabilityAgent):
        namespace = "Speaker"
        version = "1.0"

    client.add_agent(OtherSpeaker())
    with pytest.raises(LookupError, match="Speaker agent is a OtherSpeaker"):
        _ = client.speaker
    with pytest.raises(ValueError, match="sink, volume configure the default agents"):
        offline_client(agents=[LampAgent()], sink=NullSink(), volume=3)
    await client.aclose()


async def test_an_agent_belongs_to_one_client() -> None:
    """Adding an agent to a second client, or to a closed one, is a StateError; an agent
    not added anywhere says so when it needs its services."""
    lamp = LampAgent()
    with pytest.raises(StateError, match="not been added"):
        _ = lamp.messenger
    first, second = offline_client(agents=[lamp]), offline_client(agents=[])
    with pytest.raises(StateError, match="already belongs"):
        second.add_agent(lamp)
    await first.aclose()
    with pytest.raises(StateError, match="closed"):
        first.add_agent(LampAgent())
    await second.aclose()


async def test_routing_and_context_are_generic() -> None:
    """An added agent's directives reach its handlers through the pipeline, and its state is
    part of the context, in agent order."""
    client = offline_client()
    lamp = LampAgent()
    client.add_agent(lamp)
    seen: list[Disposition] = []
    client.add_listener(lambda e: seen.append(e.disposition) if hasattr(e, "disposition") else None)
    raw = json.dumps(directive("Acme.Lamp", "SetColor", {"color": "blue"})).encode()
    client.pipeline.dispatch(parse_directive(raw))
    await client.pipeline.wait_idle()
    assert lamp.color == "blue"
    assert Disposition.DISPATCHED in seen
    names = [f"{s['header']['namespace']}.{s['header']['name']}" for s in client.context()]
    assert names == [
        "Speaker.VolumeState",
        "SpeechSynthesizer.SpeechState",
        "AudioPlayer.PlaybackState",
        "Alerts.AlertsState",
        "Notifications.IndicatorState",
        "Acme.Lamp.LampState",
    ]
    assert client.context()[-1]["payload"] == {"color": "blue"}
    await client.aclose()


async def test_close_is_generic_newest_first_and_survives_a_failing_agent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Agents close newest first; one failing to close is logged and the others still close,
    and so does the client itself."""
    log: list[str] = []
    agents = [Closing("A", log), Closing("B", log, fail=True), Closing("C", log)]
    client = offline_client(agents=agents)
    with caplog.at_level(logging.ERROR, logger="avsclient.client"):
        await client.aclose()
    assert log == ["C", "B", "A"]
    assert "closing <Closing B 1.0> failed" in caplog.text
    await client.aclose()  # idempotent
    assert log == ["C", "B", "A"]


# -- audio focus ------------------------------------------------------------------------------


class Activity:
    def __init__(self, name: str, log: list[tuple[str, str, FocusState]]) -> None:
        self.name = name
        self.log = log

    async def focus_changed(self, channel: str, state: FocusState) -> None:
        self.log.append((self.name, channel, state))


async def test_focus_stops_the_old_activity_of_a_channel_and_orders_channels() -> None:
    """A new activity on a channel sends the old one to NONE first; the highest priority
    acquired channel is FOREGROUND, the others BACKGROUND; a release promotes the next."""
    log: list[tuple[str, str, FocusState]] = []
    focus = FocusManager()
    speech, mic, music = Activity("speech", log), Activity("mic", log), Activity("music", log)
    await focus.acquire("Content", music)
    await focus.acquire("Dialog", speech)
    await focus.acquire("Dialog", speech)  # already held: nothing happens
    assert log == [
        ("music", "Content", FocusState.FOREGROUND),
        ("music", "Content", FocusState.BACKGROUND),
        ("speech", "Dialog", FocusState.FOREGROUND),
    ]
    log.clear()
    await focus.acquire("Dialog", mic)
    assert log == [("speech", "Dialog", FocusState.NONE), ("mic", "Dialog", FocusState.FOREGROUND)]
    log.clear()
    await focus.release("Dialog", speech)  # not the holder any more: nothing happens
    await focus.release("Dialog", mic)
    assert log == [("music", "Content", FocusState.FOREGROUND)]
    assert focus.holder("Dialog") is None and focus.state("Dialog") is FocusState.NONE
    with pytest.raises(ValueError, match="unknown channel"):
        await focus.acquire("Radio", music)


async def test_a_failing_focus_observer_does_not_stop_the_acquire(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The displaced activity raising is logged; the new one still gets the channel."""

    class Broken:
        async def focus_changed(self, channel: str, state: FocusState) -> None:
            if state is FocusState.NONE:
                raise RuntimeError("stuck")

    focus = FocusManager()
    log: list[tuple[str, str, FocusState]] = []
    new = Activity("new", log)
    await focus.acquire("Dialog", Broken())
    with caplog.at_level(logging.ERROR, logger="avsclient.focus"):
        await focus.acquire("Dialog", new)
    assert focus.holder("Dialog") is new
    assert log == [("new", "Dialog", FocusState.FOREGROUND)]
    assert "failed on focus NONE" in caplog.text


# -- end to end against the simulator ---------------------------------------------------------


async def test_a_custom_agent_works_against_the_simulator(
    sim: Simulator, make_client: ClientFactory
) -> None:
    """Added before start: its state is in SynchronizeState; its directive is handled and its
    event reaches AVS; a bad directive is answered with ExceptionEncountered."""
    client = make_client()
    lamp = LampAgent()
    client.add_agent(lamp)
    async with client:
        await client.wait_connected(20)
        assert lamp.started == 1
        sync = await sim.wait_for_event("System", "SynchronizeState")
        states = {f"{s['header']['namespace']}.{s['header']['name']}": s for s in sync.context}
        assert states["Acme.Lamp.LampState"]["payload"] == {"color": "white"}
        await sim.push_directive(directive("Acme.Lamp", "SetColor", {"color": "blue"}))
        changed = await sim.wait_for_event("Acme.Lamp", "ColorChanged", timeout=10)
        assert changed.payload == {"color": "blue"}
        await sim.push_directive(directive("Acme.Lamp", "SetColor", {"color": "pink"}))
        error = await sim.wait_for_event("System", "ExceptionEncountered", timeout=10)
        assert "pink" in error.payload["error"]["message"]
    assert lamp.closed


async def test_an_agent_added_to_a_running_client_starts_and_is_routed(
    sim: Simulator, make_client: ClientFactory
) -> None:
    """add_agent() after start: the agent starts at once, its directives are routed, and its
    context goes out with the next Recognize."""
    client = make_client()
    async with client:
        await client.wait_connected(20)
        lamp = LampAgent(color="blue")
        client.add_agent(lamp)
        assert lamp.started == 1
        await sim.push_directive(directive("Acme.Lamp", "SetColor", {"color": "white"}))
        await sim.wait_for_event("Acme.Lamp", "ColorChanged", timeout=10)
        dialog = await client.recognize(tone_source(0.5))
        await asyncio.wait_for(dialog.wait_finished(), 20)
        recognize = await sim.wait_for_event("SpeechRecognizer", "Recognize")
        states = {f"{s['header']['namespace']}.{s['header']['name']}": s for s in recognize.context}
        assert states["Acme.Lamp.LampState"]["payload"] == {"color": "white"}


# -- user activity ----------------------------------------------------------------------------


def test_user_activity_counts_whole_seconds_since_the_last_touch() -> None:
    """inactive_seconds grows with the clock and restarts at touch()."""
    now = [10.0]
    activity = UserActivity(clock=lambda: now[0])
    now[0] = 12.7
    assert activity.inactive_seconds == 2
    activity.touch()
    now[0] = 13.0
    assert activity.inactive_seconds == 0


async def test_system_and_recognizer_share_the_clients_user_activity() -> None:
    """System reports the client's UserActivity, which ResetUserInactivity resets; no agent
    holds another for it."""
    client = offline_client()
    assert client.system.services.activity is client.recognizer.services.activity
    client.services.activity._last -= 100  # as if nobody spoke for 100 s
    assert client.system.inactive_seconds >= 100
    raw = json.dumps(directive("System", "ResetUserInactivity")).encode()
    client.pipeline.dispatch(parse_directive(raw))
    await client.pipeline.wait_idle()
    assert client.system.inactive_seconds < 100
    await client.aclose()


async def test_closing_the_messenger_sends_what_is_queued_within_its_deadline() -> None:
    """An event posted just before the client closes (SpeechFinished after the last answer)
    is still sent; a sender that never answers is given up after the flush deadline."""
    from avsclient.agents import Messenger
    from avsclient.avs.policy import EventOutcome
    from avsclient.avs.responses import EventResult

    class SlowSender:
        def __init__(self, delay: float) -> None:
            self.delay, self.sent = delay, []  # type: list[str]

        async def send_event(self, event: Any, *, audio: Any = None) -> EventResult:
            await asyncio.sleep(self.delay)
            self.sent.append(event["event"]["header"]["name"])
            return EventResult(outcome=EventOutcome.SUCCESS_NO_CONTENT, message_id="m")

    slow = SlowSender(0.1)
    messenger = Messenger(slow, providers=[], notify=lambda e: None)
    await messenger.post_event(Event.build("SpeechSynthesizer", "SpeechFinished", {}))
    await messenger.aclose()
    assert slow.sent == ["SpeechFinished"]

    stuck = SlowSender(3600)
    messenger = Messenger(stuck, providers=[], notify=lambda e: None)
    await messenger.post_event(Event.build("SpeechSynthesizer", "SpeechFinished", {}))
    loop = asyncio.get_running_loop()
    began = loop.time()
    await messenger.aclose(flush_timeout=0.1)
    assert stuck.sent == [] and loop.time() - began < 2
