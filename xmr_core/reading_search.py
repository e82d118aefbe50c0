"""Typed search of any word: its terms in the three scripts scored against the items' stored readings.

The store keeps each item's compact reading (model/ctc.py); `reading_candidates` (store.py, FTS5) picks
the items whose greedy reading shares trigrams or characters with a term, and `reading_scores` re-scores
them exactly: the CTC log-likelihood of each term (Latin terms also in Title and UPPER case) under the
item's compact posteriors, the best term of the item's script counting. `fuse` adds that, mapped to
[0, 1], to the semantic cosine with a weight measured on the open-vocabulary benchmark.
"""

from __future__ import annotations

import numpy as np

from .lexicon import LANGS
from .model.ctc import LATIN_CASES, compact_log_likelihood

READING_WEIGHT = 0.5  # weight of the reading score beside the semantic cosine (docs/open-vocabulary.md)
LL_FLOOR = -20.0  # a term this unlikely (or less) under an item's reading scores 0; a sure one 1


def term_labels(term: str, lang: str, index: dict[str, int]) -> list[list[int]]:
    """The reader's symbol sequences of a term as it may be written (Latin: lower, Title, UPPER)."""
    forms = [term] if lang == "zh" else list(dict.fromkeys(f(term) for f in LATIN_CASES))
    out = []
    for f in forms:
        ids = [index.get(ch) for ch in f]
        if ids and None not in ids:
            out.append(ids)
    return out


def reading_scores(readings: dict[int, tuple[str, bytes]], terms: dict[str, list[str]],
                   item_langs: dict[int, str | None], index: dict[str, int], n_symbols: int) -> dict[int, float]:
    """Per item, the best of its script's terms' CTC log-likelihood under its reading, mapped to [0, 1]
    (LL_FLOOR -> 0, certain -> 1). Script, not language: a Latin item is compared with the English and
    the Spanish terms (an unlabelled word's language is a guess), one of no known script with all."""
    labels = {lg: [lab for t in terms.get(lg, []) for lab in term_labels(t, lg, index)] for lg in LANGS}
    latin = labels["en"] + labels["es"]
    out = {}
    for item, (_, blob) in readings.items():
        lang = item_langs.get(item)
        labs = labels["zh"] if lang == "zh" else latin if lang in ("en", "es") else labels["zh"] + latin
        if not labs:
            out[item] = 0.0
            continue
        ll = float(np.max(compact_log_likelihood(blob, labs, n_symbols)))
        out[item] = float(np.clip(1.0 - ll / LL_FLOOR, 0.0, 1.0))
    return out


def fuse(cosines: dict[int, float], reading: dict[int, float], weight: float = READING_WEIGHT) -> list[tuple[int, float]]:
    """Items ranked by cosine + weight x reading score (an item outside the reading shortlist reads 0)."""
    return sorted(((i, c + weight * reading.get(i, 0.0)) for i, c in cosines.items()), key=lambda x: -x[1])
