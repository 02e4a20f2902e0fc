"""`avsclient talk`: a push-to-talk voice loop on the console.

Press Enter to talk: the microphone (or `--input FILE.wav`) streams to AVS as a Recognize
event while the console shows the state (Listening, Thinking, Speaking), every event sent and
directive received, each turn's latency figures, and plays the reply through the speaker (or
`--output FILE.wav`). ExpectSpeech dialogs continue on their own. Music, timers and alarms
play through the same output; a line of `p`, `s`, `n` or `b` presses the play, pause (stop),
next or previous button (PlaybackController), and a line of `a` stops the ringing alert
(AlertStopped), instead of starting a turn. `--simulator` runs the whole loop against an
in-process AVS simulator, which needs no account and no network.

When stdin is not a terminal each input line is one turn and end of input quits; `--once`
runs a single turn (with its follow-ups) and quits, as `make demo` does. Without an audio
output device the reply is written to `reply.wav`, and the command says so.

`--wake-word` listens all the time instead and starts a turn on "Alexa" (extra `wakeword`);
with `--input FILE.wav` the file stands in for the microphone as a continuous stream (silence
after its end), so a recording of "Alexa, what time is it?" drives a whole turn. The state
(idle, listening, thinking, speaking) prints as it changes.

Arguments are checked before anything connects (an unreadable `--input`, an unwritable
`--output`, a missing microphone). Ctrl-C and SIGTERM stop it cleanly: the turn is cut, the
output file is completed, temporary files go, and the exit status is 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO

from avsclient.agents import (
    AlertStateChanged,
    AuthorizationRevoked,
    ClientEvent,
    ConnectionStatusChanged,
    DirectiveObserved,
    DiscoveryStateChanged,
    EventSent,
    ExceptionReceived,
    IndicatorChanged,
    ProcessingStateChanged,
    RecognizerStateChanged,
    SpeechStateChanged,
)
from avsclient.agents.speech_recognizer import RecognizerState
from avsclient.agents.speech_synthesizer import SpeechActivity
from avsclient.audio import PLAYBACK_FORMAT, AudioFormat, AudioSink, AudioSource, WavFileSink
from avsclient.avs.policy import ChangedReason, ConnectionStatus
from avsclient.cli import _args
from avsclient.config import ClientConfig, DeviceInfo
from avsclient.exceptions import AudioError, AVSError

if TYPE_CHECKING:
    from avsclient.agents import Dialog
    from avsclient.auth import TokenProvider
    from avsclient.client import AVSClient

__all__ = ["add_arguments", "run"]

#: Where the reply goes when there is no audio output device.
FALLBACK_OUTPUT = Path("reply.wav")
PROFILES = ("NEAR_FIELD", "FAR_FIELD", "CLOSE_TALK")
# After the last state change of a turn, how long the loop must stay idle before the turn
# counts as over: a Speak that finishes is followed within milliseconds by an ExpectSpeech
# of the same dialog, which starts another turn.
_SETTLE = 0.5
#: The line that stops the ringing alert instead of starting a turn.
STOP_ALERT_KEY = "a"
#: Lines that press a PlaybackController button instead of starting a turn.
BUTTON_KEYS = {"p": "play", "s": "pause", "n": "next", "b": "previous"}
HELP_LINE = (
    "Press Enter to talk; p play, s pause, n next, b previous, a stops a ringing alert, "
    "then Enter (Ctrl-D to quit)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `talk` options to `parser`."""
    parser.description = "Talk to Alexa: a push-to-talk voice loop."
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--simulator", action="store_true", help="talk to an in-process AVS simulator"
    )
    where.add_argument(
        "--endpoint", help="AVS base URL (default: the region's host; $AVSCLIENT_ENDPOINT)"
    )
    parser.add_argument(
        "--region", type=_args.region, help="NA, EU or FE, any case (default NA; $AVSCLIENT_REGION)"
    )
    parser.add_argument("--ca-file", help="PEM file of CAs to trust ($AVSCLIENT_CA_FILE)")
    parser.add_argument(
        "--token-file", type=Path, help="tokens from `avsclient login` ($AVSCLIENT_TOKEN_FILE)"
    )
    parser.add_argument("--lwa-url", help="Login with Amazon base URL ($AVSCLIENT_LWA_URL)")
    _args.add_device_identity(parser)
    parser.add_argument(
        "--input",
        action="append",
        type=_args.wav_input,
        metavar="FILE.wav",
        help="speak this WAV file instead of the microphone (repeat for follow-up turns; "
        "integer PCM or float, any rate and channel count)",
    )
    parser.add_argument(
        "--output",
        type=_args.wav_output,
        metavar="FILE.wav",
        help="write replies here, not to the speaker",
    )
    parser.add_argument(
        "--device",
        type=_args.device,
        help="audio device for input and output: an index or part of its name, as "
        "`avsclient doctor` lists them ($AVSCLIENT_DEVICE)",
    )
    parser.add_argument("--input-device", type=_args.device, help="the microphone, if different")
    parser.add_argument("--output-device", type=_args.device, help="the speaker, if different")
    parser.add_argument("--profile", choices=PROFILES, default="NEAR_FIELD")
    parser.add_argument("--once", action="store_true", help="one turn (and follow-ups), then quit")
    parser.add_argument(
        "--wake-word",
        action="store_true",
        help='listen all the time and start a turn on "Alexa" (needs avsclient[wakeword])',
    )
    parser.add_argument(
        "--listen-timeout",
        type=_args.positive_seconds,
        default=None,
        metavar="SECONDS",
        help="with --wake-word: give up when no wake word is heard for this long "
        "(default: never; 60 s with --once --input)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=_args.positive_seconds,
        default=30.0,
        help="seconds to wait for AVS (30)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log avsclient's DEBUG messages to stderr"
    )


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run the voice loop; exit status 0 when every turn succeeded, 1 otherwise."""
    out = out or sys.stdout
    for way in ("input_device", "output_device"):
        if getattr(args, way) is None:
            setattr(args, way, args.device)
    try:
        _args.fill_from_environment(args)
    except ValueError as exc:
        print(f"avsclient talk: {exc}", file=sys.stderr)
        return 2
    # Warnings (a failed connection attempt and why) go to stderr; -v adds avsclient's DEBUG
    # messages, latency traces included. Tokens are redacted from every log (see _redaction).
    logging.basicConfig(stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("avsclient").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    console = _Console(out)
    try:
        return asyncio.run(_talk(args, console))
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C, SIGTERM: after the cleanup
        console.say("Stopped.")
        return 0


class _Console:
    """Prints what happens, one line each, stamped with the seconds since the command started
    (one time base for the whole run)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        with contextlib.suppress(BrokenPipeError):
            print(text, file=self.out, flush=True)

    def note(self, text: str) -> None:
        self.say(f"  {time.monotonic() - self.started:8.3f} s  {text}")


