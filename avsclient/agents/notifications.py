"""Notifications 1.0: the indicators of notifications waiting for the user (avs-protocol 17).

- `SetIndicator {"persistVisualIndicator", "playAudioIndicator", "asset": {"assetId", "url"}}`:
  the state is stored first (IndicatorState survives a restart), then the audio indicator is
  played on the Alert focus channel: the asset fetched with httpx from its https URL
  (bounded in size, checked to be audio) or, when it cannot be fetched, a built-in chime. The
  same assetId as the one in force is not replayed.
- `ClearIndicator`: audio stops at once, the visual indicator goes.
- The visual indicator is observable: `visual_indicator`, and `IndicatorChanged` events.
- Context `Notifications.IndicatorState {"isEnabled", "isVisualIndicatorPersisted"}`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import TYPE_CHECKING, Any

import httpx

from avsclient._httpx import map_httpx_errors, refuse_cleartext
from avsclient.agents import payload
from avsclient.agents.base import AgentServices, CapabilityAgent, DirectiveHandler, stop_sound
from avsclient.agents.events import IndicatorChanged
from avsclient.audio import AudioFormat, Mp3Sink
from avsclient.audio.alert_tones import alert_tone
from avsclient.exceptions import AudioError, DirectiveError, TransportError
from avsclient.messages import ContextState, Directive

if TYPE_CHECKING:
    from avsclient.audio import AudioSink
    from avsclient.focus import FocusState

__all__ = ["MAX_ASSET_BYTES", "NotificationsAgent", "chime"]

_log = logging.getLogger("avsclient.agents")

#: The largest indicator asset fetched: a notification sound is a few kilobytes of MP3.
MAX_ASSET_BYTES = 512 * 1024
#: Seconds to fetch an asset (the URL is valid for 60 min; the sound should play now).
ASSET_TIMEOUT = 10.0
_NAMESPACE = "Notifications"
_AUDIO_TYPES = ("audio/",)


def chime(rate: int = 16_000, channels: int = 1) -> bytes:
    """The built-in notification chime (`alert_tone("NOTIFICATION")`), 16-bit PCM at `rate`;
    the agent plays it in its output's own format."""
    return alert_tone("NOTIFICATION", AudioFormat(rate=rate, channels=channels))


