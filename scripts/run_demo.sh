#!/usr/bin/env bash
# The main job from the base install (no torch): generate fresh captchas drawn as the real KNU server draws them,
# draw a preview grid, and read them with the shipped default model.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh
out="${1:-out/demo-$(date +%Y%m%d-%H%M%S)}"  # a fresh folder: generate never overwrites
mkdir -p "$out"
.venv/bin/knucaptcha generate "$out/captchas" --count 300 --style knu --difficulty exact --seed 20260001
.venv/bin/knucaptcha generate --preview "$out/preview.png" --style knu --seed 20260001
.venv/bin/knucaptcha solve "$out/captchas" --json > "$out/solved.json"
.venv/bin/knucaptcha evaluate default "$out/captchas" --grid "$out/grid.png"
echo "wrote $out/preview.png, $out/solved.json and $out/grid.png"
