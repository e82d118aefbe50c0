"""The engine's vector index: kept exactly in step with the store, across processes, under a file lock."""

from __future__ import annotations

import fcntl
import logging
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np

from xmr_core.data.lexicon import LANGS
from xmr_core.data.preprocess import preprocess
from xmr_core.search.fusion import fuse
from xmr_core.search.results import Progress
from xmr_core.store.index import VectorIndex, build_index, index_path, open_index
from xmr_core.store.items import Item

log = logging.getLogger(__name__)


class Indexing:
    """Index upkeep for the Engine: embed what the store lacks, catch up by id, rebuild; search filters."""

    def _index_path(self) -> Path:
        return index_path(self.store.root, self.model_id, self.vector_uri)

    def _load_index(self) -> VectorIndex:
        """The saved index of this engine's state (ValueError when there is none or it does not match)."""
        return open_index(self._index_path(), self._made_by(), self.vector_uri, self._collection())

    def _collection(self) -> str:
        """The Milvus collection of this data folder, model and fusion ("" on FAISS)."""
        if self.vector_uri is None:
            return ""
        from xmr_core.store.milvus_index import collection_name

        return collection_name({**self._made_by(), "store": self.store.store_id()})

    def _made_by(self) -> dict:
        """What the index file must have been made by to be usable for this engine."""
        return {"model_id": self.model_id, "fusion": asdict(self.fusion) if self.fusion else None}

    @contextmanager
    def _index_lock(self):
        """This engine's threads and every other process writing this model's index, one at a time."""
        with self._lock:
            path = self._index_path().with_suffix(".lock")
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a") as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(f, fcntl.LOCK_UN)

    def _save_index(self) -> None:
        self.index.save(self._index_path(), self._made_by())

    def _index_fields(self, ids: np.ndarray) -> list[dict] | None:
        """Each item's script and collection, for a backend that filters by them inside its search."""
        if not self.index_pushes_filters:
            return None
        got = self.store.scripts_and_collections([int(i) for i in ids])
        return [got.get(int(i), {}) for i in ids]

    @property
    def index_pushes_filters(self) -> bool:
        return self.vector_uri is not None

    def _index_vectors(self, ids: np.ndarray, vecs: np.ndarray, labels: dict[int, str] | None = None) -> np.ndarray:
        """What the index holds for these items: with fusion on, labelled items' embeddings fused
        with their concept's anchors (fusion.py); the store keeps the image embeddings."""
        if self.fusion is None or not len(ids):
            return vecs
        labels = self.store.labels() if labels is None else labels
        rows = [n for n, i in enumerate(ids) if labels.get(int(i)) in self.lexicon]
        if not rows:
            return vecs
        concepts = [self.lexicon.index(labels[int(ids[n])]) for n in rows]
        anchors = np.stack([self.anchors(lang)[concepts] for lang in LANGS], axis=1)  # (m, 3, d)
        out = vecs.copy()
        out[rows] = fuse(vecs[rows], anchors, self.fusion)
        return out

    def _open_index(self, progress: Progress | None = None) -> VectorIndex | None:
        """The index, caught up with the store; None when a Milvus Lite file is held by another process,
        which keeps the index (this engine then writes to the store only: that process catches up)."""
        from xmr_core.store.milvus_index import IndexBusy

        missing = self.store.items_missing_embedding(self.model_id)
        if missing:
            self._embed_items(missing, progress)
        with self._index_lock():
            try:
                try:
                    self.index = self._load_index()
                except ValueError as exc:
                    log.info("rebuilding the index: %s", exc)
                    self.index = self._rebuild_index()
            except IndexBusy as exc:
                log.warning("%s: this process writes to the store only", exc)
                self.busy, self.index = str(exc), None
                return None
            self._sync_index()
        return self.index

    def _searchable(self) -> VectorIndex:
        if self.index is None:
            raise RuntimeError(f"no search in this process: {self.busy}")
        return self.index

    def _embed_items(self, items: list[Item], progress: Progress | None = None, batch: int = 256) -> None:
        for start in range(0, len(items), batch):
            chunk = items[start:start + batch]
            ok, xs = [], []
            for it in chunk:
                try:
                    xs.append(preprocess(str(it.path), self.pre))
                    ok.append(it.id)
                except (ValueError, FileNotFoundError) as exc:
                    log.warning("item %s cannot be embedded: %s", it.id, exc)
            if ok and self.reads:
                vecs, _, readings, _ = self._embed_read(np.stack(xs))
                self.store.set_embeddings(self.model_id, ok, vecs)
                self.store.set_readings(self.model_id, list(zip(ok, readings)))
            elif ok:
                self.store.set_embeddings(self.model_id, ok, self.embed_images(np.stack(xs)))
            if progress:
                progress(min(start + batch, len(items)), len(items), "embedding items")

    def _rebuild_index(self) -> VectorIndex:
        ids, vecs = self.store.embeddings(self.model_id)
        vecs = self._index_vectors(ids, vecs) if len(ids) else np.zeros((0, self.model.cfg.embed_dim), np.float32)
        idx = build_index(ids, vecs, self.model.cfg.embed_dim, self.index_cfg, self.vector_uri, self._collection(),
                          self._index_fields(ids))
        self.index = idx
        self._save_index()
        return idx

    def _sync_index(self) -> bool:
        """Bring the index to exactly the store's items embedded by this model (adding what others
        added, dropping what they removed) and save it if it changed. Call under `_index_lock`."""
        if self.index is None:  # another process keeps the index (Milvus Lite): it catches up itself
            return False
        version = self.store.version()  # read first: a change after it is caught by the next sync
        want, have = self.store.embedded_ids(self.model_id), self.index.ids()
        new, gone = np.setdiff1d(want, have), np.setdiff1d(have, want)
        if len(gone):
            self.index.remove(gone)
        if len(new):
            ids, vecs = self.store.embeddings(self.model_id, new.tolist())
            if len(ids):
                self.index.add(ids, self._index_vectors(ids, vecs, self.store.labels(ids.tolist())),
                               self._index_fields(ids))
        changed = bool(len(new) or len(gone))
        if changed or not self._index_path().exists():
            self._save_index()
        self._synced, self._allowed = version, {}
        return changed

    def refresh(self) -> None:
        """Catch up with changes other processes made to the store since the last look (cheap when none)."""
        if self.index is not None and self.store.version() != self._synced:
            with self._index_lock():
                self._sync_index()

    def reindex(self, progress: Progress | None = None) -> int:
        """Embed any item lacking this model's embedding and rebuild the index from the store."""
        with self._index_lock():
            todo = self.store.items_missing_embedding(self.model_id)
            if self.reads:  # and those stored before readings were kept (schema 1)
                have = {it.id for it in todo}
                todo += [it for it in self.store.items_missing_reading(self.model_id) if it.id not in have]
            self._embed_items(todo, progress)
            if self.index is None:  # another process keeps the index: it rebuilds from the store
                return len(self.store.embedded_ids(self.model_id))
            self._rebuild_index()
            self._sync_index()
            return len(self.index)

    def check_collection(self, name: str) -> None:
        """ValueError naming the collections there are, when `name` is not one of them."""
        names = self.store.collection_names()
        if name not in names:
            have = ", ".join(names) if names else "none yet"
            raise ValueError(f"no collection named {name!r} (collections: {have}); add images with "
                             "`xmr add NAME FILES` or build the demo collection with `xmr demo`")

    def _allowed_ids(self, languages: list[str], collection: str | None) -> np.ndarray | None:
        """The item ids a filtered search may return, cached until the store changes."""
        if set(languages) == set(LANGS) and collection is None:
            return None
        key = (tuple(sorted(languages)), collection)
        if key not in self._allowed:
            self._allowed[key] = self._query_allowed(languages, collection)
        return self._allowed[key]

    def _query_allowed(self, languages: list[str], collection: str | None) -> np.ndarray:
        where, args = [], []
        if collection:
            where.append("c.name = ?")
            args.append(collection)
        if set(languages) != set(LANGS):
            where.append(f"i.lang IN ({','.join('?' * len(languages))})")
            args += languages
        rows = self.store.read("SELECT i.id FROM items i JOIN collections c ON c.id = i.collection_id WHERE "
                               + " AND ".join(where), tuple(args))
        return np.array([r["id"] for r in rows], np.int64)
