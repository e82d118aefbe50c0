"""Users of the app, their searches and their marks on hits (no passwords: XMR is a localhost tool).

A user is a name (the default is "anonymous"), stored on first use; the project's reviewer role is set
from the CLI (`xmr user NAME --role reviewer`). Each user's searches are kept with their results, to be
listed and run again; their marks on hits are kept too: a right one can join the fine-tune queue, a
wrong one is a negative for the next fine-tune (a labelled image that is *not* that word), and all of
them re-rank the same user's later searches of the same thing (the engine's `feedback`).
"""

from __future__ import annotations

import json
import time

import numpy as np

from xmr_core.data.preprocess import png_bytes
from xmr_core.store.database import Store
from xmr_core.store.items import NAME_CHARS

ANONYMOUS = "anonymous"
# an image query that looks this much (cosine of the visual encoders' embeddings) like an earlier one of the
# same user gets that query's marks when it has none of its own (benchmarks/feedback.py, simulated user)
SIMILAR_QUERY = 0.8
ROLES = ("user", "reviewer")
_NAME_OK = NAME_CHARS | {"@"}  # a collection name's characters, and @ (an e-mail address)


def check_name(name: str) -> str:
    """A user name as stored: stripped; ValueError for an empty, long or odd one."""
    name = (name or "").strip()
    if not name or len(name) > 40 or set(name) - _NAME_OK:
        raise ValueError(f"user name {name!r}: 1 to 40 letters, digits, spaces or _ - . @")
    return name


def ensure_user(store: Store, name: str) -> str:
    """The user `name` (created with the role "user" the first time); its checked name."""
    name = check_name(name)
    if not store.read("SELECT 1 FROM users WHERE name=?", (name,)):  # a write only for a new name
        with store.tx() as db:
            db.execute("INSERT OR IGNORE INTO users (name, role, created) VALUES (?, 'user', ?)", (name, time.time()))
    return name


def set_role(store: Store, name: str, role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"role {role!r}: expected one of {ROLES}")
    name = ensure_user(store, name)
    with store.tx() as db:
        db.execute("UPDATE users SET role=? WHERE name=?", (role, name))


def role(store: Store, name: str) -> str:
    rows = store.read("SELECT role FROM users WHERE name=?", (name,))
    return rows[0]["role"] if rows else "user"


def list_users(store: Store) -> list[dict]:
    return [dict(r) for r in store.read(
        "SELECT u.name, u.role, u.created, (SELECT COUNT(*) FROM searches s WHERE s.user=u.name) AS searches, "
        "(SELECT COUNT(*) FROM annotations a WHERE a.author=u.name) AS annotations FROM users u ORDER BY u.name")]


def may_edit(store: Store, user: str, annotation: dict) -> bool:
    """A user relabels or deletes only their own annotations (and those saved with no author), unless they
    are the project's reviewer."""
    return annotation.get("author") in ("", user) or role(store, user) == "reviewer"


# ------------------------------------------------------------------ history
def record_search(store: Store, user: str, kind: str, query: dict, results: list[dict]) -> int:
    """Keep one search of `user`: its kind ("text" or "image"), the query as it can be run again (text,
    terms, an image's path in the store, targets, k) and its results (item ids, scores, words)."""
    user = ensure_user(store, user)
    with store.tx() as db:
        cur = db.execute("INSERT INTO searches (user, kind, query, results, created) VALUES (?, ?, ?, ?, ?)",
                         (user, kind, json.dumps(query, ensure_ascii=False),
                          json.dumps(results, ensure_ascii=False), time.time()))
        return int(cur.lastrowid)


def _search(store: Store, r) -> dict:
    marks = {int(m["item_id"]): bool(m["right"]) for m in store.read(
        "SELECT item_id, right FROM feedback WHERE search_id=?", (r["id"],))}
    return {"id": r["id"], "kind": r["kind"], "query": json.loads(r["query"]), "results": json.loads(r["results"]),
            "created": r["created"], "marks": marks}


def history(store: Store, user: str, limit: int = 20) -> list[dict]:
    """The user's latest searches, newest first, with their results and the marks given on them."""
    return [_search(store, r) for r in store.read("SELECT * FROM searches WHERE user=? ORDER BY id DESC LIMIT ?",
                                                  (user, limit))]


def get_search(store: Store, user: str, search_id: int) -> dict:
    """One of the user's searches (KeyError for another user's or none)."""
    rows = store.read("SELECT * FROM searches WHERE user=? AND id=?", (user, search_id))
    if not rows:
        raise KeyError(f"{user} has no search {search_id}")
    return _search(store, rows[0])


