"""A device loop: wait for a trigger, listen, answer, and follow up when Alexa asks for more.

A turn starts on a trigger: Enter on stdin (the default; end of input quits), the file given
by `--trigger-file` appearing or changing (a button handler may touch it), or one turn after
the other with `--turns N`, or the wake word with `--wake-word` (hands-free: the microphone, or
the `--input` file followed by silence, is heard all the time; `--turns N` then stops after N
wake-word turns). When Alexa expects an answer (ExpectSpeech), the client opens the microphone
(or the `--input` file) again by itself. Ctrl-C and SIGTERM stop it cleanly.

    python examples/voice_loop.py --simulator --simulator-expect-speech
    python examples/voice_loop.py --simulator --wake-word --turns 1 --input alexa.wav
    python examples/voice_loop.py --trigger-file /run/talk-button    # real AVS (avsclient login)
    python examples/voice_loop.py --simulator --turns 3 --input question.wav --output replies.wav
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from avsclient import AVSClient, ClientEvent, Region, agents, audio
from avsclient.dialog import Disposition
from avsclient.exceptions import AudioError, AVSError

if TYPE_CHECKING:
    from avsclient.simulator import ReceivedEvent, ScriptedReply

#: Seconds between two looks at `--trigger-file`.
POLL_INTERVAL = 0.2
#: The opaque initiator of the simulator's follow-up question (`--simulator-expect-speech`).
FOLLOW_UP = {"type": "OPAQUE", "payload": {"token": "voice-loop-follow-up"}}
STATES = {
    "RECOGNIZING": "Listening",
    "BUSY": "Thinking",
    "EXPECTING_SPEECH": "Expecting speech",
    "PLAYING": "Speaking",
    "FINISHED": "Done speaking",
    "INTERRUPTED": "Interrupted",
}


def show(event: ClientEvent) -> None:
    if isinstance(event, agents.RecognizerStateChanged) and event.new.value in STATES:
        print("state:", STATES[event.new.value], flush=True)
    elif isinstance(event, agents.SpeechStateChanged):
        print("state:", STATES[event.activity.value], flush=True)
    elif (
        isinstance(event, agents.DirectiveObserved) and event.disposition is Disposition.DISPATCHED
    ):
        print(f"directive: {event.directive.namespace}.{event.directive.name}", flush=True)


def ask_follow_up(event: ReceivedEvent) -> ScriptedReply:
    """How the simulator answers with `--simulator-expect-speech`: a question and ExpectSpeech,
    then a plain answer to the reply (which carries the ExpectSpeech initiator)."""
    from avsclient.simulator import ScriptedReply, directive, speech_asset

    dialog, answering = event.dialog_request_id, event.payload.get("initiator") == FOLLOW_UP
    speak = {"url": "cid:tts", "format": "AUDIO_MPEG", "token": f"{dialog}.speak"}
    replies = [directive("SpeechSynthesizer", "Speak", speak, dialog_request_id=dialog)]
    if not answering:
        expect = {"timeoutInMilliseconds": 8000, "initiator": FOLLOW_UP}
        replies.append(
            directive("SpeechRecognizer", "ExpectSpeech", expect, dialog_request_id=dialog)
        )
    mp3 = speech_asset("hello" if answering else "follow_up")
    return ScriptedReply.of(*replies, attachments={"tts": mp3})


async def connect(
    args: argparse.Namespace, stack: contextlib.AsyncExitStack, **options: Any
) -> AVSClient:
    """The client, with the simulator (--simulator) or the tokens `avsclient login` stored."""
    if args.simulator:
        from avsclient.simulator import Simulator  # only --simulator needs it

        sim = await stack.enter_async_context(Simulator())
        if args.simulator_expect_speech:
            sim.script.recognize(ask_follow_up)
        return AVSClient.for_simulator(sim, **options)
    return AVSClient.from_login(token_file=args.token_file, region=args.region, **options)


def open_source(args: argparse.Namespace) -> audio.AudioSource:
    if args.input:
        return audio.WavFileSource(args.input, realtime=True)
    # AVS ends a NEAR_FIELD turn with StopCapture; local end of speech bounds it regardless.
    return audio.EndpointedSource(audio.Microphone(device=args.device))


async def read_line() -> str:
    """One line of stdin ("" at its end), read on a daemon thread: stopping never waits for it."""
    loop, done, line = asyncio.get_running_loop(), asyncio.Event(), list[str]()

    def read() -> None:
        line.append(sys.stdin.readline())
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(done.set)

    threading.Thread(target=read, daemon=True).start()
    await done.wait()
    return line[0]


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


async def triggers(args: argparse.Namespace) -> AsyncIterator[str]:
    """Yield once per turn to take; changes of the trigger file during a turn count once."""
    if args.turns is not None:
        for n in range(1, args.turns + 1):
            yield f"turn {n} of {args.turns}"
    elif args.trigger_file:
        path = Path(args.trigger_file)
        seen = _stamp(path)
        print(f"Waiting for {path} to appear or change.", flush=True)
        while True:
            await asyncio.sleep(POLL_INTERVAL)
            now = _stamp(path)
            if now is not None and now != seen:
                yield f"{path} changed"
            seen = now
    else:
        print("Press Enter to talk, Ctrl-D to quit.", flush=True)
        while await read_line():
            yield "Enter"


async def device_loop(args: argparse.Namespace) -> None:
    async with contextlib.AsyncExitStack() as stack:
        if args.output:
            sink: audio.AudioSink = audio.WavFileSink(args.output, audio.PLAYBACK_FORMAT)
        else:
            sink = audio.Speaker(device=args.device)
        await stack.enter_async_context(sink)
        idle = asyncio.Event()
        idle.set()

        def on_event(event: ClientEvent) -> None:
            show(event)
            if isinstance(event, agents.RecognizerStateChanged):
                if event.new is agents.RecognizerState.IDLE:
                    idle.set()
                else:
                    idle.clear()

        client = await connect(
            args, stack, sink=sink, listener=on_event, source_factory=lambda: open_source(args)
        )
        await stack.enter_async_context(client)
        await client.wait_connected(timeout=30)
        print("Connected.", flush=True)
        if args.wake_word:
            await wake_word_loop(args, client, idle)
            return
        async for trigger in triggers(args):
            print(f"trigger: {trigger}", flush=True)
            dialog = await client.recognize(open_source(args))
            if dialog.result is not None and not dialog.result.ok:
                print(
                    f"turn failed: {dialog.result.outcome.name} ({dialog.result.error})", flush=True
                )
            # The exchange ends when the recognizer is idle and every directive is handled:
            # a follow-up Recognize for ExpectSpeech (and its answer) belongs to this turn.
            while True:
                await idle.wait()
                await client.pipeline.wait_idle()
                if idle.is_set():
                    break
            print("turn done", flush=True)


async def wake_word_loop(args: argparse.Namespace, client: AVSClient, idle: asyncio.Event) -> None:
    """Hands-free: every "Alexa" starts a turn (a barge-in while Alexa speaks)."""
    if args.input:  # the recording, then silence: a microphone that stays open
        mic: audio.AudioSource = audio.ContinuousSource(
            audio.WavFileSource(args.input, realtime=True)
        )
    else:
        mic = audio.Microphone(device=args.device)
    listener = agents.WakeWordListener(client.recognizer, mic)
    client.recognizer.source_factory = listener.live_source  # ExpectSpeech: the same microphone
    async with listener:
        print('state: Idle (say "Alexa ...")', flush=True)
        while args.turns is None or len(listener.dialogs) < args.turns:
            await asyncio.sleep(POLL_INTERVAL)
            if listener.error is not None:
                raise listener.error
        await listener.dialogs[-1].wait_finished()
        await idle.wait()
        await client.pipeline.wait_idle()
    print(f"{len(listener.dialogs)} wake-word turns done", flush=True)


async def run(args: argparse.Namespace) -> None:
    loop, task, stopping = asyncio.get_running_loop(), asyncio.current_task(), list[int]()
    assert task is not None

    def stop(signum: int) -> None:
        stopping.append(signum)
        task.cancel()  # cuts a turn short; the `async with` blocks close everything

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop, signum)
    try:
        await device_loop(args)
    except asyncio.CancelledError:
        if not stopping:
            raise
        print(f"stopped by {signal.Signals(stopping[0]).name}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulator", action="store_true", help="talk to a local simulator")
    parser.add_argument(
        "--simulator-expect-speech",
        action="store_true",
        help="the simulator asks a follow-up question on every turn (ExpectSpeech)",
    )
    parser.add_argument("--region", type=Region.parse, help="NA, EU or FE (default NA)")
    parser.add_argument("--token-file", help="tokens from `avsclient login` (default: its path)")
    trigger = parser.add_mutually_exclusive_group()
    trigger.add_argument("--trigger-file", help="take a turn whenever this file appears or changes")
    trigger.add_argument("--turns", type=int, help="take this many turns, one after the other")
    parser.add_argument(
        "--wake-word", action="store_true", help='start turns on "Alexa" (avsclient[wakeword])'
    )
    parser.add_argument("--input", help="a WAV file to say instead of using the microphone")
    parser.add_argument("--output", help="a WAV file to write replies to instead of playing them")
    parser.add_argument("--device", help="the PortAudio device to use (name or part of it)")
    args = parser.parse_args(argv)
    if args.input and not os.path.isfile(args.input):
        parser.error(f"--input {args.input}: no such file")
    if args.turns is not None and args.turns < 1:
        parser.error("--turns must be at least 1")
    if args.wake_word and args.trigger_file:
        parser.error("--wake-word and --trigger-file are two kinds of trigger: pick one")
    if args.simulator_expect_speech and not args.simulator:
        parser.error("--simulator-expect-speech needs --simulator")
    try:
        asyncio.run(run(args))
    except AudioError as exc:
        print(exc, file=sys.stderr)
        if not (args.input and args.output):
            hint = "--input FILE.wav replaces the microphone, --output FILE.wav the speaker"
            print(f"No audio device? {hint}.", file=sys.stderr)
        return 1
    except AVSError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
