"""The README's library examples run as a user runs them: saved to a file and started with
Python (warnings as errors), against a simulator through the `AVSCLIENT_*` variables, with a
real microphone and speaker on PulseAudio's null sink."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

from avsclient.simulator import Simulator
from tests.audio.conftest import PulseServer

ROOT = Path(__file__).resolve().parents[2]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
LIBRARY = next(b for b in BLOCKS if "from_login(sink=speaker)" in b)
AGENT = next(b for b in BLOCKS if "class LampAgent" in b)

pytestmark = pytest.mark.system


async def _python(script: Path, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-X",
        "dev",
        "-W",
        "error",
        str(script),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _environment(pulse: PulseServer, sim: Simulator, token_file: Path) -> dict[str, str]:
    env = pulse.env()
    env.update(
        AVSCLIENT_TOKEN_FILE=str(token_file),
        AVSCLIENT_ENDPOINT=sim.url,
        AVSCLIENT_LWA_URL=sim.url,
        AVSCLIENT_CA_FILE=str(sim.ca_file),
    )
    return env


async def test_the_library_example_talks_and_listens(pulse: PulseServer, tmp_path: Path) -> None:
    """One turn through the microphone; the answer plays on the speaker; nothing left open."""
    script = tmp_path / "main.py"
    script.write_text(LIBRARY)
    async with Simulator() as sim:
        env = _environment(pulse, sim, sim.write_token_file(tmp_path / "tokens.json"))
        rc, out, err = await _python(script, env)
        assert rc == 0, out + err
        for trouble in ("Traceback", "Exception ignored", "Warning"):
            assert trouble not in err, err
        recognize = await sim.wait_for_event("SpeechRecognizer", "Recognize")
        assert recognize.audio  # the microphone streamed
        await sim.wait_for_event("SpeechSynthesizer", "SpeechStarted")  # the answer played
    assert re.search(r"'speech_finished': \d", out), out  # ... to its end


async def test_the_library_example_before_login_says_to_log_in(
    pulse: PulseServer, tmp_path: Path
) -> None:
    script = tmp_path / "main.py"
    script.write_text(LIBRARY)
    async with Simulator() as sim:
        env = _environment(pulse, sim, tmp_path / "nothing-linked.json")
        rc, _, err = await _python(script, env)
    assert rc == 1
    assert "ReauthorizationRequired" in err and "avsclient login" in err
    assert "AttributeError" not in err


async def test_the_agent_example_adds_its_capability(pulse: PulseServer, tmp_path: Path) -> None:
    script = tmp_path / "lamp.py"
    script.write_text(AGENT)
    async with Simulator() as sim:
        env = _environment(pulse, sim, sim.write_token_file(tmp_path / "tokens.json"))
        rc, out, err = await _python(script, env)
    assert rc == 0, out + err
    assert "Capability(interface='Acme.Lamp', version='1.0'" in out, out
