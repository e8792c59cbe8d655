#!/usr/bin/env bash
# Create (or reuse) .bench-venv: knucaptcha plus the peers it is compared with.
# The peers are never dependencies of knucaptcha; they live only in this git-ignored venv.
# Everything comes from PyPI (pip) and Debian (apt-get); ddddocr and captcha-whisperer
# ship their ONNX models inside their wheels, so nothing is downloaded at run time.
# Safe to run again: pip skips what is satisfied, apt-get runs only when tesseract is missing.
# Usage: benchmarks/setup_peers.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v tesseract >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tesseract-ocr tesseract-ocr-eng >/dev/null
fi

python3 -m venv .bench-venv
.bench-venv/bin/python -m pip install --quiet --upgrade pip
# The quantize extra (onnx) lets the benchmark make the int8 row with knucaptcha's own quantizer;
# the litert extra runs a .tflite export for the --tflite row.
.bench-venv/bin/python -m pip install --quiet -e ".[quantize,litert]" ddddocr captcha-whisperer pytesseract
.bench-venv/bin/python - <<'EOF'
from importlib.metadata import version
for name in ("knucaptcha", "onnxruntime", "ddddocr", "captcha-whisperer", "pytesseract"):
    print(f"{name} {version(name)}")
EOF
tesseract --version 2>&1 | head -n 1
