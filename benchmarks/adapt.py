"""Few-shot adaptation to a hand (issue 28): 20 labelled samples of one hand go through the real queue and
the real fine-tune job (a separate process, as the app starts it); that hand's Acc@1 on its other words
before and after, the held-out fonts (the other `val` fonts) before and after, the job's minutes, and
whether the promote guard lets the model through.

A hand is one `val` font family (its words rendered with its font only) or a pen simulation with its own
slant and tremor (a `val` stroke set, settings outside the training range).

    python benchmarks/adapt.py [--hands MissFajardose_400Regular.ttf pen:HersheyScript1 ...] [--labelled 20]
        [--words 150] [--steps 300] [--trunk-steps 60] [--trunk-always] [--pool 300 --pool-keep 0.5]
        [--model assets/models/reader]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from xmr_core.data.fonts import list_fonts  # noqa: E402
from xmr_core.data.paths import ASSETS  # noqa: E402
from xmr_core.data.preprocess import preprocess  # noqa: E402
from xmr_core.data.render import MissingGlyph, SyntheticWords  # noqa: E402
from xmr_core.data.render.style import sample_style  # noqa: E402
from xmr_core.data.render.word import render_word  # noqa: E402
from xmr_core.evaluate.retrieval import EvalSet, evaluate, render_eval_set  # noqa: E402
from xmr_core.model.checkpoint import load_engine_model  # noqa: E402
from xmr_core.model.reading import READING_PREPROCESS  # noqa: E402
from xmr_core.search.engine import Engine  # noqa: E402
from xmr_core.search.jobs import start_job  # noqa: E402
from xmr_core.store.database import Store  # noqa: E402
from xmr_core.store.registry import fonts_changed, promote  # noqa: E402

# the default hands: the five weakest `val` fonts of the reader model's card, three middling and strong
# ones, two Chinese ones, and a pen with its own slant and tremor
HANDS = ["MissFajardose_400Regular.ttf", "HerrVonMuellerhoff_400Regular.ttf", "kristi-latin-400-normal.woff2",
         "water-brush-latin-400-normal.woff2", "Vibur_400Regular.ttf", "Pacifico_400Regular.ttf",
         "GamjaFlower_400Regular.ttf", "ZhiMangXing_400Regular.ttf", "kiloji.ttf", "pen:HersheyScript1"]
PEN = {"slant": 0.35, "tremor": 0.02, "pen_width": 0.06}  # training draws slant within 0.3, tremor within 0.012


class Hand:
    """Renders of lexicon words in one hand."""

    def __init__(self, name: str, lexicon) -> None:
        self.name, self.lexicon = name, lexicon
        if name.startswith("pen:"):
            keys = [e.key for e in list_fonts("val", "latin", "strokes")]
            self.source = next(k for k in keys if name[4:] in k)
            self.langs = ("en", "es")
        else:
            fonts = {e.key: e for s in ("han", "latin") for e in list_fonts("val", s, "font")}
            if name not in fonts:
                raise SystemExit(f"{name}: not a val font; one of {sorted(fonts)}")
            self.langs = ("zh",) if fonts[name].script == "han" else ("en", "es")
            self.ds = SyntheticWords(lexicon, "val", langs=self.langs, kinds={"font": 1.0}, seed=5,
                                     source_weights={k: float(k == name) for k in fonts})

    def render(self, concept_id: str, lang: str, rng: np.random.Generator):
        if self.name.startswith("pen:"):
            style = dataclasses.replace(sample_style("pen", self.source, rng), **PEN)
            return render_word(self.lexicon.get(concept_id).word(lang), style, rng)
        return self.ds.sample(concept_id, lang, rng).image

    def words(self, concepts: list, seed: int, one_lang: bool) -> list[tuple[str, str, object]]:
        out = []
        for i, c in enumerate(concepts):
            for j, lang in enumerate([self.langs[i % len(self.langs)]] if one_lang else self.langs):
                try:
                    out.append((c.concept_id, lang, self.render(c.concept_id, lang, np.random.default_rng([seed, i, j]))))
                except MissingGlyph:
                    continue
        return out


def _png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _acc(model, lex, data: EvalSet) -> tuple[float, float]:
    r = evaluate(model, lex, data)
    return 100 * r["within_acc@1"], 100 * r["cross_acc@1"]


def run_hand(name: str, base: Path, lex, fonts_check: EvalSet, args) -> dict:
    hand = Hand(name, lex)
    rng = np.random.default_rng(args.seed)
    order = [lex.concepts[int(i)] for i in rng.permutation(len(lex))]
    labelled = hand.words(order[:args.labelled], 11, one_lang=True)
    tests = hand.words(order[args.labelled:args.labelled + args.words], 12, one_lang=False)
    test = EvalSet(np.stack([preprocess(im, READING_PREPROCESS) for _, _, im in tests]),
                   [c for c, _, _ in tests], [lg for _, lg, _ in tests], name)
    keep = [n for n, s in enumerate(fonts_check.styles) if s != name]
    others = EvalSet(fonts_check.x[keep], [fonts_check.concept_ids[n] for n in keep],
                     [fonts_check.langs[n] for n in keep], "other val fonts")
    pool = hand.words(order[args.labelled + args.words:args.labelled + args.words + args.pool], 13,
                      one_lang=False) if args.pool else []
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp)
        for cid, lang, img in labelled:  # the queue, as the Annotate page fills it
            sha, rel = store.put_image(_png(img))
            store.annotate(sha, str(rel), cid, lang, author="benchmark")
        extra = {}
        if pool:  # self-training: other words of the hand added unlabelled to a collection, as a user adds them
            Engine(tmp, model_dir=base).add("hand", [(f"pool-{n}", img) for n, (_, _, img) in enumerate(pool)])
            extra = {"self_train": "hand", "self_train_keep": args.pool_keep, "self_train_max": len(pool)}
        t0 = time.time()
        job = start_job(store, "finetune", {"base": str(base), "name": "hand",
                                            "config": {"steps": args.steps, "trunk_steps": args.trunk_steps,
                                                       "trunk_always": args.trunk_always, **extra}})
        while store.get_job(job)["status"] in ("queued", "running"):
            time.sleep(1)
        wall = (time.time() - t0) / 60
        done = store.get_job(job)
        if done["status"] != "done":
            raise SystemExit(f"{name}: the fine-tune job {done['status']}: {done['message']}")
        res = done["result"]
        model_dir = Path(res["model_dir"])
        precision = _pseudo_precision(model_dir.parent / "data" / "self_training.csv", pool)
        try:
            promote(store, res)
            guard = "promoted"
        except ValueError:
            guard = "held back"
        before_model, _, _ = load_engine_model(base, threads=2)
        after_model, _, _ = load_engine_model(model_dir, threads=2)
        row = {"hand": name, "labelled": len(labelled), "test_images": len(test.x),
               "hand_before": _acc(before_model, lex, test), "hand_after": _acc(after_model, lex, test),
               "fonts_before": _acc(before_model, lex, others), "fonts_after": _acc(after_model, lex, others),
               "job_minutes": round(wall, 2), "job_reported_minutes": res["minutes"], "trained": res["trained"], "guard": guard,
               "job_check": {k: round(100 * res[k]["val_fonts"]["within_acc@1"], 2) for k in ("before", "after")},
               "check_lost_gained": fonts_changed(res["before"]["val_fonts"].get("within_top1", ""),
                                                  res["after"]["val_fonts"].get("within_top1", "")),
               "seconds": _phases(model_dir), "pseudo": res.get("self_training", {}).get("kept", 0),
               "pseudo_precision": precision}
    return row


def _pseudo_precision(labels: Path, pool: list) -> float | None:
    """The share (%) of the job's self-training labels that name the concept the pool's word really is."""
    if not pool or not labels.exists():
        return None
    with open(labels, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    truth = {f"pool-{n}": c for n, (c, _, _) in enumerate(pool)}
    return 100 * float(np.mean([r["concept_id"] == truth[r["source"]] for r in rows])) if rows else None


def _phases(model_dir: Path) -> dict:
    """The job's seconds adapting the reader's trunk and the reading head (their records in config.json)."""
    cfg = json.loads((model_dir / "config.json").read_text())
    out = {"trunk": cfg["trunk_record"]["seconds"]} if "trunk_record" in cfg else {}
    if "adapt_record" in cfg:
        out["head"] = cfg["adapt_record"]["read_seconds"] + cfg["adapt_record"]["train_seconds"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hands", nargs="+", default=HANDS)
    ap.add_argument("--labelled", type=int, default=20)
    ap.add_argument("--words", type=int, default=150, help="other words of the hand tested (each in its scripts)")
    ap.add_argument("--steps", type=int, default=300, help="reading-head steps")
    ap.add_argument("--trunk-steps", type=int, default=60, help="reader-trunk steps (0: the head alone)")
    ap.add_argument("--trunk-always", action="store_true", help="adapt the reader even when the head alone passes")
    ap.add_argument("--pool", type=int, default=0,
                    help="self-training: other words of the hand added unlabelled to a collection the job learns from")
    ap.add_argument("--pool-keep", type=float, default=0.5, help="share of the pool the job keeps (widest reading margin)")
    ap.add_argument("--model", default=str(ASSETS / "models" / "reader"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    base = Path(args.model)
    _, lex, _ = load_engine_model(base)
    fonts_check = render_eval_set(lex, READING_PREPROCESS, "val", concepts=150, seed=31)
    rows = []
    print("| hand | test images | hand Acc@1 before | after | held-out fonts before | after | job minutes | trained | guard "
          "| self-training |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.hands:
        r = run_hand(name, base, lex, fonts_check, args)
        rows.append(r)
        print(f"| {name} | {r['test_images']} | {r['hand_before'][0]:.1f} | {r['hand_after'][0]:.1f} | "
              f"{r['fonts_before'][0]:.1f} | {r['fonts_after'][0]:.1f} | {r['job_minutes']:.1f} | {r['trained']} | "
              f"{r['guard']} | {r['pseudo']} ({r['pseudo_precision'] or 0:.0f}% right) |",
              flush=True)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
    gain = [r["hand_after"][0] - r["hand_before"][0] for r in rows]
    loss = [r["fonts_after"][0] - r["fonts_before"][0] for r in rows]
    print(f"\nmedian over {len(rows)} hands: hand {statistics.median(gain):+.1f} points (within-script Acc@1), "
          f"held-out fonts {statistics.median(loss):+.1f}, job {statistics.median(r['job_minutes'] for r in rows):.1f} "
          f"minutes; cross-script: hand {statistics.median(r['hand_after'][1] - r['hand_before'][1] for r in rows):+.1f}")


if __name__ == "__main__":
    main()
