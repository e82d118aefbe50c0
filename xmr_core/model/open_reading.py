"""Reading a word outside the lexicon: the word list's word the reader finds most likely, and its language.

The reader's greedy reading of a handwritten word is often a letter off: on renders of 320 words outside
the lexicon in the held-out `val` fonts it is exact for 94% in Chinese and 78% in Latin script. Constrained
to each language's word list (wordfreq's 30,000 most frequent, dictionary.py), the word with the best CTC
likelihood under the same posteriors is right for 98% / 92-94%, and the better of the English and
Spanish lists names the language for 98-99% (docs/open-vocabulary.md). A word no list holds keeps its
greedy reading: when the best listed word is far less likely than the greedy path (GREEDY_MARGIN).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xmr_core.data.lexicon import HAN, LANGS
from xmr_core.model.ctc import extend, path_log_likelihood, words_log_likelihood

FLOOR = 1e-3  # a word using a symbol the reader never gives this probability at any step is not scored
LENGTH_WINDOW = 2  # words scored: at most this many symbols longer or shorter than the greedy reading
GREEDY_MARGIN = 8.0  # nats: a listed word this much less likely than the greedy path loses to it
RANK_WEIGHT = 0.1  # a word's prior: -RANK_WEIGHT x log(1 + its frequency rank), nats (Zipf's law)
ALTERNATIVES = 6  # the next most likely listed words kept beside the best, for candidate generation (4 until
# session 39: 6 found two more typed words and three more images outside the lexicon; docs/open-vocabulary.md)


@dataclass(frozen=True)
class OpenReading:
    word: str  # the listed word, or the greedy reading when no listed word comes close
    lang: str
    log_likelihood: float  # of the word (of the greedy path when the greedy reading stands)
    listed: bool
    path: float = 0.0  # the log-likelihood of the reader's greedy path: how much likelier than the word any reading is
    others: tuple[str, ...] = ()  # the next listed words, likeliest first (candidate generation indexes them too)
    behind: tuple[float, ...] = ()  # per other word, how much less likely than the word it is (nats, likelihood x prior)


@dataclass
class _List:
    words: list[str]
    labels: np.ndarray  # (n, L) symbol ids, -1 padded
    length: np.ndarray  # (n,) symbols per word
    ext: np.ndarray  # (n, 2L + 1) extended label sequences
    ext_length: np.ndarray
    prior: np.ndarray  # (n,) log prior of each word from its rank


class WordListReader:
    """Constrained decoding of one crop's posteriors against word lists (lower case: a letter's cases
    count as one symbol, by adding each upper-case letter's probability to its lower case)."""

    def __init__(self, lists: dict[str, list[str]], index: dict[str, int]) -> None:
        self.lists: dict[str, _List] = {}
        for lg, words in lists.items():
            words = [w for w in dict.fromkeys(words) if w and all(ch in index for ch in w)]
            if not words:
                continue
            labs = [[index[ch] for ch in w] for w in words]
            labels = np.full((len(words), max(map(len, labs))), -1, np.int64)
            for n, lab in enumerate(labs):
                labels[n, :len(lab)] = lab
            ext, ext_length = extend(labs)
            prior = -RANK_WEIGHT * np.log1p(np.arange(len(words)))
            self.lists[lg] = _List(words, labels, np.array([len(x) for x in labs]), ext, ext_length, prior)
        pairs = [(i, index[ch.lower()]) for ch, i in index.items()
                 if len(ch) == 1 and ch.lower() != ch and len(ch.lower()) == 1 and ch.lower() in index]
        self.upper, self.lower = (np.array(x, np.int64) for x in zip(*pairs)) if pairs else (np.zeros(0, np.int64),) * 2

    @classmethod
    def from_table(cls, index: dict[str, int]) -> WordListReader:
        """The translation table's word lists (dictionary.py; RuntimeError when it is not built)."""
        from xmr_core.data.dictionary import open_table, ranked_words

        db = open_table()
        try:
            return cls({lg: ranked_words(db, lg) for lg in LANGS}, index)
        finally:
            db.close()

    def ranked(self, posteriors: np.ndarray, lang: str, near: int, n: int = 1) -> list[tuple[str, float, float]]:
        """The list's `n` most likely words of about `near` symbols under (steps, symbols) posteriors (by
        likelihood times prior), each with its log-likelihood and log prior; best first."""
        wl = self.lists.get(lang)
        if wl is None:
            return []
        p = posteriors.astype(np.float64)
        if lang != "zh":
            np.add.at(p, (slice(None), self.lower), p[:, self.upper])
        present = np.append(p.max(0) >= FLOOR, True)  # the last entry answers the -1 padding
        keep = np.flatnonzero(present[wl.labels].all(1) & (np.abs(wl.length - near) <= LENGTH_WINDOW)
                              & (wl.length <= len(p)))
        if not len(keep):
            return []
        ll = words_log_likelihood(p, wl.ext[keep], wl.ext_length[keep])
        order = np.argsort(-(ll + wl.prior[keep]), kind="stable")[:n]
        return [(wl.words[keep[b]], float(ll[b]), float(wl.prior[keep[b]])) for b in order]

    def read(self, posteriors: np.ndarray, greedy: str) -> OpenReading:
        """The word a crop shows and its language: Chinese lists for a Han reading, English and Spanish
        for a Latin one (the more likely wins), all three otherwise."""
        langs = ("zh",) if HAN.search(greedy) else ("en", "es") if any(ch.isalpha() for ch in greedy) else LANGS
        near = max(len(greedy), 1)
        got = sorted(((lg, *w) for lg in langs for w in self.ranked(posteriors, lg, near, ALTERNATIVES + 1)),
                     key=lambda g: -(g[2] + g[3]))
        lang, word, ll, prior = got[0] if got else (langs[0], None, -np.inf, 0.0)
        gap: dict[str, float] = {}
        for g in got[1:]:
            if g[1] != word and g[1] not in gap and len(gap) < ALTERNATIVES:
                gap[g[1]] = float(ll + prior - g[2] - g[3])
        others, behind = tuple(gap), tuple(gap.values())
        path = path_log_likelihood(posteriors)
        if word is None or ll < path - GREEDY_MARGIN:
            return OpenReading(greedy.lower() if lang != "zh" else greedy, lang, path, False, path, others, behind)
        return OpenReading(word, lang, ll, True, path, others, behind)
