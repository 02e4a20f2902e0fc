"""Audio focus: which activity owns each output channel, so agents coordinate without holding
each other (avs-protocol 13.1).

An agent acquires a channel when it starts an activity and releases it when done. The
rule that barge-in needs is the one of 13.1: a new activity on a channel sends the old one to
`FocusState.NONE`, and it stops. SpeechSynthesizer acquires the Dialog channel for a Speak;
SpeechRecognizer acquires it for a Recognize, which interrupts the speech. Among acquired
channels the highest priority one is FOREGROUND and the others BACKGROUND; a release promotes
the next. Ducking and pausing by content type (13.2) are left to the activities for now.
"""

from __future__ import annotations

import enum
import logging
from typing import Protocol

__all__ = [
    "CHANNEL_PRIORITIES",
    "FocusManager",
    "FocusObserver",
    "FocusState",
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


class FocusObserver(Protocol):
    """An activity on a channel (an agent), told when its focus changes."""

    async def focus_changed(self, channel: str, state: FocusState) -> None:
        """React to the new focus state of `channel` (NONE: stop at once)."""
        ...


# Theory of operation: `_holders` maps each acquired channel to its one activity. After every
# change the states are recomputed from the priorities and each activity whose state changed is
# told, one at a time: the one that lost its channel first, then those sent to the background,
# then the new foreground one. An acquire returns only after the activity it displaced has
# stopped (barge-in: the speech has ended before the Recognize goes out).
class FocusManager:
    """Owns the output channels; shared by the agents, owned by the client."""

    def __init__(self, priorities: dict[str, int] | None = None) -> None:
        """Create a focus manager with no channel acquired.

        Args:
            priorities: channel name -> priority, lower first (default: `CHANNEL_PRIORITIES`).
        """
        self.priorities = dict(CHANNEL_PRIORITIES if priorities is None else priorities)
        self._holders: dict[str, FocusObserver] = {}
        self._states: dict[str, FocusState] = {}

    def holder(self, channel: str) -> FocusObserver | None:
        """The activity holding `channel`, or None."""
        return self._holders.get(channel)

    def state(self, channel: str) -> FocusState:
        """The focus state of `channel` (NONE when nobody holds it)."""
        return self._states.get(channel, FocusState.NONE)

    async def acquire(self, channel: str, observer: FocusObserver) -> None:
        """Give `channel` to `observer`; the activity that held it is stopped first.

        Raises:
            ValueError: `channel` is not a known channel.
        """
        if channel not in self.priorities:
            raise ValueError(f"unknown channel {channel!r}; known: {sorted(self.priorities)}")
        previous = self._holders.get(channel)
        if previous is observer:
            return
        self._holders[channel] = observer
        self._states.pop(channel, None)
        if previous is not None:
            await self._tell(previous, channel, FocusState.NONE)
        await self._update()

    async def release(self, channel: str, observer: FocusObserver) -> None:
        """`observer` is done with `channel` (nothing happens if it no longer holds it)."""
        if self._holders.get(channel) is not observer:
            return
        del self._holders[channel]
        self._states.pop(channel, None)
        await self._update()

    async def _update(self) -> None:
        foreground = min(self._holders, key=self.priorities.__getitem__, default=None)
        changes = []
        for channel, observer in self._holders.items():
            state = FocusState.FOREGROUND if channel == foreground else FocusState.BACKGROUND
            if self._states.get(channel) is not state:
                self._states[channel] = state
                changes.append((observer, channel, state))
        # The activity going to the background ducks or pauses before the new one starts.
        changes.sort(key=lambda change: change[2] is FocusState.FOREGROUND)
        for observer, channel, state in changes:
            await self._tell(observer, channel, state)

    @staticmethod
    async def _tell(observer: FocusObserver, channel: str, state: FocusState) -> None:
        try:
            await observer.focus_changed(channel, state)
        except Exception:
            _log.exception("%r failed on focus %s of %s", observer, state.name, channel)