# ------------------------------------------------------------------ marks
def mark(store: Store, user: str, search_id: int | None, item_id: int, right: bool,
         concept_id: str | None, lang: str | None, query_key: str, query_vector: np.ndarray | None = None) -> None:
    """The user's mark on a hit: right or wrong for the query `query_key` (what makes two searches the
    same query: the typed text or the recognised concept), with the concept the query meant when known
    and, for an image query, its look (Engine.look: a later image that looks like it gets the same marks,
    however it is read)."""
    user = ensure_user(store, user)
    vec = None if query_vector is None else np.asarray(query_vector, np.float32).tobytes()
    with store.tx() as db:
        db.execute("DELETE FROM feedback WHERE user=? AND query_key=? AND item_id=?", (user, query_key, item_id))
        db.execute("INSERT INTO feedback (user, search_id, item_id, right, concept_id, lang, query_key, query_vector, "
                   "created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (user, search_id, item_id, int(right), concept_id, lang, query_key, vec, time.time()))


def clear_marks(store: Store, user: str, query_key: str) -> int:
    with store.tx() as db:
        return db.execute("DELETE FROM feedback WHERE user=? AND query_key=?", (user, query_key)).rowcount


def marks_for(store: Store, user: str, query_key: str) -> dict[int, bool]:
    """The user's standing marks for a query (they re-rank the user's later searches of it)."""
    return {int(r["item_id"]): bool(r["right"]) for r in store.read(
        "SELECT f.item_id, f.right FROM feedback f JOIN items i ON i.id = f.item_id "
        "WHERE f.user=? AND f.query_key=? ORDER BY f.id", (user, query_key))}


def similar_marks(store: Store, user: str, look, at_least: float) -> dict[int, bool]:
    """The user's marks given on image queries whose look is within cosine `at_least` of `look` (a vector,
    or a function giving it, called only when the user has marks on image queries): another drawing of
    the same word, perhaps read as something else; the nearest query's mark first."""
    rows = store.read("SELECT f.item_id, f.right, f.query_vector FROM feedback f JOIN items i ON i.id = f.item_id "
                      "WHERE f.user=? AND f.query_vector IS NOT NULL", (user,))
    if not rows:
        return {}
    v = np.asarray(look() if callable(look) else look, np.float32)
    near = []
    for r in rows:
        sim = float(np.frombuffer(r["query_vector"], np.float32) @ v)
        if sim >= at_least:
            near.append((sim, int(r["item_id"]), bool(r["right"])))
    out: dict[int, bool] = {}
    for _, item, right in sorted(near, reverse=True):
        out.setdefault(item, right)
    return out


def negatives(store: Store) -> list[dict]:
    """Hits marked wrong for a known concept, every user's: (item path, the concept it is not, its script)."""
    return [dict(r) for r in store.read(
        "SELECT f.item_id, i.path, f.concept_id, COALESCE(i.lang, f.lang) AS lang, f.user FROM feedback f "
        "JOIN items i ON i.id = f.item_id WHERE f.right=0 AND f.concept_id IS NOT NULL ORDER BY f.id")]


# ------------------------------------------------------------------ searching as a user
def query_key(info) -> str:
    """What makes two searches the same query, for standing marks: the typed text, the reading of an
    image outside the lexicon, or the concept an image was recognised as."""
    if info.kind == "text":
        return "text:" + info.text.strip().lower()
    if info.terms:
        return "read:" + info.text.strip().lower()
    best = max((r[0] for r in info.recognized.values() if r), key=lambda r: r[2], default=None)
    return "concept:" + (best[0] if best else "")


def query_concept(info, lexicon) -> str | None:
    """The lexicon concept a query meant, when known (a typed lexicon word, an image's recognised concept)."""
    if info.kind == "text":
        found = lexicon.lookup(info.text)
        return found[0].concept_id if found else None
    key = query_key(info)
    return (key.split(":", 1)[1] or None) if key.startswith("concept:") else None


def standing_marks(store: Store, user: str, key: str, look=None) -> dict[int, bool]:
    """The marks that re-rank the user's query: those given on the same query (its key), or, when there
    are none, on earlier image queries that look like it (`SIMILAR_QUERY`; `look` as for similar_marks,
    None for a typed query)."""
    marks = marks_for(store, user, key)
    if not marks and look is not None:
        marks = similar_marks(store, user, look, SIMILAR_QUERY)
    return marks


def search_as(engine, user: str, query: dict, feedback: dict[int, bool] | None = None, record: bool = True,
              **options):
    """`engine.search` by `user` for `query` ({"text": ...} with optional "terms", or {"image": ...}):
    without `feedback` (None; {} is no marks), the user's standing marks re-rank it (long-term preference,
    `standing_marks`), and an image query that looks like samples the user labelled is recognised and
    searched as their concepts (the engine's exemplars).
    A new search (`record`) is kept in the user's history, an image query's image in the store so that it
    can be run again. Returns (hits, info, search id or None, query key)."""
    user = ensure_user(engine.store, user)

    def standing(info) -> dict[int, bool]:  # resolved once the query is read: its key, its look
        return standing_marks(engine.store, user, query_key(info),
                              (lambda: engine.look(info)) if info.kind == "image" else None)

    ex = engine.exemplars_of(user) if "image" in query else None  # the samples the user labelled
    hits, info = engine.search(feedback=standing if feedback is None else feedback or None, exemplars=ex,
                               **query, **options)
    key = query_key(info)
    search_id = None
    if record:
        saved = dict(query)
        if "image" in saved:  # kept in the store (content-addressed: a search run again adds no file)
            saved["image"] = str(engine.store.put_image(png_bytes(saved["image"]))[1])
        results = [{"item_id": h.item_id, "score": round(float(h.score), 4), "lang": h.lang,
                    "concept_id": h.concept_id, "en": (h.words or {}).get("en", "")} for h in hits[:50]]
        search_id = record_search(engine.store, user, info.kind,
                                  {**saved, **{k: v for k, v in options.items() if k in ("languages", "k", "per_script")},
                                   "key": key, "shown": info.text}, results)
    return hits, info, search_id, key


def saved_query(store: Store, user: str, search_id: int) -> tuple[dict, dict]:
    """One of the user's searches as (query, options) for `search_as` (an image by its path in the store)."""
    s = get_search(store, user, search_id)
    q = {k: v for k, v in s["query"].items() if k in ("text", "terms", "image")}
    if "image" in q:
        q["image"] = str(store.root / q["image"])
    return q, {k: v for k, v in s["query"].items() if k in ("languages", "k", "per_script")}


def rerun(engine, user: str, search_id: int, **options):
    """Run one of the user's searches again (with their standing marks; `options` override its own)."""
    q, opts = saved_query(engine.store, user, search_id)
    return search_as(engine, user, q, **{**opts, **options})
