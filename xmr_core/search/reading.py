"""The engine's reading of images: embeddings, lexicon scores, open readings, recognition, query terms."""

from __future__ import annotations

import numpy as np
import torch

from xmr_core.data.lexicon import HAN, LANGS
from xmr_core.data.preprocess import ImageInput, fit, preprocess, word_ink
from xmr_core.search.exemplars import ExemplarSet
from xmr_core.search.results import QueryInfo, detect_language, validate_query_text

# An image shows a lexicon word when the reading is sure of one and that word is at most LEXICON_MARGIN nats
# less likely than the reader's own best path (960 `val` renders of 320 words outside the lexicon: 0.6% pass,
# of 320 lexicon words 90%), or at most LIST_MARGIN less likely than the word lists' best (open_reading.py).
# Otherwise it is embedded by TEXT_WEIGHT x its word's text embedding + the rest its visual one. The three
# chosen on benchmarks/open_vocab.py (docs/open-vocabulary.md: TEXT_WEIGHT 0.5 / 0.7 / 1, LIST_MARGIN 2 / 4).
LEXICON_MARGIN = 5.0
LIST_MARGIN = 4.0
TEXT_WEIGHT = 0.7


class Reading:
    """What an image shows, for the Engine: its embedding, the lexicon words and the word-list word it reads as."""

    def embed_query(self, image: ImageInput) -> tuple[np.ndarray, np.ndarray]:
        """(model input, embedding) of one query image."""
        x = preprocess(image, self.pre)
        return x, self.embed_images(x[None])[0]

    def look(self, info: QueryInfo) -> np.ndarray | None:
        """An image query's look: the visual encoder's unit embedding of what the model saw (a reading
        model's trained encoder, or the visual tower itself), whatever it is read as; computed when asked
        for (users.py matches marks by it), not on every search."""
        if info.kind != "image" or info.preview is None:
            return None
        return self.look_of(info.preview[None, None])[0]

    def look_of(self, x: np.ndarray) -> np.ndarray:
        """(N, d) unit looks of model inputs (N, 1, H, W), as `look`."""
        return self.model.look(x) if self.reads else self.embed_images(x)

    def concept_scores(self, v: np.ndarray) -> np.ndarray:
        """(3, n_concepts) similarity of an embedding to every concept's anchor in zh, en, es;
        (n, 3, n_concepts) for n embeddings."""
        return np.stack([v @ self.anchors(lang).T for lang in LANGS], axis=-2)

    @property
    def reader(self):
        """The pretrained reader (PP-OCRv6 recognition, from the rapidocr package), loaded once."""
        if self._reader is None:
            from xmr_core.model.reader import Reader

            with self._lock:
                self._reader = self._reader or (self.model.reader if self.reads else Reader(threads=torch.get_num_threads()))
        return self._reader

    def read_inks(self, inks: list[np.ndarray]) -> np.ndarray:
        """(N, 3, n_concepts): the reader's CTC log-likelihood of every lexicon concept's word in each
        language (best letter case), for ink crops. Says which word, and so which script, an image shows."""
        if self.reads:
            return self.model.read(np.stack([fit(ink, self.pre)[None] for ink in inks]))
        if self._table is None:  # set_lexicon drops it
            from xmr_core.model.ctc import WordTable

            self._table = WordTable.build(self.lexicon, self.reader.index)
        return np.stack([self._table.by_concept(self._table.score(p)) for p in self.reader.posteriors(inks)])

    def _embed_read(self, x: np.ndarray, batch: int = 128, stored: bool = True, raw: bool = False):
        """A reading model's embeddings, `read_inks` scores, readings (index text, compact posteriors:
        what the store keeps) and open readings of model inputs, each crop read once. A crop that shows a
        lexicon word is read against the word lists too when it is to be `stored` (its index text's other
        words), not when it is a query. With `raw`, a fifth list: per crop its (posteriors, greedy text,
        reading against the word lists or None where none was made), so that a caller need not read it again.

        A crop the reader does not find a lexicon word in (`_lexical`) is read against the word lists
        (open_reading.py) and embedded by that word's text (the text tower, as a typed word is), mixed
        with its visual embedding by TEXT_WEIGHT; its open reading is None otherwise."""
        from xmr_core.model.ctc import compact
        from xmr_core.search.reading_search import index_text

        vecs, scores, readings, opens, raws = [], [], [], [], []
        for i in range(0, len(x), batch):
            s, posts = self.model.read(x[i:i + batch], posteriors=True)
            v = self.model.combine(self.model.encode_signals(x[i:i + batch], s))
            greedy = [self.reader.decode(p).text for p in posts]
            lexical = self._lexical(s, posts)
            opened = [None if self.word_reader is None or (lex and not stored) else self.word_reader.read(p, g)
                      for p, g, lex in zip(posts, greedy, lexical)]
            got = [None if lex else o for o, lex in zip(opened, lexical)]
            # outside the lexicon: a word with letters, which the lexicon's best is well below
            got = [o if o is not None and any(ch.isalpha() for ch in o.word)
                   and not (o.listed and sc.max() >= o.log_likelihood - LIST_MARGIN) else None
                   for o, sc in zip(got, s)]
            rows = [n for n, o in enumerate(got) if o is not None]
            if rows:
                t = self.embed_text([got[n].word for n in rows])
                mix = TEXT_WEIGHT * t + (1 - TEXT_WEIGHT) * v[rows]
                v[rows] = mix / np.linalg.norm(mix, axis=1, keepdims=True)
            vecs.append(v)
            scores.append(s)
            opens += got
            readings += [(index_text(g, o, r), compact(p)) for g, o, r, p in zip(greedy, got, opened, posts)]
            if raw:
                raws += zip(posts, greedy, opened)
        out = np.concatenate(vecs), np.concatenate(scores), readings, opens
        return (*out, raws) if raw else out

    def _lexical(self, scores: np.ndarray, posts: list[np.ndarray]) -> np.ndarray:
        """Per crop, whether it shows a lexicon word: the reading is sure of one (`visual_below`), and
        that word is about as likely as the reader's own best path (a word outside the lexicon also
        makes one lexicon word far likelier than the rest, each of them unlikely)."""
        from xmr_core.model.ctc import path_log_likelihood

        sure = self.model.weights(scores, 1.0).max(1) >= self.model.rcfg.visual_below
        path = np.array([path_log_likelihood(p) for p in posts])
        return sure & (scores.max((1, 2)) >= path - LEXICON_MARGIN)

    @property
    def word_reader(self):
        """Constrained reading against the word lists (open_reading.py), or None without dictionaries."""
        from xmr_core.data.dictionary import table_path

        if self._word_reader is None and table_path().exists():
            from xmr_core.model.open_reading import WordListReader

            with self._lock:
                self._word_reader = self._word_reader or WordListReader.from_table(self.reader.index)
        return self._word_reader

    def _script_of(self, scores: np.ndarray, text: str, open_reading=None) -> str:
        """The language an image is written in, from its reading: the lexicon word's when it shows one,
        else the word list whose word the reader finds likeliest (open_reading.py); without lists,
        Chinese for Han characters and the lexicon's best guess otherwise (a Latin one for a Latin reading)."""
        best = LANGS[int(scores.max(-1).argmax())]
        if open_reading is not None:
            return open_reading.lang
        if HAN.search(text):
            return "zh"
        return "en" if best == "zh" and any(ch.isalpha() for ch in text) else best

    def embed_and_read(self, image: ImageInput) -> tuple[np.ndarray, np.ndarray]:
        """One image's embedding and its `read_inks` scores (3, n_concepts): decoded once, and read once
        by a reading model."""
        ink = word_ink(image)
        x = fit(ink, self.pre)[None, None]  # = preprocess(image, self.pre)[None]
        if self.reads:
            v, scores, _, _ = self._embed_read(x, stored=False)
            return v[0], scores[0]
        return self.embed_images(x)[0], self.read_inks([ink])[0]

    def recognize(self, image: ImageInput, top: int = 5,
                  exemplars: ExemplarSet | None = None) -> dict[str, list[tuple[str, str, float]]]:
        """What the image says: the top lexicon words per language as (concept_id, word, score); with a
        user's `exemplars` (exemplars.py), from the embedding fused with the samples it looks like."""
        x, v = self.embed_query(image)
        if exemplars is not None and len(exemplars):
            v = exemplars.fuse(v, self.look_of(x[None])[0])[0]
        return self._recognize_vector(v, top)

    def read_word(self, image: ImageInput):
        """What an image says when it is not a lexicon word: its reading against the word lists
        (open_reading.OpenReading) and that word's terms in each script; (None, {}) for a lexicon word, or
        without a reading model or dictionaries."""
        if not self.reads:
            return None, {}
        opens = self._embed_read(preprocess(image, self.pre)[None], stored=False)[3]
        if opens[0] is None:
            return None, {}
        return opens[0], self.query_terms(opens[0].word, lang=opens[0].lang)

    def _recognize_vector(self, v: np.ndarray, top: int) -> dict[str, list[tuple[str, str, float]]]:
        out = {}
        for lang, s in zip(LANGS, self.concept_scores(v)):
            best = np.argsort(-s)[:top]
            out[lang] = [(self.lexicon.concepts[i].concept_id, self.lexicon.concepts[i].word(lang), float(s[i]))
                         for i in best]
        return out

    @property
    def translator(self):
        """Translations of any word (translate.py), or None when the dictionaries are not fetched. It shares
        the text tower's frozen USE-m3 base (one pass serves the translation and the text embedding of a new
        word), and the tower takes the known words' frozen features from the file setup made."""
        from xmr_core.data.dictionary import table_path

        if self._translator is None and table_path().exists():
            from xmr_core.data.translate import Translator
            from xmr_core.model.text import UseTextTower

            with self._lock:
                if self._translator is None:
                    tower = getattr(getattr(self.model, "base", self.model), "text", None)
                    self._translator = (Translator.sharing(tower, self.lexicon) if isinstance(tower, UseTextTower)
                                        else Translator(self.lexicon))
        return self._translator

    def query_terms(self, text: str, per_script: int = 2, lang: str | None = None) -> dict[str, list[str]]:
        """The words a typed query searches for in each script: the lexicon's triple for a lexicon word,
        else its translations (translate.py); just the word itself when no dictionary is at hand."""
        t = validate_query_text(text)
        if self.translator is None:
            lang = detect_language(t, self.lexicon)
            return {lang if lang in LANGS else "en": [t]}
        tr = self.translator.translate(t, lang=lang, k=per_script)
        return {lg: [w for w, _, _ in tr.terms[lg]] for lg in LANGS if tr.terms.get(lg)}
