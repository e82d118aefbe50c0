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
import os
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from xmr_core.store.items import ItemTables
from xmr_core.store.queue import QueueTables
from xmr_core.store.readings import ReadingTables
from xmr_core.store.schema import MIGRATIONS, statements

SCHEMA_VERSION = 5
BACKUP_EVERY_S = 24 * 3600
BACKUPS_KEPT = 5


class StoreDamaged(ValueError):
    """The SQLite file cannot be read: the message says what is wrong and how to recover."""


class Store(ItemTables, ReadingTables, QueueTables):
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
                for stmt in statements(MIGRATIONS[v]):
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
