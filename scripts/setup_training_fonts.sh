#!/usr/bin/env bash
# Gather the font families the shipped default's `knu-varied` share trains with into one folder
# (for `knucaptcha train --mix-fonts DIR`): matplotlib's DejaVu, the bundled KnuCaptchaGothic, and
# the Debian packages below, linked by file. The families the model card's robustness check holds
# out (Liberation, Lato, Open Sans, STIX, Computer Modern) and their close relatives (Carlito is
# Lato's, Arimo/Tinos/Cousine are Liberation's, Noto Sans and Droid are Open Sans's) are left out,
# and so is every family the team keeps for its own held-out checks, with the packages derived from
# them (fonts-uralic redraws URW base35; fonts-lmodern, fonts-cmu, fonts-mathjax, fonts-katex are
# Computer Modern; the Thai TLWG and Doulos SIL faces take their Latin from FreeFont and Times).
# A package gives at most PER_PACKAGE files (evenly spaced in name order), so that a family shipped
# as dozens of instances is drawn about as often as one shipped as four.
# Usage: scripts/setup_training_fonts.sh [DEST]   (default: fonts-train/ in the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-fonts-train}
PACKAGES=(
  fonts-nanum fonts-nanum-extra fonts-roboto-unhinted fonts-crosextra-caladea fonts-cabin fonts-go
  fonts-hack fonts-inconsolata fonts-jetbrains-mono fonts-firacode fonts-inter fonts-karla
  fonts-linuxlibertine fonts-ebgaramond fonts-comic-neue fonts-courier-prime fonts-b612
  fonts-noto-mono fonts-manrope fonts-clear-sans fonts-oldstandard
  fonts-anonymous-pro fonts-adf-verana fonts-adf-gillius fonts-adf-universalis fonts-adf-baskervald
  fonts-arkpandora fonts-ocr-a fonts-ocr-b fonts-league-spartan fonts-dosis fonts-comfortaa
  fonts-mononoki fonts-fanwood fonts-goudybookletter fonts-cantarell fonts-gfs-didot fonts-quicksand
  fonts-paratype fonts-sil-gentium fonts-sil-andika fonts-sil-charis fonts-tuffy fonts-oxygen fonts-play
  fonts-sora fonts-vollkorn fonts-yrsa-rasa fonts-quattrocento fonts-cardo fonts-junicode fonts-opendin
  fonts-opendyslexic fonts-tiresias fonts-jura fonts-fantasque-sans fonts-monofur fonts-agave
  fonts-hermit fonts-3270 fonts-league-mono fonts-roboto-slab fonts-allerta fonts-arapey
  fonts-bebas-neue fonts-yanone-kaffeesatz fonts-adf-accanthis fonts-adf-berenis fonts-adf-ikarius
  fonts-adf-irianis fonts-adf-libris fonts-adf-mekanus fonts-adf-oldania fonts-adf-romande
  fonts-adf-solothurn fonts-osifont fonts-roadgeek fonts-humor-sans fonts-prociono fonts-gnutypewriter
  fonts-mph-2b-damase fonts-naver-d2coding fonts-unfonts-core fonts-alee fonts-lexi-gulim
  fonts-lexi-saebom fonts-ipafont-gothic fonts-ipaexfont-gothic fonts-vlgothic fonts-mplus
  fonts-sawarabi-gothic fonts-woowa-bm fonts-motoya-l-cedar fonts-morisawa-bizud-gothic fonts-klee
  fonts-routed-gothic fonts-national-park fonts-karmilla fonts-elstob fonts-ferrite-core
  fonts-femkeklaver fonts-staypuft fonts-monoid fonts-ebgaramond-extra
)
PER_PACKAGE=12
missing=()
for package in "${PACKAGES[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if ((${#missing[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
PYTHON=${PYTHON:-.venv/bin/python}
mkdir -p "$DEST"
find "$DEST" -maxdepth 1 -type l -delete
link() { ln -sf "$(realpath "$1")" "$DEST/$(basename "$1")"; }
for package in "${PACKAGES[@]}"; do
  mapfile -t files < <(dpkg -L "$package" | grep -E '\.(ttf|otf)$' | while read -r file; do [[ -f $file ]] && echo "$file"; done | sort)
  count=${#files[@]}
  take=$((count < PER_PACKAGE ? count : PER_PACKAGE))
  for ((i = 0; i < take; i++)); do link "${files[i * count / take]}"; done
done
read -r MATPLOTLIB BUNDLED < <("$PYTHON" -c 'from knucaptcha.generator.fonts import bundled_font_dir as b, matplotlib_font_dir as m; print(m(), b())')
for file in "$MATPLOTLIB"/DejaVu*.ttf "$BUNDLED"/*.ttf; do link "$file"; done
echo "$(find "$DEST" -maxdepth 1 -type l | wc -l) font files in $DEST"
