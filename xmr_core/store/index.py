"""FAISS index over item embeddings, tied to the model that made them and to the store's state.

Exact inner-product search up to `exact_limit` vectors; beyond it an inverted-file index (IVF-Flat:
k-means cells, exact inner products inside the `nprobe` nearest cells). IVF was measured against
HNSW for the 1M point on this CPU: it builds in under 2 minutes on one thread where HNSW takes tens
of minutes, removes items for real, and reaches recall@10 0.98 at about 1 ms (benchmarks/search.py).
Saved as FAISS's own binary format (never pickle) beside a JSON record: what made it (model id,
fusion), the ids it holds (count, checksum) and the sha256 of the file's bytes. `load_index` refuses a
file whose bytes or ids do not match its record, or that another model made; the engine then rebuilds
it from the store. Which items the index should hold is the engine's business (it catches up with the
store by id), not the file's.

The backend interface (issue 27): an index answers `add(ids, vectors, fields)`, `remove(ids)`, `ids()`,
`len()`, `vectors(ids)`, `search(queries, k, allowed, where)` and `save(path, record)`, and is opened by `open_index` or
built by `build_index` for a vector URI: none for FAISS here (the embedded default), a `*.db` path for
Milvus Lite or `http://host:19530` for a Milvus server (milvus_index.py; `XMR_VECTOR_URI`). A backend
with `pushes_filters` takes script and collection conditions (`where`) and filters inside its search;
FAISS takes the allowed ids instead (`allowed`, from the store).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np

from xmr_core.data.configs import check_fields, strict_from_dict
from xmr_core.store.items import ids_checksum


@dataclass(frozen=True)
class IndexConfig:
    exact_limit: int = 50_000  # above this many vectors use IVF (exact search at 100k: ~7 ms on one thread)
    cells_per_sqrt: float = 4.0  # IVF cells = cells_per_sqrt * sqrt(n)
    train_per_cell: int = 40  # k-means sample: this many vectors per cell
    nprobe: int = 64  # cells visited per query (recall/latency trade-off)
    seed: int = 0

    def __post_init__(self) -> None:
        check_fields(self, "index")
        if self.exact_limit < 1 or self.cells_per_sqrt <= 0 or self.train_per_cell < 1 or self.nprobe < 1:
            raise ValueError(f"index config {self}: exact_limit, train_per_cell and nprobe >= 1, cells_per_sqrt > 0")

    @classmethod
    def from_dict(cls, d: dict) -> IndexConfig:
        return strict_from_dict(cls, d, "index")


def checked_batch(ids, vectors, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A batch to add, checked (one id per vector of `dim` floats): the ids (int64), the vectors
    (float32, contiguous) and the rows that hold each id's last occurrence. ValueError otherwise."""
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    if v.ndim != 2 or v.shape[1] != dim:
        raise ValueError(f"vectors of shape {v.shape} do not fit an index of dimension {dim}")
    ids = np.asarray(ids, np.int64)
    if len(ids) != len(v):
        raise ValueError("one id per vector")
    return ids, v, len(ids) - 1 - np.unique(ids[::-1], return_index=True)[1]


