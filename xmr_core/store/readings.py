"""The store's readings and their full-text index: candidate generation for search by words."""

from __future__ import annotations

import sqlite3

import numpy as np

from xmr_core.data.lexicon import HAN
from xmr_core.store.items import Item

RARE_TRIGRAMS = 3  # trigrams of a Latin term searched in the readings: its rarest
RARE_CHARACTERS = 2  # and characters of a Chinese term
HOLD_TRIGRAMS = 4  # a long Latin term is looked for through its rarest trigrams, checked on the text (`_holding`)
TOKEN_ROWS = 500  # rows of each such token counted (100,000 readings: 2,000 -> 500 took 10.2 -> 8.6 ms p50)
ALSO = " · "  # in a reading's text, what follows are other words the reader nearly read (indexed, not shown)
# how readings are made now: 1, the greedy text and the listed word (before session 33); 2, four other listed words
# after ALSO too; 3, six (open_reading.ALTERNATIVES, session 39). A reading of an older format counts as missing: a
# reindex reads its item again.
READING_FORMAT = 3


def reading_text(shown: str, others: list[str]) -> str:
    """A reading's text: what was read, then after ALSO the other words (none: no ALSO)."""
    return shown + (ALSO + " ".join(others) if others else "")


def shown_reading(text: str) -> str:
    """The part of a reading's text a person is shown: what was read, not the other candidates after ALSO."""
    return text.split(ALSO)[0]


def _phrase(text: str) -> str:
    """`text` as one FTS5 phrase."""
    return '"' + text.replace('"', '""') + '"'


def _trigrams(text: str) -> set[str]:
    """The trigrams the full-text index holds of a Latin text."""
    return {text[i:i + 3] for i in range(len(text) - 2)}


def glob_escape(text: str) -> str:
    """`text` matched literally inside a GLOB pattern."""
    return "".join(f"[{ch}]" if ch in "*?[" else ch for ch in text)


