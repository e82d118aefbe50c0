"""Constrained recognition: the CTC log-likelihood of given words under a reader's posteriors.

`ctc_log_likelihood` is the exact forward sum over alignments, for many words at once. `WordTable` holds
the candidate words of a lexicon (every concept's word in zh, en, es; Latin words also in Title and UPPER
case) as label arrays, and `WordTable.score` scores one image against all of them, after dropping the
words that use a symbol the reader never gives a probability of `floor` or more at any step (such a
word's likelihood is below floor**1, far below the words that survive).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LATIN_CASES = (str.lower, str.title, str.upper)


def extend(labels: list[list[int]], blank: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The extended sequences (blank, l1, blank, l2, ..., blank) of labels, padded with blanks, and their lengths."""
    S = 2 * max(len(lab) for lab in labels) + 1
    ext = np.full((len(labels), S), blank, np.int64)
    length = np.zeros(len(labels), np.int64)
    for i, lab in enumerate(labels):
        ext[i, 1:2 * len(lab):2] = lab
        length[i] = 2 * len(lab) + 1
    return ext, length


def ctc_log_likelihood(logp: np.ndarray, labels: list[list[int]], blank: int = 0) -> np.ndarray:
    """log P(label | x) under CTC for each label sequence. `logp` is (T, C) log-probabilities of one input."""
    return ctc_forward(logp, *extend(labels, blank), blank)


def ctc_forward(logp: np.ndarray, ext: np.ndarray, length: np.ndarray, blank: int = 0) -> np.ndarray:
    """The CTC forward recursion over extended sequences, all at once, on the columns they use only."""
    valid = np.arange(ext.shape[1])[None] < length[:, None]
    return forward(np.exp(logp)[:, ext] * valid[None], ext, length, blank)[0]


def words_log_likelihood(posteriors: np.ndarray, ext: np.ndarray, length: np.ndarray) -> np.ndarray:
    """(n,) log P(word | crop) of words given as extended sequences (n, S, blank padded) and their
    lengths, under one crop's (steps, symbols) posteriors: the recursion on the symbols they use only."""
    width = int(length.max())  # only as many columns as the longest word needs
    cols, sub = np.unique(ext[:, :width], return_inverse=True)
    sub = sub.reshape(len(ext), width)
    valid = np.arange(width)[None] < length[:, None]
    return forward(np.maximum(posteriors[:, cols], 1e-30)[:, sub] * valid[None], sub, length)[0]


def path_log_likelihood(posteriors: np.ndarray) -> float:
    """log P of the reader's own best path (the most probable symbol at every step)."""
    return float(np.log(np.maximum(posteriors.max(1), 1e-30)).sum())


# steps between rescalings of the forward recursion: an emission that is not 0 is at least float32's smallest
# (1e-45; the compact readings' floor is 1e-12), so four steps leave at least 1e-180 of the largest probability,
# far above float64's smallest (1e-308)
RESCALE = 4


def forward(emit: np.ndarray, ext: np.ndarray, length: np.ndarray, blank: int = 0) -> np.ndarray:
    """log P(label | input) of L extended label sequences (L, S) under (N, T, L, S) or (T, L, S) emission
    probabilities (zero past each sequence's length): the forward recursion in probabilities, rescaled
    every RESCALE steps (logaddexp made it four times slower in logs; rescaling every step cost a
    quarter more). (N, L) out."""
    emit = emit[None] if emit.ndim == 3 else emit
    L, S = ext.shape
    # for s >= 2, 1 where s may be reached from s-2: a label that differs from the one before it
    skip = ((ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])).astype(float)
    alpha = np.zeros(emit.shape[:1] + (L, S))
    alpha[:, :, :2] = emit[:, 0, :, :2]
    scale = np.zeros((len(emit), L))
    a, T = np.empty_like(alpha), emit.shape[1]
    for t in range(1, T):
        a[:] = alpha
        a[:, :, 1:] += alpha[:, :, :-1]
        a[:, :, 2:] += alpha[:, :, :-2] * skip
        np.multiply(a, emit[:, t], out=alpha)
        if t % RESCALE == 0 or t == T - 1:
            c = alpha.max(-1)
            c[c <= 0] = 1.0
            alpha /= c[..., None]
            scale += np.log(c)
    rows = np.arange(L)
    with np.errstate(divide="ignore"):
        return np.log(alpha[:, rows, length - 1] + alpha[:, rows, length - 2]) + scale


# --------------------------------------------------------------------------- compact readings

COMPACT_K = 6  # symbols kept per step (60 `val` renders: the best word stays best for 56 at 4, 58 at 6 to 12)


def compact(posteriors: np.ndarray, k: int = COMPACT_K) -> bytes:
    """A reading in a few hundred bytes: per step the k most probable symbols (uint16) and their
    probabilities (float16); header: steps (uint16), k (uint8)."""
    T, V = posteriors.shape
    k = min(k, V)
    top = np.argpartition(-posteriors, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(posteriors, top, 1), axis=1)
    top = np.take_along_axis(top, order, 1)
    probs = np.take_along_axis(posteriors, top, 1)
    return (np.array([T], "<u2").tobytes() + bytes([k]) + top.astype("<u2").tobytes()
            + probs.astype("<f2").tobytes())