class VectorIndex:
    """Inner-product index of L2-normalised vectors keyed by item id."""

    pushes_filters = False  # filters come as allowed ids (`search(allowed=)`), from the store

    def __init__(self, dim: int, cfg: IndexConfig | None = None, index: faiss.Index | None = None) -> None:
        self.dim, self.cfg = dim, cfg or IndexConfig()
        self.index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self.approximate = isinstance(self.index, faiss.IndexIVF)
        if self.approximate:
            self.index.nprobe = self.cfg.nprobe
        # a selector per allow-list, kept while its array lives: building one from 333,000 ids costs about as
        # much as the search it restricts (the engine passes the same array until the store changes)
        self._selectors: dict[int, tuple[np.ndarray, faiss.IDSelector]] = {}

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, dim: int, cfg: IndexConfig | None = None) -> VectorIndex:
        cfg = cfg or IndexConfig()
        if len(ids) <= cfg.exact_limit:
            idx = cls(dim, cfg)
        else:
            v = np.ascontiguousarray(vectors, dtype=np.float32)
            cells = int(cfg.cells_per_sqrt * math.sqrt(len(v)))
            ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, cells, faiss.METRIC_INNER_PRODUCT)
            ivf.cp.seed = cfg.seed
            rng = np.random.default_rng(cfg.seed)
            sample = v[rng.choice(len(v), min(len(v), cfg.train_per_cell * cells), replace=False)]
            ivf.train(sample)
            idx = cls(dim, cfg, ivf)
        idx.add(ids, vectors)
        return idx

    def __len__(self) -> int:
        return self.index.ntotal

    def ids(self) -> np.ndarray:
        """The item ids held, sorted."""
        if isinstance(self.index, faiss.IndexIDMap):
            out = faiss.vector_to_array(self.index.id_map)
        else:  # IVF: the ids live in the inverted lists
            inv = self.index.invlists
            out = np.concatenate([faiss.rev_swig_ptr(inv.get_ids(c), inv.list_size(c)).copy()
                                  for c in range(inv.nlist) if inv.list_size(c)] or [np.zeros(0, np.int64)])
        return np.sort(np.asarray(out, np.int64))

    def add(self, ids: np.ndarray, vectors: np.ndarray, fields: list[dict] | None = None) -> None:
        """Add vectors under item ids; an id given twice, or already held, keeps one entry (the last).
        `fields` (each item's script and collection) are for backends that filter by them: not FAISS."""
        if len(ids) == 0:
            return
        ids, v, last = checked_batch(ids, vectors, self.dim)
        ids, v = ids[last], np.ascontiguousarray(v[last])
        self.remove(ids)  # re-adding an id replaces it
        self.index.add_with_ids(v, ids)

    def remove(self, ids: np.ndarray) -> None:
        ids = np.asarray(ids, np.int64)
        if len(ids):
            self.index.remove_ids(faiss.IDSelectorBatch(ids))

    def vectors(self, ids) -> np.ndarray:
        """The vectors held for these item ids, in their order (KeyError for an id not held)."""
        try:
            return np.stack([self.index.reconstruct(int(i)) for i in ids]) if len(ids) else np.zeros((0, self.dim), np.float32)
        except RuntimeError as exc:
            raise KeyError(f"an id is not in the index: {exc}") from exc

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None,
               where: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the k best items per query; ids -1 pad missing results. `allowed` restricts
        the search to those item ids (FAISS cannot filter by fields: `where` is refused)."""
        if where:
            raise ValueError("the FAISS index filters by allowed ids, not by fields")
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if self.index.ntotal == 0 or k <= 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        kk = min(k, self.index.ntotal)
        if allowed is None:
            return self.index.search(q, kk)
        sel = self._selector(allowed)
        params = (faiss.SearchParametersIVF(sel=sel, nprobe=self.cfg.nprobe) if self.approximate
                  else faiss.SearchParameters(sel=sel))
        return self.index.search(q, kk, params=params)

    def _selector(self, allowed) -> faiss.IDSelector:
        got = self._selectors.get(id(allowed))
        if got is not None and got[0] is allowed:
            return got[1]
        if len(self._selectors) >= 16:
            self._selectors.clear()
        sel = faiss.IDSelectorBatch(np.asarray(allowed, np.int64))
        self._selectors[id(allowed)] = (allowed, sel)
        return sel

    def save(self, path: Path | str, record: dict) -> None:
        """Write the index and its record atomically (index first, record last); the record gets the
        ids held (count, checksum) and the sha256 of the bytes written."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        faiss.write_index(self.index, str(tmp))
        digest = _file_sha256(tmp)
        os.replace(tmp, path)
        count, checksum = ids_checksum(self.ids())
        rec = {**record, "dim": self.dim, "approximate": self.approximate, "config": asdict(self.cfg),
               "count": count, "checksum": checksum, "sha256": digest}
        meta = path.with_suffix(".json")
        tmp = meta.with_name(meta.name + ".tmp")
        tmp.write_text(json.dumps(rec))
        os.replace(tmp, meta)


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def load_index(path: Path | str, expect: dict) -> tuple[VectorIndex, dict]:
    """Load an index whose record matches `expect` (model id, fusion, ...) and whose bytes and ids are
    the ones its record describes (sha256; count and checksum); ValueError otherwise. Returns the index
    and its record."""
    path = Path(path)
    meta = path.with_suffix(".json")
    if not path.exists() or not meta.exists():
        raise ValueError("no saved index")
    try:
        rec = json.loads(meta.read_text())
        cfg = IndexConfig.from_dict(rec["config"])
        digest, dim = rec["sha256"], int(rec["dim"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"index record is damaged or was written by another version: {exc}") from exc
    if _file_sha256(path) != digest:
        raise ValueError("index file is damaged: its bytes do not match the sha256 in its record")
    for key, want in expect.items():
        if rec.get(key) != want:
            raise ValueError(f"index was made for another state: {key} is {rec.get(key)!r}, expected {want!r}")
    try:
        inner = faiss.read_index(str(path))
    except RuntimeError as exc:
        raise ValueError(f"index file is damaged: {exc}") from exc
    index = VectorIndex(dim, cfg, inner)
    if (rec.get("count"), rec.get("checksum")) != ids_checksum(index.ids()):
        raise ValueError("index file is damaged: the ids it holds are not those of its record")
    return index, rec


def vector_uri(data: Path | str, uri: str | None = None) -> str | None:
    """The vector backend's URI for a data folder: `uri`, else `XMR_VECTOR_URI`, else None (FAISS). A
    relative `*.db` path lies in the data folder; anything but a `*.db` path or an http(s) URL is refused."""
    uri = (os.environ.get("XMR_VECTOR_URI", "") if uri is None else uri).strip() or None
    if uri is None or uri.lower() == "faiss":
        return None
    if uri.startswith(("http://", "https://")):
        return uri
    if uri.endswith(".db"):
        return str((Path(data) / uri).resolve()) if not Path(uri).is_absolute() else uri
    raise ValueError(f"XMR_VECTOR_URI is a Milvus Lite file (*.db) or a Milvus server (http://host:19530); "
                     f"got {uri!r}")


def index_path(data: Path | str, model_id: str, uri: str | None) -> Path:
    """Where an index (FAISS: the file; Milvus: its record) of this model's embeddings is kept."""
    return Path(data) / "index" / (f"{model_id}.faiss" if uri is None else f"{model_id}.milvus.json")


def open_index(path: Path, expect: dict, uri: str | None = None, name: str = ""):
    """The saved index whose record matches `expect`: the FAISS file, or (`uri`) the Milvus collection
    `name`; ValueError when there is none or it does not match, milvus_index.IndexBusy when a Milvus Lite
    file is held by another process."""
    if uri is None:
        return load_index(path, expect)[0]
    from xmr_core.store.milvus_index import open_milvus

    return open_milvus(uri, name, path, expect)[0]


def build_index(ids: np.ndarray, vectors: np.ndarray, dim: int, cfg: IndexConfig | None = None,
                uri: str | None = None, name: str = "", fields: list[dict] | None = None):
    """A fresh index of exactly these vectors: FAISS (`uri` None), or the Milvus collection `name`."""
    if uri is None:
        return VectorIndex.build(ids, vectors, dim, cfg)
    from xmr_core.store.milvus_index import MilvusIndex

    return MilvusIndex.build(ids, vectors, dim, uri, name, fields)


def recall_at_k(approx_ids: np.ndarray, exact_ids: np.ndarray, k: int = 10) -> float:
    """Share of the exact top-k found in the approximate top-k, averaged over queries."""
    hits = [len(set(a[:k]) & set(e[:k])) / k for a, e in zip(approx_ids, exact_ids)]
    return float(np.mean(hits))
