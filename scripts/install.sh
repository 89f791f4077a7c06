#!/usr/bin/env bash
# Installs what Tapestry needs on a fresh Debian/Ubuntu machine (idempotent).
#   bash scripts/install.sh           runtime: Mesa EGL (headless GL), PortAudio, Python packages
#   bash scripts/install.sh --test    also the real receivers and clients the tests talk to
# The Python packages go into a virtual environment, .venv/ in the Tapestry folder: Debian 12+ and
# Ubuntu 23.04+ refuse `pip install` into the system Python (PEP 668, "externally-managed-environment").
# Run Tapestry with .venv/bin/python (README.md, docs/operations.md, the systemd unit all do).
# TAPESTRY_PYTHON=/path/to/python chooses the interpreter the venv is made from (default: python3).
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
    ""|--test) ;;
    *) echo "install.sh: unknown option ${1} (use no option, or --test)" >&2; exit 2 ;;
esac

# libgl-dev, libegl-dev: only for the unversioned libGL.so / libEGL.so names that moderngl's EGL backend
# (glcontext) loads by default; a fresh Debian has just the .so.1 files without them
runtime=(python3 python3-venv libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri libgles2 libportaudio2 libgl-dev libegl-dev)
testing=(xvfb liblo-tools tshark pulseaudio pulseaudio-utils libasound2-plugins iproute2 systemd ola chromium)
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
    # tshark asks whether non-root users may capture; the default answer (no) is fine
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

py="${TAPESTRY_PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
    echo "making the virtual environment .venv (from $($py -c 'import sys; print(sys.executable)'))"
    "$py" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
echo "installed: run Tapestry with .venv/bin/python run.py"
