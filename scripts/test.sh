#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian-like machine, then runs every test:
# Python (pytest), TypeScript (jest, eslint) and the JupyterLab UI tests in Chromium, which
# tests/ui/test_labextension.py drives. Needs Python 3.10+ and Node.js 20+ on the PATH.
#
# The tests run in tiers, fastest first, so failures show early (see docs/testing.md):
#   unit cli run tracking engines server docs ui
#
#   bash scripts/test.sh                    install, then run every tier
#   bash scripts/test.sh unit               run only these tiers, in the environment as it is
#   bash scripts/test.sh run -- -k kernels  pass what follows -- on to pytest
#
# Every tier runs even when an earlier one fails; the exit code is non-zero if any failed.
set -euo pipefail
cd "$(dirname "$0")/.."

TIERS=(unit cli run tracking engines server docs ui)
selected=()
pytest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; pytest_args=("$@"); break ;;
    unit | cli | run | tracking | engines | server | docs | ui) selected+=("$1"); shift ;;
    *)
      echo "scripts/test.sh: unknown tier '$1'. Tiers: ${TIERS[*]} (then -- PYTEST-ARGS)." >&2
      exit 2
      ;;
  esac
done

if [ ${#selected[@]} -eq 0 ]; then
  if ! command -v chromium >/dev/null 2>&1; then
    # Playwright's own browser download does not work everywhere; Debian's chromium does.
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
  fi
  pip install ".[test]"
  selected=("${TIERS[@]}")
fi

failed=()
summary=()
for tier in "${selected[@]}"; do
  echo
  echo "=== tests, tier '$tier' ==="
  start=$SECONDS
  status=0
  python -m pytest -m "$tier" ${pytest_args[@]+"${pytest_args[@]}"} || status=$?
  took=$((SECONDS - start))
  if [ "$status" -eq 0 ]; then
    summary+=("  $tier: passed in ${took}s")
  else
    summary+=("  $tier: FAILED in ${took}s (pytest exit code $status)")
    failed+=("$tier")
  fi
done

echo
echo "=== test tiers ==="
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed tiers: ${failed[*]}" >&2
  exit 1
fi
