"""The vector index side by side: FAISS (the embedded default) and Milvus Lite (issue 27), on the same
synthetic 256-d vectors as benchmarks/search.py: insert throughput, p50 / p95 of a query with a script
filter (FAISS: the script's ids as an allow-list; Milvus: a scalar filter pushed down), recall@10
against exact search, and the process's memory.

    python benchmarks/milvus.py [--sizes 100000 1000000] [--queries 200] [--index-types FLAT IVF_FLAT] [--faiss-only]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.search import clustered  # noqa: E402
from xmr_core.store.index import IndexConfig, VectorIndex, recall_at_k  # noqa: E402
from xmr_core.store.milvus_index import MilvusIndex  # noqa: E402

LANGS = ("zh", "en", "es")


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of this process and its children (Milvus Lite's server runs as a child process)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            own = next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024
        kids = [c for t in Path(f"/proc/{pid}/task").iterdir() for c in (t / "children").read_text().split()]
    except (OSError, StopIteration):
        return 0.0
    return own + sum(rss_mb(c) for c in kids)


def bench(n: int, queries: int, d: int = 256, index_types: tuple[str, ...] = ("FLAT",)) -> list[dict]:
    import faiss

    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(n)
    v = clustered(n, d, rng)
    q = clustered(queries, d, np.random.default_rng(1))
    ids = np.arange(n, dtype=np.int64)
    langs = np.array(LANGS)[rng.integers(0, 3, n)]
    want = [LANGS[i % 3] for i in range(queries)]
    exact = VectorIndex(d, IndexConfig(exact_limit=10**9))
    exact.add(ids, v)
    truth = np.stack([exact.search(q[i:i + 1], 10, allowed=ids[langs == want[i]])[1][0] for i in range(queries)])
    rows = []
    m0 = rss_mb()
    t = time.perf_counter()
    faiss_idx = VectorIndex.build(ids, v, d)
    build = time.perf_counter() - t
    allowed = {lg: ids[langs == lg] for lg in LANGS}
    ms, got = [], []
    for i in range(queries):
        t = time.perf_counter()
        got.append(faiss_idx.search(q[i:i + 1], 10, allowed=allowed[want[i]])[1][0])
        ms.append(1000 * (time.perf_counter() - t))
    rows.append({"backend": "FAISS" + (" IVF-Flat" if faiss_idx.approximate else " exact"), "n": n,
                 "insert per s": n / build, "p50": np.median(ms), "p95": np.percentile(ms, 95),
                 "recall@10": recall_at_k(np.stack(got), truth), "memory MB": rss_mb() - m0})
    del faiss_idx
    for kind in index_types:
        with tempfile.TemporaryDirectory() as tmp:
            m0 = rss_mb()
            t = time.perf_counter()
            mil = MilvusIndex.build(ids, v, d, str(Path(tmp) / "bench.db"), "bench",
                                    [{"lang": str(lg), "collection": "archive"} for lg in langs], index_type=kind)
            build = time.perf_counter() - t
            ms, got = [], []
            for i in range(queries):
                t = time.perf_counter()
                got.append(mil.search(q[i:i + 1], 10, where={"lang": [want[i]]})[1][0])
                ms.append(1000 * (time.perf_counter() - t))
            rows.append({"backend": f"Milvus Lite ({kind})", "n": n, "insert per s": n / build,
                         "p50": np.median(ms), "p95": np.percentile(ms, 95),
                         "recall@10": recall_at_k(np.stack(got), truth), "memory MB": rss_mb() - m0})
            mil.client.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--faiss-only", action="store_true", help="measure FAISS alone")
    ap.add_argument("--index-types", nargs="+", default=["FLAT"], choices=["FLAT", "IVF_FLAT"],
                    help="Milvus index types to measure (none: FAISS alone)")
    args = ap.parse_args()
    rows = []
    for n in args.sizes:
        rows += bench(n, args.queries, index_types=() if args.faiss_only else tuple(args.index_types))
        print(f"{n:,} done (peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)", flush=True)
    print("\n| backend | vectors | insert / s | query p50 / p95 ms (script filter) | recall@10 | memory MB |\n"
          "|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backend']} | {r['n']:,} | {r['insert per s']:,.0f} | {r['p50']:.1f} / {r['p95']:.1f} | "
              f"{r['recall@10']:.3f} | {r['memory MB']:.0f} |")


if __name__ == "__main__":
    main()
