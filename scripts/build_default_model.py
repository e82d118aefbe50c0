"""Evaluate a trained run and package it as the bundled default model (assets/models/default).

    python scripts/build_default_model.py runs/default/model [--notes "..."]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xmr_core.card import model_card  # noqa: E402
from xmr_core.checkpoint import load_model_dir, save_model_dir  # noqa: E402
from xmr_core.cli import format_eval  # noqa: E402
from xmr_core.evaluate import evaluate, render_eval_set  # noqa: E402
from xmr_core.paths import ASSETS  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--out", default=str(ASSETS / "models" / "default"))
    ap.add_argument("--notes", default="")
    args = ap.parse_args()
    model, lex, config = load_model_dir(args.model)
    data = render_eval_set(lex, model.cfg.preprocess, "val", per_word=2)
    res = evaluate(model, lex, data)
    print(format_eval(res))
    metrics = {"val": res}
    extra = {k: v for k, v in config.items() if k in ("train", "train_step", "train_seconds")}
    extra["visual_params"] = model.n_visual_params()
    out = save_model_dir(model, lex, args.out, metrics=metrics, extra=extra)
    full = json.loads((out / "config.json").read_text())
    (out / "README.md").write_text(model_card("default", full, metrics, args.notes), encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
