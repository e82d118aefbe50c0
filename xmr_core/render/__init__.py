"""Synthetic handwriting: fonts with per-glyph jitter, simulated pens, the app's canvas."""

from .dataset import Sample, SyntheticWords
from .glyphs import EM, MissingGlyph
from .style import KINDS, Style, sample_style
from .word import render_mask, render_word, word_polylines

__all__ = ["EM", "KINDS", "MissingGlyph", "Sample", "Style", "SyntheticWords", "render_mask", "render_word",
           "sample_style", "word_polylines"]
