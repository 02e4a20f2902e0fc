"""Settings of the local AVS simulator, in one frozen dataclass checked when it is built."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SimulatorConfig"]

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatorConfig:
    """Limits and HTTP/2 settings of a `Simulator`.

    Attributes:
        max_concurrent_streams: SETTINGS_MAX_CONCURRENT_STREAMS; AVS allows 10
            (avs-protocol.md 1.3: 1 downchannel + 1 ping + 8 events).
        initial_window_size: the per-stream receive window advertised. The 64 KiB default of
            RFC 9113 stalls uploads on every round trip, so it is large.
        connection_window_size: the connection receive window.
        max_frame_size: SETTINGS_MAX_FRAME_SIZE we accept (larger frames: fewer per MiB).
        max_metadata_bytes: the largest JSON part accepted in an upload.
        max_audio_bytes: the largest audio part accepted (a 32 MiB benchmark upload fits).
        keep_audio: keep uploaded audio in `ReceivedEvent.audio` (else only count it).
        max_form_bytes: the largest Login with Amazon form body accepted.
        downchannel_queue: directives waiting per downchannel before `push_directive` waits.
        write_buffer_high: bytes the socket may buffer before senders wait for it to drain.
    """

    max_concurrent_streams: int = 10
    initial_window_size: int = 16 * MiB
    connection_window_size: int = 32 * MiB
    max_frame_size: int = 64 * KiB
    max_metadata_bytes: int = 1 * MiB
    max_audio_bytes: int = 64 * MiB
    keep_audio: bool = True
    max_form_bytes: int = 64 * KiB
    downchannel_queue: int = 16
    write_buffer_high: int = 1 * MiB

    def __post_init__(self) -> None:
        if self.max_concurrent_streams < 1:
            raise ValueError("max_concurrent_streams must be >= 1")
        if not 65_535 <= self.initial_window_size <= 2**31 - 1:
            raise ValueError("initial_window_size must be in 65535 .. 2**31-1 (RFC 9113 6.5.2)")
        if not 65_535 <= self.connection_window_size <= 2**31 - 1:
            raise ValueError("connection_window_size must be in 65535 .. 2**31-1")
        if not 16_384 <= self.max_frame_size <= 2**24 - 1:
            raise ValueError("max_frame_size must be in 16384 .. 2**24-1 (RFC 9113 6.5.2)")
        for name in ("max_metadata_bytes", "max_audio_bytes", "max_form_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.downchannel_queue < 1 or self.write_buffer_high < 1:
            raise ValueError("downchannel_queue and write_buffer_high must be >= 1")
