"""Push-to-talk: press Enter, speak, hear Alexa's answer, and see the states and the latency.

    python examples/push_to_talk.py --simulator            # an in-process AVS simulator
    python examples/push_to_talk.py --region EU            # real AVS, after `avsclient login`
    python examples/push_to_talk.py --simulator --input question.wav --output reply.wav

When stdin is not a terminal, each input line is one turn and end of input quits. Ctrl-C and
SIGTERM stop it cleanly (exit status 0, files closed), as they stop `avsclient talk`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import threading

from avsclient import AVSClient, ClientEvent, Dialog, Region, agents, audio
from avsclient.exceptions import AudioError, AVSError

STATES = {"RECOGNIZING": "Listening", "BUSY": "Thinking", "PLAYING": "Speaking", "FINISHED": "Done"}


def show(event: ClientEvent) -> None:
    if isinstance(event, agents.RecognizerStateChanged) and event.new.value in STATES:
        print("state:", STATES[event.new.value], flush=True)
    elif isinstance(event, agents.SpeechStateChanged):
        print("state:", STATES.get(event.activity.value, "Interrupted"), flush=True)
    elif isinstance(event, agents.ExpectingSpeech):
        print(f"Alexa expects an answer: press Enter within {event.timeout:g} s", flush=True)


def report(dialog: Dialog) -> str:
    if dialog.result is not None and not dialog.result.ok:
        return f"turn failed: {dialog.result.outcome.name} ({dialog.result.error})"
    trace = dialog.trace.relative_ms()  # milliseconds after the first audio frame
    stamps = [(k, ms) for k, ms in [*trace.pop("directives"), *trace.items()] if ms is not None]
    return "latency ms: " + " ".join(
        f"{k}={ms:.0f}" for k, ms in sorted(stamps, key=lambda s: s[1])
    )


async def read_line() -> str:
    """One line of stdin ("" at its end), read on a daemon thread: Ctrl-C never waits for it."""
    loop, done, line = asyncio.get_running_loop(), asyncio.Event(), list[str]()

    def read() -> None:
        line.append(sys.stdin.readline())
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(done.set)

    threading.Thread(target=read, daemon=True).start()
    await done.wait()
    return line[0]


async def connect(args: argparse.Namespace, stack: contextlib.AsyncExitStack) -> AVSClient:
    if args.output:
        sink: audio.AudioSink = audio.WavFileSink(args.output, audio.PLAYBACK_FORMAT)
    else:
        sink = audio.Speaker(device=args.device)
    await stack.enter_async_context(sink)
    if args.simulator:
        from avsclient.simulator import Simulator  # only --simulator needs it

        sim = await stack.enter_async_context(Simulator())
        client = AVSClient.for_simulator(sim, sink=sink, listener=show)
    else:  # the token file `avsclient login` wrote, refreshed and rewritten as needed
        client = AVSClient.from_login(
            token_file=args.token_file, region=args.region, sink=sink, listener=show
        )
    await stack.enter_async_context(client)
    await client.wait_connected(timeout=30)
    return client


async def talk(args: argparse.Namespace) -> None:
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    assert task is not None
    for signum in (signal.SIGINT, signal.SIGTERM):  # stop cleanly: cut the turn, close all
        loop.add_signal_handler(signum, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await talk_until_end(args)


async def talk_until_end(args: argparse.Namespace) -> None:
    async with contextlib.AsyncExitStack() as stack:
        client = await connect(args, stack)
        print("Connected. Press Enter to talk, Ctrl-D to quit.", flush=True)
        while await read_line():
            if args.input:
                source: audio.AudioSource = audio.WavFileSource(args.input, realtime=True)
            else:  # ends at AVS's StopCapture, or locally at the end of speech
                source = audio.EndpointedSource(audio.Microphone(device=args.device))
            dialog = await client.recognize(source)
            await dialog.wait_finished()  # the answer has been spoken
            print(report(dialog), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--simulator", action="store_true", help="talk to a local simulator")
    parser.add_argument("--region", type=Region.parse, help="NA, EU or FE (default NA)")
    parser.add_argument("--token-file", help="tokens from `avsclient login` (default: its path)")
    parser.add_argument("--input", help="a WAV file to say instead of using the microphone")
    parser.add_argument("--output", help="a WAV file to write replies to instead of playing them")
    parser.add_argument("--device", help="the PortAudio device to use (name or part of it)")
    args = parser.parse_args(argv)
    if args.input and not os.path.isfile(args.input):
        parser.error(f"--input {args.input}: no such file")
    try:
        asyncio.run(talk(args))
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
