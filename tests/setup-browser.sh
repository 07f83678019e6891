#!/usr/bin/env bash
# Installs headless Chromium from the Debian archive for the review-page browser test
# (review/tests/review_browser.rs). Idempotent: does nothing when it is already there.
# Prints the browser's path on stdout.
set -euo pipefail

chromium="${AIRLOCK_CHROMIUM:-/usr/bin/chromium}"

if [ ! -x "$chromium" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        # apt needs root; say so instead of failing halfway through a sudo prompt.
        echo "setup-browser: $chromium is missing and installing it needs root (apt-get install chromium)" >&2
        exit 1
    fi
    echo "setup-browser: installing chromium from the Debian archive..." >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
fi

if [ ! -x "$chromium" ]; then
    echo "setup-browser: $chromium still missing after install" >&2
    exit 1
fi

"$chromium" --version >&2 || true
echo "$chromium"
