"""Audio focus: which activity owns each output channel, so agents coordinate without holding
each other (avs-protocol 13).

An agent acquires a channel when it starts an activity and releases it when done. A new
activity on a channel sends the old one to `FocusState.NONE`, and it stops (barge-in:
SpeechRecognizer's Recognize displaces SpeechSynthesizer's Speak on the Dialog channel). Among
acquired channels the highest priority one is FOREGROUND and the others BACKGROUND; a release
promotes the next (13.1).

Each state comes with a `MixingBehavior` (13.2): PRIMARY in the foreground, MUST_STOP for NONE,
and for the background one looked up in `mixing_behavior` from the background activity's
channel and `ContentType` and the foreground's. An activity reads it with `behavior()` when
told of a change; it is told again when only the behavior changes (a call displacing a dialog
over ducked music makes it pause). Applications observe every change with `add_listener`.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "CHANNEL_PRIORITIES",
    "ContentType",
    "FocusChange",
    "FocusListener",
    "FocusManager",
    "FocusObserver",
    "FocusState",
    "MixingBehavior",
    "mixing_behavior",
]

_log = logging.getLogger("avsclient.focus")

#: Channels and their priorities, lower = higher (avs-protocol 13.1, the SDK's defaults).
CHANNEL_PRIORITIES: dict[str, int] = {
    "Dialog": 100,
    "Communications": 150,
    "Alert": 200,
    "Content": 300,
}


class FocusState(enum.Enum):
    """What an activity may do with its channel."""

    #: The highest priority acquired channel: play normally.
    FOREGROUND = "FOREGROUND"
    #: Acquired, but a higher priority channel is active: duck or pause.
    BACKGROUND = "BACKGROUND"
    #: Lost: stop.
    NONE = "NONE"


class ContentType(enum.Enum):
    """Whether an activity's sound may be mixed under another (avs-protocol 13.2)."""

    #: May keep playing, ducked (music with interruptedBehavior ATTENUATE).
    MIXABLE = "MIXABLE"
    #: Must pause when in the background (music by default, a call that wants silence).
    NONMIXABLE = "NONMIXABLE"


class MixingBehavior(enum.Enum):
    """How an activity plays in its current focus state (avs-protocol 13.2)."""

    #: Foreground: play normally.
    PRIMARY = "PRIMARY"
    #: Background: keep playing at a lowered volume.
    MAY_DUCK = "MAY_DUCK"
    #: Background: pause until the foreground again.
    MUST_PAUSE = "MUST_PAUSE"
    #: Focus lost: stop.
    MUST_STOP = "MUST_STOP"
    #: No rule applies.
    UNDEFINED = "UNDEFINED"


# The SDK's default table with ducking support (13.2): (background channel, its content type)
# x incoming foreground channel -> behavior, for MIXABLE foreground content. A NONMIXABLE call
# pauses mixable content; a NONMIXABLE background always pauses; anything else pauses.
_DUCKING: dict[tuple[str, str], MixingBehavior] = {
    ("Content", "Dialog"): MixingBehavior.MAY_DUCK,
    ("Content", "Alert"): MixingBehavior.MAY_DUCK,
    ("Content", "Communications"): MixingBehavior.MAY_DUCK,
    ("Alert", "Dialog"): MixingBehavior.MAY_DUCK,
    ("Alert", "Communications"): MixingBehavior.MAY_DUCK,
    ("Communications", "Dialog"): MixingBehavior.MAY_DUCK,
}


def mixing_behavior(
    background: str,
    background_type: ContentType,
    foreground: str,
    foreground_type: ContentType,
    *,
    ducking: bool = True,
) -> MixingBehavior:
    """The behavior of a BACKGROUND activity under a foreground one (avs-protocol 13.2).

    Args:
        background: the background activity's channel.
        background_type: its content type.
        foreground: the foreground (incoming) activity's channel.
        foreground_type: its content type.
        ducking: whether the device can duck; without, everything pauses.
    """
    if not ducking or background_type is ContentType.NONMIXABLE:
        return MixingBehavior.MUST_PAUSE
    if foreground == "Communications" and foreground_type is ContentType.NONMIXABLE:
        return MixingBehavior.MUST_PAUSE
    return _DUCKING.get((background, foreground), MixingBehavior.MUST_PAUSE)


class FocusObserver(Protocol):
    """An activity on a channel (an agent), told when its focus changes."""

    async def focus_changed(self, channel: str, state: FocusState) -> None:
        """React to the new focus state of `channel` (NONE: stop at once).

        In the background, `FocusManager.behavior(channel)` says whether to duck or pause.
        """
        ...


@dataclass(frozen=True, slots=True)
class FocusChange:
    """A channel's focus changed (what `FocusManager` listeners receive)."""

    channel: str
    state: FocusState
    behavior: MixingBehavior
    #: The activity concerned (for NONE: the one that lost or released the channel).
    observer: FocusObserver


FocusListener = Callable[[FocusChange], None]
"""Called with every `FocusChange`, in the event loop; it must not block."""


