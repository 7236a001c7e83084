#!/usr/bin/env bash
# Install Debian's Chromium (and a basic font set) for the real-browser test
# tests/test_browser.py. Idempotent: does nothing when chromium is already there.
#
# The test drives /usr/bin/chromium with the Python package playwright; it never
# runs `playwright install` (that downloads its own browser build).
#
# Usage: tools/install-browser.sh        (as root, or as a user with sudo)
set -euo pipefail

packages=(chromium fonts-dejavu-core)

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
[ -d /usr/share/fonts/truetype/dejavu ] || missing+=(fonts-dejavu-core)

if [ "${#missing[@]}" -eq 0 ]; then
    echo "chromium already installed: $(command -v chromium) ($(chromium --version 2>/dev/null || echo 'version unknown'))"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: apt-get not found; install Chromium with your system's package manager" \
         "so that 'chromium' is on PATH (the test expects /usr/bin/chromium)." >&2
    exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
else
    echo "error: installing ${missing[*]} needs root: re-run this script as root," \
         "or ask an administrator to run: apt-get install -y --no-install-recommends ${packages[*]}" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
${SUDO[@]+"${SUDO[@]}"} apt-get update
${SUDO[@]+"${SUDO[@]}"} apt-get install -y --no-install-recommends "${missing[@]}"
echo "installed: $(command -v chromium) ($(chromium --version 2>/dev/null || echo 'version unknown'))"
