"""examples/push_to_talk.py, examples/voice_loop.py and examples/custom_agent.py run against the
simulator (the first two with WAV files).

Each example runs as a script (no audio device needed: `--input` and `--output` replace the
microphone and the speaker) and is imported without running.
"""

from __future__ import annotations

import importlib.util
import queue
import shutil
import signal
import subprocess
import sys
import threading
import wave
from pathlib import Path
from types import ModuleType

import pytest

import avsclient
from avsclient.audio import PLAYBACK_FORMAT, decode_mp3
from avsclient.simulator import speech_asset

# The audio tests' private PulseAudio daemon (null sink + monitor). Imported, the session fixture
# is this module's own: a run of the whole suite starts a second daemon, in its own directory.
from tests.audio.conftest import PulseServer, pulse  # noqa: F401

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PUSH_TO_TALK = EXAMPLES / "push_to_talk.py"
VOICE_LOOP = EXAMPLES / "voice_loop.py"
CUSTOM_AGENT = EXAMPLES / "custom_agent.py"
UTTERANCE = Path(avsclient.__file__).parent / "assets" / "utterance.wav"
TIMEOUT = 60  # seconds for one run; a run takes about two
NO_SUCH_DEVICE = "no-such-device-for-the-example-tests"


@pytest.fixture
def question(tmp_path: Path) -> Path:
    """The bundled utterance, as a WAV file of the test's own."""
    return Path(shutil.copy(UTTERANCE, tmp_path / "question.wav"))


def asset_seconds(name: str) -> float:
    """How long the simulator's speech asset `name` plays."""
    pcm = decode_mp3(speech_asset(name), PLAYBACK_FORMAT)
    return len(pcm) / PLAYBACK_FORMAT.bytes_for_ms(1000)


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        assert wav.getframerate() == PLAYBACK_FORMAT.rate
        return wav.getnframes() / wav.getframerate()


def assert_length(path: Path, *assets: str) -> None:
    """The WAV file holds the replies `assets`, one after the other (within 20%)."""
    expected = sum(asset_seconds(name) for name in assets)
    assert wav_seconds(path) == pytest.approx(expected, rel=0.2)


def run(script: Path, *args: str, stdin: str = "", cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", str(script), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=cwd,
        check=False,
    )


