#!/usr/bin/env bash
# Gather the font families the model card's robustness check draws with into one folder: families
# no training run of the shipped models uses (Liberation, Open Sans, Lato from Debian; STIX and
# Computer Modern from matplotlib: their text faces, not the symbol and extension fonts). Never the
# families the team keeps for its own held-out checks.
# Usage: benchmarks/setup_fonts.sh [DEST]   (default: fonts-heldout/ in the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-fonts-heldout}
DEBIAN=(/usr/share/fonts/truetype/liberation2 /usr/share/fonts/truetype/open-sans /usr/share/fonts/truetype/lato)
if [[ ! -d ${DEBIAN[0]} || ! -d ${DEBIAN[1]} || ! -d ${DEBIAN[2]} ]]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-liberation2 fonts-open-sans fonts-lato >/dev/null
fi
PYTHON=${PYTHON:-.venv/bin/python}
MATPLOTLIB=$("$PYTHON" -c 'from knucaptcha.generator.fonts import matplotlib_font_dir; print(matplotlib_font_dir())')
mkdir -p "$DEST"
find "$DEST" -maxdepth 1 -type l -delete
for file in "${DEBIAN[0]}"/*.ttf "${DEBIAN[1]}"/*.ttf "${DEBIAN[2]}"/*.ttf "$MATPLOTLIB"/STIXGeneral*.ttf "$MATPLOTLIB"/cm{r,b,ss,tt,ti,mi}10.ttf; do
  ln -sf "$(realpath "$file")" "$DEST/$(basename "$file")"
done
echo "$(find "$DEST" -maxdepth 1 -type l | wc -l) font files in $DEST"
