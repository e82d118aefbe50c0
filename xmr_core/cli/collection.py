"""`xmr collection`, `add`, `search`, `recognize`, `reindex`, `doctor`, `user`, `demo`: a data folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _engine(args: argparse.Namespace):
    from xmr_core.search.engine import Engine

    def progress(done: int, total: int, what: str) -> None:
        print(f"\r  {what}: {done}/{total}", end="", file=sys.stderr, flush=True)

    eng = Engine(args.data, model_dir=args.model, progress=progress)
    return eng


def cmd_collection(args: argparse.Namespace) -> int:
    from xmr_core.data.paths import data_dir
    from xmr_core.store.database import Store

    store = Store(args.data or data_dir())
    if args.collection_cmd == "create":
        store.create_collection(args.name)
        print(f"collection {args.name!r} ready")
    for c in store.list_collections():
        print(f"{c['name']:30s} {c['items']:8d} items")
    return 0


def cmd_add(args: argparse.Namespace) -> int:
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


def cmd_search(args: argparse.Namespace) -> int:
    import json

    eng = _engine(args)
    langs = [x.strip() for x in args.lang.split(",") if x.strip()]
    image = Path(args.image).read_bytes() if args.image else None
    ex = eng.exemplars_of(args.user) if args.user and image is not None else None
    hits, info = eng.search(image=image, text=args.text, k=args.k, languages=langs, collection=args.name,
                            exemplars=ex)
    if args.json:
        print(json.dumps({"query": {"kind": info.kind, "text": info.text, "detected_lang": info.detected_lang,
                                    "recognized": info.recognized, "terms": info.terms, "weak": info.weak,
                                    "exemplars": info.exemplars},
                          "hits": [{"item_id": h.item_id, "score": round(h.score, 4), "path": str(h.path),
                                    "lang": h.lang, "concept_id": h.concept_id, "words": h.words,
                                    "bbox": h.bbox} for h in hits]}, ensure_ascii=False, indent=2))
        return 0
    if info.kind == "text":
        print(f"query {info.text!r} (detected language: {info.detected_lang})")
    else:
        print("recognised as: " + "; ".join(f"{lg} {info.recognized[lg][0][1]}" for lg in info.recognized))
        if info.exemplars:
            print(_looks_like(eng, args.user, info.exemplars))
    if info.terms:
        print("searching for " + " · ".join(w for lg in ("zh", "en", "es") for w in info.terms.get(lg, [])[:1]))
    if info.weak:
        print("nothing in the collection matches well; the nearest items:")
    for r, h in enumerate(hits, 1):
        words = " / ".join(h.words.values()) if h.words else "-"
        print(f"{r:3d}. {h.score:.3f}  [{h.lang}] {words:40s} {h.path}")
    return 0


def _looks_like(eng, user: str, near: list[tuple[str, str, float]]) -> str:
    return f"looks like {user}'s samples of: " + ", ".join(
        f"{eng.lexicon.get(c).word(lg)} ({lg}, cosine {s:.2f})" for c, lg, s in near[:3])


def cmd_recognize(args: argparse.Namespace) -> int:
    from xmr_core.data.lexicon import LANGS
    from xmr_core.data.preprocess import preprocess

    eng = _engine(args)
    data = Path(args.image).read_bytes()
    ex = eng.exemplars_of(args.user) if args.user else None
    near = ex.near(eng.look_of(preprocess(data, eng.pre)[None])[0]) if ex is not None else []
    if near:
        print(_looks_like(eng, args.user, [(ex.concept_ids[r], ex.langs[r], s) for r, s in near]))
    word, terms = eng.read_word(data)
    if word is not None and not near:
        print(f"read as {word.word!r} ({word.lang}; not a lexicon word): "
              + " · ".join(w for lg in LANGS for w in terms.get(lg, [])[:1]))
        print("nearest lexicon words:")
    for lang, words in eng.recognize(data, top=args.top, exemplars=ex).items():
        print(f"{lang}: " + ", ".join(f"{w} ({s:.2f})" for _, w, s in words))
    return 0


def cmd_reindex(args: argparse.Namespace) -> int:
    eng = _engine(args)
    n = eng.reindex()
    print(f"\nindex rebuilt: {n} items for model {eng.model_id}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from xmr_core.data.paths import data_dir
    from xmr_core.store.doctor import check, restore

    root = args.data or data_dir()
    if args.restore:
        used = restore(root, args.backup)
        print(f"restored the store from {used}")
    rep = check(root, fix=args.fix, grace_s=args.grace)
    for line in rep.fixed:
        print(f"fixed: {line}")
    for line in rep.problems:
        print(f"problem: {line}")
    for line in rep.notes:
        print(f"note: {line}")
    print("healthy" if rep.healthy else f"{len(rep.problems)} problems")
    return 0 if rep.healthy else 1


def cmd_user(args: argparse.Namespace) -> int:
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


def cmd_demo(args: argparse.Namespace) -> int:
    from xmr_core.search.demo import build_demo

    eng = _engine(args)
    n = build_demo(eng, args.concepts)
    print(f"\ndemo collection: {n} images")
    return 0
