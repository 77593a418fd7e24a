#!/usr/bin/env bash
# Fresh machine -> test results: make .venv, install identify with its test and lint
# extras, run the linters (ruff, ruff format, mypy, import contracts) and every test.
# Exits non-zero when any linter reports anything, any test fails, or no test ran
# (pytest's code 5). Arguments go to pytest; LINT=0 skips the linters.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian packages: real photos and playing cards (drawn by librsvg) for the dataset tests
# and benchmarks, Chromium for the browser test, tmux for the terminal test. Installed
# when missing and this user may (root); else the tests that need them say what to
# install.
DEBS="tuxpaint-stamps-default plasma-workspace-wallpapers mate-backgrounds"
DEBS="$DEBS kdegames-card-data-kf5 librsvg2-bin chromium tmux"
missing=$(for p in $DEBS; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$missing" ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'
# Public-domain flags for the dataset tests and the benchmark (npm registry).
if command -v npm >/dev/null && [ ! -d node_modules/svg-country-flags ]; then
  npm install --no-save --no-package-lock --silent svg-country-flags@1.2.10 \
    || echo "tests/run.sh: could not install svg-country-flags; flag tests will say so" >&2
fi
export YOLO_OFFLINE=1 YOLO_AUTOINSTALL=false HF_HUB_OFFLINE=1
set +e
lint=0
if [ "${LINT:-1}" != 0 ]; then
  # Each linter runs even when one before it failed, so one run shows every finding.
  for check in "ruff check ." "ruff format --check ." "mypy" "lint-imports"; do
    # shellcheck disable=SC2086
    if ! .venv/bin/$check; then
      echo "tests/run.sh: '$check' failed" >&2
      lint=1
    fi
  done
fi
.venv/bin/python -m pytest "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
  echo "tests/run.sh: no test ran; that is a failure" >&2
  exit 1
fi
if [ "$code" -eq 0 ] && [ "$lint" -ne 0 ]; then
  echo "tests/run.sh: every test passed, but a linter did not" >&2
  exit 1
fi
exit "$code"
