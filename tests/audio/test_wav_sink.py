"""A WavFileSink that is never closed still completes its file, silently (also under -W error)."""

from __future__ import annotations

import subprocess
import sys
import wave
from pathlib import Path

SCRIPT = """
import asyncio, sys
from avsclient.audio import PLAYBACK_FORMAT, WavFileSink

async def main():
    sink = WavFileSink(sys.argv[1], PLAYBACK_FORMAT)
    await sink.write(b"\\x01\\x00" * 2400)
    if sys.argv[2] == "keep":
        global kept
        kept = sink  # alive until the interpreter exits

asyncio.run(main())
"""


def test_an_unclosed_sink_is_completed_quietly(tmp_path: Path) -> None:
    for mode in ("drop", "keep"):  # collected when main() returns / at interpreter exit
        path = tmp_path / f"{mode}.wav"
        done = subprocess.run(
            [sys.executable, "-X", "dev", "-W", "error", "-c", SCRIPT, str(path), mode],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
        with wave.open(str(path)) as wav:
            assert wav.getnframes() == 2400
