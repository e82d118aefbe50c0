"""The store's collections, items and embeddings."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-. ")


@dataclass(frozen=True)
class Item:
    id: int
    collection: str
    sha256: str
    path: Path
    source: str
    concept_id: str | None
    lang: str | None
    page_sha256: str
    bbox: tuple[int, int, int, int] | None


def ids_checksum(ids) -> tuple[int, str]:
    """(count, sha256 of the sorted ids): the one fingerprint of a set of item ids that an index and
    the store are compared by."""
    ids = sorted(int(i) for i in ids)
    return len(ids), hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()


class ItemTables:
    """Collections, items and their embeddings (a part of Store)."""

    # ------------------------------------------------------------------ collections
    def create_collection(self, name: str) -> int:
        name = name.strip()
        if not name or len(name) > 64 or not set(name) <= NAME_CHARS:
            raise ValueError("a collection name is 1-64 letters, digits, spaces, '_', '-' or '.'")
        with self.tx() as db:
            db.execute("INSERT OR IGNORE INTO collections (name, created) VALUES (?, ?)", (name, time.time()))
            return int(db.execute("SELECT id FROM collections WHERE name=?", (name,)).fetchone()["id"])

    def collection_id(self, name: str) -> int:
        rows = self.read("SELECT id FROM collections WHERE name=?", (name,))
        if not rows:
            raise ValueError(f"no collection named {name!r}")
        return int(rows[0]["id"])

    def collection_names(self) -> list[str]:
        return [r["name"] for r in self.read("SELECT name FROM collections ORDER BY name")]

    def list_collections(self) -> list[dict]:
        return [dict(r) for r in self.read(
            "SELECT c.name, c.created, COUNT(i.id) AS items, COUNT(i.id) - COUNT(i.concept_id) AS unlabelled "
            "FROM collections c "
            "LEFT JOIN items i ON i.collection_id = c.id GROUP BY c.id ORDER BY c.name")]

    # ------------------------------------------------------------------ items
    def add_items(self, collection: str, records: list[dict], model_id: str, vectors: np.ndarray,
                  readings: list[tuple[str, bytes]] | None = None) -> list[int]:
        """Insert items with their embeddings (and the model's readings: greedy text, compact
        posteriors) in one transaction; an item already present (same image, page and box in the
        collection) is not duplicated. Returns the item ids, in order."""
        if len(records) != len(vectors) or (readings is not None and len(readings) != len(records)):
            raise ValueError("one vector (and one reading) per record")
        cid = self.collection_id(collection)
        ids = []
        with self.tx() as db:
            for rec, vec in zip(records, vectors):
                bbox = ",".join(str(int(v)) for v in rec["bbox"]) if rec.get("bbox") else ""
                db.execute(
                    "INSERT OR IGNORE INTO items (collection_id, sha256, path, source, concept_id, lang, page_sha256,"
                    " bbox, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (cid, rec["sha256"], str(rec["path"]), rec.get("source", ""), rec.get("concept_id"),
                     rec.get("lang"), rec.get("page_sha256", ""), bbox, time.time()))
                item_id = int(db.execute(
                    "SELECT id FROM items WHERE collection_id=? AND sha256=? AND page_sha256=? AND bbox=?",
                    (cid, rec["sha256"], rec.get("page_sha256", ""), bbox)).fetchone()["id"])
                db.execute("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)",
                           (item_id, model_id, np.asarray(vec, np.float32).tobytes()))
                ids.append(item_id)
            if readings is not None:
                self._put_readings(db, model_id, list(zip(ids, readings)))
            self._bump(db)
        return ids

    def remove_items(self, ids: list[int]) -> int:
        with self.tx() as db:
            n = 0
            for i in ids:
                n += db.execute("DELETE FROM items WHERE id=?", (int(i),)).rowcount
            self._bump(db)
        return n

    def _item(self, r: sqlite3.Row) -> Item:
        bbox = tuple(int(v) for v in r["bbox"].split(",")) if r["bbox"] else None
        return Item(r["id"], r["collection"], r["sha256"], self.root / r["path"], r["source"], r["concept_id"],
                    r["lang"], r["page_sha256"], bbox)  # type: ignore[arg-type]

    def _read_ids(self, sql: str, ids: list[int], args: tuple = ()) -> list[sqlite3.Row]:
        """Rows of `sql` (ending in `... IN`, after placeholders for `args`) for these ids, in chunks
        under SQLite's parameter limit."""
        rows: list[sqlite3.Row] = []
        for s in range(0, len(ids), 900):
            chunk = tuple(int(i) for i in ids[s:s + 900])
            rows += self.read(f"{sql} ({','.join('?' * len(chunk))})", (*args, *chunk))
        return rows

    def get_items(self, ids: list[int]) -> dict[int, Item]:
        rows = self._read_ids("SELECT i.*, c.name AS collection FROM items i JOIN collections c "
                              "ON c.id = i.collection_id WHERE i.id IN", ids)
        return {r["id"]: self._item(r) for r in rows}

    def list_items(self, collection: str | None = None, limit: int = 1000, offset: int = 0) -> list[Item]:
        where, args = ("WHERE c.name=?", (collection,)) if collection else ("", ())
        rows = self.read(f"SELECT i.*, c.name AS collection FROM items i JOIN collections c ON c.id = i.collection_id "
                         f"{where} ORDER BY i.id LIMIT ? OFFSET ?", (*args, limit, offset))
        return [self._item(r) for r in rows]

    def unlabelled_items(self, collection: str) -> list[Item]:
        """A collection's items that carry no concept (nobody labelled them), oldest first."""
        self.collection_id(collection)  # an unknown name is refused
        rows = self.read("SELECT i.*, c.name AS collection FROM items i JOIN collections c ON c.id = i.collection_id "
                         "WHERE c.name=? AND i.concept_id IS NULL ORDER BY i.id", (collection,))
        return [self._item(r) for r in rows]

    def count_items(self, collection: str | None = None) -> int:
        if collection:
            return int(self.read("SELECT COUNT(*) AS n FROM items i JOIN collections c ON c.id=i.collection_id "
                                 "WHERE c.name=?", (collection,))[0]["n"])
        return int(self.read("SELECT COUNT(*) AS n FROM items")[0]["n"])

    def embedded_ids(self, model_id: str) -> np.ndarray:
        """Ids of the items embedded by `model_id`, sorted."""
        rows = self.read("SELECT item_id FROM embeddings WHERE model_id=? ORDER BY item_id", (model_id,))
        return np.array([r["item_id"] for r in rows], np.int64)

    def embeddings(self, model_id: str, ids: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(item ids, vectors) of every item embedded by `model_id` (of those `ids`)."""
        sql = "SELECT item_id, vector FROM embeddings WHERE model_id=?"
        if ids is None:
            rows = self.read(sql + " ORDER BY item_id", (model_id,))
        else:
            rows = self._read_ids(sql + " AND item_id IN", ids, (model_id,))
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        ids = np.array([r["item_id"] for r in rows], np.int64)
        return ids, np.stack([np.frombuffer(r["vector"], np.float32) for r in rows])

    def langs(self, ids: list[int]) -> dict[int, str | None]:
        """The script (language) of each of these items."""
        return {r["id"]: r["lang"] for r in self._read_ids("SELECT id, lang FROM items WHERE id IN", ids)}

    def scripts_and_collections(self, ids: list[int]) -> dict[int, dict[str, str | None]]:
        """Each of these items' script and collection name ({"lang": ..., "collection": ...})."""
        rows = self._read_ids("SELECT i.id, i.lang, c.name FROM items i JOIN collections c "
                              "ON c.id = i.collection_id WHERE i.id IN", ids)
        return {r["id"]: {"lang": r["lang"], "collection": r["name"]} for r in rows}

    def labels(self, ids: list[int] | None = None) -> dict[int, str]:
        """Concept id of every labelled item (of those `ids`)."""
        sql = "SELECT id, concept_id FROM items WHERE concept_id IS NOT NULL"
        rows = self.read(sql) if ids is None else self._read_ids(sql + " AND id IN", ids)
        return {r["id"]: r["concept_id"] for r in rows}

    def items_missing_embedding(self, model_id: str) -> list[Item]:
        rows = self.read("SELECT i.*, c.name AS collection FROM items i JOIN collections c ON c.id=i.collection_id "
                         "WHERE NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.item_id=i.id AND e.model_id=?) "
                         "ORDER BY i.id", (model_id,))
        return [self._item(r) for r in rows]

    def set_embeddings(self, model_id: str, ids: list[int], vectors: np.ndarray) -> None:
        with self.tx() as db:
            db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)",
                           [(int(i), model_id, np.asarray(v, np.float32).tobytes()) for i, v in zip(ids, vectors)])
            self._bump(db)

    def state_checksum(self, model_id: str) -> tuple[int, str]:
        """`ids_checksum` of the items embedded by `model_id`: what an index must match."""
        return ids_checksum(self.embedded_ids(model_id))

    def referenced_files(self) -> set[str]:
        """Paths (relative to the root) of every image file the store refers to: items, their pages,
        queued samples, the images of searches kept in users' histories."""
        rows = self.read("SELECT path FROM items UNION SELECT path FROM annotations")
        files = {str(r["path"]) for r in rows}
        files |= {str(r["p"]) for r in self.read("SELECT json_extract(query, '$.image') AS p FROM searches "
                                                 "WHERE json_extract(query, '$.image') IS NOT NULL")}
        pages = self.read("SELECT DISTINCT page_sha256 FROM items WHERE page_sha256 != ''")
        files |= {f"images/{r['page_sha256'][:2]}/{r['page_sha256']}.png" for r in pages}
        return files
