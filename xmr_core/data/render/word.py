"""Lay glyphs out into a word and draw it: font glyph masks or simulated pen strokes."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from xmr_core.data.render import augment
from xmr_core.data.lexicon import is_han
from xmr_core.data.render.glyphs import EM, MissingGlyph, font_can_draw, font_glyph, stroke_glyph
from xmr_core.data.render.style import Style


def _jitter(style: Style, rng: np.random.Generator) -> tuple[float, float, float, float]:
    """Per-glyph (scale, angle in radians, dx, dy)."""
    s = 1.0 + rng.uniform(-style.glyph_scale, style.glyph_scale)
    a = np.deg2rad(rng.uniform(-style.glyph_rotate, style.glyph_rotate))
    dx, dy = rng.uniform(-style.glyph_offset, style.glyph_offset, 2) * EM
    return s, a, dx, dy


def _canvas(n_glyphs: int) -> tuple[np.ndarray, float, float]:
    w = int(EM * (1.6 * n_glyphs + 2))
    return np.zeros((EM * 3, w), np.float32), float(EM), float(EM * 2)  # mask, pen x, baseline y


def _crop(mask: np.ndarray, margin: int) -> np.ndarray:
    ys, xs = np.nonzero(mask > 0.02)
    if len(xs) == 0:
        raise MissingGlyph("nothing was drawn")
    return np.pad(mask[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1], margin)


def font_mask(text: str, style: Style, rng: np.random.Generator) -> np.ndarray:
    """Ink mask of `text` set in a font, each glyph jittered."""
    if not font_can_draw(style.source, text):
        raise MissingGlyph(f"font {style.source} lacks a glyph of {text!r}")
    mask, x, base = _canvas(len(text))
    for ch in text:
        g, left, top, adv = font_glyph(style.source, ch)
        s, a, dx, dy = _jitter(style, rng)
        if g.shape != (1, 1):
            h, w = g.shape
            pad = int(0.3 * max(h, w)) + 2
            g = np.pad(g, pad)
            c = (w / 2 + pad, h / 2 + pad)
            m = cv2.getRotationMatrix2D(c, np.rad2deg(a), s)
            g = cv2.warpAffine(g, m, (g.shape[1], g.shape[0]), flags=cv2.INTER_LINEAR)
            x0, y0 = int(round(x + left + dx - pad)), int(round(base + top + dy - pad))
            x0, y0 = max(x0, 0), max(y0, 0)
            hh, ww = min(g.shape[0], mask.shape[0] - y0), min(g.shape[1], mask.shape[1] - x0)
            np.maximum(mask[y0:y0 + hh, x0:x0 + ww], g[:hh, :ww], out=mask[y0:y0 + hh, x0:x0 + ww])
        x += adv * s + style.spacing * EM
    return mask


def word_polylines(text: str, style: Style, rng: np.random.Generator) -> list[np.ndarray]:
    """Pen strokes of `text` (in drawing order) in EM-scale pixels, jittered and trembling; a Chinese
    character of 3 strokes or more loses each stroke after its first with chance `style.abbreviate`."""
    out: list[np.ndarray] = []
    x, base = float(EM), float(EM * 2)
    for ch in text:
        lines, adv = stroke_glyph(style.source, ch) if not ch.isspace() else ((), EM * 0.4)
        if style.abbreviate > 0 and len(lines) >= 3 and is_han(ch):
            keep = rng.random(len(lines)) >= style.abbreviate
            lines = [ln for i, ln in enumerate(lines) if i == 0 or keep[i]]
        s, a, dx, dy = _jitter(style, rng)
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]], np.float32) * s
        centre = np.array([adv / 2, -EM * 0.35], np.float32)
        for line in lines:
            pts = _resample(line, step=EM * 0.04)
            pts = (pts - centre) @ rot.T + centre
            if style.tremor > 0:
                walk = np.cumsum(rng.normal(0, style.tremor * EM, pts.shape), axis=0).astype(np.float32)
                walk -= np.linspace(0, 1, len(pts), dtype=np.float32)[:, None] * walk[-1]
                pts = pts + walk
            out.append(pts + np.array([x + dx, base + dy], np.float32))
        x += adv * s + style.spacing * EM
    if not out:
        raise MissingGlyph(f"no strokes for {text!r}")
    return out


def _resample(line: np.ndarray, step: float) -> np.ndarray:
    seg = np.linalg.norm(np.diff(line, axis=0), axis=1)
    total = float(seg.sum())
    if total < 1e-6:
        return line.copy()
    t = np.concatenate([[0], np.cumsum(seg)])
    n = max(2, int(total / step) + 1)
    u = np.linspace(0, total, n)
    return np.stack([np.interp(u, t, line[:, 0]), np.interp(u, t, line[:, 1])], 1).astype(np.float32)


def smooth(line: np.ndarray, sigma: float) -> np.ndarray:
    """A polyline with its corners rounded (Gaussian along its resampled points, `sigma` in EM-scale
    pixels), ends kept: a hand writing fast does not stop at each corner."""
    pts = _resample(line, step=EM * 0.02)
    k = sigma / (EM * 0.02)
    if len(pts) < 3 or k < 0.5:
        return pts
    r = int(3 * k)
    g = np.exp(-0.5 * (np.arange(-r, r + 1) / k) ** 2)
    g /= g.sum()
    padded = np.pad(pts, ((r, r), (0, 0)), mode="edge")
    out = np.stack([np.convolve(padded[:, i], g, mode="valid") for i in range(2)], 1).astype(np.float32)
    out[0], out[-1] = pts[0], pts[-1]
    return out


def joins(lines: list[np.ndarray], chance: float, rng: np.random.Generator, reach: float = 0.6) -> list[np.ndarray]:
    """Where the pen stays down between strokes (running hand): from the end of a stroke to the start of
    the next, when it lies within `reach` EM, with probability `chance`; a curve bowing to one side."""
    out = []
    for a, b in zip(lines, lines[1:]):
        p, q = a[-1], b[0]
        d = q - p
        if rng.random() >= chance or not 0 < np.hypot(*d) <= reach * EM:
            continue
        ctrl = (p + q) / 2 + np.array([-d[1], d[0]], np.float32) * rng.uniform(-0.3, 0.3)
        t = np.linspace(0, 1, 16, dtype=np.float32)[:, None]
        out.append((1 - t) ** 2 * p + 2 * (1 - t) * t * ctrl + t ** 2 * q)
    return out


def stroke_mask(lines: list[np.ndarray], style: Style, rng: np.random.Generator, shape: tuple[int, int],
                scale: int = 2, hairlines: list[np.ndarray] = ()) -> np.ndarray:
    """Draw polylines with a round pen whose width follows a random pressure profile, and `hairlines`
    (the pen's path between strokes) at a third of its width."""
    h, w = shape
    img = np.zeros((h * scale, w * scale), np.uint8)
    base = max(1.0, style.pen_width * EM * scale)
    for line in hairlines:
        pts = np.round(line * scale).astype(np.int32)
        cv2.polylines(img, [pts.reshape(-1, 1, 2)], False, 255, max(1, int(round(base / 3))), cv2.LINE_AA)
    for line in lines:
        pts = np.round(line * scale).astype(np.int32)
        n = len(pts)
        if style.pressure > 0:
            prof = np.sin(np.linspace(0.15, np.pi - 0.15, n)) ** 0.5
            prof = 1 - style.pressure * (1 - prof) + rng.normal(0, 0.08 * style.pressure)
        else:
            prof = np.ones(n)
        for i in range(max(1, n - 1)):
            p, q = pts[i], pts[min(i + 1, n - 1)]
            t = max(1, int(round(base * prof[i])))
            cv2.line(img, (int(p[0]), int(p[1])), (int(q[0]), int(q[1])), 255, t, cv2.LINE_AA)
    img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    return img.astype(np.float32) / 255.0


def render_mask(text: str, style: Style, rng: np.random.Generator) -> np.ndarray:
    """Ink mask of the word after geometric styling, cropped to the ink with a margin."""
    if style.kind == "font":
        mask = augment.change_stroke(font_mask(text, style, rng), style.stroke)
    else:
        lines = word_polylines(text, style, rng)
        hair = []
        if style.cursive > 0:  # running hand: rounded strokes, the pen kept down between some of them
            lines = [smooth(ln, 0.06 * EM * style.cursive) for ln in lines]
            hair = joins(lines, style.cursive, rng)
        allp = np.concatenate(lines)
        w = int(allp[:, 0].max() + EM)
        h = int(max(EM * 3, allp[:, 1].max() + EM))
        shift = np.array([0, max(0.0, EM - allp[:, 1].min())], np.float32)
        mask = stroke_mask([ln + shift for ln in lines], style, rng, (h + int(shift[1]), w),
                           hairlines=[ln + shift for ln in hair])
    mask = _crop(mask, EM // 4)
    mask = augment.slant(mask, style.slant)
    mask = augment.wave(mask, style.wave * EM, rng)
    mask = augment.elastic(mask, style.elastic, rng)
    return augment.blur(mask, style.blur)


def render_word(text: str, style: Style, rng: np.random.Generator) -> Image.Image:
    """Draw `text` in `style`. Font and pen styles give grayscale ('L') ink on paper; the canvas style
    gives black strokes on white ('L') or on a transparent background ('RGBA'), as the app's canvas.
    Raises MissingGlyph (a ValueError) when the source cannot draw a character."""
    mask = render_mask(text, style, rng)
    if style.size != EM:
        f = style.size / EM
        mask = cv2.resize(mask, (max(1, int(mask.shape[1] * f)), max(1, int(mask.shape[0] * f))),
                          interpolation=cv2.INTER_AREA)
    if style.kind == "canvas":
        a = (np.clip(mask, 0, 1) * 255).astype(np.uint8)
        if style.transparent:
            rgba = np.zeros((*a.shape, 4), np.uint8)
            rgba[..., 3] = a
            return Image.fromarray(rgba, "RGBA")
        return Image.fromarray(255 - a, "L")
    return Image.fromarray(augment.compose_on_paper(mask, style.paper, style.ink, style.texture,
                                                    style.noise, rng), "L")
