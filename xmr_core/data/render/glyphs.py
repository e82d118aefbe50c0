"""Glyph sources: font faces (bitmap masks) and stroke data (pen polylines), with coverage checks.

Everything is drawn at one em size (`EM` pixels) and scaled afterwards, so glyph caches stay small.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from xmr_core.data.fonts import FontEntry, covers, load_manifest

EM = 48
Polyline = np.ndarray  # (n, 2) float32 points, x right, y down, origin at pen position on the baseline


class MissingGlyph(ValueError):
    """The chosen source cannot draw a character of the word."""


@lru_cache(maxsize=1)
def entries_by_key() -> dict[str, FontEntry]:
    return {e.key: e for e in load_manifest()}


def entry(key: str) -> FontEntry:
    try:
        return entries_by_key()[key]
    except KeyError:
        raise ValueError(f"unknown font or stroke source {key!r}: not in assets/fonts.tsv") from None


# --------------------------------------------------------------------------- font faces


@lru_cache(maxsize=256)
def _font(key: str) -> ImageFont.FreeTypeFont:
    e = entry(key)
    if not e.path.exists():
        raise FileNotFoundError(f"{e.path} missing: run `xmr fonts fetch`")
    return ImageFont.truetype(str(e.path), EM, index=e.index)


@lru_cache(maxsize=200_000)
def font_glyph(key: str, ch: str) -> tuple[np.ndarray, int, int, float]:
    """(mask float32 0..1, left, top, advance) for one character; left/top relative to the pen."""
    font = _font(key)
    box = Image.new("L", (EM * 3, EM * 3), 0)
    ImageDraw.Draw(box).text((EM, 2 * EM), ch, font=font, fill=255, anchor="ls")
    arr = np.asarray(box)
    ys, xs = np.nonzero(arr)
    advance = float(font.getlength(ch))
    if len(xs) == 0:
        if ch.isspace():
            return np.zeros((1, 1), np.float32), 0, 0, advance
        raise MissingGlyph(f"font {key} draws nothing for {ch!r}")
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return arr[y0:y1, x0:x1].astype(np.float32) / 255.0, int(x0 - EM), int(y0 - 2 * EM), advance


def font_can_draw(key: str, text: str) -> bool:
    return covers(entry(key), text)


# --------------------------------------------------------------------------- stroke data


def _hanzi_dir() -> Path:
    return entry("hanzi-writer-data").path


@lru_cache(maxsize=20_000)
def hanzi_strokes(ch: str) -> tuple[tuple[Polyline, ...], float]:
    """Stroke medians of a Chinese character from hanzi-writer-data, scaled to EM."""
    p = _hanzi_dir() / f"{ch}.json"
    if not p.exists():
        raise MissingGlyph(f"hanzi-writer-data has no strokes for {ch!r}")
    data = json.loads(p.read_text(encoding="utf-8"))
    s = EM / 1024.0
    # hanzi-writer's frame: 1024 units, y up, baseline at y = -124 (screen y = 900 - y)
    lines = tuple(np.array([[x * s, -(y + 124) * s] for x, y in m], np.float32) for m in data["medians"])
    return lines, float(EM)


_SVG_GLYPH = re.compile(r"<glyph\b([^>]*)/?>")
_ATTR = re.compile(r'([a-z-]+)="([^"]*)"')


@lru_cache(maxsize=64)
def _hershey_font(key: str) -> dict[str, tuple[tuple[Polyline, ...], float]]:
    import html

    text = entry(key).path.read_text(encoding="utf-8")
    units = float(re.search(r'units-per-em="([0-9.]+)"', text).group(1))
    default_adv = float(re.search(r'<font\b[^>]*horiz-adv-x="([0-9.]+)"', text).group(1))
    s = EM / units
    glyphs = {}
    for m in _SVG_GLYPH.finditer(text):
        attrs = dict(_ATTR.findall(m.group(1)))
        if "unicode" not in attrs:
            continue
        ch = html.unescape(attrs["unicode"])
        if len(ch) != 1:
            continue
        lines, cur = [], []
        for tok in re.findall(r"[ML]|-?[0-9.]+", attrs.get("d", "")):
            if tok == "M":
                if len(cur) >= 2:
                    lines.append(cur)
                cur = []
            elif tok != "L":
                cur.append(float(tok))
        if len(cur) >= 2:
            lines.append(cur)
        polys = tuple(np.array(c[: len(c) // 2 * 2], np.float32).reshape(-1, 2) * [s, -s] for c in lines)
        glyphs[ch] = (polys, float(attrs.get("horiz-adv-x", default_adv)) * s)
    return glyphs


def stroke_glyph(key: str, ch: str) -> tuple[tuple[Polyline, ...], float]:
    """(polylines, advance) for one character from a stroke source."""
    if key == "hanzi-writer-data":
        return hanzi_strokes(ch)
    glyphs = _hershey_font(key)
    if ch not in glyphs:
        raise MissingGlyph(f"stroke font {key} has no {ch!r}")
    return glyphs[ch]


def strokes_can_draw(key: str, text: str) -> bool:
    try:
        for ch in text:
            if not ch.isspace():
                stroke_glyph(key, ch)
        return True
    except (MissingGlyph, FileNotFoundError):
        return False
