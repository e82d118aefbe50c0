"""Ablation of losses and backbones; writes docs/results.md. Shorter runs than the default model's:
the first N concepts of the lexicon, S steps each, same seed and data for every variant.

    python scripts/ablation.py [--concepts 200] [--steps 800] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xmr_core.data.lexicon import Lexicon, load_lexicon  # noqa: E402
from xmr_core.evaluate.retrieval import evaluate, render_eval_set  # noqa: E402
from xmr_core.model.checkpoint import load_model_dir  # noqa: E402
from xmr_core.model.config import ModelConfig  # noqa: E402
from xmr_core.train.trainer import TrainConfig, read_config, train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = [
    ("ITC only", {"itc": 1.0, "inv": 0.0, "one_to_k": 0.0}, {}),
    ("ITC + INV", {"itc": 1.0, "inv": 0.5, "one_to_k": 0.0}, {}),
    ("ITC + INV + 1-to-K", {"itc": 1.0, "inv": 0.5, "one_to_k": 1.0}, {}),
    ("ITC + INV + 1-to-K, tiny Swin", {"itc": 1.0, "inv": 0.5, "one_to_k": 1.0}, {"backbone": "swin_tiny_xmr"}),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--concepts", type=int, default=200)
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run")
    ap.add_argument("--out", default=str(ROOT / "runs" / "ablation"))
    args = ap.parse_args()
    base = read_config(ROOT / "configs" / "default.json")
    lex = Lexicon(load_lexicon().concepts[: args.concepts])
    rows = []
    for name, losses, vision in VARIANTS:
        mcfg = ModelConfig.from_dict({**base["model"], "vision": {**base["model"]["vision"], **vision}})
        tcfg = TrainConfig.from_dict({**base["train"], **losses, "steps": args.steps, "warmup": args.steps // 10,
                                      "eval_concepts": 0, "ckpt_every": args.steps,
                                      "threads": args.threads})
        out = Path(args.out) / name.replace(" ", "_").replace("+", "").replace(",", "")
        t = time.time()
        model_dir = train(mcfg, tcfg, out, lex)
        minutes = (time.time() - t) / 60
        model, mlex, _ = load_model_dir(model_dir)
        res = evaluate(model, mlex, render_eval_set(mlex, mcfg.preprocess, "val"))
        rows.append((name, mcfg.vision.backbone, res, minutes))
        print(f"{name}: within {100 * res['within_acc@1']:.1f} cross {100 * res['cross_acc@1']:.1f} "
              f"R/D {res['rd_ratio']['all']:.3f} ({minutes:.0f} min)", flush=True)
    lines = ["# Ablation", "",
             f"Short runs: the first {args.concepts} concepts of the lexicon (candidates: those {args.concepts} words "
             f"per language), {args.steps} steps of {base['train']['concepts_per_batch']} concepts x 3 languages, "
             "seed 0, on this 2-core CPU. Evaluation: one render per word and language with the held-out `val` "
             f"fonts. Reproduce with `python scripts/ablation.py --concepts {args.concepts} --steps {args.steps}`.", "",
             "| variant | backbone | within-language Acc@1 | cross-lingual Acc@1 | R/D | minutes |",
             "|---|---|---|---|---|---|"]
    for name, bb, res, minutes in rows:
        lines.append(f"| {name} | {bb} | {100 * res['within_acc@1']:.2f} | {100 * res['cross_acc@1']:.2f} | "
                     f"{res['rd_ratio']['all']:.3f} | {minutes:.0f} |")
    bundled = ROOT / "assets" / "models" / "default"
    ref = json.loads((bundled / "metrics.json").read_text()).get("val")
    if ref:  # for scale: the bundled model, trained far longer on the whole lexicon
        cfg = json.loads((bundled / "config.json").read_text())
        margin = cfg.get("train", {}).get("margin")
        head = " with the column head" if cfg["model"]["vision"].get("columns") else ""
        lines += ["", "For scale, the bundled default model (ITC + INV + 1-to-K"
                  + (f" with an additive margin of {margin} in its last run" if margin else "")
                  + f", {cfg['model']['vision']['backbone']}{head}, "
                  f"trained far longer, evaluated against all {ref['n_candidates']} words per language): within "
                  f"{100 * ref['within_acc@1']:.2f}, cross {100 * ref['cross_acc@1']:.2f}, R/D {ref['rd_ratio']['all']:.3f}. "
                  "Runs this short are dominated by noise: read differences of a point or two as none."]
    (ROOT / "docs" / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("wrote docs/results.md")


if __name__ == "__main__":
    main()
