#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian-like machine, then runs every test:
# Python (pytest), TypeScript (jest, eslint) and the JupyterLab UI tests in Chromium, which
# tests/test_labextension.py drives. Needs Python 3.10+ and Node.js 20+ on the PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1; then
  # Playwright's own browser download does not work everywhere; Debian's chromium does.
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi

pip install ".[test]"
python -m pytest "$@"
