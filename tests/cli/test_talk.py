"""`avsclient talk` and `make demo`: real processes against real simulators."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
import wave
from pathlib import Path

import miniaudio
import pytest

from avsclient.auth import StoredTokens, TokenSet, TokenStore
from avsclient.simulator import (
    DEFAULT_CLIENT_ID,
    ReceivedEvent,
    ScriptedReply,
    Simulator,
    directive,
    speech_asset,
)

ROOT = Path(__file__).resolve().parents[2]
UTTERANCE = ROOT / "avsclient" / "assets" / "utterance.wav"
REPLY = re.compile(
    r"^Reply: (?P<seconds>[0-9.]+) s of speech, "
    r"(?P<how>played through the speaker|written to (?P<file>[^,\s]+))"
)


def _seconds_of(asset: str) -> float:
    decoded = miniaudio.decode(
        speech_asset(asset), output_format=miniaudio.SampleFormat.SIGNED16, nchannels=1,
        sample_rate=24_000,
    )
    return len(decoded.samples) / 24_000


def _wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONWARNINGS": "error"}


def test_make_demo_runs_a_voice_turn_and_plays_or_writes_the_reply(tmp_path: Path) -> None:
    """The README's first command: one turn on the embedded simulator, with a reply of the
    simulator's speech length, played or written to reply.wav (and saying which)."""
    reply = ROOT / "reply.wav"
    reply.unlink(missing_ok=True)
    try:
        done = subprocess.run(
            ["make", "--no-print-directory", "demo"], cwd=ROOT, env=_env(),
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300, check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        lines = done.stdout.splitlines()
        for expected in ("-> SpeechRecognizer.Recognize: SUCCESS 200",
                         "<- SpeechSynthesizer.Speak (dispatched)",
                         "-> SpeechSynthesizer.SpeechFinished: SUCCESS_NO_CONTENT 204",
                         "Listening...", "Thinking...", "Speaking...", "latency: ",
                         "-> Alexa.ApiGateway.VerifyGateway: SUCCESS_NO_CONTENT 204",
                         "-> Alexa.Discovery.AddOrUpdateReport: SUCCESS_NO_CONTENT 202",
                         "<- Alexa.EventProcessed (dispatched)", "Discovery accepted",
                         "THINKING (AVS is processing)...", "AVS finished processing"):
            assert any(expected in line for line in lines), (expected, done.stdout)
        summary = next(m for m in map(REPLY.match, lines) if m)
        expected_seconds = _seconds_of("hello")
        assert float(summary["seconds"]) == pytest.approx(expected_seconds, abs=0.05)
        if summary["file"]:
            assert summary["file"] == "reply.wav"
            assert "no audio output device" in done.stdout
            assert _wav_seconds(reply) == pytest.approx(expected_seconds, abs=0.05)
            # Written to a file only where no sound server could be started, and it says so.
            assert shutil.which("pulseaudio") is None or "PulseAudio did not start" in done.stdout
        else:
            assert not reply.exists()
    finally:
        reply.unlink(missing_ok=True)


def test_make_demo_installs_only_what_the_demo_needs() -> None:
    """The demo's install steps: the `simulator` extra and PortAudio, no test tools."""
    plan = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", "demo"], cwd=ROOT, capture_output=True,
        text=True, timeout=60, check=True,
    ).stdout
    installs = [line for line in plan.splitlines() if "pip install" in line]
    assert len(installs) == 1 and installs[0].endswith("-e '.[simulator]'"), plan
    assert "install-system-deps.sh demo" in plan
    packages = subprocess.run(
        ["bash", "-c", "source <(sed -n '/^packages=/,/^fi/p' scripts/install-system-deps.sh) "
         "demo && echo ${packages[@]}"], cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()
    assert packages == ["libportaudio2", "libasound2-plugins"]


def test_talk_takes_one_turn_per_input_line(tmp_path: Path) -> None:
    """Piped stdin: each line is a turn, end of input quits; replies go to --output."""
    out = tmp_path / "replies.wav"
    done = subprocess.run(
        [sys.executable, "-m", "avsclient", "talk", "--simulator", "--input", str(UTTERANCE),
         "--output", str(out)],
        input="\n\n", env=_env(), capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Turn 2:" in done.stdout
    assert "Turn 3:" not in done.stdout
    assert _wav_seconds(out) == pytest.approx(2 * _seconds_of("hello"), abs=0.1)
    assert done.stdout.count("latency: ") == 2


async def test_talk_with_stored_tokens_follows_expect_speech(tmp_path: Path) -> None:
    """The real-credentials path (tokens from `avsclient login`, refreshed over LWA) and an
    ExpectSpeech dialog answered from the second --input file."""
    async with Simulator() as sim:
        turns = 0

        def reply(event: ReceivedEvent) -> ScriptedReply:
            nonlocal turns
            turns += 1
            dialog = event.dialog_request_id
            payload = {"url": f"cid:t{turns}", "format": "AUDIO_MPEG", "token": f"t{turns}"}
            speak = directive("SpeechSynthesizer", "Speak", payload, dialog_request_id=dialog)
            speech = {f"t{turns}": speech_asset("hello" if turns == 1 else "follow_up")}
            if turns > 1:
                return ScriptedReply.of(speak, attachments=speech)
            expect = directive("SpeechRecognizer", "ExpectSpeech", {"timeoutInMilliseconds": 8000},
                               dialog_request_id=dialog)
            return ScriptedReply.of(speak, expect, attachments=speech)

        sim.script.recognize(reply)
        token_file = tmp_path / "tokens.json"
        expired = TokenSet(access_token="Atza|expired", refresh_token=sim.lwa.issue_refresh_token(),
                           expires_at=time.time() - 60)
        TokenStore(token_file).save(StoredTokens(client_id=DEFAULT_CLIENT_ID, tokens=expired))
        out = tmp_path / "replies.wav"
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "avsclient", "talk", "--endpoint", sim.url,
            "--ca-file", str(sim.ca_file), "--lwa-url", sim.url, "--token-file", str(token_file),
            "--input", str(UTTERANCE), "--input", str(UTTERANCE), "--output", str(out), "--once",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=_env(),
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
        text = stdout.decode()
        assert process.returncode == 0, text + stderr.decode()
        recognizes = [e for e in sim.events if e.name == "Recognize"]
        assert len(recognizes) == 2
        assert "Alexa expects an answer..." in text
        stored = TokenStore(token_file).load()
        assert stored is not None
        assert stored.tokens.access_token != "Atza|expired"  # refreshed and saved
    expected = _seconds_of("hello") + _seconds_of("follow_up")
    assert _wav_seconds(out) == pytest.approx(expected, abs=0.1)


def test_talk_without_tokens_says_to_log_in(tmp_path: Path) -> None:
    """No token file: a clear message and exit status 2, no traceback."""
    done = subprocess.run(
        [sys.executable, "-m", "avsclient", "talk", "--token-file", str(tmp_path / "none.json"),
         "--input", str(UTTERANCE), "--once"],
        env=_env(), capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 2
    assert "run `avsclient login` first" in done.stdout
    assert "Traceback" not in done.stderr


def _padded_utterance(path: Path, silence_seconds: float) -> Path:
    """The bundled utterance followed by `silence_seconds` of silence."""
    with wave.open(str(UTTERANCE), "rb") as wav:
        params, frames = wav.getparams(), wav.readframes(wav.getnframes())
    with wave.open(str(path), "wb") as out:
        out.setparams(params)
        out.writeframes(frames + b"\x00\x00" * int(params.framerate * silence_seconds))
    return path


async def _run_talk(sim: Simulator, *args: str, stdin: int | None = None) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "avsclient", "talk", "--endpoint", sim.url, "--ca-file",
        str(sim.ca_file), *args, stdin=stdin if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_env(),
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, stdout.decode() + stderr.decode()
    return stdout.decode()


async def _token_file(sim: Simulator, tmp_path: Path) -> Path:
    path = tmp_path / "tokens.json"
    tokens = TokenSet(access_token=sim.add_token(), refresh_token="Atzr|unused",
                      expires_at=time.time() + 3600)
    TokenStore(path).save(StoredTokens(client_id=DEFAULT_CLIENT_ID, tokens=tokens))
    return path


async def test_close_talk_ends_at_the_end_of_speech(tmp_path: Path) -> None:
    """CLOSE_TALK gets no StopCapture: the device's endpointing ends the upload long before the
    trailing 6 s of silence are over."""
    wav = _padded_utterance(tmp_path / "long.wav", 6.0)
    async with Simulator() as sim:
        await _run_talk(sim, "--token-file", str(await _token_file(sim, tmp_path)), "--input",
                        str(wav), "--output", str(tmp_path / "out.wav"), "--profile",
                        "CLOSE_TALK", "--once")
        recognize = await sim.wait_for_event("SpeechRecognizer", "Recognize")
    assert recognize.payload["profile"] == "CLOSE_TALK"
    seconds = len(recognize.audio) / 32_000
    assert 2.0 < seconds < 6.0  # the speech went up, most of the silence did not


async def test_enter_at_the_terminal_ends_the_utterance(tmp_path: Path) -> None:
    """At a terminal: Enter starts a turn, Enter again stops talking, Ctrl-D quits."""
    import pty

    wav = _padded_utterance(tmp_path / "long.wav", 20.0)
    master, slave = pty.openpty()
    try:
        async with Simulator() as sim:
            sim.script.recognize(stop_capture_after=None)  # only the device ends the upload
            token_file = await _token_file(sim, tmp_path)
            run = asyncio.ensure_future(_run_talk(
                sim, "--token-file", str(token_file), "--input", str(wav), "--output",
                str(tmp_path / "out.wav"), stdin=slave))
            await asyncio.sleep(0)  # let the process start; the terminal buffers our typing
            os.write(master, b"\n")  # start talking
            await asyncio.sleep(1.5)
            os.write(master, b"\n")  # stop talking
            recognize = await sim.wait_for_event("SpeechRecognizer", "Recognize", timeout=60)
            await sim.wait_for_event("SpeechSynthesizer", "SpeechFinished", timeout=60)
            os.write(master, b"\x04")  # Ctrl-D: end of input
            text = await run
    finally:
        os.close(master)
        os.close(slave)
    assert "Press Enter to talk" in text
    assert "p play, s pause, n next, b previous" in text  # the PlaybackController keys
    assert "(press Enter to stop talking)" in text
    assert len(recognize.audio) / 32_000 < 15  # stopped long before the 23 s file ended


def _talk(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "avsclient", "talk", *args], env=kwargs.pop("env", _env()),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False,
        **kwargs,  # type: ignore[call-overload]
    )


def _float_wav(path: Path, rate: int = 44_100) -> Path:
    import struct

    import numpy as np

    samples = (0.3 * np.sin(2 * np.pi * 300 * np.arange(rate * 2) / rate)).astype("<f4")
    data = np.repeat(samples[:, None], 2, axis=1).tobytes()
    fmt = struct.pack("<HHIIHH", 3, 2, rate, rate * 8, 8, 32)
    body = b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(data))
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body) + len(data)) + body + data)
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "{tmp}/missing.wav"], "argument --input: {tmp}/missing.wav: no such file"),
        (["--input", "{tmp}/empty.wav"], "{tmp}/empty.wav: the file is empty, not a WAV file"),
        (["--input", "{tmp}/text.wav"], "not a WAV file (it does not begin with RIFF....WAVE)"),
        (["--output", "{tmp}/no/such/dir/r.wav"], "the directory {tmp}/no/such/dir does not exist"),
        (["--output", "{tmp}/text.wav/r.wav"], "{tmp}/text.wav is not a directory"),
        (["--output", "{tmp}"], "{tmp}: is a directory; give a file name"),
        (["--connect-timeout", "-1"], "must be a positive number of seconds, not -1"),
        (["--connect-timeout", "soon"], "'soon' is not a number of seconds"),
        (["--region", "mars"], "unknown region 'mars' (choose one of NA, EU, FE)"),
        (["--device", " "], "an audio device is an index or a part of its name"),
    ],
    ids=["missing-input", "empty-input", "text-input", "output-dir-missing", "output-in-a-file",
         "output-is-dir", "negative-timeout", "word-timeout", "region", "device"],
)
def test_bad_arguments_fail_at_once_with_a_plain_message(
    tmp_path: Path, args: list[str], message: str
) -> None:
    """Each is refused by the argument parser (exit 2, before any simulator starts), with the
    reason in plain words and no traceback."""
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("hello")
    argv = [a.format(tmp=tmp_path) for a in args]
    done = _talk("--simulator", "--once", *argv)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message.format(tmp=tmp_path) in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert "AVS simulator at" not in done.stdout


