"""Does attention fusion of labelled items help retrieval? (prints a table)

A labelled collection of held-out-font renders (one per concept and script), queried by other renders
of the held-out fonts (unlabelled, a different seed) and by typed words; the same store is indexed
without fusion and with fusion at several betas. A hit is right when its concept is the query's.

    python benchmarks/fusion.py [--concepts 300]
"""

from __future__ import annotations

import argparse
import tempfile
from collections import Counter

import numpy as np
import torch

from xmr_core.data.lexicon import LANGS
from xmr_core.search.demo import build_demo, render_val_words
from xmr_core.search.engine import Engine
from xmr_core.search.fusion import FusionConfig


def queries(engine: Engine, n: int, seed: int = 11) -> list[tuple[bytes, str, str]]:
    """Other renders of the held-out fonts (another seed): (PNG bytes, concept, language)."""
    images, labels = render_val_words(engine.lexicon, n, seed, concepts=engine.lexicon.concepts[:n])
    return [(raw, concept, lang) for (_, raw), (concept, lang) in zip(images, labels)]


def score(engine: Engine, qs: list, n: int) -> dict:
    per_concept = Counter(engine.store.labels().values())  # relevant items per concept
    img_top1, img_ap, cross_top1 = [], [], []
    for raw, concept, lang in qs:
        hits, _ = engine.search(image=raw, k=10)
        rel = [h.concept_id == concept for h in hits]
        img_top1.append(rel[0])
        hits_so_far = np.cumsum(rel)
        img_ap.append(sum(hits_so_far[i] / (i + 1) for i in range(len(rel)) if rel[i]) / per_concept[concept])
        other = [lg for lg in LANGS if lg != lang]
        hits, _ = engine.search(image=raw, k=1, languages=other)
        cross_top1.append(bool(hits) and hits[0].concept_id == concept)
    text_top1 = []
    for c in engine.lexicon.concepts[:n]:
        for lang in LANGS:
            hits, _ = engine.search(text=c.word(lang), k=1)
            text_top1.append(bool(hits) and hits[0].concept_id == c.concept_id)
    return {"image Acc@1": 100 * np.mean(img_top1), "image AP@10": np.mean(img_ap),
            "image->other scripts Acc@1": 100 * np.mean(cross_top1), "text Acc@1": 100 * np.mean(text_top1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--concepts", type=int, default=300)
    args = ap.parse_args()
    torch.set_num_threads(1)
    settings = [("off", None)] + [(f"beta {b}", FusionConfig(beta=b)) for b in (2.0, 1.0, 0.5, 0.25)]
    with tempfile.TemporaryDirectory() as tmp:
        eng = Engine(tmp, fusion=None)
        build_demo(eng, args.concepts)
        qs = queries(eng, args.concepts)
        print(f"{eng.store.count_items()} labelled items, {len(qs)} image queries, "
              f"{3 * args.concepts} text queries; model {eng.model_id}\n")
        rows = []
        for name, fusion in settings:
            e = Engine(tmp, fusion=fusion)
            rows.append((name, score(e, qs, args.concepts)))
    keys = list(rows[0][1])
    print("| fusion | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for name, r in rows:
        print(f"| {name} | " + " | ".join(f"{r[k]:.3f}" if "AP" in k else f"{r[k]:.1f}" for k in keys) + " |")


if __name__ == "__main__":
    main()
