"""Synthetic pages: rendered words laid out in lines, with their true boxes (for segmentation tests)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ..preprocess import ink_map
from .dataset import SyntheticWords

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
