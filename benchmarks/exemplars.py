"""A user's labelled samples as exemplars at query time (issue 28, xmr_core/search/exemplars.py): for each
hand of benchmarks/adapt.py, a user labels 20 samples of that hand through the real annotation queue; then
recognition Acc@1 (the engine's top concept over the three scripts) through the Engine, without and with
that user's exemplars, on new renders of those 20 words (repeats: where exemplars should help) and on 150
other words of the hand (where they must cost nothing). No fine-tune: the model is the shipped one.

    python benchmarks/exemplars.py [--hands ...] [--near 0.75 0.7] [--beta 1.0 0.5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from adapt import HANDS, Hand, _png  # noqa: E402

from xmr_core.search import exemplars  # noqa: E402
from xmr_core.search.annotate import save_annotation  # noqa: E402
from xmr_core.search.engine import Engine  # noqa: E402
from xmr_core.store.registry import READING_MODEL  # noqa: E402


def top_concept(rec: dict) -> str:
    return max((lst[0] for lst in rec.values()), key=lambda e: e[2])[0]


def run_hand(name: str, args, settings: list[tuple[float, float]]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        eng = Engine(tmp, model_dir=Path(args.model))
        lex = eng.lexicon
        hand = Hand(name, lex)
        order = [lex.concepts[int(i)] for i in np.random.default_rng(args.seed).permutation(len(lex))]
        for cid, lang, img in hand.words(order[:args.labelled], 11, one_lang=True):  # as the Annotate page
            save_annotation(eng, _png(img), cid, lang, author="user")
        ex = eng.exemplars_of("user")
        sets = {"repeats": hand.words(order[:args.labelled], 13, one_lang=True),
                "others": hand.words(order[args.labelled:args.labelled + args.words], 12, one_lang=False)}
        row = {"hand": name, "exemplars": len(ex)}
        for part, items in sets.items():
            pngs = [(cid, _png(img)) for cid, _, img in items]
            row[part] = {"n": len(pngs), "base": 100 * np.mean([top_concept(eng.recognize(p, 1)) == c for c, p in pngs])}
            for near, beta in settings:
                exemplars.EXEMPLAR_NEAR, exemplars.EXEMPLAR_BETA = near, beta
                ok = [top_concept(eng.recognize(p, 1, exemplars=ex)) == c for c, p in pngs]
                row[part][f"{near}/{beta}"] = 100 * float(np.mean(ok))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hands", nargs="+", default=HANDS)
    ap.add_argument("--labelled", type=int, default=20)
    ap.add_argument("--words", type=int, default=150)
    ap.add_argument("--near", type=float, nargs="+", default=[exemplars.EXEMPLAR_NEAR])
    ap.add_argument("--beta", type=float, nargs="+", default=[exemplars.EXEMPLAR_BETA])
    ap.add_argument("--model", default=str(READING_MODEL))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    settings = [(n, b) for n in args.near for b in args.beta]
    names = [f"{n}/{b}" for n, b in settings]
    print("near/beta: the look cosine a sample must reach, and the query's own weight (exemplars.py)\n")
    print("| hand | repeats | base | " + " | ".join(names) + " | others | base | " + " | ".join(names) + " |")
    print("|---|" + "---|" * (2 * len(names) + 4))
    rows = []
    for name in args.hands:
        r = run_hand(name, args, settings)
        rows.append(r)
        cells = [f"{r[p]['n']} | {r[p]['base']:.1f} | " + " | ".join(f"{r[p][k]:.1f}" for k in names)
                 for p in ("repeats", "others")]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
    for k in names:
        gain = {p: statistics.median(r[p][k] - r[p]["base"] for r in rows) for p in ("repeats", "others")}
        worst = min(r["others"][k] - r["others"]["base"] for r in rows)
        print(f"\n{k}: median over {len(rows)} hands: repeats {gain['repeats']:+.1f}, others {gain['others']:+.1f} "
              f"(worst hand {worst:+.1f})")


if __name__ == "__main__":
    main()
