#!/usr/bin/env bash
# Regenerates the utterance `make demo` sends (avsclient/assets/utterance.wav): espeak-ng
# speaks the sentence in utterance.txt, then it is resampled to the AVS upload format (16 kHz,
# mono, signed 16-bit little-endian) with half a second of silence on either side, as a
# microphone would hear it. Needs espeak-ng and the project's .venv (for numpy).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
assets="$root/avsclient/assets"
command -v espeak-ng >/dev/null 2>&1 || { echo "missing espeak-ng (apt-get install espeak-ng)" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
espeak-ng -v en-us -s 150 -w "$tmp/raw.wav" -f "$assets/utterance.txt"
"$root/.venv/bin/python" - "$tmp/raw.wav" "$assets/utterance.wav" <<'PY'
import sys, wave
from avsclient.audio import AVS_FORMAT, WavFileSource
import asyncio

async def main(src: str, dst: str) -> None:
    frames = b"".join([f async for f in WavFileSource(src)])
    silence = b"\x00" * (AVS_FORMAT.rate // 2 * 2)
    with wave.open(dst, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(AVS_FORMAT.rate)
        out.writeframes(silence + frames + silence)

asyncio.run(main(sys.argv[1], sys.argv[2]))
PY
ls -l "$assets"
