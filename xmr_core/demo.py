"""The demo collection: renders of the held-out fonts, so a new user has something to search at once."""

from __future__ import annotations

import io

import numpy as np

from .engine import Engine, Progress
from .lexicon import LANGS, Lexicon
from .render import MissingGlyph, SyntheticWords

DEMO = "demo"


def render_val_words(lexicon: Lexicon, n_concepts: int, seed: int, progress: Progress | None = None
                     ) -> tuple[list[tuple[str, bytes]], list[tuple[str, str]]]:
    """PNG renders (name, bytes) of the first `n_concepts` concepts in the three scripts with the held-out
    fonts, and their (concept, language) labels."""
    ds = SyntheticWords(lexicon, "val", seed=seed)
    concepts = lexicon.concepts[:n_concepts]
    images, labels = [], []
    for i, c in enumerate(concepts):
        for j, lang in enumerate(LANGS):
            try:
                s = ds.sample(c.concept_id, lang, np.random.default_rng([seed, i, j]))
            except MissingGlyph:
                continue
            buf = io.BytesIO()
            s.image.save(buf, "PNG")
            images.append((f"demo/{c.concept_id}_{lang}@{s.style.source}.png", buf.getvalue()))  # @ the font
            labels.append((c.concept_id, lang))
        if progress:
            progress(i + 1, len(concepts), "rendering the demo collection")
    return images, labels


def build_demo(engine: Engine, n_concepts: int = 300, seed: int = 7, progress: Progress | None = None) -> int:
    """Add renders of the first `n_concepts` lexicon concepts in the three scripts (val fonts)."""
    images, labels = render_val_words(engine.lexicon, n_concepts, seed, progress)
    report = engine.add(DEMO, images, labels)
    return len(report.added)


def ensure_demo(engine: Engine, n_concepts: int = 300, progress: Progress | None = None) -> bool:
    """Build the demo collection when the data folder holds no items; True if it was built now."""
    if engine.store.count_items() > 0:
        return False
    build_demo(engine, n_concepts, progress=progress)
    return True
