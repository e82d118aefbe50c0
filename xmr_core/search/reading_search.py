"""Typed search of any word: its terms in the three scripts scored against the items' stored readings.

The store keeps each item's compact reading (model/ctc.py); `reading_candidates` (store.py, FTS5) picks
the items whose greedy reading shares trigrams or characters with a term, and `reading_scores` re-scores
them exactly: the CTC log-likelihood of each term under the item's compact posteriors (any letter case and
accent: a letter's cases and accented forms count as one symbol), the best term of the item's script counting.
`fuse` adds that, mapped to [0, 1], to the semantic cosine with a weight measured on the open-vocabulary
benchmark.
"""

from __future__ import annotations

import numpy as np

from xmr_core.data.lexicon import LANGS
from xmr_core.model.ctc import compact_log_likelihoods
from xmr_core.store.readings import reading_text

READING_WEIGHT = 1.0  # weight of the reading score beside the semantic cosine (docs/open-vocabulary.md)
SHORTLIST = 60  # items the full-text index proposes for exact re-scoring (120 -> 60: the benchmark flat, half the cost)
LL_FLOOR = -30.0  # a term this unlikely (or less) under an item's reading scores 0; a sure one 1


def index_text(greedy: str, used=None, read=None) -> str:
    """An item's reading text, which the full-text index searches: its greedy reading, the listed word it is
    taken as (`used`, an OpenReading of open_reading.py) where that differs, and after store.readings.ALSO
    the other likeliest listed words of its reading against the word lists (`read`), so that a word read a
    letter off, or taken for a lexicon word, is still a candidate for the term it shows."""
    text = greedy if used is None or used.word == greedy.lower() else f"{greedy} {used.word}"
    shown = set(text.lower().split())
    others = [w for w in ([] if read is None else [read.word, *read.others]) if w.lower() not in shown]
    return reading_text(text, list(dict.fromkeys(others)))


def term_labels(term: str, lang: str, index: dict[str, int]) -> list[list[int]]:
    """The reader's symbol sequence of a term, in lower case (`case_fold` lets it score every case)."""
    ids = [index.get(ch) for ch in (term if lang == "zh" else term.lower())]
    return [ids] if ids and None not in ids else []


def case_fold(index: dict[str, int], n_symbols: int) -> np.ndarray:
    """Per symbol, the symbol it counts as: a letter its lower case without accents (a reader often drops
    or adds an accent: 'politico' for 'político'), any other itself."""
    import unicodedata

    fold = np.arange(n_symbols)
    for ch, i in index.items():
        if len(ch) != 1:
            continue
        base = unicodedata.normalize("NFD", ch.lower())[0]
        if base != ch and base in index and base.isalpha():
            fold[i] = index[base]
    return fold


def reading_scores(readings: dict[int, tuple[str, bytes]], terms: dict[str, list[str]],
                   item_langs: dict[int, str | None], index: dict[str, int], n_symbols: int,
                   fold: np.ndarray | None = None, nearly: dict[str, dict[str, float]] | None = None) -> dict[int, float]:
    """Per item, the best of its script's terms' CTC log-likelihood under its reading, mapped to [0, 1]
    (LL_FLOOR -> 0, certain -> 1). Script, not language: a Latin item is compared with the English and
    the Spanish terms (an unlabelled word's language is a guess), one of no known script with all. The words
    an image query `nearly` reads as (script -> word -> nats) count as terms that many nats less likely."""
    labs, han, behind = [], [], []
    for lg in LANGS:
        for t, b in [*((t, 0.0) for t in terms.get(lg, [])), *(nearly or {}).get(lg, {}).items()]:
            for lab in term_labels(t, lg, index):
                labs.append(lab)
                han.append(lg == "zh")
                behind.append(b)
    out = {i: 0.0 for i in readings}
    if not labs or not out:
        return out
    fold = case_fold(index, n_symbols) if fold is None else fold
    labs = [fold[np.asarray(lab)].tolist() for lab in labs]  # the terms folded as the readings are
    han, behind = np.array(han), np.array(behind)
    groups: dict[str, list[int]] = {}  # items by the terms they are compared with: one recursion each
    for i in readings:
        lg = item_langs.get(i)
        groups.setdefault("zh" if lg == "zh" else "latin" if lg in ("en", "es") else "any", []).append(i)
    for g, items in groups.items():
        use = np.flatnonzero(han if g == "zh" else ~han if g == "latin" else np.ones_like(han))
        if not len(use):
            continue
        ll = compact_log_likelihoods([readings[i][1] for i in items], [labs[n] for n in use], n_symbols, fold=fold)
        for i, b in zip(items, (ll - behind[use]).max(1)):
            out[i] = float(np.clip(1.0 - b / LL_FLOOR, 0.0, 1.0))
    return out


def fuse(cosines: dict[int, float], reading: dict[int, float], weight: float = READING_WEIGHT) -> list[tuple[int, float]]:
    """Items ranked by cosine + weight x reading score (an item outside the reading shortlist reads 0)."""
    return sorted(((i, c + weight * reading.get(i, 0.0)) for i, c in cosines.items()), key=lambda x: -x[1])
