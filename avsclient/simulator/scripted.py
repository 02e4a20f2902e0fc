"""Scripted directives of the simulator: the cloud-initiated directives of InteractionModel,
SpeechRecognizer 2.3 settings, System and Notifications, by name, for tests
(`sim.push_scripted("SetLocales", locales=["en-US"])`) and for `avsclient simulate` (a line
`push SetLocales {"locales": ["en-US"]}` on its standard input).

No I/O: each builder returns the `{"directive": ...}` message; the server pushes it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from avsclient.simulator.scenarios import directive

__all__ = ["SCRIPTED", "scripted_directive"]

Builder = Callable[..., dict[str, Any]]


def _new_dialog_request(dialogRequestId: str | None = None) -> dict[str, Any]:
    return directive(
        "InteractionModel",
        "NewDialogRequest",
        {"dialogRequestId": dialogRequestId or str(uuid.uuid4())},
    )


def _processing(name: str) -> Builder:
    def build(dialogRequestId: str | None = None) -> dict[str, Any]:
        return directive("InteractionModel", name, dialog_request_id=dialogRequestId)

    return build


def _plain(namespace: str, name: str, **defaults: Any) -> Builder:
    def build(**payload: Any) -> dict[str, Any]:
        return directive(namespace, name, {**defaults, **payload})

    return build


def _set_indicator(
    url: str = "",
    assetId: str = "sim-asset-1",
    persistVisualIndicator: bool = True,
    playAudioIndicator: bool = True,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "persistVisualIndicator": persistVisualIndicator,
        "playAudioIndicator": playAudioIndicator,
    }
    if playAudioIndicator:
        payload["asset"] = {"assetId": assetId, "url": url or "https://127.0.0.1:9/chime.mp3"}
    return directive("Notifications", "SetIndicator", payload)


#: Name -> builder (keyword arguments are payload fields).
SCRIPTED: dict[str, Builder] = {
    "NewDialogRequest": _new_dialog_request,
    "RequestProcessingStarted": _processing("RequestProcessingStarted"),
    "RequestProcessingCompleted": _processing("RequestProcessingCompleted"),
    "SetEndOfSpeechOffset": _plain(
        "SpeechRecognizer",
        "SetEndOfSpeechOffset",
        endOfSpeechOffsetInMilliseconds=1180,
        startOfSpeechTimestamp="0",
    ),
    "SetWakeWordConfirmation": _plain(
        "SpeechRecognizer", "SetWakeWordConfirmation", wakeWordConfirmation="TONE"
    ),
    "SetSpeechConfirmation": _plain(
        "SpeechRecognizer", "SetSpeechConfirmation", speechConfirmation="TONE"
    ),
    "SetWakeWords": _plain("SpeechRecognizer", "SetWakeWords", wakeWords=["ALEXA"]),
    "ReportState": _plain("System", "ReportState"),
    "ReportSoftwareInfo": _plain("System", "ReportSoftwareInfo"),
    "RevokeAuthorization": _plain("System", "RevokeAuthorization"),
    "SetLocales": _plain("System", "SetLocales", locales=["en-US"]),
    "SetTimeZone": _plain("System", "SetTimeZone", timeZone="America/Los_Angeles"),
    "SetIndicator": _set_indicator,
    "ClearIndicator": _plain("Notifications", "ClearIndicator"),
}


def scripted_directive(name: str, **fields: Any) -> dict[str, Any]:
    """The scripted directive `name` with payload `fields` over its defaults.

    Raises:
        KeyError: no scripted directive of that name.
        TypeError: a field the directive does not take (NewDialogRequest, SetIndicator).
    """
    try:
        builder = SCRIPTED[name]
    except KeyError:
        raise KeyError(f"no scripted directive {name!r}; have {sorted(SCRIPTED)}") from None
    return builder(**fields)
