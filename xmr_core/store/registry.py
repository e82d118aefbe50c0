"""Model registry: model directories under `<data>/models`, the bundled default, and the active one."""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from pathlib import Path

from xmr_core.data.paths import ASSETS
from xmr_core.store.database import Store

READING_MODEL = ASSETS / "models" / "reader"  # the visual tower on the pretrained reader (model/reading.py)
EDGE_MODEL = ASSETS / "models" / "edge"  # the fast edge model: MobileNetV3 trained from scratch on renders
DEFAULT_MODEL = READING_MODEL  # what a data folder serves until another model is activated
_SLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def models_dir(store: Store) -> Path:
    """The one folder model jobs write into and Discard deletes from."""
    return (store.root / "models").resolve()


def new_model_dir(store: Store, name: str) -> Path:
    """The folder for a new model called `name`, inside the data folder's models directory.

    A name is a slug (1-64 letters, digits, '_', '-', '.', starting with a letter or digit): never a
    path, '.', '..' or a name already taken. ValueError otherwise."""
    name = str(name).strip()
    if not _SLUG.fullmatch(name):
        raise ValueError(f"a model name is 1-64 letters, digits, '_', '-' or '.', starting with a letter or "
                         f"digit (no paths): {name[:80]!r} is not one")
    root = models_dir(store)
    out = (root / name).resolve()
    if out.parent != root:
        raise ValueError(f"model name {name!r} leaves the models folder")
    if out.exists():
        raise ValueError(f"a model named {name!r} exists already: pick another name")
    return out


def inside_models(store: Store, path: Path | str) -> Path:
    """The folder of the data folder's models directory that holds `path` (a model or its `model/`
    subfolder); ValueError for anything else."""
    root = models_dir(store)
    p = Path(path).resolve()
    if p == root or root not in p.parents:
        raise ValueError(f"{path} is not inside the models folder {root}")
    return root / p.relative_to(root).parts[0]


def discard_model(store: Store, path: Path | str) -> Path:
    """Delete a fine-tuned model's folder. Only a folder inside the models directory, and never the
    active model or the one a rollback returns to."""
    folder = inside_models(store, path)
    why = in_use(store, folder)
    if why:
        raise ValueError(f"{folder.name} is {why}: activate another model first")
    shutil.rmtree(folder)
    return folder


def in_use(store: Store, path: Path | str) -> str | None:
    """Why the model at `path` (or a folder holding it) must stay: "the active model", "the model a roll
    back returns to", or None."""
    folder = Path(path).resolve()
    held = [(store.get_meta("active_model"), "the active model")]
    held += [(str(p), "the model a roll back returns to") for p in history(store)[-1:]]
    for p, what in held:
        if p and (Path(p).resolve() == folder or folder in Path(p).resolve().parents):
            return what
    return None


def model_id(model_dir: Path | str) -> str:
    """Content id of a model directory: sha256 of its weights, reading head, adapted reader tensors
    (train/trunk.py) and config (first 16 hex digits)."""
    d = Path(model_dir)
    h = hashlib.sha256()
    for name in ("config.json", "model.safetensors", "reading_head.safetensors", "reader_weights.safetensors"):
        if name in ("config.json", "model.safetensors") or (d / name).exists():
            h.update((d / name).read_bytes())
    return h.hexdigest()[:16]


def list_models(store: Store) -> list[dict]:
    """The bundled models (the default first) and every model directory in the data folder, with their metrics."""
    dirs = [d for d in dict.fromkeys((DEFAULT_MODEL, READING_MODEL, EDGE_MODEL)) if (d / "config.json").exists()]
    found = [p for p in (store.root / "models").glob("*") if (p / "config.json").exists()]
    found += [p / "model" for p in (store.root / "models").glob("*") if (p / "model" / "config.json").exists()]
    dirs += sorted(found)
    active = active_model_dir(store)
    out = []
    for d in dirs:
        metrics = json.loads((d / "metrics.json").read_text()) if (d / "metrics.json").exists() else {}
        reads = "reading" in json.loads((d / "config.json").read_text())
        out.append({"name": model_name(d), "path": str(d), "id": model_id(d),
                    "active": d.resolve() == active.resolve(), "reads": reads,
                    "size_mb": round(sum(p.stat().st_size for p in d.iterdir() if p.is_file()) / 1e6, 2),
                    "metrics": metrics})
    return out


