#!/usr/bin/env bash
# Installs what Tapestry needs on a fresh Debian/Ubuntu machine (idempotent).
#   bash scripts/install.sh           runtime: Mesa EGL (headless GL), PortAudio, Python packages
#   bash scripts/install.sh --test    also the real receivers and clients the tests talk to
set -euo pipefail
cd "$(dirname "$0")/.."

runtime=(libegl1 libegl-mesa0 libgl1-mesa-dri libgles2 libportaudio2)
testing=(xvfb liblo-tools tshark pulseaudio pulseaudio-utils iproute2 systemd chromium)
want=("${runtime[@]}")
[[ "${1:-}" == "--test" ]] && want+=("${testing[@]}")

missing=()
for pkg in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    SUDO=""
    [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    echo "installing system packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check -r requirements.txt
