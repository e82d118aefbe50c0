"""Search latency, recall@10 and memory at 10k, 100k and 1M vectors, and ingest throughput on 1 and 2
threads (prints a table; `--out DIR` also writes DIR/scaling.json and DIR/scaling.png).

Vectors are synthetic (clustered, L2-normalised, 256-d as the default model) for the index part; the
ingest part adds real rendered images through the engine with the bundled model.

    python benchmarks/search.py [--sizes 10000 100000 1000000] [--ingest 500] [--out docs]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from xmr_core.store.index import IndexConfig, VectorIndex, recall_at_k


def clustered(n: int, d: int, rng: np.random.Generator, centers: int = 3000) -> np.ndarray:
    """Points around `centers` fixed cluster centres (concepts x scripts x hands); queries are drawn
    from the same centres as the collection, as a query of a known word would be. The spread puts a point
    at cosine ~0.6 from its centre, about what renders of one word in different hands show."""
    c = np.random.default_rng(12345).normal(size=(centers, d)).astype(np.float32)
    v = c[rng.integers(0, centers, n)] + 0.8 * rng.normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def bench_index(n: int, d: int = 256, queries: int = 300, threads: int = 1) -> dict:
    import faiss

    faiss.omp_set_num_threads(threads)
    rng = np.random.default_rng(n)
    v = clustered(n, d, rng)
    q = clustered(queries, d, np.random.default_rng(1))
    ids = np.arange(n, dtype=np.int64)
    t = time.perf_counter()
    idx = VectorIndex.build(ids, v, d, IndexConfig())
    build_s = time.perf_counter() - t
    index_mb = len(faiss.serialize_index(idx.index)) / 2**20  # what the index holds (RSS deltas mislead)
    exact = VectorIndex(d)
    exact.add(ids, v)
    _, truth = exact.search(q, 10)
    lat = []
    got = []
    for row in q:
        t = time.perf_counter()
        _, i = idx.search(row[None], 10)
        lat.append(time.perf_counter() - t)
        got.append(i[0])
    return {"n": n, "kind": "ivf" if idx.approximate else "exact", "build_s": round(build_s, 1),
            "p50_ms": round(1000 * float(np.median(lat)), 3), "p95_ms": round(1000 * float(np.percentile(lat, 95)), 3),
            "recall@10": round(recall_at_k(np.array(got), truth, 10), 4), "index_mb": round(index_mb),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def bench_ingest(n: int, threads: int = 2) -> dict:
    import io

    import torch

    from xmr_core.data.lexicon import LANGS
    from xmr_core.data.render import SyntheticWords
    from xmr_core.search.engine import Engine

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        eng = Engine(tmp)
        for lang in LANGS:
            eng.anchors(lang)  # a running engine has its anchors cached: time the ingest, not the warm-up
        ds = SyntheticWords(eng.lexicon, "val", seed=3)
        imgs = []
        for i in range(n):
            buf = io.BytesIO()
            ds[i].image.save(buf, "PNG")
            imgs.append((f"i{i}.png", buf.getvalue()))
        t = time.perf_counter()
        for s in range(0, n, 256):
            eng.add("bench", imgs[s:s + 256])
        dt = time.perf_counter() - t
    return {"images": n, "seconds": round(dt, 2), "images_per_s": round(n / dt, 1)}


def run(sizes: list[int], ingest: int) -> dict:
    out = {"index": [], "ingest": []}
    for n in sizes:
        out["index"].append(bench_index(n))
    for threads in (1, 2) if ingest else ():
        out["ingest"].append({"threads": threads, **bench_ingest(ingest, threads)})
    return out


def table(res: dict) -> str:
    lines = ["| vectors | index | build s | p50 ms | p95 ms | recall@10 | index memory MB |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['n']:,} | {r['kind']} | {r['build_s']} | {r['p50_ms']} | {r['p95_ms']} | {r['recall@10']} | "
              f"{r['index_mb']} |" for r in res["index"]]
    if res["ingest"]:
        lines += ["", "| ingest threads | images | seconds | images/s |", "|---|---|---|---|"]
        lines += [f"| {r['threads']} | {r['images']} | {r['seconds']} | {r['images_per_s']} |" for r in res["ingest"]]
    return "\n".join(lines)


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(12, 3.4))
    n = [r["n"] for r in res["index"]]
    ax[0].plot(n, [r["p50_ms"] for r in res["index"]], "o-", label="p50")
    ax[0].plot(n, [r["p95_ms"] for r in res["index"]], "s--", label="p95")
    ax[0].set(xscale="log", xlabel="vectors in the collection", ylabel="search ms (1 thread)")
    ax[0].legend()
    ax[1].plot(n, [r["index_mb"] for r in res["index"]], "o-")
    ax[1].set(xscale="log", xlabel="vectors in the collection", ylabel="index memory (MB)")
    if res["ingest"]:
        ax[2].bar([str(r["threads"]) for r in res["ingest"]], [r["images_per_s"] for r in res["ingest"]])
    ax[2].set(xlabel="threads", ylabel="ingest images/s")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--ingest", type=int, default=500)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    res = run(args.sizes, args.ingest)
    print(table(res))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "scaling.json").write_text(json.dumps(res, indent=2))
        plot(res, args.out / "scaling.png")


if __name__ == "__main__":
    main()
