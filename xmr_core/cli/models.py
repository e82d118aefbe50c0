"""`xmr train`, `xmr eval`, `xmr soup`: making and measuring models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def cmd_train(args: argparse.Namespace) -> int:
    from xmr_core.data.lexicon import load_lexicon
    from xmr_core.evaluate.probe import make_probe
    from xmr_core.model.config import ModelConfig
    from xmr_core.train.trainer import TrainConfig, read_config, train

    cfg = read_config(args.config)
    model_cfg, train_cfg = ModelConfig.from_dict(cfg.get("model", {})), TrainConfig.from_dict(cfg.get("train", {}))
    if args.steps:
        train_cfg.steps = args.steps
    if args.seed is not None:
        train_cfg.seed = args.seed
    lex = load_lexicon()
    probe = make_probe(lex, model_cfg.preprocess, train_cfg.eval_concepts) if train_cfg.eval_concepts else None

    def progress(rec: dict) -> None:
        line = " ".join(f"{k}={v}" for k, v in rec.items() if k != "probe")
        print(f"\r{line[:150]:150s}", end="", file=sys.stderr, flush=True)
        if "probe" in rec:
            print(f"\nprobe {rec['probe']}", file=sys.stderr, flush=True)

    out = train(model_cfg, train_cfg, args.out, lex, progress=progress, probe=probe, init=args.init)
    print(f"\nmodel written to {out}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import json

    from xmr_core.evaluate.retrieval import evaluate, format_eval, load_manifest_set, render_eval_set
    from xmr_core.model.checkpoint import load_engine_model

    model, lex, config = load_engine_model(args.model)
    pre = model.cfg.preprocess
    if args.manifest:
        data = load_manifest_set(args.manifest, lex, pre)
    else:
        split = "train" if args.split == "train-fonts" else "val"

        def progress(done: int, total: int) -> None:
            print(f"\r  rendering {done}/{total}", end="", file=sys.stderr, flush=True)

        data = render_eval_set(lex, pre, split, per_word=args.per_word, concepts=args.concepts, progress=progress,
                               case=args.case)
        print(file=sys.stderr)
    embed = None
    if args.path != "torch" and "reading" not in config:
        from xmr_core.model.fastpath import FILES, OnnxVisual, load_fast_path

        if args.path == "auto":
            chosen = load_fast_path(args.model)
            embed = chosen[1] if chosen else None
            print(f"inference path: {chosen[0] if chosen else 'torch'} (the model's choice)", file=sys.stderr)
        else:
            embed = OnnxVisual(Path(args.model) / FILES[args.path])
    if "reading" in config:  # the fused embedding, and each signal alone beside it
        from xmr_core.evaluate.retrieval import evaluate_signals

        res = evaluate_signals(model, lex, data)
    else:
        res = evaluate(model, lex, data, embed=embed)
    print(format_eval(res))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=2, ensure_ascii=False))
        print(f"wrote {args.json}")
    if args.tsne:
        _write_tsne(model, lex, data, args.tsne)
        print(f"wrote {args.tsne}")
    return 0


def cmd_soup(args: argparse.Namespace) -> int:
    from xmr_core.train.soup import soup

    print(f"wrote {soup(args.models, args.out)} (the average of {len(args.models)} models)")
    return 0


def _write_tsne(model, lex, data, out: str, max_images: int = 1500) -> None:
    from xmr_core.data.lexicon import LANGS
    from xmr_core.evaluate.plots import embedding_figure, embedding_frame
    from xmr_core.evaluate.retrieval import embed_images

    keep = sorted(set(data.concept_ids))[:max(1, max_images // 3)]
    idx = [i for i, c in enumerate(data.concept_ids) if c in set(keep)][:max_images]
    v = embed_images(model, data.x[idx])
    anchors = [(c, lang) for c in keep for lang in LANGS]
    t = model.encode_text([lex.get(c).word(lang) for c, lang in anchors]).detach().numpy()
    rows = [{"concept": data.concept_ids[i], "lang": data.langs[i],
             "label": lex.get(data.concept_ids[i]).word(data.langs[i])} for i in idx]
    anchor_rows = [{"concept": c, "lang": lang, "label": lex.get(c).word(lang)} for c, lang in anchors]
    embedding_figure(embedding_frame(v, rows, t, anchor_rows)).write_html(out, include_plotlyjs=True)
