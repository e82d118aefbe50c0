"""Synthetic handwriting: fonts with per-glyph jitter, simulated pens, the app's canvas."""

from xmr_core.data.render.dataset import Sample, SyntheticWords
from xmr_core.data.render.glyphs import EM, MissingGlyph
from xmr_core.data.render.style import KINDS, Style, sample_style
from xmr_core.data.render.word import render_mask, render_word, word_polylines

__all__ = ["EM", "KINDS", "MissingGlyph", "Sample", "Style", "SyntheticWords", "render_mask", "render_word",
           "sample_style", "word_polylines"]
