"""Audio test fixtures: a real PulseAudio daemon with a null sink, espeak-ng speech, MP3 files."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest

from avsclient.audio import AVS_FORMAT, AudioFormat, PcmConverter
from tests.helpers import require_executable, system_part_missing

DATA = Path(__file__).resolve().parent.parent / "data" / "audio"
SPEECH_MP3 = DATA / "speech-24k-mono.mp3"
STEREO_ID3_MP3 = DATA / "short-44k-stereo-id3.mp3"

NULL_SINK = "vmic"


class PulseServer:
    """A PulseAudio daemon whose null sink `vmic` is the default sink and whose monitor is
    the default source: what is played is what the microphone hears."""

    def __init__(self, runtime_dir: str, env: dict[str, str]) -> None:
        self.runtime_dir = runtime_dir
        self._env = env

    def env(self) -> dict[str, str]:
        """The environment that reaches this daemon (and no other)."""
        return dict(self._env)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, env=self.env(), capture_output=True, text=True, timeout=10, check=False
        )


@contextlib.asynccontextmanager
async def monitor_recording(pulse: PulseServer, raw: Path) -> AsyncIterator[None]:
    """Record what the null sink plays (its monitor, 16 kHz mono s16le) into `raw` with
    parecord while the block runs; the recording has begun when the block starts."""
    parecord = require_executable("parecord")
    recorder = subprocess.Popen(
        [
            parecord,
            f"--device={NULL_SINK}.monitor",
            "--rate=16000",
            "--channels=1",
            "--format=s16le",
            "--raw",
            str(raw),
        ],
        env=pulse.env(),
    )
    try:
        for _ in range(100):  # until parecord is really recording
            if raw.exists() and raw.stat().st_size > 3200:
                break
            await asyncio.sleep(0.1)
        yield
    finally:
        recorder.terminate()
        recorder.wait(10)


# Variables that would point clients at another daemon, or at another daemon's files.
_FOREIGN_PULSE_VARIABLES = (
    "PULSE_CLIENTCONFIG",
    "PULSE_COOKIE",
    "PULSE_RUNTIME_PATH",
    "PULSE_SERVER",
    "PULSE_SINK",
    "PULSE_SOURCE",
    "PULSE_STATE_PATH",
)
_RUNTIME_PREFIX = "avsclient-pulse-"


def _answers(env: dict[str, str]) -> bool:
    try:
        result = subprocess.run(
            ["pactl", "info"], env=env, capture_output=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _rescan_portaudio() -> None:
    # PortAudio lists devices once, when sounddevice is imported. If something imported it
    # before the daemon ran, list them again (no stream is open at this point).
    sd = sys.modules.get("sounddevice")
    if sd is not None:
        sd._terminate()
        sd._initialize()


def _remove_dead_runtime_dirs(parent: Path) -> None:
    """Delete runtime directories left by earlier runs whose daemon no longer exists.

    Each run uses a fresh directory, so leftovers never collide with it; this only stops them
    from piling up. A directory whose daemon still runs may belong to a concurrent test run
    and is left alone.
    """
    for old in parent.glob(f"{_RUNTIME_PREFIX}*"):
        try:
            pid = int((old / "pulse" / "pid").read_text().strip())
        except (OSError, ValueError):
            pid = None
        if pid is None:
            try:
                young = time.time() - old.stat().st_mtime < 600  # maybe still starting
            except OSError:
                continue
            if young:
                continue
        else:
            try:
                os.kill(pid, 0)
                continue  # alive
            except ProcessLookupError:
                pass
            except PermissionError:
                continue  # alive, someone else's
        shutil.rmtree(old, ignore_errors=True)


@pytest.fixture(scope="session")
def pulse() -> Iterator[PulseServer]:
    """A private PulseAudio daemon with the null sink `vmic`, started for this test run.

    It runs in a fresh XDG_RUNTIME_DIR, so a user's own daemon, a stale one from an earlier
    run, or leftover sockets cannot answer in its place; clients never autospawn another
    daemon and need no cookie (the socket is private to its 0700 directory).
    """
    require_executable("pactl")
    parec = require_executable("parec")
    pulseaudio = require_executable("pulseaudio")
    # A short parent keeps .../pulse/native under the 108-byte limit of a socket path.
    parent = Path("/tmp") if Path("/tmp").is_dir() else Path(tempfile.gettempdir())
    _remove_dead_runtime_dirs(parent)
    runtime_dir = tempfile.mkdtemp(prefix=_RUNTIME_PREFIX, dir=parent)
    os.chmod(runtime_dir, 0o700)
    client_conf = Path(runtime_dir) / "client.conf"
    client_conf.write_text("autospawn = no\n")
    ours = {
        "XDG_RUNTIME_DIR": runtime_dir,
        "PULSE_CLIENTCONFIG": str(client_conf),
        "PULSE_STATE_PATH": str(Path(runtime_dir) / "state"),
    }
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_PULSE_VARIABLES}
    env.update(ours)
    saved = {k: os.environ.get(k) for k in {*_FOREIGN_PULSE_VARIABLES, "XDG_RUNTIME_DIR"}}
    # -n: no default.pa (so no hardware probing); the null sink's monitor is our microphone.
    command = [
        pulseaudio,
        "-D",
        "--exit-idle-time=-1",
        "-n",
        f"--load=module-null-sink sink_name={NULL_SINK}",
        "--load=module-native-protocol-unix auth-anonymous=1",
        "--load=module-always-sink",
    ]
    try:
        started = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=30, check=False
        )
        said = started.stderr.strip()
    except subprocess.TimeoutExpired:
        said = "no answer within 30 s"
    deadline = time.monotonic() + 10
    while not _answers(env) and time.monotonic() < deadline:
        time.sleep(0.1)
    if not _answers(env):
        subprocess.run(
            [pulseaudio, "--kill"], env=env, capture_output=True, timeout=10, check=False
        )
        shutil.rmtree(runtime_dir, ignore_errors=True)
        system_part_missing(f"a PulseAudio daemon (pulseaudio said: {said})")
    server = PulseServer(runtime_dir, env)
    keeper: subprocess.Popen[bytes] | None = None
    try:
        for args in (
            ("pactl", "set-default-sink", NULL_SINK),
            ("pactl", "set-default-source", f"{NULL_SINK}.monitor"),
            # A fresh null sink starts suspended, and its monitor then delivers nothing (a
            # real microphone always does): resume it so that capture runs before anything
            # plays.
            ("pactl", "suspend-sink", NULL_SINK, "0"),
        ):
            result = server.run(*args)
            assert result.returncode == 0, result.stderr
        # A null sink renders in 2 s blocks unless a client asks for less, and the ALSA
        # plugin PortAudio goes through never asks: capture would then start 2 s late and
        # every drain would wait 2 s. One idle low-latency reader of the monitor makes the
        # sink render every 10 ms, as a sound card does.
        keeper = subprocess.Popen(
            [parec, "--latency-msec=10", f"--device={NULL_SINK}.monitor", "--raw"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name in _FOREIGN_PULSE_VARIABLES:
            os.environ.pop(name, None)
        os.environ.update(ours)  # PortAudio's ALSA plugin runs in this process
        _rescan_portaudio()
        yield server
    finally:
        if keeper is not None:
            keeper.terminate()
            keeper.wait(10)
        subprocess.run(
            [pulseaudio, "--kill"], env=env, capture_output=True, timeout=10, check=False
        )
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(runtime_dir, ignore_errors=True)


def espeak(path: Path, text: str) -> Path:
    """Write `text` spoken by espeak-ng to `path` (22050 Hz mono WAV)."""
    exe = require_executable("espeak-ng")
    subprocess.run([exe, "-w", str(path), text], check=True, capture_output=True, timeout=30)
    return path


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About three seconds of espeak-ng speech."""
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    return espeak(path, "Alexa, what is the weather like in Seattle today?")


