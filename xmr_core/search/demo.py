"""The demo collection: renders of the held-out fonts, so a new user has something to search at once."""

from __future__ import annotations

import io

import numpy as np

from xmr_core.data.lexicon import LANGS, Concept, Lexicon
from xmr_core.data.render import MissingGlyph, SyntheticWords
from xmr_core.search.engine import Engine, Progress

DEMO = "demo"


EXAMPLES = ("gato", "猫", "cat")  # the Search page's placeholder: their concept is rendered first
FIRST = 30  # concepts built at first start, before the app opens; the rest fill in a background job
CHUNK = 50  # concepts per batch added: searchable as each lands
READ_BACK = True  # leave out renders the model does not read back as their word (an untrained model reads none)


def demo_concepts(lexicon: Lexicon, n_concepts: int | None = None) -> list[Concept]:
    """The concepts of the demo, the examples the app suggests first, then the lexicon's order."""
    first = [c for c in lexicon.concepts if {c.zh, c.en, c.es} & set(EXAMPLES)]
    rest = [c for c in lexicon.concepts if c not in first]
    return (first + rest)[: n_concepts or len(lexicon)]


def render_val_words(lexicon: Lexicon, n_concepts: int | None, seed: int, progress: Progress | None = None,
                     concepts: list[Concept] | None = None) -> tuple[list[tuple[str, bytes]], list[tuple[str, str]]]:
    """PNG renders (name, bytes) of the demo's concepts (or `concepts`) in the three scripts with the
    held-out fonts, and their (concept, language) labels."""
    ds = SyntheticWords(lexicon, "val", seed=seed)
    concepts = concepts if concepts is not None else demo_concepts(lexicon, n_concepts)
    images, labels = [], []
    for i, c in enumerate(concepts):
        n = lexicon.index(c.concept_id)  # a concept's render does not depend on the order it is built in
        for j, lang in enumerate(LANGS):
            try:
                s = ds.sample(c.concept_id, lang, np.random.default_rng([seed, n, j]))
            except MissingGlyph:
                continue
            buf = io.BytesIO()
            s.image.save(buf, "PNG")
            images.append((f"demo/{c.concept_id}_{lang}@{s.style.source}.png", buf.getvalue()))  # @ the font
            labels.append((c.concept_id, lang))
        if progress:
            progress(i + 1, len(concepts), "rendering the demo collection")
    return images, labels


def build_demo(engine: Engine, n_concepts: int | None = None, seed: int = 7, progress: Progress | None = None,
               start: int = 0) -> int:
    """Add renders of the demo's concepts (all of the lexicon unless `n_concepts`; from the `start`-th)
    in the three scripts (val fonts), CHUNK concepts at a time; a render the model does not read back as
    its word is left out. The number of images added."""
    concepts = demo_concepts(engine.lexicon, n_concepts)[start:]
    added, left_out = 0, 0
    for i in range(0, len(concepts), CHUNK):
        rendering = (lambda d, t, w, i=i: progress(i + d, len(concepts), "demo collection: rendering concepts")
                     ) if progress else None
        images, labels = render_val_words(engine.lexicon, None, seed, rendering, concepts=concepts[i:i + CHUNK])
        if progress:
            progress(i, len(concepts), f"demo collection: the model reads {len(images)} renders")
        report = engine.add(DEMO, images, labels, readable_only=READ_BACK)
        added, left_out = added + len(report.added), left_out + len(report.errors)
        if progress:
            progress(min(len(concepts), i + CHUNK), len(concepts),
                     f"demo collection: {added} images added, {left_out} illegible renders left out; concepts")
    return added


def demo_job(store) -> dict | None:
    """The newest job that builds the demo, if any."""
    return next((j for j in store.list_jobs(50) if j["kind"] == "demo"), None)


def ensure_demo(engine: Engine, n_concepts: int | None = None, progress: Progress | None = None) -> bool:
    """At first start (no items, no demo job yet): the first FIRST concepts now, the rest in a
    background job (jobs.py) the app reports on while search works on what is there. True if built now."""
    if engine.store.count_items() > 0 or demo_job(engine.store) is not None:
        return False
    total = min(n_concepts or len(engine.lexicon), len(engine.lexicon))
    build_demo(engine, min(FIRST, total), progress=progress)
    if total > FIRST:
        from xmr_core.search.jobs import start_job

        try:
            start_job(engine.store, "demo", {"concepts": total, "start": FIRST})
        except RuntimeError:  # another job runs (another server started it): the demo waits for `xmr demo`
            pass
    return True
