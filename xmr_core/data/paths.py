"""Where XMR keeps its files: bundled assets, the download cache and the data folder."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ASSETS = PROJECT_ROOT / "assets"


def cache_dir() -> Path:
    """Download cache for fonts and stroke data (`XMR_CACHE`, default `<project>/.cache/xmr`)."""
    return Path(os.environ.get("XMR_CACHE", PROJECT_ROOT / ".cache" / "xmr"))


def data_dir() -> Path:
    """The data folder holding the store, images and index (`XMR_DATA`, default `./data`)."""
    return Path(os.environ.get("XMR_DATA", "data")).resolve()
