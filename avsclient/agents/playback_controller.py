"""The PlaybackController interface (avs-protocol 15): buttons and on-screen controls of the
device's music, as events with the full context; AVS answers with AudioPlayer directives on
the same stream (handled like any directive) or with nothing.

It has no directives and no context of its own. Call the method of the button pressed.
"""

from __future__ import annotations

from typing import Any

from avsclient.agents.base import CapabilityAgent
from avsclient.messages import Event

__all__ = ["BUTTONS", "TOGGLES", "PlaybackControllerAgent"]

#: ButtonCommandIssued names (1.1).
BUTTONS = frozenset({"SKIPFORWARD", "SKIPBACKWARD"})
#: ToggleCommandIssued names (1.1); each is SELECTed or DESELECTed.
TOGGLES = frozenset({"SHUFFLE", "LOOP", "REPEAT", "THUMBSUP", "THUMBSDOWN"})


class PlaybackControllerAgent(CapabilityAgent):
    """Sends PlayCommandIssued, PauseCommandIssued, NextCommandIssued, PreviousCommandIssued and
    the 1.1 ButtonCommandIssued / ToggleCommandIssued."""

    namespace = "PlaybackController"
    version = "1.1"

    async def play(self) -> None:
        """The play (resume) button was pressed."""
        await self._issue("PlayCommandIssued")

    async def pause(self) -> None:
        """The pause button was pressed."""
        await self._issue("PauseCommandIssued")

    async def next(self) -> None:
        """The next button was pressed."""
        await self._issue("NextCommandIssued")

    async def previous(self) -> None:
        """The previous button was pressed."""
        await self._issue("PreviousCommandIssued")

    async def button(self, name: str) -> None:
        """A skip button was pressed (`SKIPFORWARD` or `SKIPBACKWARD`).

        Raises:
            ValueError: `name` is not a known button.
        """
        if name not in BUTTONS:
            raise ValueError(f"unknown button {name!r}; known: {sorted(BUTTONS)}")
        await self._issue("ButtonCommandIssued", {"name": name})

    async def toggle(self, name: str, selected: bool) -> None:
        """A toggle (`SHUFFLE`, `LOOP`, `REPEAT`, `THUMBSUP`, `THUMBSDOWN`) was (de)selected.

        Raises:
            ValueError: `name` is not a known toggle.
        """
        if name not in TOGGLES:
            raise ValueError(f"unknown toggle {name!r}; known: {sorted(TOGGLES)}")
        action = "SELECT" if selected else "DESELECT"
        await self._issue("ToggleCommandIssued", {"name": name, "action": action})

    async def _issue(self, name: str, payload: dict[str, Any] | None = None) -> None:
        # Full context, no dialogRequestId (avs-protocol 15); posted in order with the rest.
        await self.messenger.post_event(
            Event.build(self.namespace, name, payload or {}), context=True
        )
