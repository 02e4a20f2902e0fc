"""Audio focus with mixing behaviors (avs-protocol 13): the SDK's table, duck or pause by
content type, re-notification when only the behavior changes, listeners, and the client's
FocusChanged events."""

from __future__ import annotations

import asyncio

import pytest

from avsclient.agents import FocusChanged
from avsclient.audio import PLAYBACK_FORMAT, MixerChannel, NullSink
from avsclient.focus import (
    ContentType,
    FocusChange,
    FocusManager,
    FocusState,
    MixingBehavior,
    mixing_behavior,
)
from avsclient.simulator import Simulator

from .conftest import ClientFactory, tone_source

MIX, NONMIX = ContentType.MIXABLE, ContentType.NONMIXABLE


class Activity:
    def __init__(self, name: str, focus: FocusManager, log: list[tuple[str, str, object]]) -> None:
        self.name, self.focus, self.log = name, focus, log

    async def focus_changed(self, channel: str, state: FocusState) -> None:
        self.log.append((self.name, state.name, self.focus.behavior(channel).name))


@pytest.mark.parametrize(
    ("background", "btype", "incoming", "itype", "expected"),
    [
        ("Content", MIX, "Dialog", MIX, MixingBehavior.MAY_DUCK),
        ("Content", MIX, "Alert", MIX, MixingBehavior.MAY_DUCK),
        ("Content", MIX, "Communications", MIX, MixingBehavior.MAY_DUCK),
        ("Content", MIX, "Communications", NONMIX, MixingBehavior.MUST_PAUSE),
        ("Content", NONMIX, "Dialog", MIX, MixingBehavior.MUST_PAUSE),
        ("Content", NONMIX, "Alert", MIX, MixingBehavior.MUST_PAUSE),
        ("Content", NONMIX, "Communications", MIX, MixingBehavior.MUST_PAUSE),
        ("Alert", MIX, "Dialog", MIX, MixingBehavior.MAY_DUCK),
        ("Alert", MIX, "Communications", MIX, MixingBehavior.MAY_DUCK),
        ("Communications", MIX, "Dialog", MIX, MixingBehavior.MAY_DUCK),
        ("Alert", NONMIX, "Dialog", MIX, MixingBehavior.MUST_PAUSE),
    ],
)
def test_the_default_mixing_table(
    background: str,
    btype: ContentType,
    incoming: str,
    itype: ContentType,
    expected: MixingBehavior,
) -> None:
    """The SDK's table with ducking support (13.2); without ducking everything pauses."""
    assert mixing_behavior(background, btype, incoming, itype) is expected
    assert mixing_behavior(background, btype, incoming, itype, ducking=False) is (
        MixingBehavior.MUST_PAUSE
    )


async def test_music_ducks_under_speech_and_pauses_under_a_nonmixable_call() -> None:
    """Mixable music ducks under Dialog; a NONMIXABLE call displacing the dialog's priority makes
    it pause (same state, new behavior: told again); releases bring it back to PRIMARY."""
    log: list[tuple[str, str, object]] = []
    changes: list[FocusChange] = []
    focus = FocusManager(listener=changes.append)
    music = Activity("music", focus, log)
    speech = Activity("speech", focus, log)
    call = Activity("call", focus, log)
    await focus.acquire("Content", music, MIX)
    await focus.acquire("Dialog", speech)
    assert log == [
        ("music", "FOREGROUND", "PRIMARY"),
        ("music", "BACKGROUND", "MAY_DUCK"),
        ("speech", "FOREGROUND", "PRIMARY"),
    ]
    await focus.release("Dialog", speech)
    log.clear()
    await focus.acquire("Communications", call, NONMIX)
    assert log == [("music", "BACKGROUND", "MUST_PAUSE"), ("call", "FOREGROUND", "PRIMARY")]
    log.clear()
    await focus.acquire("Communications", call, MIX)  # same holder, new type: re-evaluated
    assert log == [("music", "BACKGROUND", "MAY_DUCK")]
    log.clear()
    await focus.release("Communications", call)
    assert log == [("music", "FOREGROUND", "PRIMARY")]
    assert focus.behavior("Content") is MixingBehavior.PRIMARY
    assert focus.behavior("Dialog") is MixingBehavior.MUST_STOP
    assert focus.foreground() == "Content"
    assert [(c.channel, c.state, c.behavior) for c in changes][-1] == (
        "Content",
        FocusState.FOREGROUND,
        MixingBehavior.PRIMARY,
    )
    assert len(changes) == 10 and all(isinstance(c, FocusChange) for c in changes)