def active_model_dir(store: Store) -> Path:
    """The model the engine serves: the store's pointer, else the bundled default."""
    p = store.get_meta("active_model")
    if p and (Path(p) / "config.json").exists():
        return Path(p)
    return DEFAULT_MODEL


def model_name(model_dir: Path | str) -> str:
    """The name a model goes by: its folder's, or for a fine-tune's `<name>/model` the folder above."""
    d = Path(model_dir)
    return d.parent.name if d.name == "model" else d.name


def history(store: Store) -> list[Path]:
    """The models a roll back returns to, the most recent last (activations push, roll backs pop)."""
    raw = store.get_meta("model_history")
    if raw is None:  # a store from before the history: its one previous model (its last writer)
        prev = store.get_meta("previous_model")
        return [Path(prev)] if prev else []
    return [Path(p) for p in json.loads(raw)]


def _set_history(store: Store, paths: list[Path]) -> None:
    paths = paths[-20:]
    store.set_meta("model_history", json.dumps([str(p) for p in paths]))


def activate(store: Store, model_dir: Path | str) -> None:
    """Point the store at a model directory, remembering the one it replaces for a roll back."""
    d = Path(model_dir).resolve()
    if not (d / "config.json").exists():
        raise ValueError(f"{d} is not a model directory")
    current = active_model_dir(store).resolve()
    if current != d:
        _set_history(store, history(store) + [current])
    store.set_meta("active_model", str(d))


def rollback(store: Store) -> Path:
    """Return to the model that was active before the current one (again: to the one before that);
    ValueError when there is none (a model since deleted is skipped)."""
    past = history(store)
    while past and not (past[-1] / "config.json").exists():
        past.pop()
    if not past:
        raise ValueError("no earlier model to roll back to")
    prev = past.pop()
    _set_history(store, past)
    store.set_meta("active_model", str(prev))
    return prev


GUARD_MAX_LOSS = 0.01  # the guard never lets through a model more than a point lower on the held-out fonts
GUARD_P = 0.05  # nor one that loses significantly more of the check's renders than it gains


def worse_on_fonts(before: dict, after: dict) -> bool:
    """The promote guard's rule on scores (a fine-tune's `before` / `after`): lower on the held-out fonts
    by more than GUARD_MAX_LOSS, or lower by a loss that is not noise: of the renders whose top-1 changed,
    it lost significantly more than it gained (a one-sided sign test, p < GUARD_P, on `within_top1`).
    Without both models' per-render record, any drop is worse."""
    b, a = before["val_fonts"], after["val_fonts"]
    if a["within_acc@1"] >= b["within_acc@1"]:
        return False
    hb, ha = b.get("within_top1"), a.get("within_top1")
    if a["within_acc@1"] < b["within_acc@1"] - GUARD_MAX_LOSS or not hb or not ha or len(hb) != len(ha):
        return True
    lost, gained = fonts_changed(hb, ha)
    return sign_test_p(lost, lost + gained) < GUARD_P


def fonts_changed(before: str, after: str) -> tuple[int, int]:
    """Of the check's renders, how many the new model lost (right before, wrong after) and gained."""
    return (sum(x == "1" and y == "0" for x, y in zip(before, after)),
            sum(x == "0" and y == "1" for x, y in zip(before, after)))


def sign_test_p(k: int, n: int) -> float:
    """P(at least k of n changes are losses) if a loss and a gain were equally likely."""
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2 ** n if n else 1.0


def promote(store: Store, result: dict, override: bool = False) -> Path:
    """Activate a fine-tuned model, unless it scores worse than the model it started from on the
    held-out fonts (then only with `override`)."""
    before = result["before"]["val_fonts"]["within_acc@1"]
    after = result["after"]["val_fonts"]["within_acc@1"]
    if worse_on_fonts(result["before"], result["after"]) and not override:
        hb, ha = result["before"]["val_fonts"].get("within_top1"), result["after"]["val_fonts"].get("within_top1")
        changed = ("; it lost {} of the check's renders and gained {}".format(*fonts_changed(hb, ha))
                   if hb and ha and len(hb) == len(ha) else "")
        raise ValueError(f"the new model is worse on the held-out fonts ({100 * after:.1f}% < {100 * before:.1f}% "
                         f"within-language Acc@1{changed}); tick the override to promote it anyway")
    activate(store, result["model_dir"])
    return Path(result["model_dir"])
