"""Translation of single words between zh, en and es (translate.py), against known triples.

Each word of a triple is translated into the other two languages with the lexicon's shortcut off; right
when the triple's word is the top-1 / among the top 3. On the lexicon's 1,133 concepts (the first 300, on
which FREQ_WEIGHT and SENSE_WEIGHT were chosen, and the other 833) and on the open-vocabulary benchmark's
triples (assets/open_vocab.tsv: the dictionaries agree on them by construction, so this flatters), with
per-direction numbers and the first misses.

    python benchmarks/translation.py [--misses 20]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks.open_vocab import load_open_vocab  # noqa: E402
from xmr_core.data.lexicon import LANGS, load_lexicon  # noqa: E402
from xmr_core.data.translate import Translator, normalise  # noqa: E402
from xmr_core.model.text import UseTextTower  # noqa: E402


def evaluate(tr: Translator, concepts) -> tuple[dict, list[str]]:
    hits: dict[tuple[str, str], list[tuple[bool, bool]]] = {}
    misses = []
    for c in concepts:
        for src in LANGS:
            got = tr.translate(c.word(src), src, k=3, use_lexicon=False)
            for dst in LANGS:
                if dst == src:
                    continue
                want = normalise(c.word(dst))
                words = [w for w, _, _ in got.terms.get(dst, [])]
                hits.setdefault((src, dst), []).append((words[:1] == [want], want in words))
                if words[:1] != [want]:
                    misses.append(f"{c.word(src)} -> {dst}: {', '.join(words) or '(none)'} (want {want})")
    every = [h for v in hits.values() for h in v]
    out = {"top1": 100 * np.mean([a for a, _ in every]), "top3": 100 * np.mean([b for _, b in every]),
           "pairs": {f"{s}->{d}": (100 * np.mean([a for a, _ in v]), 100 * np.mean([b for _, b in v]))
                     for (s, d), v in hits.items()}}
    return out, misses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--misses", type=int, default=20)
    args = ap.parse_args()
    t0 = time.time()
    lex = load_lexicon()
    tr = Translator.sharing(UseTextTower(), lex)  # as the engine translates (its text tower's frozen base)
    sets = {"lexicon, first 300": lex.concepts[:300], "lexicon, other 833": lex.concepts[300:],
            "open-vocabulary benchmark": load_open_vocab()}
    print("| triples | words | top-1 | top-3 | per direction (top-1 / top-3) |\n|---|---|---|---|---|")
    all_misses = {}
    for name, concepts in sets.items():
        r, all_misses[name] = evaluate(tr, concepts)
        pairs = ", ".join(f"{k} {a:.1f} / {b:.1f}" for k, (a, b) in r["pairs"].items())
        print(f"| {name} | {len(concepts) * 3} | {r['top1']:.1f} | {r['top3']:.1f} | {pairs} |", flush=True)
    for name, m in all_misses.items():
        print(f"\nFirst misses, {name} ({len(m)} in all):")
        for line in m[: args.misses]:
            print(f"- {line}")
    print(f"\n({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
