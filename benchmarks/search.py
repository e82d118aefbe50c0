"""Search latency and recall at 10k, 100k and 1M vectors, and ingest throughput (prints numbers).

Vectors are synthetic (clustered, L2-normalised, 256-d as the default model) for the index part; the
ingest part adds real rendered images through the engine with the bundled model.

    python benchmarks/search.py [--sizes 10000 100000 1000000] [--ingest 500]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time

import numpy as np

from xmr_core.index import IndexConfig, VectorIndex, recall_at_k


def clustered(n: int, d: int, rng: np.random.Generator, centers: int = 3000) -> np.ndarray:
    c = rng.normal(size=(centers, d)).astype(np.float32)
    v = c[rng.integers(0, centers, n)] + 0.35 * rng.normal(size=(n, d)).astype(np.float32)
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
            "recall@10": round(recall_at_k(np.array(got), truth, 10), 4),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def bench_ingest(n: int, threads: int = 2) -> dict:
    import io

    import torch

    from xmr_core.engine import Engine
    from xmr_core.lexicon import LANGS
    from xmr_core.render import SyntheticWords

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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--ingest", type=int, default=500)
    args = ap.parse_args()
    print("| vectors | index | build s | p50 ms | p95 ms | recall@10 | peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for n in args.sizes:
        r = bench_index(n)
        print(f"| {r['n']:,} | {r['kind']} | {r['build_s']} | {r['p50_ms']} | {r['p95_ms']} | {r['recall@10']} | {r['peak_rss_mb']} |", flush=True)
    if args.ingest:
        r = bench_ingest(args.ingest)
        print(f"\ningest: {r['images']} images in {r['seconds']} s = {r['images_per_s']} images/s (2 threads)")


if __name__ == "__main__":
    main()
