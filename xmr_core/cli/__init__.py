"""`xmr` command line: the only place with argparse and print."""

from __future__ import annotations

import argparse
import logging
import sys

from xmr_core.cli import collection, data, models


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xmr", description="Cross-script handwriting retrieval")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="cmd", required=True)

    fonts = sub.add_parser("fonts", help="font and stroke data cache").add_subparsers(dest="fonts_cmd", required=True)
    f = fonts.add_parser("fetch", help="download, verify and index the fonts of assets/fonts.tsv")
    f.add_argument("--workers", type=int, default=6)
    f.set_defaults(func=data.cmd_fonts_fetch)

    dic = sub.add_parser("dictionaries", help="word lists and bilingual dictionaries").add_subparsers(
        dest="dict_cmd", required=True)
    f = dic.add_parser("fetch", help="download and verify assets/dictionaries.tsv, build the translation table")
    f.add_argument("--neighbours", action="store_true",
                   help="also embed the word lists (nearest-word search) and the dictionaries' words (text features)")
    f.set_defaults(func=data.cmd_dictionaries_fetch)
    t = sub.add_parser("translate", help="words of the same meaning in zh, en and es")
    t.add_argument("term")
    t.add_argument("--lang", choices=["zh", "en", "es"], help="the term's language (default: detected)")
    t.add_argument("-k", type=int, default=3)
    t.set_defaults(func=data.cmd_translate)

    r = sub.add_parser("render", help="contact sheet of synthetic handwriting")
    r.add_argument("--words", nargs="+", required=True)
    r.add_argument("--styles", type=int, default=8)
    r.add_argument("--split", choices=["train", "val"], default="train")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", default="sheet.png")
    r.set_defaults(func=data.cmd_render)
    def data_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--data", help="data folder (default: $XMR_DATA or ./data)")
        sp.add_argument("--model", help="model directory (default: the active model)")

    col = sub.add_parser("collection", help="collections").add_subparsers(dest="collection_cmd", required=True)
    cc = col.add_parser("create")
    cc.add_argument("name")
    cl = col.add_parser("list")
    for sp in (cc, cl):
        sp.add_argument("--data")
        sp.set_defaults(func=collection.cmd_collection)

    a = sub.add_parser("add", help="add images (files, folders, zip archives) to a collection")
    a.add_argument("name")
    a.add_argument("paths", nargs="+")
    a.add_argument("--pages", action="store_true", help="inputs are pages: segment them into words")
    data_args(a)
    a.set_defaults(func=collection.cmd_add)

    s_ = sub.add_parser("search", help="search a collection by image or typed word")
    s_.add_argument("name", nargs="?", help="collection (default: all)")
    q = s_.add_mutually_exclusive_group(required=True)
    q.add_argument("--image")
    q.add_argument("--text")
    s_.add_argument("--lang", default="zh,en,es", help="target scripts, comma-separated")
    s_.add_argument("-k", type=int, default=10)
    s_.add_argument("--json", action="store_true")
    s_.add_argument("--user", help="an image query uses this user's labelled samples as exemplars")
    data_args(s_)
    s_.set_defaults(func=collection.cmd_search)

    rc = sub.add_parser("recognize", help="what an image says: top words per language")
    rc.add_argument("image")
    rc.add_argument("--top", type=int, default=5)
    rc.add_argument("--user", help="use this user's labelled samples as exemplars")
    data_args(rc)
    rc.set_defaults(func=collection.cmd_recognize)

    ri = sub.add_parser("reindex", help="embed missing items and rebuild the index")
    data_args(ri)
    ri.set_defaults(func=collection.cmd_reindex)

    dr = sub.add_parser("doctor", help="check the data folder; --fix repairs, --restore puts the latest backup back")
    dr.add_argument("--data", help="data folder (default: $XMR_DATA or ./data)")
    dr.add_argument("--fix", action="store_true", help="remove orphan image files, delete damaged indexes")
    dr.add_argument("--restore", action="store_true", help="replace the store with its newest backup first")
    dr.add_argument("--backup", help="with --restore: this backup file instead of the newest")
    dr.add_argument("--grace", type=float, default=3600.0, help="seconds an orphan file must be old to be removed")
    dr.set_defaults(func=collection.cmd_doctor)

    us = sub.add_parser("user", help="list the app's users; with a name, set that user's role")
    us.add_argument("name", nargs="?", help="the user (created if new)")
    us.add_argument("--role", choices=("user", "reviewer"), default="user",
                    help="a reviewer may relabel and delete anyone's annotations (default: user)")
    us.add_argument("--data", help="data folder (default: $XMR_DATA or ./data)")
    us.set_defaults(func=collection.cmd_user)

    dm = sub.add_parser("demo", help="build the demo collection (renders of held-out fonts)")
    dm.add_argument("--concepts", type=int, default=None, help="the first N of the demo's concepts (default: all)")
    data_args(dm)
    dm.set_defaults(func=collection.cmd_demo)

    e = sub.add_parser("eval", help="evaluate a model directory (contract in DESIGN.md)")
    e.add_argument("--model", required=True)
    e.add_argument("--manifest", help="labelled-image CSV (path,text,lang,concept_id); default: held-out fonts")
    e.add_argument("--split", choices=["val-fonts", "train-fonts"], default="val-fonts")
    e.add_argument("--case", choices=["lower", "title", "upper"], default="lower",
                   help="letter case of the rendered English and Spanish words (the lexicon's is lower)")
    e.add_argument("--per-word", type=int, default=2, help="renders per word and language")
    e.add_argument("--concepts", type=int, help="evaluate on the first N concepts only (all are candidates)")
    e.add_argument("--path", choices=["auto", "torch", "onnx-fp32", "int8"], default="auto",
                   help="visual encoder to run (auto: the one the engine uses, as the model chose)")
    e.add_argument("--json", help="write the metrics JSON here")
    e.add_argument("--tsne", help="write an interactive t-SNE of the embeddings (HTML)")
    e.set_defaults(func=models.cmd_eval)

    sp = sub.add_parser("soup", help="average the weights of runs continued from the same model")
    sp.add_argument("models", nargs="+", help="model directories of one architecture and lexicon")
    sp.add_argument("--out", required=True, help="model directory to write")
    sp.set_defaults(func=models.cmd_soup)

    t = sub.add_parser("train", help="train (or resume) a model from a JSON config")
    t.add_argument("--config", required=True, help="JSON with 'model' and 'train' sections")
    t.add_argument("--out", required=True, help="run directory: checkpoints and the final model")
    t.add_argument("--steps", type=int, help="override the config's step count")
    t.add_argument("--seed", type=int, help="override the config's seed: another stream of rendered batches "
                   "(a continuation with a new seed sees fresh renders)")
    t.add_argument("--init", help="start from this model directory's weights (a checkpoint in --out wins)")
    t.set_defaults(func=models.cmd_train)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"xmr: error: {exc}", file=sys.stderr)
        return 2
