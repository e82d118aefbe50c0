"""The vector index in Milvus: the same calls as index.VectorIndex (FAISS), for a collection that outgrows
one machine (issue 27).

One client API reaches Milvus embedded (Milvus Lite: `pymilvus` + `milvus-lite` from PyPI, a local `*.db`
path, one process at a time) and a Milvus server (`http://host:19530`, any number of processes; `python -m
xmr_core.store.milvus_index FILE.db PORT` runs one from milvus-lite's own binary). Each item is a row: its id
(the primary key), its unit vector, and its script and collection as scalar fields, so a script or
collection filter is pushed down to Milvus (`where`) instead of being applied after the search. As with
FAISS, a JSON record beside the store says which ids the index held when last saved (count and
checksum); `open_milvus` refuses an index that does not match it, and the engine rebuilds it from the
store. The engine uses it when `XMR_VECTOR_URI` names one (index.py); a process that finds a Milvus Lite
file held by another gets `IndexBusy` and leaves the index to that process, which catches up from the
store by id.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path

import numpy as np

from xmr_core.store.index import checked_batch
from xmr_core.store.items import ids_checksum

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
# FLAT is exact; IVF_FLAT as index.py's FAISS IVF (about 4 sqrt(n) cells at 100,000, 64 visited). Milvus Lite
# builds these two only (a server builds HNSW and more: add them here when one is measured)
INDEX_PARAMS = {"FLAT": {}, "IVF_FLAT": {"nlist": 1024}}
SEARCH_PARAMS = {"FLAT": {}, "IVF_FLAT": {"nprobe": 64}}


class IndexBusy(RuntimeError):
    """A Milvus Lite file that another process holds (Milvus Lite opens a file in one process only)."""


_OPENED: set[str] = set()  # Milvus Lite files this process holds (milvus-lite keeps them open until exit)


def connect(uri: str):
    """A Milvus client for `uri`; IndexBusy when it is a Milvus Lite file another process holds.

    milvus-lite 2.5 takes a POSIX lock on `.<file>.db.lock`, and a process that fails to take it deletes
    that lock file on its way out, after which a third process could open the file a second time. So no
    process of ours tries a held file: each looks at the lock first, and they look and open one at a time
    (our own lock beside it). The process holding a file never looks (closing any descriptor of a file drops
    the process's POSIX locks on it)."""
    from pymilvus import MilvusClient

    uri = str(uri)

    def client():
        # no keep-alive pings between calls: a server with gRPC's default policy answers an idle client's
        # pings every 10 s (pymilvus's default) with "too many pings" and drops the connection
        return MilvusClient(uri, grpc_options={"grpc.keepalive_permit_without_calls": False})

    if not uri.endswith(".db") or uri in _OPENED:
        return client()
    import fcntl

    db = Path(uri)
    with open(db.parent / f".{db.name}.xmr-open", "a") as gate:
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            if _held_elsewhere(db.parent / f".{db.name}.lock"):
                raise IndexBusy(f"another process holds the Milvus Lite file {uri}; it keeps the index (a Milvus "
                                "server, XMR_VECTOR_URI=http://host:19530, serves several processes)")
            c = client()
            _OPENED.add(uri)
            return c
        finally:
            fcntl.flock(gate, fcntl.LOCK_UN)


def _held_elsewhere(lock: Path) -> bool:
    """Whether another process holds Milvus Lite's lock on its file (`.<file>.db.lock` beside it)."""
    import fcntl

    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.lockf(fd, fcntl.LOCK_UN)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def serve(db: Path | str, port: int, host: str = "127.0.0.1") -> None:
    """Run a Milvus server over a Milvus Lite file until SIGTERM or SIGINT (`python -m
    xmr_core.store.milvus_index FILE.db PORT`): the Milvus of milvus-lite's own binary, reached as
    `http://host:port` by any number of processes, as a Milvus server or cluster would be."""
    import signal
    import time

    from milvus_lite.server import Server

    server = Server(str(db), f"{host}:{int(port)}")
    if not server.start():
        raise SystemExit(f"the Milvus server over {db} did not start (is the file held by another process?)")
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    try:
        while not stop and server._p.poll() is None:
            time.sleep(0.2)
    finally:
        server.stop()


def collection_name(made_by: dict) -> str:
    """The collection for an index made by `made_by` (store id, model id, fusion): one per such state, so
    data folders, models or fusion settings sharing a Milvus never overwrite each other's."""
    return "xmr_" + hashlib.sha256(json.dumps(made_by, sort_keys=True).encode()).hexdigest()[:24]


def _literal(values) -> str:
    """A Milvus filter list of strings, quoted."""
    return "[" + ", ".join(json.dumps(str(v)) for v in values) + "]"


class MilvusIndex:
    """Inner-product index of L2-normalised vectors keyed by item id, in one Milvus collection."""

    pushes_filters = True  # script and collection filters go into Milvus's search (`where`)

    def __init__(self, uri: str, name: str, dim: int, client=None, index_type: str = "FLAT") -> None:
        if not _NAME.fullmatch(name):
            raise ValueError(f"a Milvus collection name is letters, digits and '_': {name!r} is not one")
        if index_type not in INDEX_PARAMS:
            raise ValueError(f"Milvus index type {index_type!r}: expected one of {sorted(INDEX_PARAMS)}")
        self.uri, self.name, self.dim, self.index_type = str(uri), name, int(dim), index_type
        self.approximate = index_type != "FLAT"
        self.client = client or connect(self.uri)
        if not self.client.has_collection(name):
            self._create()
        else:
            have = next(f for f in self.client.describe_collection(name)["fields"] if f["name"] == "vec")
            if int(have["params"]["dim"]) != self.dim:
                raise ValueError(f"Milvus collection {name!r} holds {have['params']['dim']}-d vectors, not {self.dim}-d")
            if "Loaded" not in str(self.client.get_load_state(name).get("state")):
                self.client.load_collection(name)  # released (as a killed writer leaves it): searchable again

    def _create(self) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=self.dim)
        schema.add_field("lang", DataType.VARCHAR, max_length=8)
        schema.add_field("collection", DataType.VARCHAR, max_length=256)
        params = self.client.prepare_index_params()
        params.add_index("vec", index_type=self.index_type, metric_type="IP", params=INDEX_PARAMS[self.index_type])
        self.client.create_collection(self.name, schema=schema, index_params=params)

    @classmethod
    def build(cls, ids: np.ndarray, vectors: np.ndarray, dim: int, uri: str, name: str,
              fields: list[dict] | None = None, index_type: str = "FLAT") -> MilvusIndex:
        """A fresh collection holding exactly these vectors (any old one of that name dropped)."""
        client = connect(str(uri))
        if client.has_collection(name):
            client.drop_collection(name)
        idx = cls(uri, name, dim, client, index_type)
        idx.add(ids, vectors, fields)
        return idx

    def __len__(self) -> int:
        self.client.flush(self.name)
        return int(self.client.query(self.name, filter="", output_fields=["count(*)"])[0]["count(*)"])

    def ids(self) -> np.ndarray:
        """The item ids held, sorted."""
        quiet = logging.getLogger("pymilvus")  # the iterator warns that Milvus Lite keeps no server time
        level, out = quiet.level, []
        quiet.setLevel(logging.ERROR)
        try:
            it = self.client.query_iterator(self.name, batch_size=10_000, filter="id >= 0", output_fields=["id"])
            try:
                while rows := it.next():
                    out += [r["id"] for r in rows]
            finally:
                it.close()
        finally:
            quiet.setLevel(level)
        return np.sort(np.asarray(out, np.int64))

    def add(self, ids: np.ndarray, vectors: np.ndarray, fields: list[dict] | None = None,
            batch: int = 5_000) -> None:
        """Add vectors under item ids (an id held already is replaced: an upsert), each with its
        `fields` (lang, collection) for filters; an id given twice keeps the last."""
        if len(ids) == 0:
            return
        ids, v, last = checked_batch(ids, vectors, self.dim)
        if fields is not None and len(fields) != len(ids):
            raise ValueError("one fields record per vector")
        for s in range(0, len(last), batch):
            rows = [{"id": int(ids[n]), "vec": v[n], "lang": str((fields[n] if fields else {}).get("lang") or ""),
                     "collection": str((fields[n] if fields else {}).get("collection") or "")}
                    for n in last[s:s + batch]]
            self.client.upsert(self.name, rows)
        self.client.flush(self.name)

    def vectors(self, ids) -> np.ndarray:
        """The vectors held for these item ids, in their order (KeyError for an id not held)."""
        if not len(ids):
            return np.zeros((0, self.dim), np.float32)
        got = {int(r["id"]): r["vec"] for r in self.client.get(self.name, ids=[int(i) for i in ids], output_fields=["vec"])}
        missing = [int(i) for i in ids if int(i) not in got]
        if missing:
            raise KeyError(f"ids not in the index: {missing[:5]}")
        return np.asarray([got[int(i)] for i in ids], np.float32)

    def remove(self, ids: np.ndarray) -> None:
        ids = np.asarray(ids, np.int64)
        if len(ids):
            self.client.delete(self.name, ids=[int(i) for i in ids])
            self.client.flush(self.name)

    @staticmethod
    def expression(allowed: np.ndarray | None = None, where: dict | None = None) -> str:
        """The Milvus filter for an id allow-list and scalar conditions ({"lang": [...], "collection": name})."""
        parts = []
        if allowed is not None:
            parts.append("id in [" + ", ".join(str(int(i)) for i in allowed) + "]")
        for key, value in (where or {}).items():
            if key not in ("lang", "collection"):
                raise ValueError(f"filter on {key!r}: only lang and collection are indexed")
            values = [value] if isinstance(value, str) else list(value)
            parts.append(f"{key} in {_literal(values)}")
        return " and ".join(parts)

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None,
               where: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the k best items per query, ids -1 padding; `allowed` restricts to those ids,
        `where` to a script or collection (pushed down as a Milvus filter)."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if k <= 0 or (allowed is not None and len(allowed) == 0):
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        got = self.client.search(self.name, data=list(q), limit=int(k), filter=self.expression(allowed, where),
                                 search_params={"metric_type": "IP", "params": SEARCH_PARAMS[self.index_type]})
        width = max((len(r) for r in got), default=0)
        scores = np.full((len(q), width), -np.inf, np.float32)
        ids = np.full((len(q), width), -1, np.int64)
        for n, hits in enumerate(got):
            for j, h in enumerate(hits):
                scores[n, j], ids[n, j] = h["distance"], h["id"]
        return scores, ids

    def save(self, path: Path | str, record: dict) -> None:
        """Flush, then write the record of what the collection holds (ids' count and checksum) beside
        the store, as index.VectorIndex.save does for its file."""
        self.client.flush(self.name)
        count, checksum = ids_checksum(self.ids())
        meta = Path(path).with_suffix(".json")
        meta.parent.mkdir(parents=True, exist_ok=True)
        tmp = meta.with_name(meta.name + ".tmp")
        tmp.write_text(json.dumps({**record, "backend": "milvus", "uri": self.uri, "collection": self.name,
                                   "dim": self.dim, "count": count, "checksum": checksum}))
        os.replace(tmp, meta)


def open_milvus(uri: str, name: str, path: Path | str, expect: dict) -> tuple[MilvusIndex, dict]:
    """The Milvus collection whose saved record matches `expect` and whose ids are those of the record;
    ValueError otherwise (the engine then rebuilds it from the store)."""
    meta = Path(path).with_suffix(".json")
    if not meta.exists():
        raise ValueError("no saved index record")
    try:
        rec = json.loads(meta.read_text())
        dim = int(rec["dim"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"index record is damaged or was written by another version: {exc}") from exc
    for key, want in {**expect, "backend": "milvus", "uri": str(uri), "collection": name}.items():
        if rec.get(key) != want:
            raise ValueError(f"index was made for another state: {key} is {rec.get(key)!r}, expected {want!r}")
    index = MilvusIndex(uri, name, dim)
    if (rec.get("count"), rec.get("checksum")) != ids_checksum(index.ids()):
        raise ValueError("the Milvus collection does not hold the ids of its record")
    return index, rec


if __name__ == "__main__":
    import sys

    serve(sys.argv[1], int(sys.argv[2]))
