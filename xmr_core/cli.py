"""`xmr` command line: the only place with argparse and print."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np


def _cmd_fonts_fetch(args: argparse.Namespace) -> int:
    from xmr_core.data.fonts import fetch_fonts

    def progress(done: int, total: int, package: str) -> None:
        print(f"\r  [{done}/{total}] {package[:60]:60s}", end="", file=sys.stderr, flush=True)

    report = fetch_fonts(workers=args.workers, progress=progress)
    if report.fetched:
        print(file=sys.stderr)
    print(f"fonts: {report.summary()}")
    return 0


def _cmd_dictionaries_fetch(args: argparse.Namespace) -> int:
    from xmr_core.data.dictionary import build_table, fetch_dictionaries, open_table
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
    if args.neighbours:  # the word lists' USE-m3 vectors, so the first open-vocabulary query is quick
        tr = Translator()
        for lang in ("zh", "en", "es"):
            for other in ("zh", "en", "es"):
                if other != lang:
                    tr.hubness(lang, other)
        print(f"nearest-word lists ready: {tr.neighbours:,} words per language")
    return 0


def _cmd_translate(args: argparse.Namespace) -> int:
    from xmr_core.data.lexicon import load_lexicon
    from xmr_core.data.translate import Translator

    r = Translator(load_lexicon()).translate(args.term, args.lang, k=args.k)
    print(f"{args.term!r} ({r.lang}):")
    for lang, terms in r.terms.items():
        print(f"  {lang}: " + "   ".join(f"{w} ({s:.2f}, {src})" for w, s, src in terms))
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
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


def _cmd_train(args: argparse.Namespace) -> int:
    from xmr_core.data.lexicon import load_lexicon
    from xmr_core.model.config import ModelConfig
    from xmr_core.evaluate.probe import make_probe
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


def _cmd_eval(args: argparse.Namespace) -> int:
    import json

    from xmr_core.model.checkpoint import load_engine_model
    from xmr_core.evaluate.retrieval import evaluate, load_manifest_set, render_eval_set

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


def _cmd_soup(args: argparse.Namespace) -> int:
    from xmr_core.train.soup import soup

    print(f"wrote {soup(args.models, args.out)} (the average of {len(args.models)} models)")
    return 0


def format_eval(res: dict) -> str:
    from xmr_core.data.lexicon import LANGS

    lines = [f"{res['n_images']} images, {res['n_concepts']} concepts, {res['n_candidates']} candidates per language ({res['source']})",
             "image->text Acc@1 (rows: query script, columns: target script)", "       " + "".join(f"{t:>8s}" for t in LANGS)]
    for q in LANGS:
        lines.append(f"  {q:4s} " + "".join(f"{100 * res['image_to_text'][f'{q}->{t}']['acc@1']:8.2f}" for t in LANGS))
    lines.append(f"within-language Acc@1 {100 * res['within_acc@1']:.2f}   cross-lingual Acc@1 {100 * res['cross_acc@1']:.2f}")
    mrr = sum(v["mrr"] for v in res["image_to_text"].values()) / 9
    mp = sum(v["map@10"] for v in res["image_to_image"].values()) / 9
    lines.append(f"mean MRR {mrr:.4f}   image->image mAP@10 {mp:.4f}   R/D " +
                 " ".join(f"{k}={v:.3f}" for k, v in res["rd_ratio"].items()))
    if res.get("within_by_length"):
        lines.append("within-language Acc@1 by word length: " + "  ".join(
            f"{k} {100 * v['acc@1']:.1f} (n={v['n']})" for k, v in res["within_by_length"].items()))
    if res.get("within_by_style"):
        from xmr_core.evaluate.card import weakest_styles

        lines.append("weakest styles: " + "  ".join(f"{k} {100 * v['acc@1']:.1f} (n={v['n']})"
                                                     for k, v in weakest_styles(res, 5)))
    for name, sig in res.get("signals", {}).items():
        lines.append(f"signal alone: {name:8s} within {100 * sig['within_acc@1']:.2f}   cross {100 * sig['cross_acc@1']:.2f}"
                     f"   image->image mAP@10 {sig['map@10']:.4f}")
    if "sure_share" in res:
        lines.append(f"embedded by the reading alone (sure): {100 * res['sure_share']:.1f}% of the images")
    lines.append(f"latency p50 {res['latency_ms_p50']:.2f} ms (preprocess + embed, one thread)")
    return "\n".join(lines)


def _write_tsne(model, lex, data, out: str, max_images: int = 1500) -> None:
    from xmr_core.evaluate.retrieval import embed_images
    from xmr_core.data.lexicon import LANGS
    from xmr_core.evaluate.plots import embedding_figure, embedding_frame

    keep = sorted(set(data.concept_ids))[:max(1, max_images // 3)]
    idx = [i for i, c in enumerate(data.concept_ids) if c in set(keep)][:max_images]
    v = embed_images(model, data.x[idx])
    anchors = [(c, lang) for c in keep for lang in LANGS]
    t = model.encode_text([lex.get(c).word(lang) for c, lang in anchors]).detach().numpy()
    rows = [{"concept": data.concept_ids[i], "lang": data.langs[i],
             "label": lex.get(data.concept_ids[i]).word(data.langs[i])} for i in idx]
    anchor_rows = [{"concept": c, "lang": lang, "label": lex.get(c).word(lang)} for c, lang in anchors]
    embedding_figure(embedding_frame(v, rows, t, anchor_rows)).write_html(out, include_plotlyjs=True)


def _engine(args: argparse.Namespace):
    from xmr_core.search.engine import Engine

    def progress(done: int, total: int, what: str) -> None:
        print(f"\r  {what}: {done}/{total}", end="", file=sys.stderr, flush=True)

    eng = Engine(args.data, model_dir=args.model, progress=progress)
    return eng


def _cmd_collection(args: argparse.Namespace) -> int:
    from xmr_core.store.database import Store
    from xmr_core.data.paths import data_dir

    store = Store(args.data or data_dir())
    if args.collection_cmd == "create":
        store.create_collection(args.name)
        print(f"collection {args.name!r} ready")
    for c in store.list_collections():
        print(f"{c['name']:30s} {c['items']:8d} items")
    return 0


def _cmd_add(args: argparse.Namespace) -> int:
    from xmr_core.data.ingest import iter_inputs

    eng = _engine(args)
    errors: dict[str, str] = {}
    added: list[int] = []

    def take(rep) -> None:
        added.extend(rep.added)
        errors.update(rep.errors)

    batch = []
    for source, data in iter_inputs(args.paths, errors):
        if args.pages:
            try:
                take(eng.add_page(args.name, source, data))
            except ValueError as exc:
                errors[source] = str(exc)
            continue
        batch.append((source, data))
        if len(batch) == 256:
            take(eng.add(args.name, batch))
            batch = []
    if batch:
        take(eng.add(args.name, batch))
    print(f"added {len(added)} images to {args.name!r}; {len(errors)} skipped")
    for src, why in sorted(errors.items()):
        print(f"  skipped {src}: {why}")
    return 0 if added or not errors else 1


def _cmd_search(args: argparse.Namespace) -> int:
    import json

    eng = _engine(args)
    langs = [x.strip() for x in args.lang.split(",") if x.strip()]
    image = Path(args.image).read_bytes() if args.image else None
    hits, info = eng.search(image=image, text=args.text, k=args.k, languages=langs, collection=args.name)
    if args.json:
        print(json.dumps({"query": {"kind": info.kind, "text": info.text, "detected_lang": info.detected_lang,
                                    "recognized": info.recognized, "terms": info.terms, "weak": info.weak},
                          "hits": [{"item_id": h.item_id, "score": round(h.score, 4), "path": str(h.path),
                                    "lang": h.lang, "concept_id": h.concept_id, "words": h.words,
                                    "bbox": h.bbox} for h in hits]}, ensure_ascii=False, indent=2))
        return 0
    if info.kind == "text":
        print(f"query {info.text!r} (detected language: {info.detected_lang})")
    else:
        print("recognised as: " + "; ".join(f"{lg} {info.recognized[lg][0][1]}" for lg in info.recognized))
    if info.terms:
        print("searching for " + " · ".join(w for lg in ("zh", "en", "es") for w in info.terms.get(lg, [])[:1]))
    if info.weak:
        print("nothing in the collection matches well; the nearest items:")
    for r, h in enumerate(hits, 1):
        words = " / ".join(h.words.values()) if h.words else "-"
        print(f"{r:3d}. {h.score:.3f}  [{h.lang}] {words:40s} {h.path}")
    return 0


def _cmd_recognize(args: argparse.Namespace) -> int:
    from xmr_core.data.lexicon import LANGS

    eng = _engine(args)
    data = Path(args.image).read_bytes()
    word, terms = eng.read_word(data)
    if word is not None:
        print(f"read as {word.word!r} ({word.lang}; not a lexicon word): "
              + " · ".join(w for lg in LANGS for w in terms.get(lg, [])[:1]))
        print("nearest lexicon words:")
    for lang, words in eng.recognize(data, top=args.top).items():
        print(f"{lang}: " + ", ".join(f"{w} ({s:.2f})" for _, w, s in words))
    return 0


def _cmd_reindex(args: argparse.Namespace) -> int:
    eng = _engine(args)
    n = eng.reindex()
    print(f"\nindex rebuilt: {n} items for model {eng.model_id}")
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from xmr_core.store.doctor import check, restore
    from xmr_core.data.paths import data_dir

    root = args.data or data_dir()
    if args.restore:
        used = restore(root, args.backup)
        print(f"restored the store from {used}")
    rep = check(root, fix=args.fix, grace_s=args.grace)
    for line in rep.fixed:
        print(f"fixed: {line}")
    for line in rep.problems:
        print(f"problem: {line}")
    print("healthy" if rep.healthy else f"{len(rep.problems)} problems")
    return 0 if rep.healthy else 1


def _cmd_user(args: argparse.Namespace) -> int:
    from xmr_core.data.paths import data_dir
    from xmr_core.store.database import Store
    from xmr_core.store.users import list_users, set_role

    store = Store(args.data or data_dir())
    if args.name:
        set_role(store, args.name, args.role)
        print(f"{args.name.strip()}: {args.role}")
    for u in list_users(store):
        print(f"{u['name']:24s} {u['role']:9s} {u['searches']:5d} searches {u['annotations']:5d} annotations")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from xmr_core.search.demo import build_demo

    eng = _engine(args)
    n = build_demo(eng, args.concepts)
    print(f"\ndemo collection: {n} images")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xmr", description="Cross-script handwriting retrieval")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="cmd", required=True)

    fonts = sub.add_parser("fonts", help="font and stroke data cache").add_subparsers(dest="fonts_cmd", required=True)
    f = fonts.add_parser("fetch", help="download, verify and index the fonts of assets/fonts.tsv")
    f.add_argument("--workers", type=int, default=6)
    f.set_defaults(func=_cmd_fonts_fetch)

    dic = sub.add_parser("dictionaries", help="word lists and bilingual dictionaries").add_subparsers(
        dest="dict_cmd", required=True)
    f = dic.add_parser("fetch", help="download and verify assets/dictionaries.tsv, build the translation table")
    f.add_argument("--neighbours", action="store_true", help="also embed the word lists for nearest-word search")
    f.set_defaults(func=_cmd_dictionaries_fetch)
    t = sub.add_parser("translate", help="words of the same meaning in zh, en and es")
    t.add_argument("term")
    t.add_argument("--lang", choices=["zh", "en", "es"], help="the term's language (default: detected)")
    t.add_argument("-k", type=int, default=3)
    t.set_defaults(func=_cmd_translate)

    r = sub.add_parser("render", help="contact sheet of synthetic handwriting")
    r.add_argument("--words", nargs="+", required=True)
    r.add_argument("--styles", type=int, default=8)
    r.add_argument("--split", choices=["train", "val"], default="train")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", default="sheet.png")
    r.set_defaults(func=_cmd_render)
    def data_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--data", help="data folder (default: $XMR_DATA or ./data)")
        sp.add_argument("--model", help="model directory (default: the active model)")

    col = sub.add_parser("collection", help="collections").add_subparsers(dest="collection_cmd", required=True)
    cc = col.add_parser("create")
    cc.add_argument("name")
    cl = col.add_parser("list")
    for sp in (cc, cl):
        sp.add_argument("--data")
        sp.set_defaults(func=_cmd_collection)

    a = sub.add_parser("add", help="add images (files, folders, zip archives) to a collection")
    a.add_argument("name")
    a.add_argument("paths", nargs="+")
    a.add_argument("--pages", action="store_true", help="inputs are pages: segment them into words")
    data_args(a)
    a.set_defaults(func=_cmd_add)

    s_ = sub.add_parser("search", help="search a collection by image or typed word")
    s_.add_argument("name", nargs="?", help="collection (default: all)")
    q = s_.add_mutually_exclusive_group(required=True)
    q.add_argument("--image")
    q.add_argument("--text")
    s_.add_argument("--lang", default="zh,en,es", help="target scripts, comma-separated")
    s_.add_argument("-k", type=int, default=10)
    s_.add_argument("--json", action="store_true")
    data_args(s_)
    s_.set_defaults(func=_cmd_search)

    rc = sub.add_parser("recognize", help="what an image says: top words per language")
    rc.add_argument("image")
    rc.add_argument("--top", type=int, default=5)
    data_args(rc)
    rc.set_defaults(func=_cmd_recognize)

    ri = sub.add_parser("reindex", help="embed missing items and rebuild the index")
    data_args(ri)
    ri.set_defaults(func=_cmd_reindex)

    dr = sub.add_parser("doctor", help="check the data folder; --fix repairs, --restore puts the latest backup back")
    dr.add_argument("--data", help="data folder (default: $XMR_DATA or ./data)")
    dr.add_argument("--fix", action="store_true", help="remove orphan image files, delete damaged indexes")
    dr.add_argument("--restore", action="store_true", help="replace the store with its newest backup first")
    dr.add_argument("--backup", help="with --restore: this backup file instead of the newest")
    dr.add_argument("--grace", type=float, default=3600.0, help="seconds an orphan file must be old to be removed")
    dr.set_defaults(func=_cmd_doctor)

    us = sub.add_parser("user", help="list the app's users; with a name, set that user's role")
    us.add_argument("name", nargs="?", help="the user (created if new)")
    us.add_argument("--role", choices=("user", "reviewer"), default="user",
                    help="a reviewer may relabel and delete anyone's annotations (default: user)")
    us.add_argument("--data", help="data folder (default: $XMR_DATA or ./data)")
    us.set_defaults(func=_cmd_user)

    dm = sub.add_parser("demo", help="build the demo collection (renders of held-out fonts)")
    dm.add_argument("--concepts", type=int, default=None, help="the first N of the demo's concepts (default: all)")
    data_args(dm)
    dm.set_defaults(func=_cmd_demo)

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
    e.set_defaults(func=_cmd_eval)

    sp = sub.add_parser("soup", help="average the weights of runs continued from the same model")
    sp.add_argument("models", nargs="+", help="model directories of one architecture and lexicon")
    sp.add_argument("--out", required=True, help="model directory to write")
    sp.set_defaults(func=_cmd_soup)

    t = sub.add_parser("train", help="train (or resume) a model from a JSON config")
    t.add_argument("--config", required=True, help="JSON with 'model' and 'train' sections")
    t.add_argument("--out", required=True, help="run directory: checkpoints and the final model")
    t.add_argument("--steps", type=int, help="override the config's step count")
    t.add_argument("--seed", type=int, help="override the config's seed: another stream of rendered batches "
                   "(a continuation with a new seed sees fresh renders)")
    t.add_argument("--init", help="start from this model directory's weights (a checkpoint in --out wins)")
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