def read_wav_as_avs(path: Path) -> np.ndarray:
    """A 16-bit WAV file converted to 16 kHz mono int16 samples."""
    with wave.open(str(path)) as wav:
        src = AudioFormat(rate=wav.getframerate(), channels=wav.getnchannels())
        data = wav.readframes(wav.getnframes())
    converter = PcmConverter(src, AVS_FORMAT)
    return np.frombuffer(converter.convert(data) + converter.flush(), dtype="<i2")


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """Write int16 samples shaped (frames,) or (frames, channels) as a WAV file."""
    samples = np.asarray(samples, dtype="<i2")
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())
    return path


def envelope(samples: np.ndarray, rate: int, frame_ms: int = 10) -> np.ndarray:
    """RMS energy per `frame_ms`, in dB, of int16 samples."""
    n = rate * frame_ms // 1000
    frames = samples[: len(samples) // n * n].astype(np.float64).reshape(-1, n)
    return 10 * np.log10(np.mean(frames**2, axis=1) + 1.0)


def best_alignment(reference: np.ndarray, recorded: np.ndarray) -> tuple[float, int]:
    """The highest Pearson correlation of `reference` against any window of `recorded`,
    and the lag (in envelope frames) where it occurs."""
    best, lag = -1.0, 0
    ref = (reference - reference.mean()) / (reference.std() + 1e-9)
    for shift in range(len(recorded) - len(reference) + 1):
        window = recorded[shift : shift + len(reference)]
        std = window.std()
        if std < 1e-9:
            continue
        corr = float(np.mean(ref * (window - window.mean()) / std))
        if corr > best:
            best, lag = corr, shift
    return best, lag