async def test_nonmixable_content_pauses_and_no_ducking_pauses_everything() -> None:
    log: list[tuple[str, str, object]] = []
    focus = FocusManager()
    music, speech = Activity("music", focus, log), Activity("speech", focus, log)
    await focus.acquire("Content", music, NONMIX)
    await focus.acquire("Dialog", speech)
    assert ("music", "BACKGROUND", "MUST_PAUSE") in log
    log.clear()
    plain = FocusManager(ducking=False)
    music2, speech2 = Activity("music", plain, log), Activity("speech", plain, log)
    await plain.acquire("Content", music2, MIX)
    await plain.acquire("Dialog", speech2)
    assert ("music", "BACKGROUND", "MUST_PAUSE") in log


async def test_a_failing_listener_is_logged_and_removed_listeners_are_not_called(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[FocusChange] = []

    def broken(change: FocusChange) -> None:
        raise RuntimeError("boom")

    focus = FocusManager(listener=broken)
    focus.add_listener(seen.append)
    log: list[tuple[str, str, object]] = []
    await focus.acquire("Dialog", Activity("a", focus, log))
    assert "focus listener" in caplog.text and len(seen) == 1
    focus.remove_listener(seen.append)
    focus.remove_listener(seen.append)  # not there: nothing happens
    await focus.acquire("Dialog", Activity("b", focus, log))
    assert len(seen) == 1


async def test_the_client_publishes_focus_changes(
    sim: Simulator, make_client: ClientFactory
) -> None:
    """A Recognize takes the Dialog channel and gives it back once its dialog has been handled
    (the Speak holds it until then): the application sees both."""
    seen: list[FocusChanged] = []
    async with make_client(
        listener=lambda e: seen.append(e) if isinstance(e, FocusChanged) else None
    ) as client:
        await client.wait_connected(20)
        await client.recognize(tone_source(0.5))
        await client.pipeline.wait_idle()
        async with asyncio.timeout(5):
            while client.focus.holder("Dialog") is not None:
                await asyncio.sleep(0.01)
    dialog = [(e.state, e.behavior) for e in seen if e.channel == "Dialog"]
    assert dialog[0] == (FocusState.FOREGROUND, MixingBehavior.PRIMARY)
    assert dialog[-1] == (FocusState.NONE, MixingBehavior.MUST_STOP)


async def test_speech_plays_through_the_mixers_dialog_channel(
    sim: Simulator, make_client: ClientFactory
) -> None:
    """The client builds one mixer around the application's sink; a Speak is mixed on its
    Dialog channel and reaches the sink."""
    sink = NullSink(PLAYBACK_FORMAT)
    async with make_client(sink=sink) as client:
        await client.wait_connected(20)
        channel = client.synthesizer.mp3.sink
        assert isinstance(channel, MixerChannel) and channel.name == "Dialog"
        assert channel.mixer.sink is sink
        await client.recognize(tone_source(0.5))
        await sim.wait_for_event("SpeechSynthesizer", "SpeechFinished")
    assert channel.frames_played > 0
    assert sink.bytes_written == channel.frames_played * PLAYBACK_FORMAT.frame_size


async def test_a_change_overtaken_while_another_observer_was_told_is_not_delivered() -> None:
    """Focus changes overlap when an observer takes time to react: speech takes Dialog while
    music is slow to duck, and speech releases Dialog before its own FOREGROUND was delivered.
    The stale FOREGROUND is never told to speech, nor announced, and music ends FOREGROUND."""

    class Slow(Activity):
        async def focus_changed(self, channel: str, state: FocusState) -> None:
            await asyncio.sleep(0.05)
            await super().focus_changed(channel, state)

    log: list[tuple[str, str, object]] = []
    changes: list[FocusChange] = []
    focus = FocusManager(listener=changes.append)
    music = Slow("music", focus, log)
    speech = Activity("speech", focus, log)
    await focus.acquire("Content", music, MIX)
    log.clear()
    changes.clear()
    taking = asyncio.ensure_future(focus.acquire("Dialog", speech))
    await asyncio.sleep(0.01)  # music is still reacting to BACKGROUND
    await focus.release("Dialog", speech)
    await taking
    assert ("speech", "FOREGROUND", "PRIMARY") not in log
    assert not any(c.observer is speech and c.state is FocusState.FOREGROUND for c in changes)
    assert log[-1][:2] == ("music", "FOREGROUND")
    assert focus.state("Content") is FocusState.FOREGROUND