class ReadingTables:
    """Readings of items and the trigram / character index over them (a part of Store)."""

    @staticmethod
    def _put_readings(db: sqlite3.Connection, model_id: str, rows: list[tuple[int, tuple[str, bytes]]]) -> None:
        for item_id, (text, blob) in rows:
            # delete, then insert: the FTS tables follow by trigger (a REPLACE would skip the delete trigger)
            db.execute("DELETE FROM readings WHERE item_id=? AND model_id=?", (int(item_id), model_id))
            db.execute("INSERT INTO readings (item_id, model_id, text, han, compact, format) VALUES (?, ?, ?, ?, ?, ?)",
                       (int(item_id), model_id, text.lower(), " ".join(HAN.findall(text)), blob, READING_FORMAT))

    def set_readings(self, model_id: str, rows: list[tuple[int, tuple[str, bytes]]]) -> None:
        """Store (item id, (greedy text, compact posteriors)) readings by a model."""
        with self.tx() as db:
            self._put_readings(db, model_id, rows)

    def readings(self, model_id: str, ids: list[int]) -> dict[int, tuple[str, bytes]]:
        rows = self._read_ids("SELECT item_id, text, compact FROM readings WHERE model_id=? AND item_id IN",
                              [int(i) for i in ids], (model_id,))
        return {int(r["item_id"]): (r["text"], bytes(r["compact"])) for r in rows}

    def items_missing_reading(self, model_id: str) -> list[Item]:
        """Items with no reading by the model, or one of an older format than READING_FORMAT."""
        rows = self.read("SELECT i.*, c.name AS collection FROM items i JOIN collections c ON c.id=i.collection_id "
                         "WHERE NOT EXISTS (SELECT 1 FROM readings r WHERE r.item_id=i.id AND r.model_id=? "
                         "AND r.format >= ?) ORDER BY i.id", (model_id, READING_FORMAT))
        return [self._item(r) for r in rows]

    def reading_candidates(self, model_id: str, terms: list[str], limit: int = 500) -> list[int]:
        """Items whose reading holds or shares the most with any of the terms, best first. Candidate
        generation only: the caller re-scores them exactly.

        First the readings that are a term (one of their words), then those that hold one (`_holding`: a
        Latin term as a substring of the trigram index, a Chinese one as its characters in a row), then
        those sharing the most of the terms' rarest tokens: a Latin term's RARE_TRIGRAMS rarest trigrams, a
        Chinese term's RARE_CHARACTERS rarest characters (FTS5's own counts; a frequent trigram such as "ing" matches a
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
                parts.append(("reading_latin", _trigrams(rest), RARE_TRIGRAMS))
            elif rest:
                short.add(rest)
        docs = {table: self._token_docs(table, set().union(*(x for tb, x, _ in parts if tb == table)))
                for table in {tb for tb, _, _ in parts}}
        tokens = list(dict.fromkeys((tb, x) for tb, toks, n in parts for x in
                                    sorted((x for x in sorted(toks) if x in docs[tb]), key=docs[tb].__getitem__)[:n]))
        holds: dict[int, str] = {}  # row -> the term it holds
        for (_table, x), rowid in self._holding(list(dict.fromkeys(whole)), 4 * limit, docs.get("reading_latin", {})):
            holds.setdefault(rowid, x.replace(" ", ""))
        shared = self._shared(tokens, list(holds), 2 * limit)
        rows = list(holds) + [i for i in shared if i not in holds]
        # by rowid: the "+" keeps the planner off readings_text, which would scan every reading of the model
        got = {int(r["id"]): (int(r["item_id"]), r["text"]) for r in
               self._read_ids("SELECT id, item_id, text FROM readings WHERE +model_id=? AND id IN", rows, (model_id,))}
        # a reading that is the term (as one of its words) first, then one holding it, then the most shared
        # (a word among the other candidates after ALSO counts as a reading that holds the term)
        rank = lambda i: (0 if holds[i] in shown_reading(got[i][1]).split() else 1) if i in holds else 2  # noqa: E731
        order = sorted((i for i in rows if i in got), key=lambda i: (rank(i), -shared.get(i, 0)))
        out = list(dict.fromkeys(got[i][0] for i in order))
        for t in short:  # a reading that is the term, or starts with it as its greedy text (store.py's index)
            for r in self.read("SELECT item_id FROM readings WHERE model_id=? AND text=? UNION SELECT item_id FROM "
                               "readings WHERE model_id=? AND text GLOB ? LIMIT ?",  # two index searches (an OR: a scan)
                               (model_id, t, model_id, glob_escape(t) + " *", limit)):
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

    @staticmethod
    def _union(queries: list[tuple[str, str]], limit: int) -> tuple[str, tuple[str, ...]]:
        """One statement of (q, rowid): the first `limit` rows matching each full-text phrase (q: its place in
        `queries`), phrase by phrase, each in rowid order (FTS5's own), and its parameters."""
        sql = " UNION ALL ".join(ReadingTables._first(n, table, limit) for n, (table, _) in enumerate(queries))
        return sql, tuple(_phrase(x) for _, x in queries)

    @staticmethod
    def _first(n: int, table: str, limit: int) -> str:
        """A statement of (q = n, rowid) for the first `limit` rows matching a full-text query, in rowid order."""
        return f"SELECT * FROM (SELECT {int(n)} q, rowid FROM {table} WHERE {table} MATCH ? LIMIT {int(limit)})"

    def _holding(self, queries: list[tuple[str, str]], limit: int, docs: dict[str, int]) -> list[tuple[tuple[str, str], int]]:
        """((table, phrase), row) for the first `limit` rows (by row) that hold each phrase, in one statement:
        FTS5's phrase query (a Latin phrase a substring of the trigram index, a Chinese one its characters in
        a row). A long Latin phrase (more than HOLD_TRIGRAMS + 1 trigrams) is found instead as the rows that
        hold its HOLD_TRIGRAMS rarest trigrams (`docs`: each trigram's count), checked on their text:
        the same rows, which the phrase query finds by reading every one of its trigrams' rows (at 1,000,000
        readings: 11 trigrams 6.6 ms, 2.8 this way; 2 trigrams 0.4 ms, 1.2 this way). A Latin phrase with a
        trigram no reading holds is not searched."""
        parts, args = [], []
        for n, (table, x) in enumerate(queries):
            grams = _trigrams(x) if table == "reading_latin" else set()
            if not grams <= docs.keys():
                continue
            if len(grams) > HOLD_TRIGRAMS + 1:
                rare = sorted(sorted(grams), key=docs.__getitem__)[:HOLD_TRIGRAMS]
                parts.append(f"SELECT * FROM (SELECT {n} q, f.rowid FROM reading_latin f JOIN readings r ON r.id=f.rowid "
                             f"WHERE reading_latin MATCH ? AND instr(r.text, ?) > 0 ORDER BY f.rowid LIMIT {int(limit)})")
                args += [" AND ".join(map(_phrase, rare)), x]
            else:
                parts.append(self._first(n, table, limit))
                args.append(_phrase(x))
        if not parts:
            return []
        return [(queries[r["q"]], int(r["rowid"])) for r in self.read(" UNION ALL ".join(parts), tuple(args))]

    def _shared(self, tokens: list[tuple[str, str]], holds: list[int], keep: int) -> dict[int, int]:
        """Row -> how many of the tokens it holds (of each token's first TOKEN_ROWS rows): the `keep` rows
        outside `holds` that hold the most, most first (on a tie, the one a token listed earlier holds first,
        then by row), then the rows of `holds` that hold any. At 100,000 readings a term's tokens match
        about 4,000 rows: SQLite hands them over as one string (a row per match, or its GROUP BY, cost
        twice as long) and numpy counts them."""
        if not tokens:
            return {}
        union, args = self._union(tokens, TOKEN_ROWS)
        m = len(tokens)
        got = self.read(f"SELECT group_concat(rowid * {m} + q) FROM ({union})", args)[0][0]
        if not got:
            return {}
        row, q = np.divmod(np.array(got.split(","), np.int64), m)
        order = np.lexsort((q, row))
        row, q = row[order], q[order]
        first = np.flatnonzero(np.r_[True, row[1:] != row[:-1]])
        rows, f, n = row[first], q[first], np.diff(np.r_[first, len(row)])  # each row, its first token, its count
        held = np.isin(rows, np.asarray(holds, np.int64))
        best = lambda at: at[np.lexsort((rows[at], f[at], -n[at]))]  # noqa: E731
        return {int(rows[i]): int(n[i]) for i in np.r_[best(np.flatnonzero(~held))[:keep], best(np.flatnonzero(held))]}
