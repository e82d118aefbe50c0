"""Package the reading model (assets/models/reader): the pretrained reader as the visual tower's trunk,
the bundled model's text tower for the anchors and its visual encoder as the second, weighted signal,
and (with --head CONFIG) the reading head trained on the reader's cached features of `train` renders
(model/reading_head.py). The temperature and the visual weight were chosen on `val` (docs/reader.md).

    python scripts/build_reading_model.py [--base assets/models/edge] [--temperature 2] [--visual-weight 0.6]
        [--visual-below 0.99] [--head configs/reading_head.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from xmr_core.data.lexicon import LANGS  # noqa: E402
from xmr_core.data.paths import ASSETS, cache_dir  # noqa: E402
from xmr_core.data.preprocess import preprocess  # noqa: E402
from xmr_core.data.render import MissingGlyph, SyntheticWords  # noqa: E402
from xmr_core.evaluate.retrieval import (  # noqa: E402
    evaluate_signals,
    format_eval,  # noqa: E402
    render_eval_set,
)
from xmr_core.model.checkpoint import load_model_dir, save_model_dir  # noqa: E402
from xmr_core.model.fastpath import OnnxVisual  # noqa: E402
from xmr_core.model.reading import READING_PREPROCESS, ReadingConfig, ReadingModel, _ink_columns, reader_record  # noqa: E402
from xmr_core.model.reading_head import (  # noqa: E402
    HEAD_FILE,
    Example,
    HeadConfig,
    ReadingHead,
    fit_head,
    head_symbols,
    load_head_config,
)

CARD = """# XMR model: reader

The visual tower stands on a frozen pretrained reader; {trained}.

## Architecture
- Trunk: PP-OCRv6 text recognition (`{file}` in the `{package}` {version} wheel, Apache-2.0, 5.27M
  parameters, sha256 `{sha}`), run by onnxruntime at the word's own width (ink 40 px high, at most 320 px wide).
- Reading: every lexicon word (1,133 concepts in zh, en, es; Latin words also in Title and UPPER case) scored by
  its exact CTC likelihood under the reader's posteriors; words using a symbol the reader never gives 1e-3 are
  skipped. The reading embedding is the concepts' anchors (mean of their zh, en, es text anchors) weighted by a
  softmax of the best word's log-likelihood at temperature {temperature}.
{head}- Second signal: the bundled `edge` model's visual encoder (MobileNetV3-Small, 1.9M parameters, trained on
  font renders; its ONNX FP32 graph, `visual.onnx`) on the same ink; the image embedding is {rw:.2f} x reading +
  {visual_weight:.2f} x that encoder's,
  normalised; it is run only when the reading is unsure (its best concept's posterior at temperature 1 below
  {visual_below}), a surer image's embedding being its reading's. Text tower: the `edge` model's (USE-m3 with its
  trained top and projection).
- Temperature and weight chosen on `val` (one render per word): reading alone 96.15 / 96.13, the encoder alone
  92.35 / 92.44, fused at temperature 2 and weight 0.6 97.32 / 97.40 (within / cross); the encoder skipped where
  the reading is sure (93% of `val` renders) cost 0.06 / 0.04 points on the same set; docs/reader.md.

