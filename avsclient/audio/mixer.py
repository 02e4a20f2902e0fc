"""One output mixer: every sound (speech, alerts, music) goes through it into the one
application `AudioSink`.

Each focus channel (Dialog, Alert, Content, ...) has a lane: `Mixer.channel(name)` returns an
`AudioSink` that producers write to as to any sink, in any format (converted to the device's
format). Lanes have a gain, can be ducked or paused, and every gain change is a linear ramp
(`ramp_ms`) so nothing clicks; a pause fades out before the lane stops being consumed and a
resume fades in. Buffers are bounded: a lane accepts at most `buffer_ms` ahead of the mix and
its writer waits beyond it.

`MixerCore` is the sans-IO part (queues, gains, ramps, sums); `Mixer` is its asyncio shell, which
runs while any lane has audio and writes blocks of `block_ms` to the sink, whose own pacing (a
device) or none (a WAV file, which then records exactly what a listener would have heard)
drives the mix.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from avsclient.exceptions import AudioError

from .convert import PcmConverter, decode_samples, encode_samples
from .format import AudioFormat
from .sinks import AudioSink

__all__ = [
    "DEFAULT_DUCK_GAIN",
    "DEFAULT_MIXER_BUFFER_MS",
    "DEFAULT_RAMP_MS",
    "Mixer",
    "MixerChannel",
    "MixerCore",
]

_log = logging.getLogger("avsclient.audio")

FloatArray = npt.NDArray[np.float32]

#: Gain of a ducked lane (about -14 dB): speech stays intelligible over music.
DEFAULT_DUCK_GAIN = 0.2
#: Length of every gain change (duck, unduck, pause, resume, set_gain).
DEFAULT_RAMP_MS = 20
#: Audio a lane accepts ahead of the mix before its writer waits.
DEFAULT_MIXER_BUFFER_MS = 500
#: Length of one block written to the sink.
DEFAULT_BLOCK_MS = 20


@dataclass(slots=True)
class _Lane:
    chunks: collections.deque[FloatArray] = field(default_factory=collections.deque)
    buffered: int = 0  # frames queued
    gain: float = 1.0  # the gain applied now (moves towards target)
    volume: float = 1.0  # set_gain
    duck: float = 1.0  # ducking factor
    pausing: bool = False  # fading out towards a pause
    paused: bool = False  # not consumed
    consumed: int = 0  # frames taken from the queue into the mix (played)

    @property
    def target(self) -> float:
        return 0.0 if self.pausing or self.paused else self.volume * self.duck

    @property
    def ready(self) -> bool:
        return self.buffered > 0 and not self.paused


class MixerCore:
    """Lanes of float PCM in the output format, summed with ramped gains (no I/O)."""

    def __init__(self, fmt: AudioFormat, *, ramp_ms: int = DEFAULT_RAMP_MS) -> None:
        """Create a mixer core producing `fmt`.

        Args:
            fmt: the output format (rate and channels of the device).
            ramp_ms: duration of a full-scale gain change.
        """
        self.format = fmt
        self._slope = 1.0 / max(1, fmt.rate * ramp_ms // 1000)
        self._lanes: dict[str, _Lane] = {}

    def _lane(self, name: str) -> _Lane:
        lane = self._lanes.get(name)
        if lane is None:
            lane = self._lanes[name] = _Lane()
        return lane

    def push(self, name: str, samples: FloatArray) -> None:
        """Queue float samples shaped (frames, channels) on lane `name`."""
        if samples.ndim != 2 or samples.shape[1] != self.format.channels:
            raise ValueError(f"samples shaped {samples.shape} do not fit {self.format}")
        if len(samples):
            lane = self._lane(name)
            lane.chunks.append(samples)
            lane.buffered += len(samples)

    def buffered(self, name: str) -> int:
        """Frames queued on lane `name`."""
        lane = self._lanes.get(name)
        return 0 if lane is None else lane.buffered

    def consumed(self, name: str) -> int:
        """Frames of lane `name` mixed so far (what has been played of it)."""
        lane = self._lanes.get(name)
        return 0 if lane is None else lane.consumed

    def gain(self, name: str) -> float:
        """The gain lane `name` has now (during a ramp: where the ramp is)."""
        return self._lane(name).gain

    def clear(self, name: str) -> int:
        """Drop what lane `name` has queued; returns the frames dropped."""
        lane = self._lane(name)
        dropped = lane.buffered
        lane.chunks.clear()
        lane.buffered = 0
        return dropped

    def set_gain(self, name: str, gain: float, *, ramp: bool = True) -> None:
        """Set the lane's own gain (0.0 .. 1.0 and above for boost), ramped; `ramp=False`
        applies it at once, for a lane about to start a sound (nothing to click)."""
        lane = self._lane(name)
        lane.volume = max(0.0, gain)
        if not ramp:
            lane.gain = lane.target

    def volume(self, name: str) -> float:
        """The lane's own gain as last set (1.0 unless set), not ducked or paused."""
        lane = self._lanes.get(name)
        return 1.0 if lane is None else lane.volume

    def set_duck(self, name: str, ducked: bool, level: float = DEFAULT_DUCK_GAIN) -> None:
        """Duck the lane to `level` of its gain, or restore it; ramped."""
        self._lane(name).duck = level if ducked else 1.0

    def pause(self, name: str) -> None:
        """Fade the lane out, then stop consuming it (its queue is kept)."""
        lane = self._lane(name)
        if not lane.paused:
            lane.pausing = True
            if lane.buffered == 0 or lane.gain == 0.0:
                lane.pausing, lane.paused, lane.gain = False, True, 0.0

    def resume(self, name: str) -> None:
        """Consume the lane again, fading in."""
        lane = self._lane(name)
        lane.pausing = lane.paused = False

    def paused(self, name: str) -> bool:
        """True while the lane is paused or fading out towards a pause."""
        lane = self._lane(name)
        return lane.paused or lane.pausing

    def ready(self) -> int:
        """Frames the next `mix` can produce without padding (the fullest ready lane)."""
        return max((lane.buffered for lane in self._lanes.values() if lane.ready), default=0)

    def mix(self, frames: int) -> FloatArray:
        """Sum up to `frames` frames of every ready lane (a short lane is padded with silence)."""
        out = np.zeros((frames, self.format.channels), dtype=np.float32)
        for lane in self._lanes.values():
            if not lane.ready:
                continue
            take = min(frames, lane.buffered)
            block = self._take(lane, take)
            gains = self._ramp(lane, take)
            if gains is None:
                if lane.gain != 1.0:
                    block *= np.float32(lane.gain)
            else:
                block *= gains[:, None]
            out[:take] += block
            lane.consumed += take
            if lane.pausing and lane.gain == 0.0:
                lane.pausing, lane.paused = False, True
        return out

    @staticmethod
    def _take(lane: _Lane, frames: int) -> FloatArray:
        parts = []
        need = frames
        while need:
            chunk = lane.chunks[0]
            if len(chunk) <= need:
                parts.append(lane.chunks.popleft())
                need -= len(chunk)
            else:
                parts.append(chunk[:need])
                lane.chunks[0] = chunk[need:]
                need = 0
        lane.buffered -= frames
        block: FloatArray = parts[0].copy() if len(parts) == 1 else np.concatenate(parts)
        return block

    def _ramp(self, lane: _Lane, frames: int) -> FloatArray | None:
        start, target = lane.gain, lane.target
        if start == target:
            return None
        steps = np.arange(1, frames + 1, dtype=np.float32) * np.float32(self._slope)
        if target > start:
            gains = np.minimum(np.float32(start) + steps, np.float32(target))
        else:
            gains = np.maximum(np.float32(start) - steps, np.float32(target))
        lane.gain = float(gains[-1]) if frames else start
        if abs(lane.gain - target) < 1e-6:
            lane.gain = target
        ramp: FloatArray = gains.astype(np.float32, copy=False)
        return ramp


