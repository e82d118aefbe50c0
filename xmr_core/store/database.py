"""The embedded store: SQLite (WAL) for collections, items, labels, user concepts, the annotation queue,
jobs and the active model; image files content-addressed by sha256 under `<data>/images`.

Every write is one transaction, so a process killed mid-way leaves either all of an add or none of it.
Two processes adding the same image to a collection at once still get one item (a unique constraint).
Every change to items or embeddings bumps a version counter in the same transaction, so an index can
tell cheaply that another process moved the store. A rolling backup (SQLite's online backup API) is
taken before each migration and once a day; `restore_backup` puts the latest one back.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
import threading
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from xmr_core.data.lexicon import HAN

SCHEMA_VERSION = 4
RARE_TRIGRAMS = 3  # trigrams of a Latin term searched in the readings: its rarest
RARE_CHARACTERS = 2  # and characters of a Chinese term
TOKEN_ROWS = 500  # rows of each such token counted (100,000 readings: 2,000 -> 500 took 10.2 -> 8.6 ms p50)
BACKUP_EVERY_S = 24 * 3600
BACKUPS_KEPT = 5
_NAME_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-. ")

MIGRATIONS = {
    1: """
    CREATE TABLE collections (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created REAL NOT NULL);
    CREATE TABLE items (
        id INTEGER PRIMARY KEY,
        collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
        sha256 TEXT NOT NULL,
        path TEXT NOT NULL,
        source TEXT NOT NULL DEFAULT '',
        concept_id TEXT,
        lang TEXT,
        page_sha256 TEXT NOT NULL DEFAULT '',
        bbox TEXT NOT NULL DEFAULT '',
        created REAL NOT NULL,
        UNIQUE (collection_id, sha256, page_sha256, bbox)
    );
    CREATE INDEX items_collection ON items(collection_id);
    CREATE TABLE embeddings (
        item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
        model_id TEXT NOT NULL,
        vector BLOB NOT NULL,
        PRIMARY KEY (item_id, model_id)
    );
    CREATE TABLE concepts (concept_id TEXT PRIMARY KEY, zh TEXT NOT NULL, en TEXT NOT NULL, es TEXT NOT NULL,
                           created REAL NOT NULL);
    CREATE TABLE annotations (
        id INTEGER PRIMARY KEY,
        sha256 TEXT NOT NULL,
        path TEXT NOT NULL,
        concept_id TEXT NOT NULL,
        lang TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'queued',
        author TEXT NOT NULL DEFAULT '',
        created REAL NOT NULL
    );
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        params TEXT NOT NULL,
        status TEXT NOT NULL,
        progress REAL NOT NULL DEFAULT 0,
        message TEXT NOT NULL DEFAULT '',
        result TEXT NOT NULL DEFAULT '{}',
        pid INTEGER,
        created REAL NOT NULL,
        started REAL,
        finished REAL
    );
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # each item's reading by a model's reader: its greedy text, indexed for candidate generation (FTS5:
    # Latin by trigrams, Chinese by characters), and its compact posteriors for exact re-scoring (ctc.py)
    2: """
    CREATE TABLE readings (
        id INTEGER PRIMARY KEY,
        item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
        model_id TEXT NOT NULL,
        text TEXT NOT NULL,
        han TEXT NOT NULL,
        compact BLOB NOT NULL,
        UNIQUE (item_id, model_id)
    );
    CREATE VIRTUAL TABLE reading_latin USING fts5(text, content='readings', content_rowid='id', tokenize='trigram');
    CREATE VIRTUAL TABLE reading_han USING fts5(han, content='readings', content_rowid='id');
    CREATE TRIGGER readings_ai AFTER INSERT ON readings BEGIN
        INSERT INTO reading_latin(rowid, text) VALUES (new.id, new.text);
        INSERT INTO reading_han(rowid, han) VALUES (new.id, new.han);
    END;
    CREATE TRIGGER readings_ad AFTER DELETE ON readings BEGIN
        INSERT INTO reading_latin(reading_latin, rowid, text) VALUES ('delete', old.id, old.text);
        INSERT INTO reading_han(reading_han, rowid, han) VALUES ('delete', old.id, old.han);
    END;
    """,
    # a term under three letters is looked up as a whole reading (the trigram index cannot hold it)
    3: """
    CREATE INDEX readings_text ON readings(model_id, text);
    """,
    # users, their searches and their marks on hits (users.py)
    4: """
    CREATE TABLE users (name TEXT PRIMARY KEY, role TEXT NOT NULL DEFAULT 'user', created REAL NOT NULL);
    CREATE TABLE searches (id INTEGER PRIMARY KEY, user TEXT NOT NULL, kind TEXT NOT NULL, query TEXT NOT NULL,
                           results TEXT NOT NULL, created REAL NOT NULL);
    CREATE INDEX searches_user ON searches(user, id);
    CREATE TABLE feedback (
        id INTEGER PRIMARY KEY,
        user TEXT NOT NULL,
        search_id INTEGER,
        item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
        right INTEGER NOT NULL,
        concept_id TEXT,
        lang TEXT,
        query_key TEXT NOT NULL,
        query_vector BLOB,
        created REAL NOT NULL
    );
    CREATE INDEX feedback_query ON feedback(user, query_key);
    """,
}


