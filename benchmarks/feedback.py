"""Relevance feedback (issue 28): does marking a search's hits right or wrong find more of what the user
wants? A collection of unlabelled `val`-font renders (each concept three times in each script); for each
query (a typed English word, or another render of the word) a simulated user marks the top 10 right (same
concept) or wrong, and the search runs again with that feedback (engine.search(feedback=...), Rocchio).
Residual measure, the usual one for feedback: how many right items are among the first 10 not yet seen,
before (ranks 11-20 of the first search) and after (the first 10 unmarked of the second).

    python benchmarks/feedback.py [--concepts 150] [--queries 50] [--weights 0.75,0.25 0.5,0.15 0,0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import xmr_core.engine as engine_module  # noqa: E402
from xmr_core.demo import demo_concepts, render_val_words  # noqa: E402
from xmr_core.engine import Engine  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concepts", type=int, default=150)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--weights", nargs="+", default=["0.75,0.25", "0.5,0.15", "1.0,0.5", "0,0"])
    ap.add_argument("--model", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        eng = Engine(Path(tmp), model_dir=args.model)
        concepts = demo_concepts(eng.lexicon, args.concepts)
        truth: dict[str, str] = {}
        t = time.perf_counter()
        for seed in (7, 8, 9):
            images, labels = render_val_words(eng.lexicon, None, seed, concepts=concepts)
            images = [(f"{seed}:{name}", png) for name, png in images]
            truth.update({name: lab[0] for (name, _), lab in zip(images, labels)})
            eng.add("archive", images)
        concept_of = {it.id: truth[it.source] for it in eng.store.list_items("archive", limit=100_000)}
        print(f"{len(concept_of)} unlabelled items of {len(concepts)} concepts added in {time.perf_counter() - t:.0f} s")
        rng = np.random.default_rng(0)
        picked = [concepts[int(i)] for i in rng.choice(len(concepts), args.queries, replace=False)]
        queries = {"typed": [(c.concept_id, {"text": c.en}) for c in picked]}
        images, labels = render_val_words(eng.lexicon, None, 11, concepts=picked)
        queries["image"] = [(lab[0], {"image": png}) for (_, png), lab in zip(images, labels)][::3][:args.queries]
        print("| queries | Rocchio (right, wrong) | right in the next 10, before | after | Acc@1 of the unseen, before | after |")
        print("|---|---|---|---|---|---|")
        for weights in args.weights:
            engine_module.ROCCHIO_RIGHT, engine_module.ROCCHIO_WRONG = (float(w) for w in weights.split(","))
            for kind, qs in queries.items():
                before, after, first_b, first_a = [], [], [], []
                for cid, q in qs:
                    hits, _ = eng.search(k=20, **q)
                    ids = [h.item_id for h in hits]
                    marks = {i: concept_of.get(i) == cid for i in ids[:10]}
                    before.append(sum(concept_of.get(i) == cid for i in ids[10:20]))
                    first_b.append(len(ids) > 10 and concept_of.get(ids[10]) == cid)
                    again, _ = eng.search(k=20, feedback=marks, **q)
                    unseen = [h.item_id for h in again if h.item_id not in marks][:10]
                    after.append(sum(concept_of.get(i) == cid for i in unseen))
                    first_a.append(bool(unseen) and concept_of.get(unseen[0]) == cid)
                print(f"| {kind} ({len(qs)}) | {weights} | {np.mean(before):.2f} | {np.mean(after):.2f} | "
                      f"{100 * np.mean(first_b):.0f}% | {100 * np.mean(first_a):.0f}% |", flush=True)


if __name__ == "__main__":
    main()
