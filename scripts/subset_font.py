"""Rebuild the bundled font: NanumGothic Bold cut down to the captcha's symbols, renamed.

The real KNU captcha is drawn in NanumGothic Bold (``../shared/CONTEXT.md``,
README "The real KNU captcha"). The full font is 4 MB of Hangul the generator
never draws; this keeps ``0-9A-Za-z`` (outlines, hinting and metrics untouched,
so the advance widths and rasterization are the original's) and ships 20 KB.

NanumGothic is under the SIL Open Font License 1.1 with Reserved Font Names
("Nanum", "NanumGothic", ...). A subset is a Modified Version under the OFL, so
it must not carry a reserved name: the family is renamed ``KnuCaptchaGothic``
and the copyright notice and licence travel beside it (``OFL.txt``).

Usage (needs ``fonttools``, which the package itself does not):
    python scripts/subset_font.py /usr/share/fonts/truetype/nanum/NanumGothicBold.ttf
"""

from __future__ import annotations

import string
import sys
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont

FAMILY = "KnuCaptchaGothic"
OUT = Path(__file__).resolve().parent.parent / "src" / "knucaptcha" / "fonts" / f"{FAMILY}-Bold.ttf"
SYMBOLS = string.digits + string.ascii_uppercase + string.ascii_lowercase


def main(source: str) -> None:
    font = TTFont(source)
    options = subset.Options()
    options.hinting = True  # the hinted outlines decide the 30 px rasterization and advances
    options.layout_features = []  # the captcha is drawn glyph by glyph: no kerning, no ligatures
    options.name_IDs = [0, 1, 2, 3, 4, 5, 6, 13, 14]
    options.notdef_outline = True
    subsetter = subset.Subsetter(options)
    subsetter.populate(text=SYMBOLS)
    subsetter.subset(font)
    names = font["name"]
    for record in list(names.names):
        if record.nameID in (1, 4, 6, 3):  # family, full name, PostScript name, unique id
            value = {1: FAMILY, 4: f"{FAMILY} Bold", 6: f"{FAMILY}-Bold", 3: f"{FAMILY}-Bold subset"}[record.nameID]
            names.setName(value, record.nameID, record.platformID, record.platEncID, record.langID)
        elif record.nameID not in (0, 2, 5, 13, 14):
            names.removeNames(nameID=record.nameID)
    font.save(OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/fonts/truetype/nanum/NanumGothicBold.ttf")
