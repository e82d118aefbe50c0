"""The demo collection: renders of the held-out fonts, so a new user has something to search at once."""

from __future__ import annotations

import io

import numpy as np

from .engine import Engine, Progress
from .lexicon import LANGS
from .render import MissingGlyph, SyntheticWords

DEMO = "demo"


def build_demo(engine: Engine, n_concepts: int = 300, seed: int = 7, progress: Progress | None = None) -> int:
    """Add renders of the first `n_concepts` lexicon concepts in the three scripts (val fonts)."""
    ds = SyntheticWords(engine.lexicon, "val", seed=seed)
    concepts = engine.lexicon.concepts[:n_concepts]
    images, labels = [], []
    for i, c in enumerate(concepts):
        for j, lang in enumerate(LANGS):
            try:
                s = ds.sample(c.concept_id, lang, np.random.default_rng([seed, i, j]))
            except MissingGlyph:
                continue
            buf = io.BytesIO()
            s.image.save(buf, "PNG")
            images.append((f"demo/{c.concept_id}_{lang}.png", buf.getvalue()))
            labels.append((c.concept_id, lang))
        if progress:
            progress(i + 1, len(concepts), "rendering the demo collection")
    report = engine.add(DEMO, images, labels)
    return len(report.added)


def ensure_demo(engine: Engine, n_concepts: int = 300, progress: Progress | None = None) -> bool:
    """Build the demo collection when the data folder holds no items; True if it was built now."""
    if engine.store.count_items() > 0:
        return False
    build_demo(engine, n_concepts, progress=progress)
    return True
