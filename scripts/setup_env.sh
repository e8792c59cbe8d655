#!/usr/bin/env bash
# Create (or reuse) .venv and install knucaptcha with the given extras.
# torch is pinned first to the local CPU build: an unpinned torch would pull gigabytes of CUDA wheels.
# Usage: scripts/setup_env.sh [EXTRAS]   e.g. scripts/setup_env.sh train,serve,test
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
if [[ ",$extras," == *",train,"* ]]; then
  .venv/bin/python -m pip install --quiet "torch==2.13.0"
fi
if [[ -n "$extras" ]]; then
  .venv/bin/python -m pip install --quiet -e ".[$extras]"
else
  .venv/bin/python -m pip install --quiet -e .
fi
