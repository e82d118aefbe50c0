"""PHOC spelling targets (Almazan et al. 2014; PHOCNet, Sudholt & Fink 2016) for an auxiliary loss.

A word's PHOC marks, for each level L and each of its L equal regions, which characters occupy that
region: character i of n spans [i/n, (i+1)/n] and counts in a region when at least half of it lies
there. Trained as attributes from the visual trunk, it gives the CNN letter-level supervision shared by
all words (a whole-word contrastive loss sees each spelling only as one class). The head is dropped
after training; the model directory never holds it.
"""

from __future__ import annotations

import numpy as np

from xmr_core.data.lexicon import Lexicon

LATIN_LEVELS = (1, 2, 3, 4, 5)
HAN_LEVELS = (1, 2)


def phoc(word: str, alphabet: dict[str, int], levels: tuple[int, ...]) -> np.ndarray:
    """Binary PHOC of `word` over `alphabet` (char -> column); characters outside it are skipped."""
    out = np.zeros((sum(levels), len(alphabet)), np.float32)
    n = len(word)
    row = 0
    for L in levels:
        for j in range(L):
            lo, hi = j / L, (j + 1) / L
            for i, ch in enumerate(word):
                a, b = i / n, (i + 1) / n
                if ch in alphabet and (min(b, hi) - max(a, lo)) * n >= 0.5 - 1e-9:
                    out[row + j, alphabet[ch]] = 1.0
        row += L
    return out.reshape(-1)


def lexicon_phoc(lexicon: Lexicon, langs: tuple[str, ...]) -> np.ndarray:
    """PHOC of every word form, rows in the trainer's order (concept-major, then `langs`): Latin words
    fill the first block, Chinese words the second, so the two scripts never share an attribute."""
    words = {lang: [c.word(lang).lower() for c in lexicon] for lang in langs}
    latin = sorted({ch for lang in langs if lang != "zh" for w in words[lang] for ch in w})
    han = sorted({ch for w in words.get("zh", []) for ch in w})
    a_lat, a_han = {c: i for i, c in enumerate(latin)}, {c: i for i, c in enumerate(han)}
    d_lat, d_han = sum(LATIN_LEVELS) * len(latin), sum(HAN_LEVELS) * len(han)
    rows = []
    for k in range(len(lexicon)):
        for lang in langs:
            v = np.zeros(d_lat + d_han, np.float32)
            if lang == "zh":
                v[d_lat:] = phoc(words[lang][k], a_han, HAN_LEVELS)
            else:
                v[:d_lat] = phoc(words[lang][k], a_lat, LATIN_LEVELS)
            rows.append(v)
    return np.stack(rows)
