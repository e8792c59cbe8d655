#!/usr/bin/env bash
# Install the font families the model card's robustness check draws with: families no training
# run of the shipped models uses (Liberation, Open Sans, Lato from Debian; STIX and Computer Modern
# come with matplotlib). Never the families the team keeps for its own held-out checks.
# Usage: benchmarks/setup_fonts.sh
set -euo pipefail
if [[ ! -d /usr/share/fonts/truetype/liberation2 || ! -d /usr/share/fonts/truetype/lato || ! -d /usr/share/fonts/truetype/open-sans ]]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-liberation2 fonts-open-sans fonts-lato >/dev/null
fi
ls /usr/share/fonts/truetype/liberation2 /usr/share/fonts/truetype/open-sans /usr/share/fonts/truetype/lato
