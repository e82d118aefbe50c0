"""Relevance feedback (issue 28): does marking a search's hits right or wrong find more of what the user
wants? A collection of unlabelled `val`-font renders (each concept three times in each script); for each
query (a typed English word, or another render of the word) a simulated user marks the top 10 right (same
concept) or wrong, and the search runs again with that feedback (engine.search(feedback=...), Rocchio).
Residual measure, the usual one for feedback: how many right items are among the first 10 not yet seen,
before (ranks 11-20 of the first search) and after (the first 10 unmarked of the second).

A simulated user (long-term preference, users.py): 50 queries written in one hand (by default a hard
`val` font), for each of which the user marks the right hit in the top 10 (the first of the query's
concept) right; then 50 more renders of the same words in the same hand, and 50 of other words, with
Acc@1 (the first hit is the query's concept) for a user without marks (before) and for that user (after).

    python benchmarks/feedback.py [--concepts 150] [--queries 50] [--weights 0.75,0.25 0.5,0.15 0,0]
        [--hand HerrVonMuellerhoff_400Regular.ttf] [--skip-residual] [--finetune]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import xmr_core.search.ranking as ranking_module  # noqa: E402
from xmr_core.search.demo import demo_concepts, render_val_words  # noqa: E402
from xmr_core.search.engine import Engine  # noqa: E402
from xmr_core.store import users  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concepts", type=int, default=150)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--weights", nargs="+", default=["0.75,0.25", "0.5,0.15", "1.0,0.5", "0,0"])
    ap.add_argument("--model", default=None)
    ap.add_argument("--hand", default="HerrVonMuellerhoff_400Regular.ttf", help="the simulated user's hand")
    ap.add_argument("--skip-residual", action="store_true", help="only the simulated user")
    ap.add_argument("--finetune", action="store_true",
                    help="then queue the marked queries, fine-tune, promote and search again")
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
        simulated_user(eng, concept_of, concepts, args.hand, args.queries, args.finetune)
        if args.skip_residual:
            return
        print("| queries | Rocchio (right, wrong) | right in the next 10, before | after | Acc@1 of the unseen, before | after |")
        print("|---|---|---|---|---|---|")
        for weights in args.weights:
            ranking_module.ROCCHIO_RIGHT, ranking_module.ROCCHIO_WRONG = (float(w) for w in weights.split(","))
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


def simulated_user(eng: Engine, concept_of: dict[int, str], concepts: list, hand_name: str, n: int,
                   finetune: bool = False) -> None:
    """The simulated user's 50 marked queries, then 50 repeats and 50 new words: Acc@1 before and after.
    With `finetune`, the user then adds each marked query to the fine-tune queue (Search's "Add your query"),
    runs the default fine-tune job and promotes it (with the override when the guard holds it back), and the
    next queries are searched again: with the queue as the user's exemplars, then with the new model."""
    from adapt import Hand  # benchmarks/adapt.py: renders in one hand

    hand = Hand(hand_name, eng.lexicon)
    rng = np.random.default_rng(1)
    order = [concepts[int(i)] for i in rng.permutation(len(concepts))]
    first = [(c, lg, im) for c, lg, im in hand.words(order[:n], 21, one_lang=True)]
    repeat = hand.words(order[:n], 22, one_lang=True)
    fresh = hand.words(order[n:2 * n], 23, one_lang=True)
    marked = []
    for cid, lang, img in first:
        hits, info, sid, key = users.search_as(eng, "simulated", {"image": _png(img)}, k=10)
        right = next((h for h in hits if concept_of.get(h.item_id) == cid), None)
        if right is not None:
            users.mark(eng.store, "simulated", sid, right.item_id, True, cid, right.lang, key, eng.look(info))
            marked.append((cid, lang, img))
    print(f"\nsimulated user ({hand_name}): {len(first)} queries, the right hit marked in {len(marked)}")
    print("| next queries | marks reach a query | Acc@1 without marks | with the user's marks |")
    print("|---|---|---|---|")
    kept = users.SIMILAR_QUERY
    for what, qs in (("the same words again", repeat), ("other words", fresh)):
        for near in (2.0, 0.9, 0.8, 0.75, 0.7) if not finetune else (kept,):  # 2: by the query's key only
            users.SIMILAR_QUERY = near
            acc = {who: _acc1(eng, who, qs, concept_of) for who in ("nobody", "simulated")}
            reach = "same key" if near > 1 else f"same key, or cosine >= {near}" + (" (kept)" if near == kept else "")
            print(f"| {what} ({len(qs)}) | {reach} | {acc['nobody']:.1f} | {acc['simulated']:.1f} |", flush=True)
    users.SIMILAR_QUERY = kept
    if not finetune:
        return
    from xmr_core.search.annotate import query_script, save_annotation
    from xmr_core.search.jobs import promote_job, start_job

    nexts = (("the same words again", repeat), ("other words", fresh))
    rows = {what: [_acc1(eng, "simulated", qs, concept_of)] for what, qs in nexts}
    scripts = []
    for cid, _, img in marked:  # the user confirms each query's concept: that of the hit they marked right
        scripts.append(query_script(eng, _png(img), cid))
        save_annotation(eng, _png(img), cid, scripts[-1], author="simulated")
    right = sum(given == lang for given, (_, lang, _) in zip(scripts, marked))
    print(f"\n{len(marked)} queries queued (their script right for {right})")
    print("| next queries | marks | + queries queued (exemplars) | + fine-tuned and promoted |")
    print("|---|---|---|---|")
    for what, qs in nexts:
        rows[what].append(_acc1(eng, "simulated", qs, concept_of))
    t0 = time.time()
    job = start_job(eng.store, "finetune", {"base": str(eng.model_dir), "name": "simulated", "config": {}})
    _wait(eng, job)
    res = eng.store.get_job(job)["result"]
    try:
        _, reindex = promote_job(eng.store, job)
        guard = "promoted"
    except ValueError:
        _, reindex = promote_job(eng.store, job, override=True)
        guard = "held back by the guard; promoted with the override"
    _wait(eng, reindex)
    print(f"job: {res['trained']} on {res['n_train']} samples, {res['minutes']:.1f} min; {guard}; "
          f"with re-indexing {(time.time() - t0) / 60:.1f} min")
    tuned = Engine(eng.store.root)
    for what, qs in nexts:
        after = _acc1(tuned, "simulated", qs, concept_of)
        print(f"| {what} ({len(qs)}) | {rows[what][0]:.1f} | {rows[what][1]:.1f} | {after:.1f} |", flush=True)


def _acc1(eng: Engine, who: str, qs: list, concept_of: dict[int, str]) -> float:
    """Acc@1 of image queries searched by `who` (with their marks and queued samples)."""
    top = [users.search_as(eng, who, {"image": _png(img)}, k=1, record=False)[0] for _, _, img in qs]
    return 100 * float(np.mean([bool(t) and concept_of.get(t[0].item_id) == cid for t, (cid, _, _) in zip(top, qs)]))


def _wait(eng: Engine, job: int) -> None:
    while eng.store.get_job(job)["status"] in ("queued", "running"):
        time.sleep(1)
    done = eng.store.get_job(job)
    if done["status"] != "done":
        raise SystemExit(f"job {job} {done['status']}: {done['message']}")


def _png(img) -> bytes:
    import io

    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


if __name__ == "__main__":
    main()