# Why the connection changed, in plain words.
_REASON_WORDS = {
    ChangedReason.NONE: "",
    ChangedReason.CLIENT_REQUEST: "",
    ChangedReason.SUCCESS: "",
    ChangedReason.SERVER_SIDE_DISCONNECT: "AVS ended the connection",
    ChangedReason.PING_TIMEOUT: "AVS stopped answering pings",
    ChangedReason.GOAWAY: "AVS asked to reconnect",
    ChangedReason.INVALID_AUTH: "the access token was refused",
    ChangedReason.NETWORK_ERROR: "a network error",
    ChangedReason.CONNECTION_TIMEDOUT: "AVS took too long to answer",
    ChangedReason.SERVER_ERROR: "AVS answered with an error",
    ChangedReason.PROTOCOL_ERROR: "AVS sent something malformed",
    ChangedReason.ENDPOINT_CHANGED: "AVS moved this device to another endpoint",
    ChangedReason.INTERNAL_ERROR: "an internal error",
}
_STATUS_WORDS = {"disconnected": "Disconnected", "pending": "Connecting", "connected": "Connected"}


_STATE_WORDS = {
    RecognizerState.RECOGNIZING: "Listening...",
    RecognizerState.BUSY: "Thinking...",
    RecognizerState.EXPECTING_SPEECH: "Alexa expects an answer...",
}


