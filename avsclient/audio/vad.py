"""End of speech by voice activity detection, behind one `Endpointer` interface.

`EndpointDetector` (energy against a tracked noise floor) and `WebRtcVadEndpointer` (the
WebRTC VAD's speech/non-speech decision per 10 ms) share the state machine, timings and
events of `EndpointingConfig`; only the per-frame "is this voice" decision differs. The
WebRTC VAD holds up in steady noise, where an energy threshold learns the noise as floor but
is slow to end when the noise level moves; it needs the extra `avsclient[vad]`.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from ._engines import import_engine
from .endpointing import (
    EndpointDetector,
    EndpointEvent,
    EndpointingConfig,
    EndpointState,
    frame_energy_dbfs,
)
from .format import AVS_FORMAT, AudioFormat

__all__ = ["Endpointer", "WebRtcVadEndpointer", "create_endpointer"]


@runtime_checkable
class Endpointer(Protocol):
    """Feeds of PCM frames in, `VoiceStarted` / `VoiceEnded` events out (no I/O)."""

    @property
    def state(self) -> EndpointState:
        """WAITING, SPEAKING or ENDED (terminal)."""

    @property
    def elapsed_ms(self) -> int:
        """Milliseconds of audio fed so far."""

    def feed(self, frame: bytes | bytearray | memoryview) -> EndpointEvent | None:
        """Analyse the next frame; return an event when it changes the state."""


class WebRtcVadEndpointer(EndpointDetector):
    """The endpointer with the WebRTC VAD deciding which frames are voice.

    Frames must last 10, 20 or 30 ms. A frame is voice when the VAD says so and its level
    exceeds `config.min_threshold_dbfs` (so that digital silence never counts).
    """

    def __init__(
        self,
        config: EndpointingConfig | None = None,
        fmt: AudioFormat = AVS_FORMAT,
        *,
        mode: int = 3,
    ) -> None:
        """Create an endpointer.

        Args:
            config: timings (the energy thresholds other than `min_threshold_dbfs` are unused).
            fmt: signed 16-bit mono at 8, 16, 32 or 48 kHz.
            mode: VAD aggressiveness 0..3; 3 (the default) rejects noise most, and is the only
                mode that ended speech reliably in pink noise.

        Raises:
            AudioError: webrtcvad is not installed (extra `vad`).
            ValueError: bad format or mode.
        """
        super().__init__(config, fmt)
        if fmt.rate not in (8000, 16000, 32000, 48000):
            raise ValueError(f"the WebRTC VAD needs 8, 16, 32 or 48 kHz, not {fmt.rate}")
        if mode not in (0, 1, 2, 3):
            raise ValueError("mode must be 0, 1, 2 or 3")
        webrtcvad = import_engine("webrtcvad", "vad")
        self._vad: Any = webrtcvad.Vad(mode)
        self.mode = mode
        self._valid = {fmt.rate * ms // 1000 * 2 for ms in (10, 20, 30)}

    def feed(self, frame: bytes | bytearray | memoryview) -> EndpointEvent | None:
        if self.state is EndpointState.ENDED:
            raise RuntimeError("the endpoint detector has ended; create a new one")
        if len(frame) not in self._valid:
            raise ValueError(f"the WebRTC VAD needs 10, 20 or 30 ms frames, not {len(frame)} bytes")
        start = self._ms
        duration = 1000.0 * (len(frame) // 2) / self.format.rate
        self._ms += duration
        level = frame_energy_dbfs(frame)
        voiced = level > self.config.min_threshold_dbfs and bool(
            self._vad.is_speech(bytes(frame), self.format.rate)
        )
        if self.state is EndpointState.WAITING:
            return self._waiting(start, duration, voiced)
        return self._speaking(start, duration, voiced)


def create_endpointer(
    kind: str = "energy", config: EndpointingConfig | None = None, fmt: AudioFormat = AVS_FORMAT
) -> Endpointer:
    """Create an endpointer by name: "energy" (`EndpointDetector`) or "webrtc"."""
    if kind == "energy":
        return EndpointDetector(config, fmt)
    if kind == "webrtc":
        return WebRtcVadEndpointer(config, fmt)
    raise ValueError(f"unknown endpointer {kind!r} (known: energy, webrtc)")
