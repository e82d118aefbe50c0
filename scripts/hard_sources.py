"""Write a training config that draws the training sources a model reads worst more often.

    xmr eval --model M --split train-fonts --per-word 3 --json runs/x/train_fonts.json
    python scripts/hard_sources.py runs/x/train_fonts.json --extends continue_margin.json \
        --out configs/continue_hard.json

The weights come from the per-style Acc@1 of an evaluation on the *training* fonts
(`xmr_core.train.trainer.hard_source_weights`); an evaluation on the held-out fonts is refused, so the
held-out set stays out of every training decision.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xmr_core.train.trainer import hard_source_weights, read_config  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("eval_json", help="`xmr eval --split train-fonts --json` output")
    ap.add_argument("--extends", required=True, help="base config, relative to --out's folder")
    ap.add_argument("--out", required=True)
    ap.add_argument("--floor", type=float, default=0.5, help="weight of a source read without error")
    args = ap.parse_args(argv)
    report = json.loads(Path(args.eval_json).read_text(encoding="utf-8"))
    if "'train' fonts" not in report.get("source", ""):
        sys.exit(f"{args.eval_json}: from {report.get('source')!r}; weights must come from the training fonts "
                 f"(`xmr eval --split train-fonts`), never from held-out ones")
    out = Path(args.out)
    read_config(out.parent / args.extends)  # the base must resolve from where the new config will lie
    weights = hard_source_weights(report["within_by_style"], args.floor)
    cfg = {"extends": args.extends, "train": {"source_weights": weights}}
    out.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    top = sorted(weights.items(), key=lambda kv: -kv[1])[:5]
    print(f"wrote {out}: {len(weights)} sources, heaviest " + ", ".join(f"{k} {w:.2f}" for k, w in top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