def lines(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


# -- push_to_talk.py ------------------------------------------------------------------------


def test_push_to_talk_takes_one_turn_per_input_line(tmp_path: Path, question: Path) -> None:
    """Two input lines, two turns: both replies in the output WAV, states and latency shown."""
    out = tmp_path / "reply.wav"
    args = ("--simulator", "--input", str(question), "--output", str(out))
    done = run(PUSH_TO_TALK, *args, stdin="\n\n", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert_length(out, "hello", "hello")
    states = lines(done.stdout, "state: ")
    assert states == ["state: Listening", "state: Thinking", "state: Speaking", "state: Done"] * 2
    latency = lines(done.stdout, "latency ms: ")
    assert len(latency) == 2
    for line in latency:
        stamps = dict(item.split("=") for item in line.removeprefix("latency ms: ").split())
        assert stamps["audio_started"] == "0"
        assert {"first_response_byte", "SpeechSynthesizer.Speak", "speech_finished"} <= set(stamps)


def test_push_to_talk_uses_the_microphone_and_the_speaker(
    tmp_path: Path,
    pulse: PulseServer,  # noqa: F811 - the fixture imported above
) -> None:
    """Without --input and --output, a turn goes through the real devices: PortAudio's
    default input and output, here a PulseAudio null sink and its monitor."""
    done = subprocess.run(
        [sys.executable, "-W", "error", str(PUSH_TO_TALK), "--simulator"],
        input="\n",
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=tmp_path,
        env=pulse.env(),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    states = lines(done.stdout, "state: ")
    assert states == ["state: Listening", "state: Thinking", "state: Speaking", "state: Done"]
    (latency,) = lines(done.stdout, "latency ms: ")
    assert "speech_finished=" in latency


# -- voice_loop.py --------------------------------------------------------------------------


def test_voice_loop_takes_the_given_number_of_turns(tmp_path: Path, question: Path) -> None:
    """`--turns 2` takes two turns back to back and exits; both replies are written."""
    out = tmp_path / "replies.wav"
    args = ("--simulator", "--turns", "2", "--input", str(question), "--output", str(out))
    done = run(VOICE_LOOP, *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert_length(out, "hello", "hello")
    assert lines(done.stdout, "trigger: ") == ["trigger: turn 1 of 2", "trigger: turn 2 of 2"]
    assert len(lines(done.stdout, "turn done")) == 2
    assert (
        lines(done.stdout, "state: ")
        == [
            "state: Listening",
            "state: Thinking",
            "state: Speaking",
            "state: Done speaking",
        ]
        * 2
    )


def test_voice_loop_follows_expect_speech(tmp_path: Path, question: Path) -> None:
    """When the simulator asks a follow-up question, the loop listens again by itself and the
    answer to the follow-up is part of the same turn."""
    out = tmp_path / "replies.wav"
    args = ("--simulator", "--simulator-expect-speech", "--turns", "1")
    done = run(VOICE_LOOP, *args, "--input", str(question), "--output", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert_length(out, "follow_up", "hello")
    assert lines(done.stdout, "trigger: ") == ["trigger: turn 1 of 1"]
    states = lines(done.stdout, "state: ")
    assert states == [
        "state: Listening",
        "state: Thinking",
        "state: Speaking",
        "state: Done speaking",
        "state: Expecting speech",
        "state: Listening",
        "state: Thinking",
        "state: Speaking",
        "state: Done speaking",
    ]
    assert "directive: SpeechRecognizer.ExpectSpeech" in done.stdout.splitlines()
    # "turn done" comes once, after the follow-up's answer was spoken.
    assert done.stdout.splitlines()[-1] == "turn done"
    assert len(lines(done.stdout, "turn done")) == 1


def test_voice_loop_takes_a_turn_per_input_line_and_stops_at_eof(
    tmp_path: Path, question: Path
) -> None:
    """Without a trigger option, each stdin line is a trigger and end of input quits."""
    out = tmp_path / "replies.wav"
    args = ("--simulator", "--input", str(question), "--output", str(out))
    done = run(VOICE_LOOP, *args, stdin="\n", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert lines(done.stdout, "trigger: ") == ["trigger: Enter"]
    assert_length(out, "hello")


class _Lines:
    """A running example whose stdout lines are collected by a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, prefix: str) -> None:
        while True:
            try:
                line = self._queue.get(timeout=TIMEOUT)
            except queue.Empty:
                raise AssertionError(f"no {prefix!r} line; got {self.seen}") from None
            if line is None:
                raise AssertionError(f"exited before a {prefix!r} line; got {self.seen}")
            self.seen.append(line)
            if line.startswith(prefix):
                return

    def rest(self) -> list[str]:
        self._thread.join(TIMEOUT)
        while (line := self._queue.get_nowait()) is not None:
            self.seen.append(line)
        return self.seen


def test_voice_loop_triggers_on_a_file_and_stops_on_sigterm(tmp_path: Path, question: Path) -> None:
    """Creating the trigger file takes a turn; SIGTERM then stops the loop cleanly (exit 0,
    a complete WAV file)."""
    out, trigger = tmp_path / "replies.wav", tmp_path / "button"
    args = ["--simulator", "--trigger-file", str(trigger), "--input", str(question)]
    with subprocess.Popen(
        [sys.executable, "-W", "error", str(VOICE_LOOP), *args, "--output", str(out)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    ) as proc:
        try:
            output = _Lines(proc)
            output.wait_for("Waiting for ")
            trigger.touch()
            output.wait_for("turn done")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(TIMEOUT) == 0
            assert proc.stderr is not None
            assert proc.stderr.read() == ""
        finally:
            proc.kill()
        seen = output.rest()
    assert f"trigger: {trigger} changed" in seen
    assert seen[-1] == "stopped by SIGTERM"
    assert_length(out, "hello")


def test_voice_loop_stops_on_sigterm_in_the_middle_of_a_turn(
    tmp_path: Path, question: Path
) -> None:
    """SIGTERM while the question streams cancels the turn and closes everything: exit 0,
    nothing on stderr, and the output WAV is complete (if empty)."""
    out = tmp_path / "replies.wav"
    args = ["--simulator", "--turns", "1", "--input", str(question), "--output", str(out)]
    with subprocess.Popen(
        [sys.executable, "-W", "error", str(VOICE_LOOP), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    ) as proc:
        try:
            output = _Lines(proc)
            output.wait_for("state: Listening")  # the question streams in real time (~0.7 s)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(TIMEOUT) == 0
            assert proc.stderr is not None
            assert proc.stderr.read() == ""
        finally:
            proc.kill()
        seen = output.rest()
    assert seen[-1] == "stopped by SIGTERM"
    assert "turn done" not in seen
    assert wav_seconds(out) < asset_seconds("hello")


# -- both -----------------------------------------------------------------------------------

BOTH = pytest.mark.parametrize(
    ("script", "turn"),
    [(PUSH_TO_TALK, ()), (VOICE_LOOP, ("--turns", "1"))],
    ids=["push_to_talk", "voice_loop"],
)


@BOTH
def test_a_missing_speaker_is_reported_with_the_output_flag(
    script: Path, turn: tuple[str, ...], tmp_path: Path, question: Path
) -> None:
    """No such output device: exit 1 with the device error and a pointer to --output."""
    args = ("--simulator", "--device", NO_SUCH_DEVICE, "--input", str(question), *turn)
    done = run(script, *args, stdin="\n", cwd=tmp_path)
    assert done.returncode == 1
    assert "output device" in done.stderr or "PortAudio" in done.stderr
    assert "--output FILE.wav" in done.stderr
    assert "Traceback" not in done.stderr


@BOTH
def test_a_missing_microphone_is_reported_with_the_input_flag(
    script: Path, turn: tuple[str, ...], tmp_path: Path
) -> None:
    """No such input device: exit 1 with the device error and a pointer to --input."""
    out = tmp_path / "reply.wav"
    args = ("--simulator", "--device", NO_SUCH_DEVICE, "--output", str(out), *turn)
    done = run(script, *args, stdin="\n", cwd=tmp_path)
    assert done.returncode == 1
    assert "input device" in done.stderr or "PortAudio" in done.stderr
    assert "--input FILE.wav" in done.stderr
    assert "Traceback" not in done.stderr


@BOTH
def test_real_avs_without_tokens_asks_for_login(
    script: Path, turn: tuple[str, ...], tmp_path: Path, question: Path
) -> None:
    """Without --simulator and without a token file, the example says to run `avsclient login`
    (before any network traffic)."""
    args = ("--token-file", str(tmp_path / "tokens.json"), "--input", str(question), *turn)
    done = run(script, *args, "--output", str(tmp_path / "reply.wav"), stdin="\n", cwd=tmp_path)
    assert done.returncode == 1
    assert "avsclient login" in done.stderr
    assert "Traceback" not in done.stderr


def _load(script: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(script.stem, script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("script", [PUSH_TO_TALK, VOICE_LOOP], ids=lambda p: p.stem)
def test_the_example_imports_without_running(
    script: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Importing runs nothing; main() builds its parser (--help exits 0 listing the flags)."""
    module = _load(script)
    assert capsys.readouterr().out == ""
    with pytest.raises(SystemExit) as info:
        module.main(["--help"])
    assert info.value.code == 0
    usage = capsys.readouterr().out
    for flag in ("--simulator", "--input", "--output", "--device", "--token-file"):
        assert flag in usage


@pytest.mark.parametrize("script", [PUSH_TO_TALK, VOICE_LOOP], ids=lambda p: p.stem)
def test_a_missing_input_file_is_a_usage_error(
    script: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--input naming no file stops before anything connects (exit 2, the path named)."""
    missing = tmp_path / "missing.wav"
    with pytest.raises(SystemExit) as info:
        _load(script).main(["--simulator", "--input", str(missing)])
    assert info.value.code == 2
    assert f"--input {missing}: no such file" in capsys.readouterr().err


def test_voice_loop_rejects_simulator_options_without_the_simulator(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--simulator-expect-speech without --simulator, or --turns 0, are usage errors."""
    module = _load(VOICE_LOOP)
    for argv in (["--simulator-expect-speech"], ["--simulator", "--turns", "0"]):
        with pytest.raises(SystemExit) as info:
            module.main(argv)
        assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--simulator-expect-speech needs --simulator" in err
    assert "--turns must be at least 1" in err


# -- custom_agent.py ------------------------------------------------------------------------


def test_custom_agent_answers_its_directive_and_reports_its_state(tmp_path: Path) -> None:
    """The lamp agent declares its capability, is in SynchronizeState's context, handles the
    SetColor the simulator pushes, the simulator records its ColorChanged, and the new color
    goes out with the next Recognize."""
    done = run(CUSTOM_AGENT, "--simulator", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    out = done.stdout.splitlines()
    assert out[0] == (
        "capabilities: System 1.4, Speaker 1.0, SpeechSynthesizer 1.3, SpeechRecognizer 2.3, "
        "Alerts 1.3, Alexa 3, Alexa.ApiGateway 1.0, InteractionModel 1.2, Notifications 1.0, "
        "Acme.Lamp 1.0"
    )
    assert 'SynchronizeState context: {"color": "white"}' in out
    assert "directive: Acme.Lamp.SetColor" in out
    assert 'AVS received: Acme.Lamp.ColorChanged {"color": "blue"}' in out
    assert out.index("lamp: blue") < out.index(
        'AVS received: Acme.Lamp.ColorChanged {"color": "blue"}'
    )
    assert out[-1] == 'Recognize context: {"color": "blue"}'


def test_custom_agent_imports_without_running_and_needs_the_simulator(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Importing runs nothing; without --simulator it is a usage error that says why."""
    module = _load(CUSTOM_AGENT)
    assert capsys.readouterr().out == ""
    with pytest.raises(SystemExit) as info:
        module.main([])
    assert info.value.code == 2
    assert "run it with --simulator" in capsys.readouterr().err
