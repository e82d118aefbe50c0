"""Rendering styles: which source draws a word and how strongly it is distorted."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

KINDS = ("font", "pen", "canvas")


@dataclass(frozen=True)
class Style:
    """Everything that decides how a word looks, except the per-glyph random draws."""

    kind: str = "font"  # 'font' (TTF glyphs), 'pen' (simulated pen on stroke data), 'canvas' (app drawing)
    source: str = ""  # font key (font) or stroke source key (pen/canvas)
    size: int = 48  # em size in pixels
    glyph_offset: float = 0.0  # max per-glyph offset, fraction of size
    glyph_scale: float = 0.0  # max per-glyph relative scale change
    glyph_rotate: float = 0.0  # max per-glyph rotation, degrees
    spacing: float = 0.0  # extra letter spacing, fraction of size (may be negative)
    stroke: int = 0  # stroke width change in pixels (-1 thinner .. +3 bolder)
    slant: float = 0.0  # horizontal shear
    wave: float = 0.0  # baseline wave amplitude, fraction of size
    elastic: float = 0.0  # elastic distortion strength, pixels
    blur: float = 0.0  # gaussian blur sigma, pixels
    noise: float = 0.0  # additive noise std (0..1 scale)
    paper: float = 1.0  # background brightness (0..1)
    texture: float = 0.0  # paper texture amplitude
    ink: float = 0.0  # ink brightness (0 black .. 0.6 grey)
    pen_width: float = 0.06  # pen/canvas stroke width, fraction of size
    pressure: float = 0.0  # pen pressure variation (0..1)
    tremor: float = 0.0  # pen tremor, fraction of size
    cursive: float = 0.0  # pen/canvas: chance that the pen stays down from one stroke to the next (0 = print)
    abbreviate: float = 0.0  # pen/canvas, Chinese: chance that a stroke after a character's first is left out
    transparent: bool = False  # canvas only: RGBA with a transparent background

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"style kind {self.kind!r}: expected one of {KINDS}")

    def to_dict(self) -> dict:
        return asdict(self)

    def with_source(self, source: str) -> "Style":
        return replace(self, source=source)


def sample_style(kind: str, source: str, rng: np.random.Generator, strength: float = 1.0,
                 cursive: float = 0.0, abbreviate: float = 0.0) -> Style:
    """A random style of `kind` drawing with `source`; `strength` in [0, 1] scales distortions; a share
    `cursive` of pen and canvas styles write joined-up, and those leave out up to a share `abbreviate` of
    Chinese strokes (`rng` is drawn from for either only when it is above 0)."""
    style = _sample_style(kind, source, rng, strength)
    if cursive > 0 and kind != "font" and rng.random() < cursive:
        style = replace(style, cursive=float(rng.uniform(0.4, 1.0)))
        if abbreviate > 0:
            style = replace(style, abbreviate=float(rng.uniform(0, abbreviate)))
    return style


def _sample_style(kind: str, source: str, rng: np.random.Generator, strength: float) -> Style:
    if kind not in KINDS:
        raise ValueError(f"style kind {kind!r}: expected one of {KINDS}")
    s = float(strength)
    u = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    if kind == "canvas":
        return Style(kind="canvas", source=source, size=int(rng.integers(56, 88)),
                     glyph_offset=u(0, 0.05) * s, glyph_scale=u(0, 0.12) * s, glyph_rotate=u(0, 6) * s,
                     spacing=u(-0.05, 0.25), slant=u(-0.2, 0.2) * s, wave=u(0, 0.05) * s,
                     pen_width=u(0.05, 0.11), tremor=u(0, 0.01) * s, transparent=bool(rng.random() < 0.5))
    common = dict(
        glyph_offset=u(0, 0.06) * s, glyph_scale=u(0, 0.15) * s, glyph_rotate=u(0, 8) * s,
        spacing=u(-0.04, 0.15) * s, slant=u(-0.3, 0.3) * s, wave=u(0, 0.06) * s,
        elastic=u(0, 2.0) * s, blur=u(0, 1.0) * s, noise=u(0, 0.06) * s,
        paper=u(0.8, 1.0), texture=u(0, 0.08) * s, ink=u(0, 0.45),
    )
    if kind == "font":
        return Style(kind="font", source=source, size=int(rng.integers(36, 60)),
                     stroke=int(rng.integers(-1, 3)) if rng.random() < 0.5 * s + 0.2 else 0, **common)
    return Style(kind="pen", source=source, size=int(rng.integers(40, 64)), pen_width=u(0.035, 0.1),
                 pressure=u(0.1, 0.8) * s, tremor=u(0, 0.012) * s, **common)