class _Activity:
    """Follows the client's observations: what to print, and when a turn is over."""

    def __init__(self, console: _Console) -> None:
        self.console = console
        self.recognizer = RecognizerState.IDLE
        self.speaking = False
        self.changed = asyncio.Event()
        self.last_change = time.monotonic()
        self.connected_once = False

    def __call__(self, event: ClientEvent) -> None:
        note = self.console.note
        if isinstance(event, ConnectionStatusChanged):
            first = event.status is ConnectionStatus.CONNECTED and not self.connected_once
            self.connected_once |= event.status is ConnectionStatus.CONNECTED
            if first or event.reason is ChangedReason.CLIENT_REQUEST:
                return  # the command says when it connects and when it stops
            words = _STATUS_WORDS.get(event.status.name.lower(), event.status.name.lower())
            why = _REASON_WORDS.get(event.reason, event.reason.name.lower().replace("_", " "))
            note(f"{words}: {why}" if why else words)
        elif isinstance(event, RecognizerStateChanged):
            self.recognizer = event.new
            if event.new in _STATE_WORDS:
                note(_STATE_WORDS[event.new])
        elif isinstance(event, SpeechStateChanged):
            self.speaking = event.activity is SpeechActivity.PLAYING
            note("Speaking..." if self.speaking else f"Speech {event.activity.name.lower()}")
        elif isinstance(event, DirectiveObserved):
            d = event.directive
            note(f"<- {d.namespace}.{d.name} ({event.disposition.name.lower()})")
        elif isinstance(event, EventSent):
            status = "" if event.result.status is None else f" {event.result.status}"
            note(f"-> {event.namespace}.{event.name}: {event.result.outcome.name}{status}")
        elif isinstance(event, ExceptionReceived):
            note(f"AVS exception {event.code}: {event.description}")
        elif isinstance(event, ProcessingStateChanged):
            note("THINKING (AVS is processing)..." if event.thinking else "AVS finished processing")
        elif isinstance(event, DiscoveryStateChanged):
            why = f": {event.reason}" if event.reason else ""
            retry = (
                f", next attempt in {event.retry_in:.1f} s" if event.retry_in is not None else ""
            )
            note(f"Discovery {event.state.name.lower()}{why}{retry}")
        elif isinstance(event, IndicatorChanged):
            light = "on" if event.visual else "off"
            note(f"notification indicator {'set' if event.enabled else 'cleared'}, light {light}")
        elif isinstance(event, AuthorizationRevoked):
            self.console.say("AVS deregistered this device: link it again with `avsclient login`.")
        elif isinstance(event, AlertStateChanged):
            hint = f" (`{STOP_ALERT_KEY}` then Enter stops it)" if event.state == "STARTED" else ""
            note(f"alert {event.token}: {event.state.lower()}{hint}")
        self.last_change = time.monotonic()
        self.changed.set()

    @property
    def busy(self) -> bool:
        return self.speaking or self.recognizer is not RecognizerState.IDLE

    async def wait_idle(self, timeout: float) -> None:
        """Wait until nothing has happened for `_SETTLE` seconds with the loop idle."""
        deadline = time.monotonic() + timeout
        while True:
            quiet = time.monotonic() - self.last_change
            if not self.busy and quiet >= _SETTLE:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the dialog did not finish in time")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(remaining, _SETTLE - quiet + 0.01))


