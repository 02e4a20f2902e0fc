"""The Speaker interface: volume and mute, set by AVS or locally (avs-protocol 5.5)."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable

from avsclient.agents import payload
from avsclient.agents.base import CapabilityAgent, DirectiveHandler
from avsclient.agents.events import VolumeStateChanged
from avsclient.messages import ContextState, Directive, Event

__all__ = ["DEFAULT_VOLUME", "SpeakerAgent", "VolumeApplier"]

_log = logging.getLogger("avsclient.agents")

#: The volume a new device reports until told otherwise.
DEFAULT_VOLUME = 50

VolumeApplier = Callable[[int, bool], "Awaitable[None] | None"]
"""Applies `(volume, muted)` to the device's output (sync or async)."""


class SpeakerAgent(CapabilityAgent):
    """Keeps the volume (0-100) and mute state, answers SetVolume, AdjustVolume and SetMute
    with VolumeChanged / MuteChanged, and reports `Speaker.VolumeState`.

    Out-of-range or malformed values are reported as UNEXPECTED_INFORMATION_RECEIVED and
    change nothing. Like the SDK, setting or adjusting the volume unmutes.
    """

    namespace = "Speaker"
    version = "1.0"  # avs-protocol 9.8

    def __init__(
        self,
        *,
        volume: int = DEFAULT_VOLUME,
        muted: bool = False,
        apply: VolumeApplier | None = None,
    ) -> None:
        """Create the agent.

        Args:
            volume: the initial volume, 0..100.
            muted: the initial mute state.
            apply: called with `(volume, muted)` after every change.

        Raises:
            ValueError: `volume` is out of range.
        """
        super().__init__()
        if not 0 <= volume <= 100:
            raise ValueError("volume must be within 0..100")
        self.volume = volume
        self.muted = muted
        self._apply = apply

    def handlers(self) -> dict[str, DirectiveHandler]:
        return {
            "SetVolume": self._on_set_volume,
            "AdjustVolume": self._on_adjust_volume,
            "SetMute": self._on_set_mute,
        }

    def context_states(self) -> list[ContextState]:
        return [
            ContextState(
                namespace="Speaker",
                name="VolumeState",
                payload={"volume": self.volume, "muted": self.muted},
            )
        ]

    async def _on_set_volume(self, directive: Directive) -> None:
        volume = payload.integer(directive.payload, "volume", low=0, high=100)
        await self._change(volume, False, "VolumeChanged")

    async def _on_adjust_volume(self, directive: Directive) -> None:
        delta = payload.integer(directive.payload, "volume", low=-100, high=100)
        await self._change(max(0, min(100, self.volume + delta)), False, "VolumeChanged")

    async def _on_set_mute(self, directive: Directive) -> None:
        mute = payload.boolean(directive.payload, "mute")
        await self._change(self.volume, mute, "MuteChanged")

    # -- local changes ---------------------------------------------------------------------

    async def set_volume(self, volume: int) -> None:
        """Set the volume locally (unmutes) and tell AVS with VolumeChanged.

        Raises:
            ValueError: `volume` is outside 0..100.
        """
        if not 0 <= volume <= 100:
            raise ValueError("volume must be within 0..100")
        await self._change(volume, False, "VolumeChanged")

    async def adjust_volume(self, delta: int) -> None:
        """Change the volume by `delta` locally (clamped to 0..100; unmutes).

        Raises:
            ValueError: `delta` is outside -100..100.
        """
        if not -100 <= delta <= 100:
            raise ValueError("delta must be within -100..100")
        await self._change(max(0, min(100, self.volume + delta)), False, "VolumeChanged")

    async def set_mute(self, muted: bool) -> None:
        """Mute or unmute locally and tell AVS with MuteChanged."""
        await self._change(self.volume, muted, "MuteChanged")

    async def _change(self, volume: int, muted: bool, event_name: str) -> None:
        self.volume, self.muted = volume, muted
        if self._apply is not None:
            result = self._apply(volume, muted)
            if inspect.isawaitable(result):
                await result
        _log.debug("volume %d, muted %s", volume, muted)
        self.messenger.notify(VolumeStateChanged(volume=volume, muted=muted))
        await self.messenger.post_event(
            Event.build("Speaker", event_name, {"volume": volume, "muted": muted})
        )
