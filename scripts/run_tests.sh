#!/usr/bin/env bash
# The whole test suite on a fresh machine: Debian Chromium for the browser test, a virtualenv
# with every extra (training, serving, light exports, tests), then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi
scripts/setup_env.sh train,serve,tflite,test
exec .venv/bin/python -m pytest "$@"