class _MeteredSink(AudioSink):
    """Passes audio to a sink and counts how much was played."""

    def __init__(self, sink: AudioSink, description: str) -> None:
        self.sink = sink
        self.description = description
        self.writes_file = isinstance(sink, WavFileSink)
        self.bytes_written = 0

    @property
    def format(self) -> AudioFormat:
        return self.sink.format

    @property
    def seconds(self) -> float:
        fmt = self.format
        return self.bytes_written / (fmt.rate * fmt.channels * fmt.sample_width)

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        await self.sink.write(data)
        self.bytes_written += len(data)

    async def drain(self) -> None:
        await self.sink.drain()

    async def stop(self) -> None:
        await self.sink.stop()

    async def aclose(self) -> None:
        await self.sink.aclose()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _open_sink(output: Path | None, device: int | str | None, console: _Console) -> _MeteredSink:
    if output is not None:
        return _MeteredSink(WavFileSink(output, PLAYBACK_FORMAT), f"written to {output}")
    from avsclient.audio import Speaker

    try:
        return _MeteredSink(Speaker(device=device), "played through the speaker")
    except AudioError as exc:
        console.say(f"No audio output ({exc}).")
        console.say(f"Replies will be written to {FALLBACK_OUTPUT} instead.")
        return _MeteredSink(
            WavFileSink(FALLBACK_OUTPUT, PLAYBACK_FORMAT),
            f"written to {FALLBACK_OUTPUT} (no audio output device)",
        )


@dataclass
class _Sources:
    """Opens what the user says: the next input file, or the microphone.

    CLOSE_TALK utterances are ended by the device, not the cloud (avs-protocol 3.3), so their
    sources end at the end of speech (energy-based endpointing).
    """

    inputs: list[Path]
    profile: str
    device: int | str | None = None
    used: int = 0

    def open(self) -> AudioSource:
        source: AudioSource
        if self.inputs:
            from avsclient.audio import WavFileSource

            path = self.inputs[min(self.used, len(self.inputs) - 1)]
            self.used += 1
            source = WavFileSource(path, realtime=True)
        else:
            from avsclient.audio import Microphone

            source = Microphone(device=self.device)
        if self.profile == "CLOSE_TALK":
            from avsclient.audio import EndpointedSource

            source = EndpointedSource(source)
        return source


