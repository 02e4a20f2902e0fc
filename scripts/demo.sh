#!/usr/bin/env bash
# `make demo`: one voice turn against the embedded AVS simulator, the reply played through the
# sound server when there is one. A PulseAudio that is installed but not running is started
# for this user; without a sound server `avsclient talk` writes reply.wav and says why.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v pulseaudio >/dev/null 2>&1; then
    if ! pulseaudio --check >/dev/null 2>&1; then
        echo "PulseAudio is installed but not running: starting it for this user."
        # --exit-idle-time: it goes away by itself a minute after the demo.
        if ! pulseaudio --start --exit-idle-time=60 >/dev/null 2>&1; then
            echo "PulseAudio did not start (see: pulseaudio --start -v); the reply goes to a file."
        fi
    fi
elif ! command -v pipewire >/dev/null 2>&1; then
    echo "No sound server is installed (PulseAudio or PipeWire): unless ALSA has an output" \
        "device, the reply goes to reply.wav."
fi
exec .venv/bin/avsclient talk --simulator --once --input avsclient/assets/utterance.wav
