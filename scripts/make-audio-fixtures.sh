#!/usr/bin/env bash
# Regenerates the small MP3 fixtures of tests/audio from espeak-ng speech. Needs espeak-ng and
# lame (apt-get install espeak-ng lame); lame is needed only here, never by the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
out=tests/data/audio
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

espeak-ng -w "$tmp/speech.wav" "The weather in Seattle is sunny with a high of seventy degrees."
espeak-ng -w "$tmp/short.wav" "Hello there."

# MPEG-2 layer III, 24 kHz mono, 32 kbit/s: the shape of AVS speech. -t: no Xing/Info frame.
lame --quiet -t --resample 24 -b 32 -m m "$tmp/speech.wav" "$out/speech-24k-mono.mp3"
# lame keeps mono input mono: make the short phrase stereo (right channel at half level).
python3 - "$tmp/short.wav" "$tmp/short-stereo.wav" <<'PY'
import array, sys, wave
with wave.open(sys.argv[1]) as w:
    params, mono = w.getparams(), array.array("h", w.readframes(w.getnframes()))
stereo = array.array("h", [s for x in mono for s in (x, x // 2)])
with wave.open(sys.argv[2], "wb") as w:
    w.setnchannels(2); w.setsampwidth(2); w.setframerate(params.framerate)
    w.writeframes(stereo.tobytes())
PY
# MPEG-1 layer III, 44.1 kHz stereo, 64 kbit/s, behind an ID3v2 tag: the other common shape.
lame --quiet --resample 44.1 -b 64 -m s --add-id3v2 --tt "avsclient fixture" \
    "$tmp/short-stereo.wav" "$out/short-44k-stereo-id3.mp3"
ls -l "$out"