class _Lines:
    """Lines from stdin without a blocking thread (a pipe or a terminal)."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._buffer = b""
        self._fd = sys.stdin.fileno()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._fd, self._readable)

    def _readable(self) -> None:
        chunk = os.read(self._fd, 4096)
        if not chunk:
            self._loop.remove_reader(self._fd)
            self._queue.put_nowait(None)
            return
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            self._queue.put_nowait(line.decode(errors="replace"))

    async def next(self) -> str | None:
        return await self._queue.get()

    def push_back(self, line: str | None) -> None:
        self._queue.put_nowait(line)

    def close(self) -> None:
        self._loop.remove_reader(self._fd)


#: The device the simulator run describes in its Discovery report.
SIMULATED_DEVICE = DeviceInfo(
    client_id="amzn1.application-oa2-client.simulated",
    product_id="avsclient_talk",
    device_serial_number="talk-0001",
    description="avsclient talk against the local simulator",
    firmware_version=1,
)


async def _tokens_and_config(
    args: argparse.Namespace, stack: contextlib.AsyncExitStack, console: _Console
) -> tuple[TokenProvider, ClientConfig, dict[str, Any]]:
    """The tokens, the configuration and the client's `device` and `store` options."""
    from avsclient.auth import StaticTokenProvider

    if args.simulator:
        from avsclient.simulator import Simulator

        sim = await stack.enter_async_context(Simulator())
        sim.script.recognize(processing=True)  # shows InteractionModel's THINKING
        console.say(f"AVS simulator at {sim.url}")
        # A SetEndpoint from the simulator may name the simulator's own host, not Amazon's.
        config = ClientConfig(endpoint=sim.url, ca_file=sim.ca_file, endpoint_hosts=(sim.host,))
        # The simulator is new each run: so is its device store, and the Discovery exchange
        # shows every time.
        simulated = {"store": False, "device": SIMULATED_DEVICE}
        return StaticTokenProvider(sim.add_token()), config, simulated
    from avsclient.auth import LWAConfig, LWAHttpClient, RefreshingTokenProvider, TokenStore
    from avsclient.store import STORE_FILE_NAME

    store = TokenStore(args.token_file)
    stored = store.load()
    if stored is None:
        raise _UsageError(f"no tokens at {store.path}: run `avsclient login` first")
    lwa = LWAConfig(client_id=stored.client_id, **({"url": args.lwa_url} if args.lwa_url else {}))
    # --ca-file trusts a private CA for both services (the simulator serves both).
    http = LWAHttpClient(lwa.url, ca_file=args.ca_file, timeout=lwa.timeout)
    stack.push_async_callback(http.aclose)
    tokens = await stack.enter_async_context(RefreshingTokenProvider(lwa, store=store, http=http))
    config = ClientConfig(endpoint=args.endpoint, region=args.region, ca_file=args.ca_file)
    # A real device keeps its store next to its token file, and describes itself as linked.
    extra: dict[str, Any] = {"store": store.path.parent / STORE_FILE_NAME}
    product_id, serial = getattr(args, "product_id", None), getattr(args, "serial", None)
    if (product_id or stored.product_id) and (serial or stored.device_serial_number):
        extra["device"] = stored.device(product_id=product_id, serial=serial)
    else:
        console.say(
            f"No product id and serial number in {store.path} (linked by an older avsclient): "
            "no Discovery report is sent. Run `avsclient login` again, or give --product-id "
            "and --serial."
        )
    return tokens, config, extra


class _UsageError(Exception):
    pass


def _latency_line(dialog: Dialog) -> str:
    """The turn's latency figures: durations, each named with the moment it starts from."""
    trace = dialog.trace
    start, last_audio = trace.audio_started_at, trace.last_audio_sent_at
    speak = trace.directive_at("SpeechSynthesizer.Speak")

    def ms(begin: float | None, end: float | None) -> str:
        return "-" if begin is None or end is None else f"{(end - begin) * 1000:.0f} ms"

    # The response may begin while audio still flows (StopCapture for NEAR_FIELD), so the
    # first response byte is measured from the start of the audio.
    return (
        f"latency: {ms(start, last_audio)} of audio sent; the answer began "
        f"{ms(start, trace.first_response_byte_at)} after the first audio byte; after the "
        f"last one, Speak arrived in {ms(last_audio, speak)} and speech began in "
        f"{ms(last_audio, trace.speech_started_at)}"
    )


def _reply_line(seconds: float, sink: _MeteredSink, dialog: Dialog) -> str:
    """How much speech the turn's reply held, and where it went (and how long that took)."""
    trace = dialog.trace
    began, ended = trace.speech_started_at, trace.speech_finished_at
    line = f"Reply: {seconds:.2f} s of speech, {sink.description}"
    if began is None or ended is None:
        return line
    if sink.writes_file:
        return f"{line}, in {(ended - began) * 1000:.0f} ms"
    return f"{line} over {ended - began:.2f} s"


async def _end_of_turn(
    dialog: Dialog, activity: _Activity, console: _Console, *, say_failure: bool
) -> int:
    """Wait for the turn to finish and the device to go idle; the number of failures (0-2).

    A device still busy after 120 s is said; a failed Recognize event only with `say_failure`.
    """
    failures = 0
    await dialog.wait_finished()
    try:
        await activity.wait_idle(timeout=120)
    except TimeoutError as exc:
        console.say(str(exc))
        failures += 1
    if dialog.result is None or not dialog.result.ok:
        if say_failure:
            outcome = "no result" if dialog.result is None else dialog.result.outcome.name
            console.say(f"The Recognize event failed: {outcome}")
        failures += 1
    return failures