def test_environment_settings_are_checked_and_used(tmp_path: Path) -> None:
    """AVSCLIENT_REGION=eu is accepted; a bad one is named; AVSCLIENT_TOKEN_FILE is used."""
    env = {**_env(), "AVSCLIENT_REGION": "mars"}
    done = _talk("--once", "--input", str(UTTERANCE), env=env)
    assert done.returncode == 2
    assert "AVSCLIENT_REGION: unknown region 'mars'" in done.stderr
    env = {**_env(), "AVSCLIENT_REGION": "eu", "AVSCLIENT_TOKEN_FILE": str(tmp_path / "t.json")}
    done = _talk("--once", "--input", str(UTTERANCE), env=env)
    assert done.returncode == 2
    assert f"no tokens at {tmp_path / 't.json'}" in done.stdout


def test_a_float_wav_at_another_rate_is_spoken(tmp_path: Path) -> None:
    """A 44.1 kHz stereo float WAV is converted and streamed; the turn succeeds."""
    done = _talk("--simulator", "--once", "--input", str(_float_wav(tmp_path / "f.wav")),
                 "--output", str(tmp_path / "r.wav"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "-> SpeechRecognizer.Recognize: SUCCESS 200" in done.stdout


def test_without_a_microphone_it_fails_before_connecting(tmp_path: Path) -> None:
    """No input device: the error comes at once, before connecting or waiting for Enter."""
    env = {**_env(), "AVSCLIENT_INPUT_DEVICE": "no-such-microphone-anywhere"}
    done = _talk("--simulator", "--output", str(tmp_path / "r.wav"), env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no-such-microphone-anywhere" in done.stdout
    assert "--input FILE.wav" in done.stdout
    assert "Connecting to" not in done.stdout and "Press Enter" not in done.stdout


def test_one_turn_reads_well(tmp_path: Path) -> None:
    """One time base, no duplicated summary, plain connection words, honest durations."""
    done = _talk("--simulator", "--once", "--input", str(UTTERANCE), "--output",
                 str(tmp_path / "r.wav"))
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    stamps = [float(m) for m in re.findall(r"^ +(\d+\.\d{3}) s  ", out, re.MULTILINE)]
    assert len(stamps) >= 8 and stamps == sorted(stamps)  # one clock, from the start
    assert " ms  " not in out
    assert out.count("s of speech") == 1 and "Done" not in out
    assert "_" not in re.sub(r"\S*[/\\]\S*|[A-Z_]{4,}", "", out)  # no internal names
    reply = re.search(r"^Reply: 3\.\d\d s of speech, written to \S+, in \d+ ms$", out, re.M)
    assert reply, out
    assert re.search(r"^latency: \d+ ms of audio sent; the answer began \d+ ms", out, re.M)


def test_sigterm_stops_cleanly(tmp_path: Path) -> None:
    """SIGTERM mid-turn: exit 0, the reply file is a complete WAV, the simulator's temporary
    directory is gone; Ctrl-C (SIGINT) the same."""
    import signal

    for stop in (signal.SIGTERM, signal.SIGINT):
        out = tmp_path / f"{stop.name}.wav"
        wav = _padded_utterance(tmp_path / "long.wav", 20.0)
        scratch = tmp_path / f"tmp-{stop.name}"  # the process's temporary directory
        scratch.mkdir()
        proc = subprocess.Popen(
            [sys.executable, "-m", "avsclient", "talk", "--simulator", "--profile", "CLOSE_TALK",
             "--input", str(UTTERANCE), "--input", str(wav), "--output", str(out)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**_env(), "TMPDIR": str(scratch)},
        )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("\n\n")  # two turns; the second speaks the 20 s file
        proc.stdin.flush()
        seen = []
        while not any(line.startswith("Turn 2:") for line in seen):
            line = proc.stdout.readline()
            assert line, "".join(seen)
            seen.append(line)
        time.sleep(1.0)
        proc.send_signal(stop)
        rest, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, "".join(seen) + rest + err
        assert rest.rstrip().endswith("Stopped."), rest
        assert "Traceback" not in err
        with wave.open(str(out), "rb") as reply:
            assert reply.getnframes() > 0  # the first turn's reply, completed
        assert not list(scratch.iterdir())  # the simulator's CA directory went too


async def test_button_keys_press_playback_controller_buttons(tmp_path: Path) -> None:
    """A line of p, n, s or b presses play, next, pause or previous (PlaybackController
    events, no voice turn); end of input quits."""
    async with Simulator() as sim:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "avsclient", "talk", "--endpoint", sim.url, "--ca-file",
            str(sim.ca_file), "--token-file", str(await _token_file(sim, tmp_path)),
            "--output", str(tmp_path / "out.wav"), "--input", str(UTTERANCE),  # no microphone
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_env(),
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(b"p\nn\ns\nb\n"), 120)
        assert process.returncode == 0, stdout.decode() + stderr.decode()
        sent = [e.name for e in sim.events if e.namespace == "PlaybackController"]
    assert sent == [
        "PlayCommandIssued",
        "NextCommandIssued",
        "PauseCommandIssued",
        "PreviousCommandIssued",
    ]
    assert "next pressed" in stdout.decode()
    assert "Turn 1:" not in stdout.decode()