class NotificationsAgent(CapabilityAgent):
    """SetIndicator / ClearIndicator with a persisted IndicatorState."""

    namespace = _NAMESPACE
    version = "1.0"  # avs-protocol 9.8
    #: The focus channel of notification sounds (avs-protocol 13.1, 17).
    channel = "Alert"

    def __init__(
        self,
        output: AudioSink,
        *,
        verify: ssl.SSLContext | bool = True,
        max_asset_bytes: int = MAX_ASSET_BYTES,
    ) -> None:
        """Create the agent.

        Args:
            output: where indicator sounds play (the mixer's Alert channel).
            verify: certificate verification for asset downloads (an SSLContext to trust a
                private CA, e.g. a test server's).
            max_asset_bytes: the largest asset accepted.
        """
        super().__init__()
        self.output = output
        self.mp3 = Mp3Sink(output)
        self._verify = verify
        self.max_asset_bytes = max_asset_bytes
        #: An indicator is set and not cleared (IndicatorState.isEnabled).
        self.enabled = False
        #: The visual indicator is on (IndicatorState.isVisualIndicatorPersisted).
        self.visual_indicator = False
        #: The assetId of the indicator in force, or None.
        self.asset_id: str | None = None
        #: How many times an audio indicator played (asset or chime).
        self.played = 0
        self._playing: asyncio.Task[None] | None = None

    def attach(self, services: AgentServices) -> None:
        super().attach(services)
        stored = services.store.get(_NAMESPACE, "indicator") if services.store else None
        if isinstance(stored, dict):
            self.enabled = stored.get("isEnabled") is True
            self.visual_indicator = stored.get("isVisualIndicatorPersisted") is True
            asset = stored.get("assetId")
            self.asset_id = asset if isinstance(asset, str) else None

    def handlers(self) -> dict[str, DirectiveHandler]:
        return {"SetIndicator": self._on_set_indicator, "ClearIndicator": self._on_clear}

    def context_states(self) -> list[ContextState]:
        return [
            ContextState(
                namespace=_NAMESPACE,
                name="IndicatorState",
                payload={
                    "isEnabled": self.enabled,
                    "isVisualIndicatorPersisted": self.visual_indicator,
                },
            )
        ]

    def start(self) -> None:
        """Show the visual indicator kept from before a restart."""
        if self.enabled or self.visual_indicator:
            self._notify()

    async def _on_set_indicator(self, directive: Directive) -> None:
        data = directive.payload
        persist = payload.boolean(data, "persistVisualIndicator")
        play = payload.boolean(data, "playAudioIndicator")
        asset_id: str | None = None
        url: str | None = None
        if play:
            asset = payload.obj(data, "asset")
            asset_id = payload.text(asset, "assetId", max_length=1024, where="asset")
            url = payload.text(asset, "url", max_length=4096, where="asset")
            if not url.lower().startswith("https://"):
                raise DirectiveError(f"asset.url must be an https URL, not {url[:100]!r}")
        replay = play and asset_id != self.asset_id
        sound: bytes | None = None
        if replay and url is not None:
            sound = await self._fetch(url)  # a bad asset raises here: nothing changes
        self._save(enabled=True, visual=persist, asset_id=asset_id if play else self.asset_id)
        if replay:
            self._play(sound)

    async def _fetch(self, url: str) -> bytes | None:
        """The asset's MP3 bytes; None when it cannot be fetched (offline: the chime plays).

        Raises:
            DirectiveError: the server sent something that is not audio, or too much of it.
        """
        try:
            with map_httpx_errors("the notification asset server"):
                async with (
                    httpx.AsyncClient(
                        timeout=ASSET_TIMEOUT,
                        verify=self._verify,
                        follow_redirects=True,
                        max_redirects=5,
                        event_hooks={"request": [refuse_cleartext]},
                    ) as http,
                    http.stream("GET", url) as response,
                ):
                    if response.status_code != 200:
                        _log.warning("indicator asset: HTTP %d", response.status_code)
                        return None
                    kind = response.headers.get("content-type", "").lower()
                    if not kind.startswith(_AUDIO_TYPES):
                        raise DirectiveError(
                            f"the indicator asset is {kind or 'untyped'}, not audio"
                        )
                    declared = response.headers.get("content-length")
                    if (
                        declared is not None
                        and declared.isdigit()
                        and int(declared) > self.max_asset_bytes
                    ):
                        raise DirectiveError(
                            f"the indicator asset is larger than {self.max_asset_bytes} bytes"
                        )
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > self.max_asset_bytes:
                            raise DirectiveError(
                                f"the indicator asset is larger than {self.max_asset_bytes} bytes"
                            )
                    return bytes(body)
        except TransportError as exc:
            _log.warning("indicator asset unavailable (%s): the built-in chime plays", exc)
            return None

    def _play(self, sound: bytes | None) -> None:
        previous = self._playing
        self._playing = asyncio.create_task(self._render(previous, sound), name="indicator")

    async def _render(self, previous: asyncio.Task[None] | None, sound: bytes | None) -> None:
        if previous is not None:  # a different asset plays after the current one ends
            try:
                await asyncio.wait([previous])  # its outcome is its own (logged there)
            except asyncio.CancelledError:  # ClearIndicator or close: the queue goes too
                previous.cancel()
                raise
        focus = self.services.focus
        await focus.acquire(self.channel, self)
        try:
            if sound is not None:
                await self.mp3.write(sound)
                await self.mp3.drain()
            else:
                await self.output.write(alert_tone("NOTIFICATION", self.output.format))
                await self.output.drain()
            self.played += 1
        except AudioError as exc:
            _log.warning("the indicator could not be played (%s): the chime instead", exc)
            await self.output.write(alert_tone("NOTIFICATION", self.output.format))
            self.played += 1
        finally:
            await focus.release(self.channel, self)

    async def focus_changed(self, channel: str, state: FocusState) -> None:
        """Nothing to do: notification sounds are short and play on through other output."""

    async def _on_clear(self, directive: Directive) -> None:
        task, self._playing = self._playing, None
        await stop_sound(task, self.mp3.stop)
        self._save(enabled=False, visual=False, asset_id=None)

    def _save(self, *, enabled: bool, visual: bool, asset_id: str | None) -> None:
        store = self.services.store
        state: dict[str, Any] = {
            "isEnabled": enabled,
            "isVisualIndicatorPersisted": visual,
            "assetId": asset_id,
        }
        if store is not None:
            store.set(_NAMESPACE, "indicator", state)  # written before it is acted on
        self.enabled, self.visual_indicator, self.asset_id = enabled, visual, asset_id
        self._notify()

    def _notify(self) -> None:
        self.messenger.notify(IndicatorChanged(enabled=self.enabled, visual=self.visual_indicator))

    def forget_account(self) -> None:
        self.enabled = self.visual_indicator = False
        self.asset_id = None

    async def aclose(self) -> None:
        """Stop a sound still playing."""
        task, self._playing = self._playing, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
