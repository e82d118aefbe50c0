"""Entry points for front ends: build the engine for the data folder, with the demo collection."""

from __future__ import annotations

import os
from pathlib import Path

from .engine import Engine
from .paths import data_dir
from .registry import DEFAULT_MODEL
from .store import Store


def model_available(model_dir: Path | str | None = None) -> bool:
    return (Path(model_dir or DEFAULT_MODEL) / "config.json").exists()


def load_engine(data: Path | str | None = None, demo_concepts: int | None = None) -> Engine:
    """The engine over the data folder; on first start (no items) the demo collection is started
    (`XMR_DEMO_CONCEPTS` concepts, default every lexicon concept: the first few now, the rest in the
    background, demo.ensure_demo)."""
    from .demo import ensure_demo

    eng = Engine(data)
    ensure_demo(eng, demo_concepts or int(os.environ.get("XMR_DEMO_CONCEPTS", "0")) or None)
    return eng


def open_store(data: Path | str | None = None) -> Store:
    """The data folder's store alone, for pages that must work when no model loads (Models: roll back)."""
    return Store(data or data_dir())
