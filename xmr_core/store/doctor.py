"""`xmr doctor`: check a data folder (store, image files, indexes), repair what can be repaired, and
restore the store from its rolling backup."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from xmr_core.store.database import Store, StoreDamaged, restore_backup
from xmr_core.store.index import load_index
from xmr_core.store.items import ids_checksum
from xmr_core.store.readings import READING_FORMAT


@dataclass
class DoctorReport:
    problems: list[str] = field(default_factory=list)  # what is wrong (and stays wrong)
    fixed: list[str] = field(default_factory=list)  # what was repaired
    missing: list[int] = field(default_factory=list)  # item ids whose image file is gone
    orphans: list[str] = field(default_factory=list)  # image files no item or sample refers to
    notes: list[str] = field(default_factory=list)  # advice that leaves the store healthy

    @property
    def healthy(self) -> bool:
        return not self.problems


def check(root: Path | str, fix: bool = False, grace_s: float = 3600.0) -> DoctorReport:
    """Everything `xmr doctor` looks at. With `fix`: orphan files older than `grace_s` (left by failed
    or killed adds) are removed, and damaged or stale index files deleted, so the engine rebuilds them
    from the store at its next start. Missing image files cannot be made again: they are reported."""
    rep = DoctorReport()
    try:
        store = Store(root)
    except StoreDamaged as exc:
        rep.problems.append(str(exc))
        return rep
    ok = store.integrity()
    if ok != "ok":
        rep.problems.append(f"SQLite integrity check: {ok}; restore a backup with `xmr doctor --restore`")
    for it in store.list_items(limit=10**9):
        if not it.path.exists():
            rep.missing.append(it.id)
    if rep.missing:
        rep.problems.append(f"{len(rep.missing)} items have lost their image file (ids {rep.missing[:10]}...); "
                            "remove them or add the images again")
    for a in store.list_annotations(None):
        if not (store.root / a["path"]).exists():
            rep.problems.append(f"queued sample {a['id']} has lost its image file {a['path']}")
    _orphans(store, rep, fix, grace_s)
    _indexes(store, rep, fix)
    old = store.read("SELECT COUNT(*) AS n FROM readings WHERE format < ?", (READING_FORMAT,))[0]["n"]
    if old:
        what = "1 reading was" if old == 1 else f"{old} readings were"
        rep.notes.append(f"{what} made before XMR kept as many of the other words a reader nearly read; `xmr "
                         "reindex` reads those items again, so that search by words finds them by those words too")
    return rep


def _orphans(store: Store, rep: DoctorReport, fix: bool, grace_s: float) -> None:
    used = store.referenced_files()
    now = time.time()
    for f in sorted(p for p in store.images.rglob("*") if p.is_file()):
        rel = f.relative_to(store.root).as_posix()
        if rel in used:
            continue
        rep.orphans.append(rel)
        if fix and now - f.stat().st_mtime >= grace_s:
            f.unlink(missing_ok=True)
            rep.fixed.append(f"removed orphan file {rel}")
    left = len(rep.orphans) - sum(1 for x in rep.fixed if x.startswith("removed orphan"))
    if left:
        rep.problems.append(f"{left} image files belong to no item or sample (`xmr doctor --fix` removes them)")


def _indexes(store: Store, rep: DoctorReport, fix: bool) -> None:
    for path in sorted((store.root / "index").glob("*.faiss")):
        model_id = path.stem
        try:
            idx, _ = load_index(path, {})
            behind = ids_checksum(idx.ids()) != store.state_checksum(model_id)
            why = "behind the store (the engine catches up)" if behind else ""
        except ValueError as exc:
            why = f"damaged: {exc}"
        if why.startswith("damaged"):
            if fix:
                path.unlink(missing_ok=True)
                path.with_suffix(".json").unlink(missing_ok=True)
                rep.fixed.append(f"deleted index {path.name} ({why}); it is rebuilt at the next start")
            else:
                rep.problems.append(f"index {path.name} is {why} (`xmr doctor --fix` deletes it for a rebuild)")
        elif why:
            rep.fixed.append(f"index {path.name} is {why}")


def restore(root: Path | str, backup: Path | str | None = None) -> Path:
    """Put the newest (or the given) backup back as the store; indexes are rebuilt at the next start."""
    used = restore_backup(root, backup)
    for p in (Path(root) / "index").glob("*.faiss"):
        p.unlink(missing_ok=True)
        p.with_suffix(".json").unlink(missing_ok=True)
    return used
