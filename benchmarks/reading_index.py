"""Typed search of any word at scale: the reading index (FTS5 candidates + exact re-scoring) and the
vector index behind one Engine, at 100,000 and 1,000,000 items.

The items are synthetic (the issue allows it at this size): each a frequent word of zh, en or es
(wordfreq) with a compact reading made from its spelling (the right symbol 0.9 at its steps, the blank
elsewhere, five look-alike symbols sharing the rest) and a random unit embedding; stored through the
Store's own add_items, searched through Engine.search with the bundled reading model. Each reading's text
holds, as the engine's do (reading_search.index_text), ALTERNATIVES + 1 other listed words of about its
length after the word (`--alternatives 0`: the word alone, as before session 33). Prints p50 / p95 of
a typed query (words outside the lexicon, translations warm and cold), the candidate generation alone,
the time to build, and how many of the items read as the query's word (its own: about one in 100,000 items)
the candidate generation proposes for exact re-scoring.

    python benchmarks/reading_index.py [--sizes 100000 1000000] [--queries 200] [--data DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from xmr_core.data.lexicon import LANGS  # noqa: E402
from xmr_core.model.ctc import COMPACT_K  # noqa: E402
from xmr_core.model.open_reading import ALTERNATIVES, LENGTH_WINDOW  # noqa: E402
from xmr_core.search.engine import Engine  # noqa: E402
from xmr_core.search.reading_search import SHORTLIST  # noqa: E402
from xmr_core.store.database import Store  # noqa: E402
from xmr_core.store.readings import ALSO, glob_escape, reading_text  # noqa: E402
from xmr_core.store.registry import READING_MODEL, model_id  # noqa: E402


def synthetic_reading(word: str, index: dict[str, int], n_symbols: int, rng) -> bytes:
    """A compact reading (ctc.compact's layout) of a word as a confident reader would give it."""
    steps = []
    for ch in word:
        steps += [index.get(ch, 1), 0]
    steps = [0] + steps
    T, k = len(steps), COMPACT_K
    ids = np.zeros((T, k), "<u2")
    probs = np.zeros((T, k), "<f2")
    for t, s in enumerate(steps):
        ids[t] = [s, *rng.integers(1, n_symbols, k - 1)]
        probs[t] = [0.9, *([0.1 / (k - 1)] * (k - 1))]
    return np.array([T], "<u2").tobytes() + bytes([k]) + ids.tobytes() + probs.tobytes()


def with_others(word: str, listed: list[str], n: int, rng) -> str:
    """A reading's text as the engine stores it: the word, then `n` listed words of about its length."""
    others = []
    while len(others) < n:
        w = listed[int(rng.integers(0, len(listed)))]
        if abs(len(w) - len(word)) <= LENGTH_WINDOW and w != word:
            others.append(w)
    return reading_text(word, others)


def build(root: Path, n: int, reader, dim: int, rng, alternatives: int) -> tuple[list[str], float]:
    import wordfreq

    words = {lg: [w for w in wordfreq.top_n_list(lg, 30_000) if w.isalpha()] for lg in LANGS}
    store = Store(root)
    store.create_collection("archive")
    mid = model_id(READING_MODEL)
    t0, batch = time.time(), 20_000
    for start in range(0, n, batch):
        m = min(batch, n - start)
        langs = rng.choice(LANGS, m)
        texts = [words[lg][int(rng.integers(0, len(words[lg])))] for lg in langs]
        recs = [{"sha256": f"{start + i:064x}", "path": f"images/none/{start + i}.png", "lang": str(lg)}
                for i, lg in enumerate(langs)]
        vecs = rng.standard_normal((m, dim)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        reads = [(with_others(t, words[lg], alternatives, rng), synthetic_reading(t, reader.index, len(reader.symbols), rng))
                 for t, lg in zip(texts, langs)]
        store.add_items("archive", recs, mid, vecs, reads)
        print(f"  {start + m:,} items stored ({time.time() - t0:.0f} s)", flush=True)
    return [w for lg in LANGS for w in words[lg][5_000:5_000 + 200]], time.time() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--alternatives", type=int, default=ALTERNATIVES + 1,
                    help="other listed words in each reading's text (the engine keeps up to ALTERNATIVES + 1)")
    ap.add_argument("--data", type=Path, help="keep the built stores here (one folder per size) and reuse them")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    rows = []
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            root = args.data / str(n) if args.data else Path(tmp)
            if (root / "queries.txt").exists():  # built by an earlier run: reused
                queries, build_s = (root / "queries.txt").read_text(encoding="utf-8").split("\n"), float("nan")
            else:
                probe = Engine(root / "probe", model_dir=READING_MODEL)
                queries, build_s = build(root / "data", n, probe.reader, probe.model.cfg.embed_dim, rng,
                                          args.alternatives)
                (root / "queries.txt").write_text("\n".join(queries), encoding="utf-8")
            t0 = time.time()
            eng = Engine(root / "data", model_dir=READING_MODEL)
            len(eng.index)  # the vector index, built once
            index_s = time.time() - t0
            pick = [queries[i] for i in rng.choice(len(queries), args.queries, replace=False)]
            cold, warm, cand, own = [], [], [], [0, 0]
            for q in pick:
                t = time.perf_counter()
                eng.search(text=q, k=10)
                cold.append(1000 * (time.perf_counter() - t))
                t = time.perf_counter()
                eng.search(text=q, k=10)
                warm.append(1000 * (time.perf_counter() - t))
                terms = eng.query_terms(q)
                t = time.perf_counter()
                got = eng.store.reading_candidates(eng.model_id, [w for ws in terms.values() for w in ws], limit=SHORTLIST)
                cand.append(1000 * (time.perf_counter() - t))
                mine = {int(r["item_id"]) for r in eng.store.read(  # the items read as the word (by the index)
                    "SELECT item_id FROM readings WHERE model_id=? AND text=? UNION "
                    "SELECT item_id FROM readings WHERE model_id=? AND text GLOB ?",
                    (eng.model_id, q, eng.model_id, glob_escape(q + ALSO) + "*"))}
                own[0] += len(mine & set(got))
                own[1] += len(mine)
            rows.append((n, build_s, index_s, cold, warm, cand, own))
            print(f"{n:,} items: typed query p50 {np.median(cold):.1f} ms (translation cold), "
                  f"{np.median(warm):.1f} ms (warm); candidates alone p50 {np.median(cand):.1f} ms; "
                  f"{own[0]} of the queries' {own[1]} own items proposed", flush=True)
    print("\n| items | typed query p50 / p95 ms (new word) | same word again | FTS candidates p50 / p95 ms "
          "| own items proposed | store build s | vector index s |\n|---|---|---|---|---|---|---|")
    for n, b, ix, cold, warm, cand, own in rows:
        print(f"| {n:,} | {np.median(cold):.1f} / {np.percentile(cold, 95):.1f} | {np.median(warm):.1f} | "
              f"{np.median(cand):.1f} / {np.percentile(cand, 95):.1f} | {own[0]} / {own[1]} | {b:.0f} | {ix:.0f} |")


if __name__ == "__main__":
    main()
