"""`xmr` command line: the only place with argparse and print."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np


def _cmd_fonts_fetch(args: argparse.Namespace) -> int:
    from .fonts import fetch_fonts

    def progress(done: int, total: int, package: str) -> None:
        print(f"\r  [{done}/{total}] {package[:60]:60s}", end="", file=sys.stderr, flush=True)

    report = fetch_fonts(workers=args.workers, progress=progress)
    if report.fetched:
        print(file=sys.stderr)
    print(f"fonts: {report.summary()}")
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    from PIL import Image

    from .lexicon import LANGS, load_lexicon
    from .render import MissingGlyph, SyntheticWords

    lex = load_lexicon()
    ds = SyntheticWords(lex, split=args.split, seed=args.seed,
                        kinds={"font": 0.6, "pen": 0.25, "canvas": 0.15} if args.split == "train" else None)
    rows = []
    for word in args.words:
        hits = lex.lookup(word)
        if not hits:
            print(f"unknown word {word!r}: not in the lexicon", file=sys.stderr)
            return 2
        c = hits[0]
        lang = next(lg for lg in LANGS if c.word(lg).lower() == word.lower())
        rng = np.random.default_rng([args.seed, len(rows)])
        cells = []
        for _ in range(args.styles):
            try:
                cells.append(ds.sample(c.concept_id, lang, rng).image)
            except MissingGlyph as exc:
                print(f"skipped a style for {word!r}: {exc}", file=sys.stderr)
        rows.append(cells)
    cell_w, cell_h = 200, 80
    sheet = Image.new("RGB", (cell_w * args.styles, cell_h * len(rows)), "white")
    for r, cells in enumerate(rows):
        for k, im in enumerate(cells):
            bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
            bg.alpha_composite(im.convert("RGBA"))
            im = bg.convert("RGB")
            im.thumbnail((cell_w - 8, cell_h - 8))
            sheet.paste(im, (k * cell_w + (cell_w - im.width) // 2, r * cell_h + (cell_h - im.height) // 2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out} ({len(rows)} words x {args.styles} styles)")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    import json

    from .lexicon import load_lexicon
    from .model.config import ModelConfig
    from .probe import make_probe
    from .train import TrainConfig, train

    cfg = json.loads(Path(args.config).read_text(encoding="utf-8"))
    model_cfg, train_cfg = ModelConfig.from_dict(cfg.get("model", {})), TrainConfig.from_dict(cfg.get("train", {}))
    if args.steps:
        train_cfg.steps = args.steps
    lex = load_lexicon()
    probe = make_probe(lex, train_cfg.eval_concepts) if train_cfg.eval_concepts else None

    def progress(rec: dict) -> None:
        line = " ".join(f"{k}={v}" for k, v in rec.items() if k != "probe")
        print(f"\r{line[:150]:150s}", end="", file=sys.stderr, flush=True)
        if "probe" in rec:
            print(f"\nprobe {rec['probe']}", file=sys.stderr, flush=True)

    out = train(model_cfg, train_cfg, args.out, lex, progress=progress, probe=probe)
    print(f"\nmodel written to {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xmr", description="Cross-script handwriting retrieval")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="cmd", required=True)

    fonts = sub.add_parser("fonts", help="font and stroke data cache").add_subparsers(dest="fonts_cmd", required=True)
    f = fonts.add_parser("fetch", help="download, verify and index the fonts of assets/fonts.tsv")
    f.add_argument("--workers", type=int, default=6)
    f.set_defaults(func=_cmd_fonts_fetch)

    r = sub.add_parser("render", help="contact sheet of synthetic handwriting")
    r.add_argument("--words", nargs="+", required=True)
    r.add_argument("--styles", type=int, default=8)
    r.add_argument("--split", choices=["train", "val"], default="train")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", default="sheet.png")
    r.set_defaults(func=_cmd_render)
    t = sub.add_parser("train", help="train (or resume) a model from a JSON config")
    t.add_argument("--config", required=True, help="JSON with 'model' and 'train' sections")
    t.add_argument("--out", required=True, help="run directory: checkpoints and the final model")
    t.add_argument("--steps", type=int, help="override the config's step count")
    t.set_defaults(func=_cmd_train)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"xmr: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