def _glob_escape(text: str) -> str:
    """`text` matched literally inside a GLOB pattern."""
    return "".join(f"[{ch}]" if ch in "*?[" else ch for ch in text)


def _statements(script: str) -> Iterator[str]:
    """A migration's statements, whole (a trigger's body holds semicolons of its own)."""
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                yield buf.strip()
            buf = ""
    if buf.strip():
        yield buf.strip()


class StoreDamaged(ValueError):
    """The SQLite file cannot be read: the message says what is wrong and how to recover."""


def ids_checksum(ids) -> tuple[int, str]:
    """(count, sha256 of the sorted ids): the one fingerprint of a set of item ids that an index and
    the store are compared by."""
    ids = sorted(int(i) for i in ids)
    return len(ids), hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()


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


class Store:
    """One data folder: `store.sqlite`, `images/`, `index/`."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.images = self.root / "images"
        self.images.mkdir(parents=True, exist_ok=True)
        self.db_path = self.root / "store.sqlite"
        self.backups = self.root / "backups"
        self._local = threading.local()  # per thread: (pid, file inode), its reading connection
        self._docs: dict[str, dict[str, int]] = {}  # per full-text table, readings holding a token (_token_docs)
        try:
            with self.tx() as db:
                db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()  # reads the schema pages
            self._migrate()
            self._daily_backup()
        except sqlite3.DatabaseError as exc:
            raise StoreDamaged(
                f"the store {self.db_path} is damaged ({exc}). Restore the latest backup with "
                f"`xmr doctor --data {self.root} --restore` (backups in {self.backups}), "
                "or move the file away to start an empty store") from exc

    # ------------------------------------------------------------------ plumbing
    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA synchronous=NORMAL")
        db.row_factory = sqlite3.Row
        return db

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction taken up front (BEGIN IMMEDIATE), so concurrent writers queue, not fail."""
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    def close(self) -> None:
        """Close this thread's reading connection (the next read opens another)."""
        held = getattr(self._local, "db", None)
        if held is not None:
            held[1].close()
            self._local.db = None

    def read(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        """Rows of one statement, on this thread's reading connection (kept open: opening one costs more
        than most queries). A connection is made again in a new process or when the file was replaced
        (a restored backup); in WAL mode each statement sees every transaction committed before it."""
        key = (os.getpid(), os.stat(self.db_path).st_ino)
        held = getattr(self._local, "db", None)
        if held is None or held[0] != key:
            if held is not None:
                held[1].close()
            held = self._local.db = (key, self._connect())
        return held[1].execute(sql, args).fetchall()

    def _migrate(self) -> None:
        row = self.read("SELECT value FROM meta WHERE key='schema_version'")
        current = int(row[0]["value"]) if row else 0
        if current > SCHEMA_VERSION:
            raise RuntimeError(f"{self.db_path} has schema {current}; this XMR knows up to {SCHEMA_VERSION}")
        if 0 < current < SCHEMA_VERSION:
            self.backup(f"schema{current}")
        with self.tx() as db:
            row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            current = int(row["value"]) if row else 0
            for v in range(current + 1, SCHEMA_VERSION + 1):
                for stmt in _statements(MIGRATIONS[v]):
                    if "CREATE TABLE meta" not in stmt:
                        db.execute(stmt)
                db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(v),))

    # ------------------------------------------------------------------ backups
    def list_backups(self) -> list[Path]:
        """Backups, newest first."""
        return list_backups(self.root)

    def backup(self, tag: str = "daily") -> Path:
        """A consistent copy of the database (online backup API, safe while others write); the
        `BACKUPS_KEPT` newest are kept."""
        self.backups.mkdir(exist_ok=True)
        dest = self.backups / f"store-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**9:09d}-{tag}.sqlite"
        tmp = dest.with_suffix(".part")
        src, dst = sqlite3.connect(self.db_path, timeout=30), sqlite3.connect(tmp)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        os.replace(tmp, dest)
        for old in self.list_backups()[BACKUPS_KEPT:]:
            old.unlink(missing_ok=True)
        return dest

    def _daily_backup(self) -> None:
        latest = self.list_backups()
        if not latest or time.time() - latest[0].stat().st_mtime > BACKUP_EVERY_S:
            self.backup()

    def integrity(self) -> str:
        """'ok', or what SQLite's integrity check found."""
        rows = self.read("PRAGMA integrity_check")
        return "; ".join(r[0] for r in rows)

    # ------------------------------------------------------------------ state
    def version(self) -> int:
        """A counter bumped by every change to items or embeddings (any process)."""
        rows = self.read("SELECT value FROM meta WHERE key='version'")
        return int(rows[0]["value"]) if rows else 0

    @staticmethod
    def _bump(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO meta VALUES ('version', '1') ON CONFLICT(key) DO UPDATE "
                   "SET value = CAST(value AS INTEGER) + 1")

    def schema_version(self) -> int:
        return int(self.read("SELECT value FROM meta WHERE key='schema_version'")[0]["value"])

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        rows = self.read("SELECT value FROM meta WHERE key=?", (key,))
        return rows[0]["value"] if rows else default

    def store_id(self) -> str:
        """This store's own id (made once, kept): what tells two data folders apart on one Milvus server."""
        import uuid

        have = self.get_meta("store_id")
        if have:
            return have
        with self.tx() as db:  # the first to ask makes it; any other process racing it keeps the same one
            db.execute("INSERT OR IGNORE INTO meta VALUES ('store_id', ?)", (uuid.uuid4().hex,))
        return self.get_meta("store_id")

    def set_meta(self, key: str, value: str) -> None:
        with self.tx() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # ------------------------------------------------------------------ images on disk
    def put_image(self, data: bytes, suffix: str = ".png") -> tuple[str, Path]:
        """Store bytes content-addressed (atomic rename); returns (sha256, path relative to root)."""
        sha = hashlib.sha256(data).hexdigest()
        rel = Path("images") / sha[:2] / f"{sha}{suffix}"
        dest = self.root / rel
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".part")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, dest)
        return sha, rel

    # ------------------------------------------------------------------ collections
    def create_collection(self, name: str) -> int:
        name = name.strip()
        if not name or len(name) > 64 or not set(name) <= _NAME_OK:
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
            "SELECT c.name, c.created, COUNT(i.id) AS items FROM collections c "
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

    # ------------------------------------------------------------------ readings
    @staticmethod
    def _put_readings(db: sqlite3.Connection, model_id: str, rows: list[tuple[int, tuple[str, bytes]]]) -> None:
        for item_id, (text, blob) in rows:
            # delete, then insert: the FTS tables follow by trigger (a REPLACE would skip the delete trigger)
            db.execute("DELETE FROM readings WHERE item_id=? AND model_id=?", (int(item_id), model_id))
            db.execute("INSERT INTO readings (item_id, model_id, text, han, compact) VALUES (?, ?, ?, ?, ?)",
                       (int(item_id), model_id, text.lower(), " ".join(HAN.findall(text)), blob))

    def set_readings(self, model_id: str, rows: list[tuple[int, tuple[str, bytes]]]) -> None:
        """Store (item id, (greedy text, compact posteriors)) readings by a model."""
        with self.tx() as db:
            self._put_readings(db, model_id, rows)

    def readings(self, model_id: str, ids: list[int]) -> dict[int, tuple[str, bytes]]:
        rows = self._read_ids("SELECT item_id, text, compact FROM readings WHERE model_id=? AND item_id IN",
                              [int(i) for i in ids], (model_id,))
        return {int(r["item_id"]): (r["text"], bytes(r["compact"])) for r in rows}

    def items_missing_reading(self, model_id: str) -> list[Item]:
        rows = self.read("SELECT i.*, c.name AS collection FROM items i JOIN collections c ON c.id=i.collection_id "
                         "WHERE NOT EXISTS (SELECT 1 FROM readings r WHERE r.item_id=i.id AND r.model_id=?) "
                         "ORDER BY i.id", (model_id,))
        return [self._item(r) for r in rows]

    def reading_candidates(self, model_id: str, terms: list[str], limit: int = 500) -> list[int]:
        """Items whose reading holds or shares the most with any of the terms, best first. Candidate
        generation only: the caller re-scores them exactly.

        First the readings that are a term (one of their words), then those that hold one (an FTS5 phrase:
        a Latin term as a substring of the trigram index, a Chinese one as its characters in a row), then
        those sharing the most of the
        terms' rarest tokens: a Latin term's RARE_TRIGRAMS rarest trigrams, a Chinese term's
        RARE_CHARACTERS rarest characters (FTS5's own counts; a frequent trigram such as "ing" matches a
        tenth of all readings), each token's first TOKEN_ROWS rows counted, not ranked (ranking every
        row that shares a token cost 150 ms at 1,000,000 readings; docs/open-vocabulary.md). A term under
        three letters (which no trigram holds) finds the readings that are it, by an index."""
        whole: list[tuple[str, str]] = []  # (table, phrase)
        parts: list[tuple[str, set[str], int]] = []  # (table, a term's tokens, how many of its rarest)
        short = set()
        for t in terms:
            t = t.lower().strip()
            chars = HAN.findall(t)
            if chars:
                whole.append(("reading_han", " ".join(chars)))
                parts.append(("reading_han", set(chars), RARE_CHARACTERS))
            rest = HAN.sub("", t).strip()
            if len(rest) >= 3:
                whole.append(("reading_latin", rest))
                parts.append(("reading_latin", {rest[i:i + 3] for i in range(len(rest) - 2)}, RARE_TRIGRAMS))
            elif rest:
                short.add(rest)
        docs = {table: self._token_docs(table, set().union(*(x for tb, x, _ in parts if tb == table)))
                for table in {tb for tb, _, _ in parts}}
        tokens = list(dict.fromkeys((tb, x) for tb, toks, n in parts for x in
                                    sorted((x for x in sorted(toks) if x in docs[tb]), key=docs[tb].__getitem__)[:n]))
        holds: dict[int, str] = {}  # row -> the term it holds
        for (table, x), rowid in self._matches(list(dict.fromkeys(whole)), 4 * limit):
            holds.setdefault(rowid, x.replace(" ", ""))
        shared: dict[int, int] = {}
        for _, rowid in self._matches(tokens, TOKEN_ROWS):
            shared[rowid] = shared.get(rowid, 0) + 1
        rows = list(holds) + [i for i, _ in sorted(shared.items(), key=lambda x: -x[1]) if i not in holds][: 2 * limit]
        # by rowid: the "+" keeps the planner off readings_text, which would scan every reading of the model
        got = {int(r["id"]): (int(r["item_id"]), r["text"]) for r in
               self._read_ids("SELECT id, item_id, text FROM readings WHERE +model_id=? AND id IN", rows, (model_id,))}
        # a reading that is the term (as one of its words) first, then one holding it, then the most shared
        rank = lambda i: (0 if holds[i] in got[i][1].split() else 1) if i in holds else 2  # noqa: E731
        order = sorted((i for i in rows if i in got), key=lambda i: (rank(i), -shared.get(i, 0)))
        out = list(dict.fromkeys(got[i][0] for i in order))
        for t in short:  # a reading that is the term, or starts with it as its greedy text (store.py's index)
            for r in self.read("SELECT item_id FROM readings WHERE model_id=? AND text=? UNION SELECT item_id FROM "
                               "readings WHERE model_id=? AND text GLOB ? LIMIT ?",  # two index searches (an OR: a scan)
                               (model_id, t, model_id, _glob_escape(t) + " *", limit)):
                if int(r["item_id"]) not in out:
                    out.insert(0, int(r["item_id"]))
        return out[:limit]

    def _token_docs(self, table: str, tokens: set[str]) -> dict[str, int]:
        """How many readings hold each of these tokens (FTS5's own counts; those none holds left out)."""
        if not tokens:
            return {}
        cache = self._docs.setdefault(table, {})  # the counts only choose which tokens: stale ones do no harm
        if len(cache) > 200_000:
            cache.clear()
        tok = sorted(x for x in tokens if x not in cache)
        if not tok:
            return {x: cache[x] for x in tokens}
        sql = f"SELECT term, doc FROM temp.{table}_vocab WHERE term IN ({','.join('?' * len(tok))})"
        try:
            rows = self.read(sql, tuple(tok))
        except sqlite3.OperationalError:  # a new reading connection: its view of the counts, made once
            self.read(f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{table}_vocab USING fts5vocab(main, {table}, row)")
            rows = self.read(sql, tuple(tok))
        cache.update((r["term"], r["doc"]) for r in rows)  # a token no reading holds is asked again next time
        return {x: cache[x] for x in tokens if x in cache}

    def _matches(self, queries: list[tuple[str, str]], limit: int) -> list[tuple[tuple[str, str], int]]:
        """((table, phrase), row) for the first `limit` rows matching each full-text phrase, in one statement."""
        if not queries:
            return []
        sql = " UNION ALL ".join(f"SELECT * FROM (SELECT {n} q, rowid FROM {table} WHERE {table} MATCH ? LIMIT {int(limit)})"
                                 for n, (table, _) in enumerate(queries))
        phrase = lambda x: '"' + x.replace('"', '""') + '"'  # noqa: E731
        return [(queries[r["q"]], int(r["rowid"])) for r in self.read(sql, tuple(phrase(x) for _, x in queries))]

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

    # ------------------------------------------------------------------ user concepts and annotations
    def add_concept(self, concept_id: str, zh: str, en: str, es: str) -> None:
        with self.tx() as db:
            db.execute("INSERT INTO concepts VALUES (?, ?, ?, ?, ?)", (concept_id, zh, en, es, time.time()))

    def list_concepts(self) -> list[dict]:
        return [dict(r) for r in self.read("SELECT * FROM concepts ORDER BY created")]

    def annotate(self, sha256: str, path: str, concept_id: str, lang: str, author: str = "") -> int:
        with self.tx() as db:
            cur = db.execute("INSERT INTO annotations (sha256, path, concept_id, lang, author, created) "
                             "VALUES (?, ?, ?, ?, ?, ?)", (sha256, path, concept_id, lang, author, time.time()))
            return int(cur.lastrowid)

    def list_annotations(self, status: str | None = "queued") -> list[dict]:
        where, args = ("WHERE status=?", (status,)) if status else ("", ())
        return [dict(r) for r in self.read(f"SELECT * FROM annotations {where} ORDER BY id", args)]

    def relabel_annotation(self, ann_id: int, concept_id: str, lang: str) -> None:
        with self.tx() as db:
            if db.execute("UPDATE annotations SET concept_id=?, lang=? WHERE id=?",
                          (concept_id, lang, ann_id)).rowcount == 0:
                raise ValueError(f"no annotation {ann_id}")

    def delete_annotation(self, ann_id: int) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM annotations WHERE id=?", (ann_id,))

    # ------------------------------------------------------------------ jobs
    def create_job(self, kind: str, params: dict) -> int:
        """A new queued job; refused while another job is queued or running (one at a time)."""
        with self.tx() as db:
            busy = db.execute("SELECT id, kind FROM jobs WHERE status IN ('queued', 'running')").fetchone()
            if busy:
                raise RuntimeError(f"job {busy['id']} ({busy['kind']}) is still running; wait for it to finish")
            cur = db.execute("INSERT INTO jobs (kind, params, status, created) VALUES (?, ?, 'queued', ?)",
                             (kind, json.dumps(params), time.time()))
            return int(cur.lastrowid)

    def update_job(self, job_id: int, **fields) -> None:
        allowed = {"status", "progress", "message", "result", "pid", "started", "finished"}
        if not set(fields) <= allowed:
            raise ValueError(f"unknown job fields {set(fields) - allowed}")
        if "result" in fields and not isinstance(fields["result"], str):
            fields["result"] = json.dumps(fields["result"])
        sets = ", ".join(f"{k}=?" for k in fields)
        with self.tx() as db:
            db.execute(f"UPDATE jobs SET {sets} WHERE id=?", (*fields.values(), job_id))

    def get_job(self, job_id: int) -> dict:
        rows = self.read("SELECT * FROM jobs WHERE id=?", (job_id,))
        if not rows:
            raise ValueError(f"no job {job_id}")
        d = dict(rows[0])
        d["params"], d["result"] = json.loads(d["params"]), json.loads(d["result"])
        return d

    def list_jobs(self, limit: int = 20) -> list[dict]:
        return [self.get_job(r["id"]) for r in self.read("SELECT id FROM jobs ORDER BY id DESC LIMIT ?", (limit,))]


def list_backups(root: Path | str) -> list[Path]:
    """The backups of the store in `root`, newest first (readable without opening the store)."""
    return sorted((Path(root) / "backups").glob("store-*.sqlite"), key=lambda p: p.stat().st_mtime, reverse=True)


def restore_backup(root: Path | str, backup: Path | str | None = None) -> Path:
    """Put a backup (the newest by default) back as the store; the file it replaces is kept beside it
    as `store.sqlite.damaged-<time>`. Returns the backup used."""
    root = Path(root)
    backups = list_backups(root)
    src = Path(backup) if backup else (backups[0] if backups else None)
    if src is None or not src.exists():
        raise ValueError(f"no backup to restore in {root / 'backups'}")
    check = sqlite3.connect(src)
    try:
        ok = check.execute("PRAGMA integrity_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        ok = str(exc)
    finally:
        check.close()
    if ok != "ok":
        raise ValueError(f"the backup {src} is damaged too ({ok})")
    db = root / "store.sqlite"
    if db.exists():
        os.replace(db, db.with_name(f"store.sqlite.damaged-{time.strftime('%Y%m%d-%H%M%S')}"))
    for side in ("-wal", "-shm"):
        Path(f"{db}{side}").unlink(missing_ok=True)
    tmp = db.with_suffix(".restoring")
    shutil.copyfile(src, tmp)
    os.replace(tmp, db)
    return src
