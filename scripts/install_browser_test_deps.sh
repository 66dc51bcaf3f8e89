#!/usr/bin/env bash
# What tests/service/test_browser.py needs: Debian's Chromium and the playwright Python
# package. Playwright's own browser download (`playwright install`) is never used.
# Usage: scripts/install_browser_test_deps.sh [PYTHON]   (default: .venv/bin/python)
set -euo pipefail
PY=${1:-.venv/bin/python}
if [ ! -x /usr/bin/chromium ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium
fi
if ! "$PY" -c "import playwright.sync_api" 2>/dev/null; then
    "$PY" -m pip install --quiet playwright
fi
/usr/bin/chromium --version 2>/dev/null
