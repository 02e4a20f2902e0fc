"""SpeechRecognizer 2.3 settings (avs-protocol 11.3-11.5), kept apart from the recognizer's
audio path: the recognizer holds one `RecognizerSettings` and routes these directives to it.

- `SetWakeWordConfirmation`, `SetSpeechConfirmation`, `SetWakeWords`: checked, stored in the
  device store (before they take effect), answered with their `*Report` carrying the value in
  force (also after a refused change); local changes send `*Changed`.
- `SetEndOfSpeechOffset`: informational; kept (device-only) with its `startOfSpeechTimestamp`.
- `configuration()`: the Discovery `wakeWords` block (None for tap-to-talk), which follows
  the wake words the device supports per locale scope.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from avsclient.agents import payload
from avsclient.exceptions import DirectiveError
from avsclient.messages import Directive, Event, ExceptionType

if TYPE_CHECKING:
    from avsclient.agents.base import AgentServices, DirectiveHandler, StateReportEntry

__all__ = ["CONFIRMATIONS", "DEFAULT_WAKE_WORDS", "RecognizerSettings"]

_log = logging.getLogger("avsclient.agents")

_NAMESPACE = "SpeechRecognizer"
#: The values of both confirmation settings (avs-protocol 11.4).
CONFIRMATIONS = ("NONE", "TONE")
#: The wake words of a device that supports a wake word but says nothing else.
DEFAULT_WAKE_WORDS: Mapping[str, Sequence[Sequence[str]]] = {"DEFAULT": (("ALEXA",),)}
# Bounds on what a directive may carry: a handful of wake words of a few letters.
_MAX_WAKE_WORDS = 8
_MAX_WORD = 32
_MAX_OFFSET_MS = 24 * 3600 * 1000
_MAX_TIMESTAMP = 64


class RecognizerSettings:
    """The recognizer's settings, persisted and reported.

    Attributes:
        wake_word_confirmation: `NONE` or `TONE` (a tone when listening starts).
        speech_confirmation: `NONE` or `TONE` (a tone at the end of listening).
        wake_words: the active wake words (empty for tap-to-talk).
        end_of_speech_offset: the last SetEndOfSpeechOffset, as `(offset ms, timestamp)`.
        start_of_speech_timestamp: what the last Recognize sent as `startOfSpeechTimestamp`.
    """

    def __init__(self, *, wake_words: Mapping[str, Sequence[Sequence[str]]] | None = None) -> None:
        """Create the settings.

        Args:
            wake_words: the wake words supported, by scope (`DEFAULT`, a language such as
                `en` or a locale such as `en-US`) -> the sets that may be active together;
                None for a tap-to-talk device (SetWakeWords is then unsupported).

        Raises:
            ValueError: a scope with no sets, or a wake word that is not upper-case letters.
        """
        self.supported: dict[str, tuple[tuple[str, ...], ...]] | None = None
        if wake_words is not None:
            self.supported = {}
            for scope, sets in wake_words.items():
                checked = tuple(tuple(words) for words in sets)
                if not checked or not all(
                    words and all(w.isalpha() and w.isupper() for w in words) for words in checked
                ):
                    raise ValueError(f"wake words of scope {scope!r} must be upper-case words")
                self.supported[scope] = checked
        self.wake_word_confirmation = "NONE"
        self.speech_confirmation = "NONE"
        self.wake_words: tuple[str, ...] = self._default_wake_words()
        self.end_of_speech_offset: tuple[int, str] | None = None
        self.start_of_speech_timestamp: str | None = None
        self._services: AgentServices | None = None
        self._locale: Callable[[], str | None] = lambda: None

    def _default_wake_words(self) -> tuple[str, ...]:
        if not self.supported:
            return ()
        first = self.supported.get("DEFAULT") or next(iter(self.supported.values()))
        return first[0]

    # -- wiring ------------------------------------------------------------------------------

    def bind(self, services: AgentServices) -> None:
        """Join the recognizer's client: load what the device store holds."""
        self._services = services
        store = services.store
        if store is None:
            return

        def locale() -> str | None:
            # The primary locale, as System stores it (SetLocales, avs-protocol 12.2).
            locales = store.get("System", "locales")
            first = locales[0] if isinstance(locales, list) and locales else None
            return first if isinstance(first, str) else None

        self._locale = locale
        stored = store.settings(_NAMESPACE)
        for key, attr in (
            ("wakeWordConfirmation", "wake_word_confirmation"),
            ("speechConfirmation", "speech_confirmation"),
        ):
            if stored.get(key) in CONFIRMATIONS:
                setattr(self, attr, stored[key])
        words = stored.get("wakeWords")
        if isinstance(words, list) and self.supported and all(isinstance(w, str) for w in words):
            self.wake_words = tuple(str(w) for w in words)
        offset = stored.get("endOfSpeechOffset")
        if isinstance(offset, list) and len(offset) == 2 and isinstance(offset[0], int):
            self.end_of_speech_offset = (offset[0], str(offset[1]))

    def handlers(self) -> dict[str, DirectiveHandler]:
        """The settings directives of SpeechRecognizer 2.3."""
        return {
            "SetEndOfSpeechOffset": self._on_end_of_speech_offset,
            "SetWakeWordConfirmation": self._on_wake_word_confirmation,
            "SetSpeechConfirmation": self._on_speech_confirmation,
            "SetWakeWords": self._on_wake_words,
        }

    def configuration(self) -> dict[str, Any] | None:
        """The Discovery configuration (`wakeWords`), or None for tap-to-talk (11.5)."""
        if not self.supported:
            return None
        return {
            "wakeWords": [
                {"scopes": [scope], "values": [list(words) for words in sets]}
                for scope, sets in self.supported.items()
            ]
        }

    def state_reports(self) -> list[StateReportEntry]:
        """WakeWordConfirmationReport, SpeechConfirmationReport (and WakeWordsReport)."""
        reports = [
            _entry(
                "WakeWordConfirmationReport", {"wakeWordConfirmation": self.wake_word_confirmation}
            ),
            _entry("SpeechConfirmationReport", {"speechConfirmation": self.speech_confirmation}),
        ]
        if self.supported:
            reports.append(_entry("WakeWordsReport", {"wakeWords": list(self.wake_words)}))
        return reports

    def stamp_start_of_speech(self) -> str:
        """A new `startOfSpeechTimestamp` for a Recognize: milliseconds since the epoch as a
        string (the SDK comment's meaning; opaque to AVS, echoed in SetEndOfSpeechOffset)."""
        self.start_of_speech_timestamp = str(int(time.time() * 1000))
        return self.start_of_speech_timestamp

    def forget_account(self) -> None:
        """Back to the defaults (the store was cleared); the offset is the device's own."""
        self.wake_word_confirmation = self.speech_confirmation = "NONE"
        self.wake_words = self._default_wake_words()

    # -- directives --------------------------------------------------------------------------

    async def _on_end_of_speech_offset(self, directive: Directive) -> None:
        offset = payload.integer(
            directive.payload, "endOfSpeechOffsetInMilliseconds", low=0, high=_MAX_OFFSET_MS
        )
        stamp = payload.text(directive.payload, "startOfSpeechTimestamp", max_length=_MAX_TIMESTAMP)
        self._store("endOfSpeechOffset", [offset, stamp], device_only=True)
        self.end_of_speech_offset = (offset, stamp)
        _log.debug("end of speech %d ms after %s", offset, stamp)

    async def _on_wake_word_confirmation(self, directive: Directive) -> None:
        await self._confirmation(
            directive,
            "wakeWordConfirmation",
            "wake_word_confirmation",
            "WakeWordConfirmationReport",
        )

    async def _on_speech_confirmation(self, directive: Directive) -> None:
        await self._confirmation(
            directive, "speechConfirmation", "speech_confirmation", "SpeechConfirmationReport"
        )

    async def _confirmation(self, directive: Directive, key: str, attr: str, report: str) -> None:
        try:
            value = payload.choice(directive.payload, key, CONFIRMATIONS)
        except DirectiveError:
            await self._send(report, {key: getattr(self, attr)})  # the value in force
            raise
        await self._send(report, {key: value}, {key: value})
        setattr(self, attr, value)

    async def _on_wake_words(self, directive: Directive) -> None:
        if not self.supported:
            raise DirectiveError(
                "this device has no wake word", error_type=ExceptionType.UNSUPPORTED_OPERATION.value
            )
        try:
            words = self._check_wake_words(directive.payload)
        except DirectiveError:
            await self._send("WakeWordsReport", {"wakeWords": list(self.wake_words)})
            raise
        await self._send("WakeWordsReport", {"wakeWords": list(words)}, {"wakeWords": list(words)})
        self.wake_words = words

    def _check_wake_words(self, data: Mapping[str, Any]) -> tuple[str, ...]:
        raw = payload.seq(data, "wakeWords", max_items=_MAX_WAKE_WORDS)
        if not raw or not all(isinstance(w, str) and 0 < len(w) <= _MAX_WORD for w in raw):
            raise DirectiveError("wakeWords must be a non-empty array of words")
        words = tuple(raw)
        if sorted(words) not in [sorted(s) for s in self.allowed_sets()]:
            raise DirectiveError(f"unknown wake word set {list(words)!r}")
        return words

    def allowed_sets(self) -> list[tuple[str, ...]]:
        """The wake word sets allowed for the current locale (DEFAULT, its language, itself)."""
        if not self.supported:
            return []
        locale = self._locale() or ""
        scopes = {"DEFAULT", locale, locale.split("-")[0]}
        return [
            words for scope, sets in self.supported.items() if scope in scopes for words in sets
        ]

    # -- local changes -----------------------------------------------------------------------

    async def set_wake_word_confirmation(self, value: str) -> None:
        """Change it locally and tell AVS (WakeWordConfirmationChanged).

        Raises:
            ValueError: not NONE or TONE.
        """
        await self._local(
            "wakeWordConfirmation", "wake_word_confirmation", value, "WakeWordConfirmationChanged"
        )

    async def set_speech_confirmation(self, value: str) -> None:
        """Change it locally and tell AVS (SpeechConfirmationChanged).

        Raises:
            ValueError: not NONE or TONE.
        """
        await self._local(
            "speechConfirmation", "speech_confirmation", value, "SpeechConfirmationChanged"
        )

    async def set_wake_words(self, words: Sequence[str]) -> None:
        """Change the active wake words locally and tell AVS (WakeWordsChanged).

        Raises:
            ValueError: the device has no wake word, or the set is not an allowed one.
        """
        try:
            checked = self._check_wake_words({"wakeWords": list(words)}) if self.supported else None
        except DirectiveError as exc:
            raise ValueError(str(exc)) from exc
        if checked is None:
            raise ValueError("this device has no wake word")
        await self._send(
            "WakeWordsChanged", {"wakeWords": list(checked)}, {"wakeWords": list(checked)}
        )
        self.wake_words = checked

    async def _local(self, key: str, attr: str, value: str, event: str) -> None:
        if value not in CONFIRMATIONS:
            raise ValueError(f"{key} must be one of {CONFIRMATIONS}, not {value!r}")
        await self._send(event, {key: value}, {key: value})
        setattr(self, attr, value)

    # -- plumbing ----------------------------------------------------------------------------

    def _store(self, key: str, value: Any, *, device_only: bool = False) -> None:
        services = self._services
        if services is not None and services.store is not None:
            services.store.set(_NAMESPACE, key, value, device_only=device_only)

    async def _send(
        self, name: str, body: dict[str, Any], changes: dict[str, Any] | None = None
    ) -> None:
        """Store `changes` (this namespace's keys) and send the event reporting them, in one
        transaction with the persisted outbox (`AgentServices.deliver`): settings events
        must reach AVS, after a reconnect or a restart too."""
        if self._services is not None:
            stored = {(_NAMESPACE, key): value for key, value in (changes or {}).items()}
            await self._services.deliver(Event.build(_NAMESPACE, name, body), stored)


def _entry(name: str, body: dict[str, Any]) -> StateReportEntry:
    return {"header": {"namespace": _NAMESPACE, "name": name}, "payload": body}
