#!/usr/bin/env bash
# Install veil with its test tools into .venv (if needed) and run every check CI runs:
# ruff (lint + format), mypy, pytest. Extra arguments go to pytest.
# The browser test needs Debian's Chromium: scripts/install_browser_test_deps.sh installs it
# when missing (apt-get, as root or with sudo); without it that one test is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[dev,dlib,serve,ray,int8]"
# MediaPipe's pose model (a .tflite veil runs with OpenVINO; veil never imports mediapipe):
# --no-deps, since mediapipe's own dependencies are not needed. Without it the real-model
# test is skipped with the reason.
.venv/bin/python -m pip install --quiet --no-deps mediapipe==0.10.14 || echo "mediapipe not installed; the real pose-model test will be skipped"
if [ "${VEIL_SKIP_BROWSER:-0}" != "1" ]; then
    bash scripts/install_browser_test_deps.sh .venv/bin/python || echo "browser test deps not installed; the browser test will be skipped"
fi
.venv/bin/ruff check src tests benchmarks scripts
.venv/bin/ruff format --check src tests benchmarks scripts
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