async def _stop_on_enter(
    recognizing: asyncio.Future[Dialog], source: AudioSource, lines: _Lines
) -> None:
    """Close the source (ending the upload) if a line arrives before the upload ends."""
    line = asyncio.ensure_future(lines.next())
    waiting: set[asyncio.Future[Any]] = {recognizing, line}
    done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    if line in done:
        if line.result() is None:
            lines.push_back(None)  # end of input: quit after this turn
        await source.aclose()
    else:
        line.cancel()


async def _check_microphone(device: int | str | None) -> None:
    """Open and close the microphone, so that a missing one is found before connecting."""
    from avsclient.audio import Microphone

    await Microphone(device=device).aclose()


def _stop_on_sigterm() -> None:
    """SIGTERM ends the run as Ctrl-C does: the main task is cancelled and cleans up."""
    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    assert task is not None
    with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
        loop.add_signal_handler(signal.SIGTERM, task.cancel)


async def _talk(args: argparse.Namespace, console: _Console) -> int:
    from avsclient.client import AVSClient

    _stop_on_sigterm()
    failures = 0
    async with contextlib.AsyncExitStack() as stack:
        try:
            tokens, config, extra = await _tokens_and_config(args, stack, console)
        except (_UsageError, AVSError, ValueError) as exc:
            console.say(f"avsclient talk: {exc}")
            return 2
        try:
            if not args.input:
                await _check_microphone(args.input_device)
            sink = _open_sink(args.output, args.output_device, console)
        except AudioError as exc:
            console.say(f"avsclient talk: {exc}")
            if not args.input:
                console.say("No microphone? --input FILE.wav speaks a file instead.")
            return 1
        stack.push_async_callback(sink.aclose)
        sources = _Sources(list(args.input or []), args.profile, args.input_device)
        activity = _Activity(console)
        client = AVSClient(config, tokens, sink=sink, source_factory=sources.open, **extra)
        client.add_listener(activity)
        console.say(f"Connecting to {config.url()} (waiting up to {args.connect_timeout:g} s)...")
        await stack.enter_async_context(client)
        try:
            await client.wait_connected(args.connect_timeout)
        except AVSError as exc:
            console.say(f"Could not connect to AVS at {config.url()}: {exc}")
            return 1
        console.say(f"Connected to {config.url()}.")
        if args.wake_word:
            return await _wake_word_loop(args, client, sink, activity, console)
        lines = None if args.once else _Lines()
        if lines is not None:
            stack.callback(lines.close)
        interactive = sys.stdin.isatty()
        turn = 0
        while True:
            if lines is not None:
                if interactive:
                    console.say(HELP_LINE)
                line = await lines.next()
                if line is None:
                    break
                if line.strip().lower() == STOP_ALERT_KEY:
                    stopped = await client.alerts.stop()
                    console.say("alert stopped" if stopped else "no alert is ringing")
                    continue
                button = BUTTON_KEYS.get(line.strip().lower())
                if button is not None:
                    console.say(f"{button} pressed")
                    await getattr(client.playback, button)()
                    await client.messenger.flush()
                    continue
            turn += 1
            console.say(f"Turn {turn}:")
            try:
                source = sources.open()
            except AudioError as exc:
                console.say(f"No microphone ({exc}); use --input FILE.wav")
                return 1
            played_before = sink.seconds
            recognizing = asyncio.ensure_future(client.recognize(source, profile=args.profile))
            if interactive and lines is not None:
                # At the terminal, Enter while listening ends the utterance (tap to stop).
                console.say("(press Enter to stop talking)")
                await _stop_on_enter(recognizing, source, lines)
            dialog = await recognizing
            failures += await _end_of_turn(dialog, activity, console, say_failure=True)
            console.say(_latency_line(dialog))
            console.say(_reply_line(sink.seconds - played_before, sink, dialog))
            if args.once:
                break
        if turn > 1:
            console.say(f"Done: {turn} turns, {sink.seconds:.2f} s of speech {sink.description}.")
    return 1 if failures else 0