# Theory of operation: `_holders` maps each acquired channel to its one activity and content
# type. After every change the states and behaviors are recomputed from the priorities and the
# table, and each activity whose (state, behavior) changed is told, one at a time: the one that
# lost its channel first, then those sent to the background, then the new foreground one. An
# acquire returns only after the activity it displaced has stopped (barge-in: the speech has
# ended before the Recognize goes out) and the background ones have ducked or paused.
class FocusManager:
    """Owns the output channels; shared by the agents, owned by the client."""

    def __init__(
        self,
        priorities: dict[str, int] | None = None,
        *,
        ducking: bool = True,
        listener: FocusListener | None = None,
    ) -> None:
        """Create a focus manager with no channel acquired.

        Args:
            priorities: channel name -> priority, lower first (default: `CHANNEL_PRIORITIES`).
            ducking: whether output can be ducked (without, background activities pause).
            listener: a first callback for every change (see `add_listener`).
        """
        self.priorities = dict(CHANNEL_PRIORITIES if priorities is None else priorities)
        self.ducking = ducking
        self._holders: dict[str, tuple[FocusObserver, ContentType]] = {}
        self._states: dict[str, tuple[FocusState, MixingBehavior]] = {}
        self._listeners: list[FocusListener] = [] if listener is None else [listener]

    def add_listener(self, listener: FocusListener) -> None:
        """Call `listener` with every `FocusChange` from now on."""
        self._listeners.append(listener)

    def remove_listener(self, listener: FocusListener) -> None:
        """Stop calling `listener` (nothing happens if it was not added)."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def holder(self, channel: str) -> FocusObserver | None:
        """The activity holding `channel`, or None."""
        held = self._holders.get(channel)
        return None if held is None else held[0]

    def state(self, channel: str) -> FocusState:
        """The focus state of `channel` (NONE when nobody holds it)."""
        return self._states.get(channel, (FocusState.NONE, MixingBehavior.MUST_STOP))[0]

    def behavior(self, channel: str) -> MixingBehavior:
        """How the activity on `channel` must play now (MUST_STOP when nobody holds it)."""
        return self._states.get(channel, (FocusState.NONE, MixingBehavior.MUST_STOP))[1]

    def foreground(self) -> str | None:
        """The FOREGROUND channel, or None when no channel is acquired."""
        return min(self._holders, key=self.priorities.__getitem__, default=None)

    async def acquire(
        self,
        channel: str,
        observer: FocusObserver,
        content_type: ContentType = ContentType.MIXABLE,
    ) -> None:
        """Give `channel` to `observer`; the activity that held it is stopped first.

        Args:
            channel: the channel to take.
            observer: the activity, told of its focus changes.
            content_type: whether its sound may be ducked under another (13.2); acquiring again
                with another type updates it.

        Raises:
            ValueError: `channel` is not a known channel.
        """
        if channel not in self.priorities:
            raise ValueError(f"unknown channel {channel!r}; known: {sorted(self.priorities)}")
        previous = self._holders.get(channel)
        self._holders[channel] = (observer, content_type)
        if previous is not None and previous[0] is observer:
            if previous[1] is not content_type:
                await self._update()
            return
        self._states.pop(channel, None)
        if previous is not None:
            await self._tell(previous[0], channel, FocusState.NONE, MixingBehavior.MUST_STOP)
        await self._update()

    async def release(self, channel: str, observer: FocusObserver) -> None:
        """`observer` is done with `channel` (nothing happens if it no longer holds it)."""
        if self.holder(channel) is not observer:
            return
        del self._holders[channel]
        self._states.pop(channel, None)
        self._announce(FocusChange(channel, FocusState.NONE, MixingBehavior.MUST_STOP, observer))
        await self._update()

    async def _update(self) -> None:
        foreground = self.foreground()
        changes = []
        for channel, (observer, content_type) in self._holders.items():
            if channel == foreground:
                state, behavior = FocusState.FOREGROUND, MixingBehavior.PRIMARY
            else:
                assert foreground is not None
                state = FocusState.BACKGROUND
                behavior = mixing_behavior(
                    channel,
                    content_type,
                    foreground,
                    self._holders[foreground][1],
                    ducking=self.ducking,
                )
            if self._states.get(channel) != (state, behavior):
                self._states[channel] = (state, behavior)
                changes.append((observer, channel, state, behavior))
        # The activity going to the background ducks or pauses before the new one starts.
        changes.sort(key=lambda change: change[2] is FocusState.FOREGROUND)
        for observer, channel, state, behavior in changes:
            # While an earlier observer reacted, a later acquire or release may have changed
            # this channel again: a change it overtook is not delivered (the later one is).
            holder = self._holders.get(channel)
            if holder is None or holder[0] is not observer:
                continue
            if self._states.get(channel) != (state, behavior):
                continue
            await self._tell(observer, channel, state, behavior)

    async def _tell(
        self, observer: FocusObserver, channel: str, state: FocusState, behavior: MixingBehavior
    ) -> None:
        try:
            await observer.focus_changed(channel, state)
        except Exception:
            _log.exception("%r failed on focus %s of %s", observer, state.name, channel)
        self._announce(FocusChange(channel, state, behavior, observer))

    def _announce(self, change: FocusChange) -> None:
        for listener in list(self._listeners):
            try:
                listener(change)
            except Exception:
                _log.exception("focus listener %r failed", listener)
