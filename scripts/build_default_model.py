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
from xmr_core.evaluate import embed_images, evaluate, render_eval_set  # noqa: E402
from xmr_core.fastpath import INT8_FILE, OnnxVisual, build_int8, qualifies  # noqa: E402
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
    (Path(args.out) / INT8_FILE).unlink(missing_ok=True)  # never keep another model's INT8 file
    out = save_model_dir(model, lex, args.out, metrics=metrics, extra=extra)

    # the INT8 fast path: calibrated on train-font renders, judged on the same val set
    calib = render_eval_set(lex, model.cfg.preprocess, "train", concepts=256, seed=7).x[:256]
    int8 = OnnxVisual(build_int8(model, out, calib))
    res8 = evaluate(model, lex, data, embed=int8)
    a, b = embed_images(model, data.x), int8(data.x)
    anchors = {lg: model.encode_text(lex.words(lg)).detach().numpy() for lg in ("zh", "en", "es")}
    same = [((a[i] @ anchors[lg].T).argmax() == (b[i] @ anchors[lg].T).argmax()) for i, lg in enumerate(data.langs)]
    metrics["val_int8"] = res8
    metrics["fast_path"] = {"use": qualifies(res, res8), "min_cosine": float((a * b).sum(1).min()),
                            "top1_identical": float(sum(same) / len(same)), "calibration_images": len(calib)}
    print("INT8:", format_eval(res8), metrics["fast_path"], sep="\n")
    out = save_model_dir(model, lex, args.out, metrics=metrics, extra=extra)
    full = json.loads((out / "config.json").read_text())
    (out / "README.md").write_text(model_card("default", full, metrics, args.notes), encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
