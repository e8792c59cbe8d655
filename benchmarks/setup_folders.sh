#!/usr/bin/env bash
# Install the two captcha generators benchmarks/folders.py builds its dev folders with, into the
# benchmark environment only (never dependencies of knucaptcha): the PyPI `captcha` package and
# CairoSVG (to rasterize SVG) into .bench-venv, the npm `svg-captcha` package into .bench-venv/node.
# Safe to run again: pip and npm skip what is satisfied. Needs python3, node and npm.
# Usage: benchmarks/setup_folders.sh
set -euo pipefail
cd "$(dirname "$0")/.."

[[ -x .bench-venv/bin/python ]] || python3 -m venv .bench-venv
.bench-venv/bin/python -m pip install --quiet -e . captcha cairosvg
npm install --silent --no-audit --no-fund --prefix .bench-venv/node svg-captcha >/dev/null
.bench-venv/bin/python - <<'PY'
from importlib.metadata import version
for name in ("knucaptcha", "captcha", "cairosvg"):
    print(f"{name} {version(name)}")
PY
echo "svg-captcha $(node -p 'require("./.bench-venv/node/node_modules/svg-captcha/package.json").version')"