## Evaluation on held-out fonts (`val`, whole lexicon as candidates)
{evals}
"""


HEAD_LINE = """- Reading head (`reading_head.safetensors`, the one part trained for this model): a change of the
  reader's CTC layer on the rows of the lexicon's symbols and the blank, trained with the CTC loss on {renders}
  renders of the `train` fonts ({per_word} per word and language, {n_seeds} seeds, Latin words in lower, Title and
  UPPER case; rendering them and caching the reader's features took {features_seconds} s), {steps} steps at lr {lr},
  L2 {l2} towards the
  reader's own layer, {train_seconds} s on one CPU thread (`configs/reading_head.json`).
"""


def train_head(model: ReadingModel, lex, cfg: dict) -> tuple[ReadingHead, dict]:
    """The reading head on renders of the `train` fonts: the reader's features cached under the cache
    folder (keyed by the data settings, the reader and the lexicon), then the head fitted on them."""
    hcfg = HeadConfig.from_dict(cfg["head"])
    data = {k: cfg[k] for k in ("per_word", "seeds", "cases")}
    key = hashlib.sha256(json.dumps([data, model.reader.sha256, lex.hash()], sort_keys=True).encode()).hexdigest()
    path = cache_dir() / "reading_head" / f"features-{key[:16]}.npz"
    t0 = time.time()
    if path.exists():
        z = np.load(path, allow_pickle=False)
        feats = np.split(z["features"], np.cumsum(z["steps"])[:-1])
        labels = np.split(z["labels"], np.cumsum(z["lengths"])[:-1])
        made_in = float(z["seconds"]) if "seconds" in z else float("nan")
        print(f"reading head: {len(feats)} cached feature sequences from {path}", flush=True)
    else:
        feats, labels = [], []
        for seed in data["seeds"]:
            ds = SyntheticWords(lex, "train", seed=seed, cases=data["cases"])
            for i, c in enumerate(lex.concepts):
                xs, texts = [], []
                for j, lang in enumerate(LANGS):
                    rng = np.random.default_rng([seed, i, j])
                    for _ in range(data["per_word"]):
                        try:
                            s = ds.sample(c.concept_id, lang, rng)
                        except MissingGlyph:
                            continue
                        xs.append(preprocess(s.image, READING_PREPROCESS))
                        texts.append(s.text)
                for f, t in zip(model.reader.features([_ink_columns(x[0]) for x in xs]), texts):
                    ids = [model.reader.index.get(ch) for ch in t]
                    if t and None not in ids:
                        feats.append(f.astype(np.float16))
                        labels.append(np.array(ids, np.int64))
                if i % 100 == 0:
                    print(f"reading head: seed {seed}, concept {i}/{len(lex)}, {len(feats)} renders, "
                          f"{time.time() - t0:.0f} s", flush=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        made_in = time.time() - t0
        np.savez(path, features=np.concatenate(feats), steps=[len(f) for f in feats],
                 labels=np.concatenate(labels), lengths=[len(t) for t in labels], seconds=made_in)
    t1 = time.time()
    w, b = model.reader.ctc_layer()
    say = lambda step, total, sec: print(f"reading head: step {step}/{total}, {sec:.0f} s", flush=True)  # noqa: E731
    head, losses = fit_head([Example(f, t.tolist()) for f, t in zip(feats, labels)], w, b,
                            head_symbols(model.table), hcfg, progress=say)
    return head, {"renders": len(feats), "losses_every_50_steps": [round(x, 4) for x in losses],
                  "features_seconds": round(made_in, 1), "train_seconds": round(time.time() - t1, 1)}


def evaluate_on_val(model: ReadingModel, lex) -> tuple[dict, list[str]]:
    """The model card's evaluation: the `val` fonts at two seeds, whole lexicon; metrics and markdown."""
    metrics, evals = {}, []
    for name, seed, per_word in (("val", 2024, 2), ("val_seed7", 7, 1)):
        t = time.time()
        data = render_eval_set(lex, READING_PREPROCESS, "val", per_word=per_word, seed=seed)
        res = evaluate_signals(model, lex, data)
        res["seconds"] = round(time.time() - t, 1)
        metrics[name] = res
        evals.append(f"### {name}: {res['n_images']} renders (seed {seed}, {per_word} per word)\n\n```\n"
                     f"{format_eval(res)}\n```\n")
        print(name, format_eval(res), sep="\n", flush=True)
    return metrics, evals


EVAL_HEADING = "## Evaluation on held-out fonts"
EVAL_SECTION = EVAL_HEADING + " (`val`, whole lexicon as candidates)\n"


def with_evaluation(card: str, evals: list[str]) -> str:
    """A model card with its evaluation section (everything from its heading on) replaced by `evals`."""
    return card.split(EVAL_HEADING)[0] + EVAL_SECTION + "\n".join(evals)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default=str(ASSETS / "models" / "edge"))
    ap.add_argument("--out", default=str(ASSETS / "models" / "reader"))
    ap.add_argument("--temperature", type=float, default=2.0)
    ap.add_argument("--visual-weight", type=float, default=0.6)
    ap.add_argument("--visual-below", type=float, default=0.99)
    ap.add_argument("--head", type=Path, help="train the reading head with this config (configs/reading_head.json)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    base, lex, config = load_model_dir(args.base)
    rcfg = ReadingConfig(temperature=args.temperature, visual_weight=args.visual_weight,
                         visual_below=args.visual_below)
    onnx = Path(args.base) / "visual.onnx"  # the base's FP32 graph: the engine's path for the second signal
    visual = OnnxVisual(onnx, threads=1) if onnx.exists() else None
    model = ReadingModel(base, lex, rcfg, visual=visual)
    head_cfg = load_head_config(args.head) if args.head else None
    if head_cfg:
        model.head, head_record = train_head(model, lex, head_cfg)
    metrics, evals = evaluate_on_val(model, lex)
    rec = reader_record()
    if head_cfg:
        metrics["reading_head"] = head_record
    extra = {"reading": asdict(rcfg), **({"reading_head": head_cfg} if head_cfg else {}),
             "reader": rec, "base_model": Path(args.base).name,
             **{k: v for k, v in config.items() if k in ("train", "visual_params", "soup")}}
    trained = ("only the reading head on its last layer was trained for it (below)" if head_cfg
               else "nothing here was trained for it")
    card = CARD.format(trained=trained, file=rec["file"], package=rec["package"], version=rec["version"], sha=rec["sha256"][:16],
                       temperature=rcfg.temperature, visual_weight=rcfg.visual_weight, rw=1 - rcfg.visual_weight,
                       visual_below=rcfg.visual_below, head=HEAD_LINE.format(**metrics["reading_head"],
                       **head_cfg["head"], per_word=head_cfg["per_word"], n_seeds=len(head_cfg["seeds"]))
                       if head_cfg else "",
                       evals="\n".join(evals))
    out = save_model_dir(base, lex, args.out, metrics=metrics, card=card, extra=extra)
    if visual is not None:
        shutil.copyfile(onnx, out / "visual.onnx")
    if model.head is not None:
        model.head.save(out / HEAD_FILE)
    else:
        (out / HEAD_FILE).unlink(missing_ok=True)
    print(f"wrote {out}")
    print(json.dumps({k: (v["within_acc@1"], v["cross_acc@1"]) for k, v in metrics.items() if "within_acc@1" in v}))


if __name__ == "__main__":
    main()
