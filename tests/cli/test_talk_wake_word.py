"""`avsclient talk --wake-word`: a real process, espeak-ng speech as a continuous stream."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.audio.conftest import read_wav_as_avs, write_wav
from tests.audio.wake_corpus import silence
from tests.helpers import require_executable


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONWARNINGS": "error"}


@pytest.fixture(scope="module")
def alexa_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One second of silence, then "Alexa, what time is it?"."""
    espeak = require_executable("espeak-ng")
    folder = tmp_path_factory.mktemp("talk-wake")
    raw = folder / "raw.wav"
    subprocess.run([espeak, "-w", str(raw), "Alexa, what time is it?"], check=True, timeout=30)
    speech = read_wav_as_avs(raw)
    return write_wav(folder / "alexa.wav", np.concatenate([silence(1000), speech]), 16000)


def test_talk_wake_word_takes_a_turn_from_a_recording(tmp_path: Path, alexa_wav: Path) -> None:
    """The recording stands in for the microphone: "Alexa" starts a WAKEWORD turn, the states
    print as they change, and the reply is written."""
    out = tmp_path / "reply.wav"
    done = subprocess.run(
        [sys.executable, "-m", "avsclient", "talk", "--simulator", "--wake-word", "--once",
         "--input", str(alexa_wav), "--output", str(out)],
        stdin=subprocess.DEVNULL, env=_env(), capture_output=True, text=True, timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    states = [line.split()[1] for line in lines if line.startswith("state: ")]
    assert states[:3] == ["idle", "listening", "thinking"]
    assert "speaking" in states and states[-1] == "idle"
    assert any("wake word ALEXA" in line for line in lines), done.stdout
    assert any(line.startswith("wake word to first audio byte: ") for line in lines)
    assert any("-> SpeechRecognizer.Recognize: SUCCESS 200" in line for line in lines)
    assert out.stat().st_size > 10_000


def test_talk_wake_word_gives_up_without_a_wake_word(tmp_path: Path) -> None:
    """A recording with no wake word: the listen timeout ends the command with status 1."""
    quiet = write_wav(tmp_path / "quiet.wav", silence(500), 16000)
    done = subprocess.run(
        [sys.executable, "-m", "avsclient", "talk", "--simulator", "--wake-word", "--once",
         "--listen-timeout", "2", "--input", str(quiet), "--output", str(tmp_path / "r.wav")],
        stdin=subprocess.DEVNULL, env=_env(), capture_output=True, text=True, timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "No wake word heard within 2 s." in done.stdout


def test_voice_loop_example_wake_word_mode(tmp_path: Path, alexa_wav: Path) -> None:
    """examples/voice_loop.py --wake-word: the recording's "Alexa" takes one hands-free turn."""
    from tests.test_examples import VOICE_LOOP, assert_length, lines, run

    out = tmp_path / "reply.wav"
    args = ("--simulator", "--wake-word", "--turns", "1", "--input", str(alexa_wav))
    done = run(VOICE_LOOP, *args, "--output", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert lines(done.stdout, "state: ")[:3] == [
        'state: Idle (say "Alexa ...")',
        "state: Listening",
        "state: Thinking",
    ]
    assert "1 wake-word turns done" in done.stdout
    assert_length(out, "hello")
