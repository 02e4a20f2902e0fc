#!/usr/bin/env bash
# Installs the Debian packages the tests (or, with the argument `demo`, the demo) use, when run
# as root on a Debian-like system. Elsewhere it only says what is missing: the tests that need a missing part skip on a
# laptop and fail in CI (CI=true).
set -euo pipefail

# curl + nghttp2: real HTTP/2 peers; PortAudio + PulseAudio: a real audio path on a null sink;
# espeak-ng: speech for the audio tests. libasound2-plugins holds the ALSA 'pulse' device through
# which PortAudio (ALSA host API) reaches PulseAudio.
packages=(curl nghttp2-client nghttp2-server libportaudio2 libasound2-plugins pulseaudio pulseaudio-utils espeak-ng)
# The demo plays through PortAudio, which reaches a sound server through the ALSA plugins.
if [ "${1:-}" = demo ]; then
    packages=(libportaudio2 libasound2-plugins)
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "note: missing system packages (tests that need them will skip unless CI is set): ${missing[*]}" >&2
    exit 0
fi
echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
