"""FAISS index over item embeddings, tied to the model that made them and to the store's state.

Exact inner-product search up to `exact_limit` vectors, HNSW beyond. Saved as FAISS's own binary
format (never pickle) beside a JSON record of (model id, count, checksum); `load_index` refuses a
file whose record does not match the store, and the engine then rebuilds it from the store.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np


@dataclass(frozen=True)
class IndexConfig:
    exact_limit: int = 200_000  # above this many vectors use HNSW
    hnsw_m: int = 32  # HNSW graph degree
    ef_construction: int = 80
    ef_search: int = 128  # HNSW search breadth (recall/latency trade-off)


class VectorIndex:
    """Inner-product index of L2-normalised vectors keyed by item id."""

    def __init__(self, dim: int, cfg: IndexConfig | None = None, approximate: bool = False) -> None:
        self.dim, self.cfg = dim, cfg or IndexConfig()
        self.approximate = approximate
        if approximate:
            inner = faiss.IndexHNSWFlat(dim, self.cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = self.cfg.ef_construction
            inner.hnsw.efSearch = self.cfg.ef_search
        else:
            inner = faiss.IndexFlatIP(dim)
        self.index = faiss.IndexIDMap2(inner)
        self.deleted: set[int] = set()  # HNSW cannot remove: hidden until the next rebuild

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, dim: int, cfg: IndexConfig | None = None) -> "VectorIndex":
        cfg = cfg or IndexConfig()
        idx = cls(dim, cfg, approximate=len(ids) > cfg.exact_limit)
        idx.add(ids, vectors)
        return idx

    def __len__(self) -> int:
        return self.index.ntotal - len(self.deleted)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        v = np.ascontiguousarray(vectors, dtype=np.float32)
        if v.ndim != 2 or v.shape[1] != self.dim:
            raise ValueError(f"vectors of shape {v.shape} do not fit an index of dimension {self.dim}")
        ids = np.asarray(ids, np.int64)
        self.remove(ids)  # re-adding an id replaces it
        self.deleted.difference_update(int(i) for i in ids)
        self.index.add_with_ids(v, ids)

    def remove(self, ids: np.ndarray) -> None:
        ids = np.asarray(ids, np.int64)
        if self.approximate:
            self.deleted.update(int(i) for i in ids)
        elif len(ids):
            self.index.remove_ids(faiss.IDSelectorBatch(ids))

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the k best items per query; ids -1 pad missing results. `allowed` restricts
        the search to those item ids."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if self.index.ntotal == 0 or k <= 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        params = None
        if allowed is not None:
            allowed = np.asarray([i for i in allowed if int(i) not in self.deleted], np.int64)
            sel = faiss.IDSelectorBatch(allowed)
            params = (faiss.SearchParametersHNSW(sel=sel, efSearch=max(self.cfg.ef_search, k)) if self.approximate
                      else faiss.SearchParameters(sel=sel))
            self._sel = sel  # keep the selector alive during the search
        elif self.deleted:
            return self._search_skipping_deleted(q, k)
        elif self.approximate:
            params = faiss.SearchParametersHNSW(efSearch=max(self.cfg.ef_search, k))
        kk = min(k, self.index.ntotal)
        scores, ids = self.index.search(q, kk, params=params) if params is not None else self.index.search(q, kk)
        return scores, ids

    def _search_skipping_deleted(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        kk = min(self.index.ntotal, k + len(self.deleted))
        scores, ids = self.index.search(q, kk)
        out_s, out_i = np.full((len(q), k), -np.inf, np.float32), np.full((len(q), k), -1, np.int64)
        for r in range(len(q)):
            keep = [(s, i) for s, i in zip(scores[r], ids[r]) if i >= 0 and int(i) not in self.deleted][:k]
            for j, (s, i) in enumerate(keep):
                out_s[r, j], out_i[r, j] = s, i
        return out_s, out_i

    def save(self, path: Path | str, record: dict) -> None:
        """Write the index and its record atomically (index first, record last)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        faiss.write_index(self.index, str(tmp))
        os.replace(tmp, path)
        rec = {**record, "dim": self.dim, "approximate": self.approximate, "deleted": sorted(self.deleted),
               "config": asdict(self.cfg)}
        meta = path.with_suffix(".json")
        tmp = meta.with_name(meta.name + ".tmp")
        tmp.write_text(json.dumps(rec))
        os.replace(tmp, meta)


def load_index(path: Path | str, expect: dict) -> VectorIndex:
    """Load an index whose record matches `expect` (model id, count, checksum); ValueError otherwise."""
    path = Path(path)
    meta = path.with_suffix(".json")
    if not path.exists() or not meta.exists():
        raise ValueError("no saved index")
    rec = json.loads(meta.read_text())
    for key, want in expect.items():
        if rec.get(key) != want:
            raise ValueError(f"index is stale: {key} is {rec.get(key)!r}, the store says {want!r}")
    try:
        inner = faiss.read_index(str(path))
    except RuntimeError as exc:
        raise ValueError(f"index file is damaged: {exc}") from exc
    idx = VectorIndex(rec["dim"], IndexConfig(**rec["config"]), rec["approximate"])
    idx.index = inner
    idx.deleted = set(rec["deleted"])
    return idx


def recall_at_k(approx_ids: np.ndarray, exact_ids: np.ndarray, k: int = 10) -> float:
    """Share of the exact top-k found in the approximate top-k, averaged over queries."""
    hits = [len(set(a[:k]) & set(e[:k])) / k for a, e in zip(approx_ids, exact_ids)]
    return float(np.mean(hits))
