"""Mouse strokes for a word, from the renderer's pen simulation, fitted into a canvas."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from xmr_core.data.fonts import list_fonts
from xmr_core.data.render.glyphs import strokes_can_draw
from xmr_core.data.render.style import sample_style
from xmr_core.data.render.word import word_polylines

SCRIPT = {"zh": "han", "en": "latin", "es": "latin"}


def word_strokes(text: str, lang: str, width: int, height: int, seed: int = 0, margin: int = 24) -> list[np.ndarray]:
    """Polylines (canvas pixels) of `text` written by a simulated pen, scaled to fit width x height."""
    rng = np.random.default_rng(seed)
    sources = [e.key for split in ("val", "train") for e in list_fonts(split, SCRIPT[lang], "strokes")
               if strokes_can_draw(e.key, text)]
    if not sources:
        raise ValueError(f"no stroke source can write {text!r}")
    style = sample_style("canvas", sources[0], rng, strength=0.5)
    lines = word_polylines(text, style, rng)
    pts = np.concatenate(lines)
    lo, hi = pts.min(0), pts.max(0)
    scale = min((width - 2 * margin) / max(1e-6, hi[0] - lo[0]), (height - 2 * margin) / max(1e-6, hi[1] - lo[1]))
    offset = (np.array([width, height]) - (hi - lo) * scale) / 2
    return [(line - lo) * scale + offset for line in lines]


def rasterise(strokes: list[np.ndarray], width: int, height: int, pen: int) -> np.ndarray:
    """What the canvas returns for these strokes: RGBA, black ink on transparent (for checks in-process)."""
    img = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    for line in strokes:
        d.line([tuple(p) for p in line], fill=(0, 0, 0, 255), width=pen, joint="curve")
    return np.asarray(img)
