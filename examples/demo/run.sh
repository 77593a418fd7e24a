#!/usr/bin/env bash
# Fresh machine -> demo results: make .venv, install identify into it, run the demo.
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
PATH="$PWD/.venv/bin:$PATH" bash examples/demo/demo.sh