class MixerChannel(AudioSink):
    """One lane of a `Mixer`, used as an `AudioSink` by whoever plays on that channel."""

    def __init__(self, mixer: Mixer, name: str, fmt: AudioFormat) -> None:
        self.mixer = mixer
        self.name = name
        self._format = fmt
        self._converter = PcmConverter(fmt, mixer.format)
        self._closed = False

    @property
    def format(self) -> AudioFormat:
        return self._format

    @property
    def frames_played(self) -> int:
        """Frames (at the device rate) of this channel that went into the mix."""
        return self.mixer.core.consumed(self.name)

    @property
    def buffered_ms(self) -> float:
        """Milliseconds queued on this channel, not yet mixed."""
        return 1000.0 * self.mixer.core.buffered(self.name) / self.mixer.format.rate

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            raise AudioError(f"mixer channel {self.name} is closed")
        await self.mixer._push(self.name, self._converter.convert(data))

    async def drain(self) -> None:
        await self.mixer._push(self.name, self._converter.flush())
        await self.mixer._drain(self.name)

    async def stop(self) -> None:
        self._converter = PcmConverter(self._format, self.mixer.format)
        await self.mixer._stop(self.name)

    async def aclose(self) -> None:
        if not self._closed:
            await self.stop()
            self._closed = True


