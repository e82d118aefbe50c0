"""Evaluate a trained run and package it as the bundled fast edge model (assets/models/edge).

    python scripts/build_edge_model.py runs/default/model [--notes "..."]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xmr_core.data.lexicon import LANGS  # noqa: E402
from xmr_core.data.paths import ASSETS  # noqa: E402
from xmr_core.evaluate.card import model_card  # noqa: E402
from xmr_core.evaluate.retrieval import (  # noqa: E402
    evaluate,
    format_eval,  # noqa: E402
    render_eval_set,
    torch_embedder,
)
from xmr_core.model.checkpoint import load_model_dir, model_config, save_model_dir  # noqa: E402
from xmr_core.model.fastpath import FILES, OnnxVisual, build_fast_paths, choose  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--out", default=str(ASSETS / "models" / "edge"))
    ap.add_argument("--notes", default="")
    args = ap.parse_args()
    model, lex, config = load_model_dir(args.model)
    data = render_eval_set(lex, model.cfg.preprocess, "val", per_word=2)
    embed = torch_embedder(model)
    a = embed(data.x)  # embedded once: for the metrics, and the reference for the fast paths' agreement check
    res = evaluate(model, lex, data, embed, vectors=a)
    print(format_eval(res))
    metrics = {"val": res}
    extra = {k: v for k, v in config.items() if k in ("train", "train_step", "train_seconds", "soup")}
    extra["visual_params"] = model.n_visual_params()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for f in FILES.values():  # never keep another model's ONNX files
        (out / f).unlink(missing_ok=True)

    # the fast paths: ONNX FP32 and INT8 (calibrated on train-font renders), judged on the same val set
    calib = render_eval_set(lex, model.cfg.preprocess, "train", concepts=256, seed=7).x[:256]
    onnx32, int8 = (OnnxVisual(p) for p in build_fast_paths(model, out, calib))
    anchors = {lg: model.encode_text(lex.words(lg)).detach().numpy() for lg in LANGS}
    fast = {"calibration_images": len(calib)}
    for name, enc in (("onnx-fp32", onnx32), ("int8", int8)):
        b = enc(data.x)
        metrics[f"val_{name}"] = evaluate(model, lex, data, enc, vectors=b)
        same = [(a[i] @ anchors[lg].T).argmax() == (b[i] @ anchors[lg].T).argmax() for i, lg in enumerate(data.langs)]
        fast[name] = {"min_cosine": float((a * b).sum(1).min()), "top1_identical": float(sum(same) / len(same))}
        print(name, format_eval(metrics[f"val_{name}"]), fast[name], sep="\n")
    fast["use"] = choose(res, metrics["val_onnx-fp32"], metrics["val_int8"])
    metrics["fast_path"] = fast
    print("fast path:", fast["use"] or "torch")
    card = model_card("edge", model_config(model, lex, extra), metrics, args.notes)
    save_model_dir(model, lex, out, metrics=metrics, card=card, extra=extra)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