def expand(blob: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(steps, k) symbol ids and probabilities of a compact reading."""
    T, k = int(np.frombuffer(blob[:2], "<u2")[0]), blob[2]
    ids = np.frombuffer(blob[3:3 + 2 * T * k], "<u2").reshape(T, k).astype(np.int64)
    probs = np.frombuffer(blob[3 + 2 * T * k:3 + 4 * T * k], "<f2").reshape(T, k).astype(np.float64)
    return ids, probs


def compact_log_likelihood(blob: bytes, labels: list[list[int]], n_symbols: int, blank: int = 0) -> np.ndarray:
    """CTC log-likelihood of label sequences under a compact reading: a symbol kept at a step has its
    stored probability, any other an equal share of what the kept ones leave."""
    return compact_log_likelihoods([blob], labels, n_symbols, blank)[0]


def compact_log_likelihoods(blobs: list[bytes], labels: list[list[int]], n_symbols: int, blank: int = 0,
                            fold: np.ndarray | None = None) -> np.ndarray:
    """(items, labels) CTC log-likelihoods of label sequences under many compact readings at once: the
    readings padded to the longest with steps that are surely blank (which leaves each likelihood as it
    is), one forward recursion over items x labels. `fold` maps each symbol to the one it counts as (an
    UPPER letter to its lower case: one lowercase label then scores every letter case)."""
    cols = np.unique(np.concatenate([[blank], *[np.asarray(lab, np.int64) for lab in labels if lab]]))
    remap = {int(c): n for n, c in enumerate(cols)}
    b = remap[blank]
    reads = [expand(x) for x in blobs]
    T, k = max(len(i) for i, _ in reads), reads[0][0].shape[1]
    ids = np.full((len(reads), T, k), -1, np.int64)
    probs = np.zeros((len(reads), T, k))
    for n, (i, q) in enumerate(reads):
        ids[n, :len(i)], probs[n, :len(i)] = i, q
    if fold is not None:
        ids = np.where(ids >= 0, fold[np.maximum(ids, 0)], -1)
    rest = np.maximum(1.0 - probs.sum(2), 1e-6) / max(n_symbols - k, 1)  # (N, T)
    hit = ids[..., None] == cols  # (N, T, k, C)
    p = np.where(hit.any(2), (probs[..., None] * hit).sum(2), rest[..., None])
    ext, length = extend([[remap[int(s)] for s in lab] or [b] for lab in labels], b)
    p = np.maximum(p, 1e-12)
    for n, (i, _) in enumerate(reads):  # padding: surely blank, nothing else possible
        p[n, len(i):] = 0.0
        p[n, len(i):, b] = 1.0
    valid = np.arange(ext.shape[1])[None] < length[:, None]
    return forward(p[:, :, ext] * valid[None, None], ext, length, b)  # (N, T, L, S) emissions


def greedy_text(blob: bytes, symbols: list[str]) -> str:
    """The best path of a compact reading, repeats merged, blanks dropped."""
    best, out, prev = expand(blob)[0][:, 0], [], 0
    for s in best:
        if s != prev and s != 0:
            out.append(symbols[s])
        prev = s
    return "".join(out)


@dataclass
class WordTable:
    """Candidate words with the concept and language each spells, as a padded label matrix."""

    words: list[str]
    concept: np.ndarray  # (n,) index of the concept in the lexicon
    lang: np.ndarray  # (n,) index into LANGS
    labels: np.ndarray  # (n, L) symbol indices, -1 padded
    readable: np.ndarray  # (n,) every symbol known to the reader
    n_concepts: int
    ext: np.ndarray  # (n, 2L + 1) extended label sequences (words_log_likelihood)
    length: np.ndarray  # (n,) their lengths

    @classmethod
    def build(cls, lexicon, symbol_index: dict[str, int]) -> WordTable:
        from xmr_core.data.lexicon import LANGS

        words, concept, lang = [], [], []
        for ci, c in enumerate(lexicon.concepts):
            for li, lg in enumerate(LANGS):
                w = c.word(lg)
                for v in dict.fromkeys([w] if lg == "zh" else [f(w) for f in LATIN_CASES]):
                    words.append(v)
                    concept.append(ci)
                    lang.append(li)
        ids = [[symbol_index.get(ch) for ch in w] for w in words]
        L = max(len(w) for w in words)
        labels = np.full((len(words), L), -1, np.int64)
        readable = np.zeros(len(words), bool)
        for n, row in enumerate(ids):
            if row and None not in row:
                labels[n, :len(row)] = row
                readable[n] = True
        ext, length = extend([row[row >= 0].tolist() or [0] for row in labels])
        return cls(words, np.array(concept), np.array(lang), labels, readable, len(lexicon), ext, length)

    def score(self, posteriors: np.ndarray, floor: float = 1e-3) -> np.ndarray:
        """(n,) CTC log-likelihood of every word under one image's (steps, symbols) posteriors;
        -inf for words pruned or unreadable."""
        present = np.append(posteriors.max(0) >= floor, True)  # the last entry answers the -1 padding
        keep = np.nonzero(self.readable & present[self.labels].all(1))[0]
        if not len(keep):  # nothing fits: score every readable word
            keep = np.nonzero(self.readable)[0]
        out = np.full(len(self.words), -np.inf)
        out[keep] = words_log_likelihood(posteriors, self.ext[keep], self.length[keep])
        return out

    def by_concept(self, scores: np.ndarray) -> np.ndarray:
        """(3, n_concepts): per language, the best variant's log-likelihood of each concept's word."""
        out = np.full((3, self.n_concepts), -np.inf)
        np.maximum.at(out, (self.lang, self.concept), scores)
        return out