# Theory of operation: producers push converted PCM into the core through their channel and
# wait (a Condition) while their lane holds more than `buffer_ms`. A pump task runs while any
# lane is ready: it mixes up to `block_ms` (never more than the fullest lane has, so a lone lane
# is not padded) and awaits the sink's write, whose back-pressure paces everything; then it
# wakes the waiting producers. It ends when no lane is ready and is started again by the next
# push or resume. A failing sink ends the pump with an error that every later call raises.
class Mixer:
    """Mixes named channels into one `AudioSink` (which stays the application's)."""

    def __init__(
        self,
        sink: AudioSink,
        *,
        buffer_ms: int = DEFAULT_MIXER_BUFFER_MS,
        block_ms: int = DEFAULT_BLOCK_MS,
        ramp_ms: int = DEFAULT_RAMP_MS,
        duck_gain: float = DEFAULT_DUCK_GAIN,
    ) -> None:
        """Create a mixer writing to `sink` in the sink's format.

        Args:
            sink: the output; the mixer never closes it.
            buffer_ms: audio a channel accepts ahead of the mix before its writer waits.
            block_ms: length of one block written to the sink.
            ramp_ms: length of a full-scale gain change (no clicks).
            duck_gain: gain of a ducked channel.
        """
        self.sink = sink
        self.format = sink.format
        self.core = MixerCore(self.format, ramp_ms=ramp_ms)
        self.duck_gain = duck_gain
        self._limit = max(1, self.format.rate * buffer_ms // 1000)
        self._block = max(1, self.format.rate * block_ms // 1000)
        self._channels: dict[str, MixerChannel] = {}
        self._changed = asyncio.Condition()
        self._pump: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        #: Blocks written to the sink.
        self.blocks = 0

    def channel(self, name: str, fmt: AudioFormat | None = None) -> MixerChannel:
        """The channel `name` (created on first use) accepting `fmt` (default: the sink's)."""
        existing = self._channels.get(name)
        if existing is not None and (fmt is None or fmt == existing.format):
            return existing
        channel = MixerChannel(self, name, fmt or self.format)
        if existing is None:
            self._channels[name] = channel
        return channel

    def set_gain(self, name: str, gain: float, *, ramp: bool = True) -> None:
        """Set channel `name`'s gain (ramped; `ramp=False`: at once, before a sound starts)."""
        self.core.set_gain(name, gain, ramp=ramp)

    def volume(self, name: str) -> float:
        """Channel `name`'s gain as last set (1.0 unless set), not ducked or paused."""
        return self.core.volume(name)

    def duck(self, name: str, ducked: bool = True) -> None:
        """Lower channel `name` to `duck_gain` of its gain, or restore it (ramped)."""
        self.core.set_duck(name, ducked, self.duck_gain)

    def pause(self, name: str) -> None:
        """Fade channel `name` out and hold its queue (its writer waits once the queue is full)."""
        self.core.pause(name)

    def resume(self, name: str) -> None:
        """Play channel `name` again, fading in."""
        self.core.resume(name)
        self._kick()

    @property
    def running(self) -> bool:
        """True while the pump is writing to the sink."""
        return self._pump is not None and not self._pump.done()

    def _check(self) -> None:
        if self._error is not None:
            raise AudioError(f"mixer output failed: {self._error}") from self._error

    def _kick(self) -> None:
        if self.core.ready() and not self.running:
            self._pump = asyncio.get_running_loop().create_task(self._run())

    async def _push(self, name: str, pcm: bytes) -> None:
        self._check()
        if not pcm:
            return
        self.core.push(name, decode_samples(pcm, self.format))
        self._kick()
        async with self._changed:
            while self.core.buffered(name) > self._limit:
                self._check()
                self._kick()
                await self._changed.wait()

    async def _drain(self, name: str) -> None:
        async with self._changed:
            while self.core.buffered(name) and not self.core.paused(name):
                self._check()
                self._kick()
                await self._changed.wait()
        self._check()
        pump = self._pump
        if not self.core.ready() and pump is not None and not pump.done():
            # Its last block is still being written: a sink drains only what it was given.
            await asyncio.wait({pump})
        self._check()
        if not self.core.ready():
            await self.sink.drain()

    async def _stop(self, name: str) -> None:
        self.core.clear(name)
        async with self._changed:
            self._changed.notify_all()
        if not self.core.ready():
            await self.sink.stop()

    async def _run(self) -> None:
        try:
            while frames := min(self._block, self.core.ready()):
                block = self.core.mix(frames)
                await self.sink.write(encode_samples(block, self.format))
                self.blocks += 1
                async with self._changed:
                    self._changed.notify_all()
        except Exception as exc:  # the sink failed: every later call reports it
            _log.warning("mixer output failed: %s", exc)
            self._error = exc
        async with self._changed:
            self._changed.notify_all()

    async def aclose(self) -> None:
        """Stop mixing and drop every queue (the sink stays open: it is the application's)."""
        for name in list(self._channels):
            self.core.clear(name)
        pump, self._pump = self._pump, None
        if pump is not None and not pump.done():
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
        async with self._changed:
            self._changed.notify_all()
