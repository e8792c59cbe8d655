"""Synthetic captchas in the KNU styles, in memory or as a labelled folder (numpy + Pillow only).

    from knucaptcha.generator import get_style, generate_samples
    style = get_style("knu", difficulty="mixed")
    for sample in generate_samples(style, seed=0, count=8):
        sample.image, sample.label, sample.font, sample.difficulty
"""

from __future__ import annotations

from .dataset import (
    MANIFEST,
    encode_png,
    generate_inputs,
    generate_mixture,
    generate_samples,
    preview_grid,
    write_dataset,
    write_preview,
)
from .fonts import bundled_font_dir, find_fonts, matplotlib_font_dir
from .render import Sample, fonts_for, label_for, render_noise, render_sample
from .styles import DIFFICULTIES, STYLE_NAMES, Knobs, Style, get_style, with_font_folder

__all__ = [
    "DIFFICULTIES",
    "MANIFEST",
    "STYLE_NAMES",
    "Knobs",
    "Sample",
    "Style",
    "encode_png",
    "bundled_font_dir",
    "find_fonts",
    "fonts_for",
    "generate_inputs",
    "generate_mixture",
    "generate_samples",
    "get_style",
    "label_for",
    "matplotlib_font_dir",
    "preview_grid",
    "render_noise",
    "render_sample",
    "with_font_folder",
    "write_dataset",
    "write_preview",
]
