"""Install size of a distribution: the installed files of it and every distribution it requires.

Measured in the running environment by walking ``importlib.metadata`` requirements
(markers evaluated, extras off), which is the set a fresh ``pip install NAME``
pulls into an empty venv, and summing the sizes of the files each one's RECORD lists.
An editable install records no package files, so its source package is measured instead.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# What `apt-get install tesseract-ocr tesseract-ocr-eng` pulled onto this Debian 12 image;
# the rest of its closure (libc, libpng, ...) was already part of the base system.
TESSERACT_DEBS = (
    "tesseract-ocr", "tesseract-ocr-eng", "tesseract-ocr-osd",
    "libtesseract5", "liblept5", "libopenjp2-7", "libwebpmux3",
)


def closure(name: str) -> list[metadata.Distribution]:
    """``name`` and every distribution it requires, transitively; each once, sorted by name."""
    seen: dict[str, metadata.Distribution] = {}
    pending = [name]
    while pending:
        key = canonicalize_name(pending.pop())
        if key in seen:
            continue
        dist = metadata.distribution(key)
        seen[key] = dist
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return [seen[key] for key in sorted(seen)]


def _editable_root(dist: metadata.Distribution) -> Path | None:
    text = dist.read_text("direct_url.json")
    if not text:
        return None
    info = json.loads(text)
    if not info.get("dir_info", {}).get("editable"):
        return None
    return Path(info["url"].removeprefix("file://"))


def _tree_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file() and "__pycache__" not in path.parts)


def dist_size(dist: metadata.Distribution) -> int:
    """Bytes on disk of one installed distribution (its source package if editable)."""
    root = _editable_root(dist)
    if root is not None:
        top = (dist.read_text("top_level.txt") or dist.metadata["Name"]).split()
        return sum(_tree_size(root / "src" / package) for package in top if (root / "src" / package).is_dir())
    total = 0
    for file in dist.files or []:
        path = Path(file.locate())
        if path.is_file() and "__pycache__" not in path.parts:
            total += path.stat().st_size
    return total


def deb_size(packages: tuple[str, ...]) -> int:
    """Bytes of Debian packages as dpkg records them (Installed-Size, in KiB)."""
    output = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Installed-Size}\n", *packages],
        capture_output=True, text=True, check=True,
    ).stdout
    return sum(int(line) for line in output.split()) * 1024


def install_size(name: str) -> dict[str, int]:
    """Bytes per distribution in ``name``'s closure, plus the system packages a tool needs."""
    sizes = {dist.metadata["Name"]: dist_size(dist) for dist in closure(name)}
    if canonicalize_name(name) == "pytesseract":
        sizes["debian: " + " ".join(TESSERACT_DEBS)] = deb_size(TESSERACT_DEBS)
    return sizes


if __name__ == "__main__":
    for name in sys.argv[1:]:
        sizes = install_size(name)
        print(f"{name}: {sum(sizes.values()) / 2**20:.1f} MiB")
        for part, size in sorted(sizes.items(), key=lambda item: -item[1]):
            print(f"  {size / 2**20:8.1f} MiB  {part}")
