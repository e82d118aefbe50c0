"""Model registry: model directories under `<data>/models`, the bundled default, and the active one."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .paths import ASSETS
from .store import Store

DEFAULT_MODEL = ASSETS / "models" / "default"


def model_id(model_dir: Path | str) -> str:
    """Content id of a model directory: sha256 of its weights and config (first 16 hex digits)."""
    d = Path(model_dir)
    h = hashlib.sha256()
    for name in ("config.json", "model.safetensors"):
        h.update((d / name).read_bytes())
    return h.hexdigest()[:16]


def list_models(store: Store) -> list[dict]:
    """The bundled default and every model directory in the data folder, with their metrics."""
    dirs = [DEFAULT_MODEL] if (DEFAULT_MODEL / "config.json").exists() else []
    dirs += sorted(p for p in (store.root / "models").glob("*") if (p / "config.json").exists())
    active = active_model_dir(store)
    out = []
    for d in dirs:
        metrics = json.loads((d / "metrics.json").read_text()) if (d / "metrics.json").exists() else {}
        out.append({"name": d.name, "path": str(d), "id": model_id(d), "active": d.resolve() == active.resolve(),
                    "size_mb": round(sum(p.stat().st_size for p in d.iterdir() if p.is_file()) / 1e6, 2),
                    "metrics": metrics})
    return out


def active_model_dir(store: Store) -> Path:
    """The model the engine serves: the store's pointer, else the bundled default."""
    p = store.get_meta("active_model")
    if p and (Path(p) / "config.json").exists():
        return Path(p)
    return DEFAULT_MODEL


def activate(store: Store, model_dir: Path | str) -> None:
    """Point the store at a model directory, remembering the previous one for rollback."""
    d = Path(model_dir).resolve()
    if not (d / "config.json").exists():
        raise ValueError(f"{d} is not a model directory")
    store.set_meta("previous_model", str(active_model_dir(store).resolve()))
    store.set_meta("active_model", str(d))


def rollback(store: Store) -> Path:
    prev = store.get_meta("previous_model")
    if not prev:
        raise ValueError("no previous model to roll back to")
    activate(store, prev)
    return Path(prev)


def promote(store: Store, result: dict, override: bool = False) -> Path:
    """Activate a fine-tuned model, unless it scores worse than the model it started from on the
    held-out fonts (then only with `override`)."""
    before = result["before"]["val_fonts"]["within_acc@1"]
    after = result["after"]["val_fonts"]["within_acc@1"]
    if after < before and not override:
        raise ValueError(f"the new model is worse on the held-out fonts ({100 * after:.1f}% < {100 * before:.1f}% "
                         "within-language Acc@1); tick the override to promote it anyway")
    activate(store, result["model_dir"])
    return Path(result["model_dir"])
