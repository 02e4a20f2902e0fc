"""Play dialogs for the simulator and a check of the AudioPlayer events a device sent back.

- `play`, `stop`, `clear_queue`: AudioPlayer directives (avs-protocol 14.2).
- `play_reply`: the reply of a "play" dialog: Speak, then a queue of Plays (REPLACE_ALL, then
  ENQUEUE with `expectedPreviousToken` chaining them), in the Recognize's dialog.
- `check_playback`: what is wrong with a sequence of AudioPlayer events (avs-protocol 14.3):
  their order per token, token changes, offsets. An empty list means consistent.

No I/O.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from avsclient.simulator.scenarios import ReceivedEvent, ScriptedReply, directive

__all__ = ["check_playback", "clear_queue", "play", "play_reply", "stop"]

# Events that end a stream's playback, and those that may come between its start and end.
_ENDS = frozenset({"PlaybackFinished", "PlaybackStopped", "PlaybackFailed"})
_DURING = frozenset(
    {
        "PlaybackNearlyFinished",
        "ProgressReportDelayElapsed",
        "ProgressReportIntervalElapsed",
        "PlaybackStutterStarted",
        "PlaybackStutterFinished",
        "PlaybackPaused",
        "PlaybackResumed",
        "StreamMetadataExtracted",
    }
)
# How far an offset may go back (ms) between two events of one stream: none, the offset is
# what was played.
_BACKWARDS_MS = 0


def play(
    token: str,
    url: str,
    behavior: str = "ENQUEUE",
    *,
    dialog_request_id: str | None = None,
    expected_previous: str | None = None,
    offset_ms: int = 0,
    **stream: Any,
) -> dict[str, Any]:
    """An AudioPlayer.Play directive (other `stream` fields as keywords, e.g.
    `interruptedBehavior="ATTENUATE"`, `progressReport={...}`)."""
    body: dict[str, Any] = {"url": url, "token": token, "offsetInMilliseconds": offset_ms}
    if expected_previous is not None:
        body["expectedPreviousToken"] = expected_previous
    body.update(stream)
    return directive(
        "AudioPlayer",
        "Play",
        {"playBehavior": behavior, "audioItem": {"audioItemId": token, "stream": body}},
        dialog_request_id=dialog_request_id,
    )


def stop(dialog_request_id: str | None = None) -> dict[str, Any]:
    """An AudioPlayer.Stop directive."""
    return directive("AudioPlayer", "Stop", {}, dialog_request_id=dialog_request_id)


def clear_queue(
    behavior: str = "CLEAR_ENQUEUED", dialog_request_id: str | None = None
) -> dict[str, Any]:
    """An AudioPlayer.ClearQueue directive (CLEAR_ENQUEUED or CLEAR_ALL)."""
    return directive(
        "AudioPlayer",
        "ClearQueue",
        {"clearBehavior": behavior},
        dialog_request_id=dialog_request_id,
    )


def play_reply(
    event: ReceivedEvent,
    speech: bytes,
    urls: Sequence[str],
    *,
    tokens: Sequence[str] | None = None,
    **stream: Any,
) -> ScriptedReply:
    """The reply to a Recognize asking for music: Speak `speech` (MP3), then Play `urls` as a
    queue (the first REPLACE_ALL, the others ENQUEUE after it), all in the event's dialog."""
    dialog = event.dialog_request_id
    cid = f"TTS_{uuid.uuid4().hex[:12]}"
    speak = directive(
        "SpeechSynthesizer",
        "Speak",
        {"url": f"cid:{cid}", "format": "AUDIO_MPEG", "token": f"speak-{cid}"},
        dialog_request_id=dialog,
    )
    names = list(tokens) if tokens is not None else [f"track-{n + 1}" for n in range(len(urls))]
    plays = []
    for index, (token, url) in enumerate(zip(names, urls, strict=True)):
        plays.append(
            play(
                token,
                url,
                "REPLACE_ALL" if index == 0 else "ENQUEUE",
                dialog_request_id=dialog,
                expected_previous=None if index == 0 else names[index - 1],
                **stream,
            )
        )
    return ScriptedReply.of(speak, *plays, attachments={cid: speech})


def _offset(payload: Mapping[str, Any]) -> int | None:
    value = payload.get("offsetInMilliseconds")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def check_playback(events: Sequence[ReceivedEvent]) -> list[str]:
    """What is inconsistent in the AudioPlayer events among `events`, in order (empty: none).

    Checked per avs-protocol 14.3: every event has a token and a non-negative offset (except
    PlaybackQueueCleared and StreamMetadataExtracted); a stream starts once with
    PlaybackStarted and ends once with PlaybackFinished, PlaybackStopped or PlaybackFailed
    (a queued stream may fail while another plays, or before it started); nothing of a stream
    comes before its start or after its end; no stream starts while another plays; offsets of
    one stream never go back; stutters and pauses alternate with their ends; PlaybackFailed
    carries an error type and the current playback state.
    """
    problems: list[str] = []
    playing: str | None = None
    started: set[str] = set()
    ended: set[str] = set()
    last_offset: dict[str, int] = {}
    open_pair: dict[tuple[str, str], bool] = {}
    for index, event in enumerate(e for e in events if e.namespace == "AudioPlayer"):
        name, payload = event.name, event.payload
        where = f"#{index} {name}"
        if name == "PlaybackQueueCleared":
            continue
        token = payload.get("token")
        if not isinstance(token, str) or not token:
            problems.append(f"{where}: no token")
            continue
        if name == "StreamMetadataExtracted":
            if not isinstance(payload.get("metadata"), dict):
                problems.append(f"{where}: no metadata object")
            if token != playing:
                problems.append(f"{where}: metadata of {token!r}, which is not playing")
            continue
        offset = _offset(payload)
        if name == "PlaybackFailed":
            error = payload.get("error")
            if not isinstance(error, dict) or not str(error.get("type", "")).startswith(
                "MEDIA_ERROR_"
            ):
                problems.append(f"{where}: no MEDIA_ERROR_* type")
            if not isinstance(payload.get("currentPlaybackState"), dict):
                problems.append(f"{where}: no currentPlaybackState")
            if token in ended:
                problems.append(f"{where}: {token!r} already ended")
            ended.add(token)
            if token == playing:
                playing = None
            continue
        if offset is None or offset < 0:
            problems.append(f"{where}: bad offset {payload.get('offsetInMilliseconds')!r}")
            continue
        if name == "PlaybackStarted":
            if token in started:
                problems.append(f"{where}: {token!r} started twice")
            if playing is not None:
                problems.append(f"{where}: {token!r} started while {playing!r} plays")
            started.add(token)
            playing = token
        elif token != playing:
            problems.append(f"{where}: {token!r} is not the stream playing ({playing!r})")
        if token in last_offset and offset < last_offset[token] - _BACKWARDS_MS:
            problems.append(f"{where}: offset went back from {last_offset[token]} to {offset}")
        last_offset[token] = offset
        for opening, closing in (
            ("PlaybackStutterStarted", "PlaybackStutterFinished"),
            ("PlaybackPaused", "PlaybackResumed"),
        ):
            key = (token, opening)
            if name == opening:
                if open_pair.get(key):
                    problems.append(f"{where}: {opening} twice without {closing}")
                open_pair[key] = True
            elif name == closing:
                if not open_pair.get(key):
                    problems.append(f"{where}: {closing} without {opening}")
                open_pair[key] = False
        if name in _ENDS:
            ended.add(token)
            playing = None
        elif name not in _DURING and name != "PlaybackStarted":
            problems.append(f"{where}: not an AudioPlayer event")
    return problems