def _state_of(activity: _Activity) -> str:
    if activity.speaking:
        return "speaking"
    if activity.recognizer is RecognizerState.BUSY:
        return "thinking"
    if activity.recognizer is RecognizerState.IDLE:
        return "idle"
    return "listening"


async def _wake_word_loop(
    args: argparse.Namespace,
    client: AVSClient,
    sink: _MeteredSink,
    activity: _Activity,
    console: _Console,
) -> int:
    """Turns started by the wake word, until Ctrl-C (or one with --once)."""
    from avsclient.agents import WakeWordDetected, WakeWordListener, WakeWordRejected
    from avsclient.audio import ContinuousSource, MixerChannel, WavFileSource

    source: AudioSource
    try:
        if args.input:
            source = ContinuousSource(WavFileSource(args.input[0], realtime=True))
        else:
            from avsclient.audio import Microphone

            source = Microphone(device=args.input_device)
    except AudioError as exc:
        console.say(f"No microphone ({exc}); use --input FILE.wav")
        return 1
    speech_out = client.synthesizer.mp3.sink
    tones = speech_out.mixer.channel("Earcon") if isinstance(speech_out, MixerChannel) else None
    profile = "NEAR_FIELD" if args.profile == "CLOSE_TALK" else args.profile
    try:
        listener = WakeWordListener(client.recognizer, source, profile=profile, tone_sink=tones)
    except AudioError as exc:
        await source.aclose()
        console.say(f"No wake-word engine: {exc}")
        return 1
    client.recognizer.source_factory = listener.live_source  # follow-ups from the same ring
    timeout = args.listen_timeout
    if timeout is None and args.once and args.input:
        timeout = 60.0
    heard = asyncio.Event()
    state = "idle"

    def follow(event: ClientEvent) -> None:
        nonlocal state
        if isinstance(event, WakeWordDetected):
            if event.accepted:
                heard.set()
            verdict = "" if event.accepted else " (ignored: already listening)"
            console.note(f"wake word {event.wake_word} p={event.probability:.2f}{verdict}")
        elif isinstance(event, WakeWordRejected):
            console.note("AVS did not confirm the wake word; listening again")
        now = _state_of(activity)
        if now != state:
            state = now
            console.say(f"state: {state}")

    client.add_listener(follow)
    failures = 0
    async with listener:
        console.say('state: idle (say "Alexa ...")')
        while True:
            try:
                await asyncio.wait_for(heard.wait(), timeout)
            except TimeoutError:
                console.say(f"No wake word heard within {timeout:.0f} s.")
                return 1
            heard.clear()
            done, unfollowed = listener.turns, listener.unfollowed
            try:
                async with asyncio.timeout(120):
                    while (
                        listener.turns == done
                        and listener.unfollowed == unfollowed
                        and listener.error is None
                    ):
                        await asyncio.sleep(0.05)
            except TimeoutError:
                console.say("The wake-word turn did not finish in time")
                return 1
            if listener.error is not None:
                console.say(f"The microphone failed: {listener.error}")
                return 1
            if listener.turns == done:
                console.note("the wake word could not start a turn; listening again")
                continue
            dialog = listener.dialogs[-1]
            failures += await _end_of_turn(dialog, activity, console, say_failure=False)
            trace = dialog.trace
            if trace.wake_word_detected_at is not None and trace.audio_started_at is not None:
                wake_ms = (trace.audio_started_at - trace.wake_word_detected_at) * 1000
                console.say(f"wake word to first audio byte: {wake_ms:.1f} ms")
            console.say(_latency_line(dialog))
            if args.once:
                break
    console.say(f"Done: {sink.seconds:.2f} s of speech {sink.description}.")
    return 1 if failures else 0
