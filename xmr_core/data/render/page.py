"""Synthetic pages: rendered words laid out in lines, with their true boxes: clean, photographed, in two
columns (the page reader's tests and benchmarks/pages.py)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from xmr_core.data.lexicon import LANGS
from xmr_core.data.preprocess import ink_map
from xmr_core.data.render.dataset import SyntheticWords

Box = tuple[int, int, int, int]


def render_page(ds: SyntheticWords, words: list[tuple[str, str]], rng: np.random.Generator,
                width: int = 1400, word_height: int = 56) -> tuple[Image.Image, list[Box], list[tuple[str, str]]]:
    """Lay (concept_id, lang) words out left to right, top to bottom, on one paper-coloured page."""
    paper = int(rng.integers(225, 250))
    placed, boxes, labels = [], [], []
    x, y, line_h = 40, 40, 0
    for cid, lang in words:
        s = ds.sample(cid, lang, rng, kind="font")
        ink = ink_map(np.asarray(s.image.convert("L"), np.float32) / 255.0)
        ys, xs = np.nonzero(ink > 0.35)  # the word's own ink, without its paper
        if len(xs) == 0:
            continue
        crop = Image.fromarray((ink[ys.min():ys.max() + 1, xs.min():xs.max() + 1] * 255).astype(np.uint8))
        f = word_height * float(rng.uniform(0.7, 1.1)) / max(crop.height, 1)
        crop = crop.resize((max(1, int(crop.width * f)), max(1, int(crop.height * f))), Image.LANCZOS)
        if x + crop.width > width - 40:
            x, y, line_h = 40, y + line_h + int(word_height * rng.uniform(0.6, 1.0)), 0
        placed.append((crop, x, y))
        boxes.append((x, y, x + crop.width, y + crop.height))
        labels.append((cid, lang))
        x += crop.width + int(word_height * rng.uniform(0.9, 1.6))
        line_h = max(line_h, crop.height)
    page = Image.new("L", (width, y + line_h + 40), paper)
    ink_level = float(rng.integers(10, 90))
    for crop, px, py in placed:
        alpha = np.asarray(crop).astype(np.float32) / 255.0
        region = np.asarray(page.crop((px, py, px + crop.width, py + crop.height))).astype(np.float32)
        page.paste(Image.fromarray((region * (1 - alpha) + ink_level * alpha).astype(np.uint8)), (px, py))
    return page, boxes, labels


def two_columns(left: tuple[Image.Image, list[Box]], right: tuple[Image.Image, list[Box]],
                gutter: int = 120) -> tuple[Image.Image, list[Box]]:
    """Two pages side by side as the columns of one, a gutter of paper between them."""
    (a, ba), (b, bb) = left, right
    paper = int(np.median(np.asarray(a)))
    page = Image.new("L", (a.width + gutter + b.width, max(a.height, b.height)), paper)
    page.paste(a, (0, 0))
    page.paste(b, (a.width + gutter, 0))
    dx = a.width + gutter
    return page, list(ba) + [(x0 + dx, y0, x1 + dx, y1) for x0, y0, x1, y1 in bb]


def photographed(page: Image.Image, boxes: list[Box], rng: np.random.Generator, max_angle: float = 6.0,
                 ) -> tuple[Image.Image, list[Box]]:
    """A page as a phone photographs it: turned by up to `max_angle` degrees, lit unevenly (a gradient
    and a soft shadow), on textured paper, a little blurred and noisy. The boxes follow the words (each
    the axis-aligned box around its turned box)."""
    import cv2

    g = np.asarray(page.convert("L"), np.float32)
    h, w = g.shape
    angle = float(rng.uniform(-max_angle, max_angle))
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(h * sin + w * cos), int(h * cos + w * sin)
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    paper = float(np.median(g))
    g = cv2.warpAffine(g, m, (nw, nh), flags=cv2.INTER_LINEAR, borderValue=paper)
    moved = []
    for x0, y0, x1, y1 in boxes:
        c = np.array([[x0, y0, 1], [x1, y0, 1], [x1, y1, 1], [x0, y1, 1]], np.float32) @ m.T
        moved.append((int(c[:, 0].min()), int(c[:, 1].min()), int(np.ceil(c[:, 0].max())), int(np.ceil(c[:, 1].max()))))
    yy, xx = np.mgrid[0:nh, 0:nw].astype(np.float32)
    d = rng.normal(size=2)
    light = 1.0 - float(rng.uniform(0.1, 0.3)) * ((xx / nw - 0.5) * d[0] + (yy / nh - 0.5) * d[1]) / (abs(d).sum() / 2 + 1e-6)
    cx, cy, r = rng.uniform(0, nw), rng.uniform(0, nh), rng.uniform(0.3, 0.7) * max(nw, nh)
    light -= float(rng.uniform(0.05, 0.2)) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
    texture = cv2.GaussianBlur(rng.normal(0, 1, (nh, nw)).astype(np.float32), (0, 0), 3) * 12
    g = g * light + texture
    g = cv2.GaussianBlur(g, (0, 0), float(rng.uniform(0.3, 1.0))) + rng.normal(0, 3, g.shape)
    return Image.fromarray(np.clip(g, 0, 255).astype(np.uint8)), moved


KINDS = ("clean", "photographed", "two columns")


def synthetic_page(kind: str, ds: SyntheticWords, rng: np.random.Generator):
    """(page, true word boxes) of one of KINDS: 24 words in lines, or two columns of 16, photographed
    but for "clean"."""
    lex = ds.lexicon

    def words(n):
        return [(lex.concepts[int(i)].concept_id, LANGS[int(rng.integers(3))]) for i in rng.integers(0, len(lex), n)]

    if kind == "two columns":
        page, boxes = two_columns(render_page(ds, words(16), rng, width=800)[:2],
                                  render_page(ds, words(16), rng, width=800)[:2])
    else:
        page, boxes, _ = render_page(ds, words(24), rng)
    return photographed(page, boxes, rng) if kind != "clean" else (page, boxes)
