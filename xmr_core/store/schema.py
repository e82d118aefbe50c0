"""The store's schema: one migration per version, applied in order (the version lives in database.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

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
    # which way a reading was made (readings.READING_FORMAT): those of an older format hold fewer other listed words
    # (format 1: none), and a reindex reads their items again
    5: """
    ALTER TABLE readings ADD COLUMN format INTEGER NOT NULL DEFAULT 1;
    """,
}


def statements(script: str) -> Iterator[str]:
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
