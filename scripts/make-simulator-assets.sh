#!/usr/bin/env bash
# Regenerates the speech assets of the local AVS simulator (avsclient/simulator/assets/):
# each <name>.txt holds one sentence; espeak-ng speaks it to WAV and lame encodes it as a small
# mono 16 kHz MP3 (AVS Speak attachments are MPEG audio). Needs espeak-ng and lame
# (apt-get install espeak-ng lame). Run from anywhere: ./scripts/make-simulator-assets.sh
set -euo pipefail

assets="$(cd "$(dirname "$0")/.." && pwd)/avsclient/simulator/assets"
for tool in espeak-ng lame; do
    command -v "$tool" >/dev/null 2>&1 || { echo "missing $tool (apt-get install $tool)" >&2; exit 1; }
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

for txt in "$assets"/*.txt; do
    name="$(basename "$txt" .txt)"
    espeak-ng -v en-us -s 160 -w "$tmp/$name.wav" -f "$txt"
    # 16 kHz mono at 32 kbps CBR keeps each file well under 100 KB; --noreplaygain and -t
    # (no Xing/LAME tag frame) make the output depend only on the audio.
    lame --quiet --noreplaygain -t -m m --resample 16 -b 32 "$tmp/$name.wav" "$assets/$name.mp3"
done
ls -l "$assets"
