"""Entry points for front ends: build the engine for the data folder, with the demo collection."""

from __future__ import annotations

import os
from pathlib import Path

from xmr_core.data.paths import data_dir
from xmr_core.search.engine import Engine, Progress
from xmr_core.store.database import Store
from xmr_core.store.registry import DEFAULT_MODEL


def model_available(model_dir: Path | str | None = None) -> bool:
    return (Path(model_dir or DEFAULT_MODEL) / "config.json").exists()


def load_engine(data: Path | str | None = None, demo_concepts: int | None = None,
                progress: Progress | None = None) -> Engine:
    """The engine over the data folder; on first start (no items) the demo collection is started
    (`XMR_DEMO_CONCEPTS` concepts, default every lexicon concept: the first few now, the rest in the
    background, demo.ensure_demo). `progress(done, total, what)` hears each step."""
    from xmr_core.search.demo import ensure_demo

    say = progress or (lambda d, t, w: None)
    say(0, 3, "loading the model, the store and the index")
    eng = Engine(data, progress=progress)
    say(1, 3, "the demo collection's first concepts (on a first start)")
    ensure_demo(eng, demo_concepts or int(os.environ.get("XMR_DEMO_CONCEPTS", "0")) or None, progress=progress)
    say(2, 3, "the dictionaries and their words' text features")
    _ = eng.translator  # built now (1-2 s), not on the first typed query
    say(3, 3, "ready")
    return eng


def open_store(data: Path | str | None = None) -> Store:
    """The data folder's store alone, for pages that must work when no model loads (Models: roll back)."""
    return Store(data or data_dir())
