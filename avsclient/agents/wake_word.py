"""The always-on wake-word path: the microphone feeds a capture ring, a detector hears every
frame, and each detection starts a wake-word Recognize from the ring (avs-protocol 5.2, 11).

`WakeWordListener` is the thin asyncio part around pieces that do no I/O: `RingCapture` pumps
the source into a `PcmRing` and calls the detector on every frame, in the pump task; a
detection spawns `SpeechRecognizerAgent.recognize_wake_word`, which takes the Dialog focus
(stopping speech that plays: barge-in) and streams pre-roll, word and live audio. Detections
while a recognition streams are counted and ignored. A wake word the cloud rejects (StopCapture
and no answer) only returns the device to listening; the recognizer counts it.

End of speech: wake-word turns are NEAR_FIELD or FAR_FIELD, which the cloud ends with
StopCapture; a local endpointer ends the upload too when speech ends first. By default it is
the WebRTC VAD one when `webrtcvad` is installed (extra `vad` or `wakeword`), else the energy
one; StopCapture still wins whenever it comes first.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from avsclient._resource import AsyncService
from avsclient._tasks import TaskSet
from avsclient.agents.events import WakeWordDetected
from avsclient.agents.speech_recognizer import PROFILES, RecognizerInput
from avsclient.audio import (
    AVS_FORMAT,
    DEFAULT_PREROLL_SAMPLES,
    DEFAULT_RING_MS,
    EndpointDetector,
    EndpointedSource,
    PcmConverter,
    RingCapture,
    WebRtcVadEndpointer,
    create_wake_word_detector,
)
from avsclient.exceptions import AudioError, StateError

if TYPE_CHECKING:
    from avsclient.agents.speech_recognizer import SpeechRecognizerAgent
    from avsclient.audio import (
        AudioSink,
        AudioSource,
        Endpointer,
        EndpointingConfig,
        WakeWordDetection,
        WakeWordDetector,
    )
    from avsclient.dialog import Dialog

__all__ = [
    "DEFAULT_TONE_MS",
    "EndpointerFactory",
    "WakeWordListener",
    "confirmation_tone",
    "default_endpointer",
]

_log = logging.getLogger("avsclient.agents")

#: Length of the wake-word confirmation tone.
DEFAULT_TONE_MS = 120
#: Wake-word turns running at once (a new one supersedes an older one that is still thinking).
_MAX_TURNS = 4
#: Finished turns kept in `WakeWordListener.dialogs`.
_DIALOGS_KEPT = 16

EndpointerFactory = Callable[[], "Endpointer"]
"""Makes a fresh endpointer for each turn."""


def confirmation_tone(*, ms: int = DEFAULT_TONE_MS, hz: float = 880.0) -> bytes:
    """A short sine beep with 10 ms fades, in the AVS format (16 kHz 16-bit mono)."""
    rate = AVS_FORMAT.rate
    n = rate * ms // 1000
    ramp = np.minimum(np.arange(n), np.arange(n)[::-1]) / (rate / 100)
    wave = 0.3 * np.sin(2 * np.pi * hz * np.arange(n) / rate) * np.minimum(1.0, ramp)
    return (wave * 32767).astype("<i2").tobytes()


def default_endpointer(
    profile: str = "NEAR_FIELD", config: EndpointingConfig | None = None
) -> EndpointerFactory:
    """The endpointer of wake-word turns: the WebRTC VAD one for NEAR_FIELD and FAR_FIELD when
    `webrtcvad` is installed, else (and for CLOSE_TALK) the energy one."""
    if profile != "CLOSE_TALK":
        try:
            WebRtcVadEndpointer(config)
        except AudioError:
            _log.info("webrtcvad is not installed: wake-word turns end by energy")
        else:
            return lambda: WebRtcVadEndpointer(config)
    return lambda: EndpointDetector(config)


class WakeWordListener(AsyncService):
    """Listens all the time and starts a wake-word Recognize on every detection.

    Use as `async with WakeWordListener(client.recognizer, Microphone()) as listener: ...`.
    The listener owns `source` and closes it.

    Attributes:
        capture: the capture ring (its `ring.overruns` counts audio readers lost).
        detector: the wake-word detector.
        detections: detections so far (accepted or not).
        ignored: detections ignored because a recognition was streaming.
        tones: confirmation tones played.
        dialogs: the last finished wake-word turns (at most 16).
        turns: wake-word turns finished so far (all of them, unlike `dialogs`).
        unfollowed: accepted detections that could not start a turn (a tap started first,
            or the word was overwritten in the ring).
    """

    def __init__(
        self,
        recognizer: SpeechRecognizerAgent,
        source: AudioSource,
        *,
        detector: WakeWordDetector | None = None,
        profile: str = "NEAR_FIELD",
        ring_ms: int = DEFAULT_RING_MS,
        preroll_samples: int = DEFAULT_PREROLL_SAMPLES,
        endpointer: EndpointerFactory | str | None = "auto",
        tone_sink: AudioSink | None = None,
    ) -> None:
        """Create a listener (nothing runs until `start()`).

        Args:
            recognizer: the client's SpeechRecognizer agent (`client.recognizer`).
            source: the always-on audio (a `Microphone`, or a `ContinuousSource`).
            detector: the wake-word engine (default: microWakeWord "alexa", extra `wakeword`).
            profile: the ASR profile of wake-word turns (NEAR_FIELD or FAR_FIELD).
            ring_ms: history held; at least the pre-roll plus a long word plus the detector's
                latency (3 s by default).
            preroll_samples: audio sent before the word (500 ms).
            endpointer: "auto" (`default_endpointer`), a factory of endpointers, or None to
                leave the end of every turn to StopCapture.
            tone_sink: where the confirmation tone plays when the recognizer's
                `wake_word_confirmation` is "TONE" (e.g. a mixer channel); None: no tone.

        Raises:
            AudioError: the default engine is not installed (names the extra).
            ValueError: bad profile, or the source is not in the AVS format.
        """
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {sorted(PROFILES)}")
        if source.format != AVS_FORMAT:
            raise ValueError(f"the source must produce {AVS_FORMAT}, not {source.format}")
        if ring_ms * AVS_FORMAT.rate // 1000 < 2 * preroll_samples:
            raise ValueError("ring_ms must hold at least twice the pre-roll")
        self.recognizer = recognizer
        self.source = source
        self.detector = detector if detector is not None else create_wake_word_detector()
        self.profile = profile
        self.preroll_samples = preroll_samples
        if endpointer == "auto":
            self._endpointer: EndpointerFactory | None = default_endpointer(profile)
        elif isinstance(endpointer, str):
            raise ValueError(f"endpointer must be 'auto', a factory or None, not {endpointer!r}")
        else:
            self._endpointer = endpointer
        self.tone_sink = tone_sink
        self.capture = RingCapture(source, capacity_ms=ring_ms)
        self.capture.add_listener(self._on_frame)
        self._offset: int | None = None  # ring position of the detector's position 0
        self._tasks = TaskSet(_log, "wake-word")
        self._started = False
        self._closed = False
        self.detections = 0
        self.ignored = 0
        self.tones = 0
        self.dialogs: collections.deque[Dialog] = collections.deque(maxlen=_DIALOGS_KEPT)
        self.turns = 0
        self.unfollowed = 0

    def new_endpointer(self) -> Endpointer | None:
        """A fresh endpointer for one turn (None when turns end only by StopCapture)."""
        return None if self._endpointer is None else self._endpointer()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start capturing and listening.

        Raises:
            StateError: the listener is closed.
        """
        if self._closed:
            raise StateError("the wake-word listener is closed")
        if not self._started:
            self._started = True
            self.capture.start()

    async def wait_closed(self, timeout: float) -> None:
        """Wait until the source has ended (at most `timeout` seconds).

        Raises:
            TimeoutError: it did not end in time.
        """
        await self.capture.wait_closed(timeout)

    async def aclose(self) -> None:
        """Stop capturing, and any wake-word turn still running."""
        if self._closed:
            return
        self._closed = True
        await self._tasks.cancel()
        await self.capture.aclose()

    @property
    def error(self) -> BaseException | None:
        """Why the capture ended early (the device failed), or None."""
        return self.capture.error

    # -- the always-on path ----------------------------------------------------------------

    def _on_frame(self, frame: bytes, position: int) -> None:
        # Called by the capture pump with every frame: keep it to the detector's cost.
        if self._offset is None:
            self._offset = position - self.detector.position
        for found in self.detector.feed(frame):
            offset = self._offset
            self._detected(
                replace(
                    found,
                    start=found.start + offset,
                    end=found.end + offset,
                    fired=found.fired + offset,
                )
            )

    def _detected(self, detection: WakeWordDetection) -> None:
        loop = asyncio.get_running_loop()
        detected_at = loop.time()
        self.detections += 1
        recognizer = self.recognizer
        accepted = (
            not self._closed
            and len(self._tasks) < _MAX_TURNS
            and recognizer.machine.accepts(RecognizerInput.RECOGNIZE)
        )
        _log.info(
            "wake word %s (p=%.3f) at sample %d: %s",
            detection.wake_word,
            detection.probability,
            detection.start,
            "recognizing" if accepted else f"ignored while {recognizer.state.value}",
        )
        recognizer.messenger.notify(
            WakeWordDetected(
                wake_word=detection.wake_word,
                probability=detection.probability,
                start=detection.start,
                end=detection.end,
                accepted=accepted,
            )
        )
        if not accepted:
            self.ignored += 1
            return
        self._tasks.spawn(self._turn(detection, detected_at))
        if recognizer.wake_word_confirmation == "TONE" and self.tone_sink is not None:
            self.tones += 1
            self._tasks.spawn(self._tone(self.tone_sink))

    async def _turn(self, detection: WakeWordDetection, detected_at: float) -> None:
        try:
            dialog = await self.recognizer.recognize_wake_word(
                self.capture,
                detection,
                profile=self.profile,
                preroll_samples=self.preroll_samples,
                endpointer=self.new_endpointer(),
                detected_at=detected_at,
            )
        except (StateError, AudioError) as exc:  # a tap started first; the word was overwritten
            _log.warning("wake word not followed: %s", exc)
            self.unfollowed += 1
            return
        self.dialogs.append(dialog)
        self.turns += 1

    async def _tone(self, sink: AudioSink) -> None:
        converter = PcmConverter(AVS_FORMAT, sink.format)
        try:
            await sink.write(converter.convert(confirmation_tone()) + converter.flush())
            await sink.drain()
        except AudioError as exc:
            _log.warning("confirmation tone failed: %s", exc)

    def live_source(self) -> AudioSource:
        """A source from the ring's live edge, ended by the turn endpointer: what ExpectSpeech
        should open (set it as the recognizer's `source_factory`)."""
        source: AudioSource = self.capture.reader_from(self.capture.ring.end)
        endpointer = self.new_endpointer()
        return source if endpointer is None else EndpointedSource(source, endpointer=endpointer)

