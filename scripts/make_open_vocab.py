"""Build assets/open_vocab.tsv: zh / en / es triples of concepts outside the lexicon, for the
open-vocabulary benchmark (benchmarks/open_vocab.py). A triple is kept when the dictionaries agree both
ways (CC-CEDICT's first sense of the Chinese word is the English word; FreeDict gives the Spanish word
for it and the English word back for that), each word is frequent in its language (wordfreq), the
lexicon's own rules accept it (validate_concept), and USE-m3 puts each pair close (cosine >= 0.5).

    python scripts/make_open_vocab.py [--n 320] [--seed 0]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from xmr_core.data.dictionary import open_table  # noqa: E402
from xmr_core.data.lexicon import Concept, load_lexicon, validate_concept  # noqa: E402
from xmr_core.data.paths import ASSETS  # noqa: E402
from xmr_core.data.translate import Translator  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=320)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ASSETS / "open_vocab.tsv")
    args = ap.parse_args()
    lex = load_lexicon()
    taken = {w for c in lex.concepts for w in (c.zh, c.en, c.es)}
    db = open_table()
    rank = {(r["lang"], r["word"]): r["rank"] for r in db.execute("SELECT lang, word, rank FROM words")}
    zh_first = {}
    for r in db.execute("SELECT src, dst FROM pairs WHERE source='cc-cedict' AND sense=0"):
        if rank.get(("zh", r["src"]), 1e9) < 20_000:
            zh_first.setdefault(r["dst"], []).append(r["src"])
    en_es = {}
    for r in db.execute("SELECT src, dst FROM pairs WHERE source='freedict-eng-spa' AND sense=0"):
        en_es.setdefault(r["src"], r["dst"])
    es_en = {(r["src"], r["dst"]) for r in db.execute(
        "SELECT src, dst FROM pairs WHERE src_lang='es' AND dst_lang='en' AND source LIKE 'freedict%'")}
    rows = []
    for en, zhs in zh_first.items():
        es = en_es.get(en)
        if not es or (es, en) not in es_en or rank.get(("en", en), 1e9) > 20_000 or rank.get(("es", es), 1e9) > 30_000:
            continue
        zh = min(zhs, key=lambda z: rank[("zh", z)])
        if {zh, en, es} & taken or " " in en or " " in es:
            continue
        c = Concept(f"ov_{en.replace('-', '_')}", zh, en, es, "open-vocab")
        try:
            validate_concept(c)
        except ValueError:
            continue
        rows.append(c)
    tr = Translator()
    keep, used = [], set()
    for c in rows:
        v = tr.embed([c.zh, c.en, c.es])
        words = {("zh", c.zh), ("en", c.en), ("es", c.es)}
        if v[0] @ v[1] >= 0.5 and v[1] @ v[2] >= 0.5 and not words & used:  # one concept per word
            keep.append(c)
            used |= words
    rng = np.random.default_rng(args.seed)
    pick = sorted((keep[i] for i in rng.choice(len(keep), min(args.n, len(keep)), replace=False)),
                  key=lambda c: c.concept_id)
    with open(args.out, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t")
        w.writerow(["concept_id", "zh", "en", "es", "category"])
        for c in pick:
            w.writerow([c.concept_id, c.zh, c.en, c.es, c.category])
    print(f"{len(rows)} triples agreed by the dictionaries, {len(keep)} close under USE-m3; wrote {len(pick)} to {args.out}")


if __name__ == "__main__":
    main()
