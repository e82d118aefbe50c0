"""`xmr fonts`, `xmr dictionaries`, `xmr translate`, `xmr render`: the data XMR is made from."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def cmd_fonts_fetch(args: argparse.Namespace) -> int:
    from xmr_core.data.fonts import fetch_fonts

    def progress(done: int, total: int, package: str) -> None:
        print(f"\r  [{done}/{total}] {package[:60]:60s}", end="", file=sys.stderr, flush=True)

    report = fetch_fonts(workers=args.workers, progress=progress)
    if report.fetched:
        print(file=sys.stderr)
    print(f"fonts: {report.summary()}")
    return 0


def cmd_dictionaries_fetch(args: argparse.Namespace) -> int:
    from xmr_core.data.dictionary import build_table, fetch_dictionaries, open_table
    from xmr_core.data.lexicon import LANGS
    from xmr_core.data.translate import Translator

    report = fetch_dictionaries(progress=lambda d, t, p: print(f"  [{d}/{t}] {p}", file=sys.stderr, flush=True))
    print(f"dictionaries: {report.summary()}")
    if report.skipped:
        return 1
    path = build_table()
    db = open_table(build=False)
    n = {r[0]: r[1] for r in db.execute("SELECT src_lang || '->' || dst_lang, count(*) FROM pairs GROUP BY 1")}
    print(f"translation table {path} ({path.stat().st_size / 2**20:.1f} MB): "
          + ", ".join(f"{k} {v:,}" for k, v in sorted(n.items())))
    if args.neighbours:  # the word lists' USE-m3 vectors and text-tower features, so open-vocabulary queries are quick
        from xmr_core.model.text import UseTextTower

        tower = UseTextTower()
        tr = Translator(embed=tower.package_vectors)  # USE-m3's own vectors, through the tower's frozen base
        for lang in LANGS:
            for other in LANGS:
                if other != lang:
                    tr.hubness(lang, other)
        for lang in LANGS:  # after the lists' vectors, which are computed from full-precision features
            print(f"  {lang}: frozen features of {len(tr.known(lang)):,} words", file=sys.stderr, flush=True)
            tower.list_features(tr.known(lang), tr.list_file(lang, "features"))
        print(f"nearest-word lists ready: {tr.neighbours:,} words per language")
        # what setup waits for (the Makefile's DICTS): the files made, by language
        (path.parent / "lists.json").write_text(json.dumps(
            {lg: [tr.list_file(lg, kind).name for kind in ("use", "features")] for lg in LANGS}, indent=1))
    return 0


def cmd_translate(args: argparse.Namespace) -> int:
    from xmr_core.data.lexicon import load_lexicon
    from xmr_core.data.translate import Translator

    r = Translator(load_lexicon()).translate(args.term, args.lang, k=args.k)
    print(f"{args.term!r} ({r.lang}):")
    for lang, terms in r.terms.items():
        print(f"  {lang}: " + "   ".join(f"{w} ({s:.2f}, {src})" for w, s, src in terms))
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from PIL import Image

    from xmr_core.data.lexicon import LANGS, load_lexicon
    from xmr_core.data.render import MissingGlyph, SyntheticWords

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
