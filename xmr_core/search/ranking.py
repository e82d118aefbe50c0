"""The engine's search: semantic neighbours fused with reading scores, relevance feedback, filters."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

import numpy as np

from xmr_core.data.lexicon import LANGS
from xmr_core.data.preprocess import ImageInput, preprocess
from xmr_core.search.exemplars import ExemplarSet
from xmr_core.search.results import Hit, QueryInfo, detect_language, validate_query_text
from xmr_core.store.readings import shown_reading

# a search by words (typed, or an image read as a word outside the lexicon) whose best fused score is below
# this found nothing that matches well (chosen by benchmarks/open_vocab.py: docs/open-vocabulary.md)
NO_MATCH_BELOW = 1.60

# an image query read as a word is searched by reading as the other listed words it nearly reads as too, those at
# most NEARLY_WITHIN nats less likely than its word, each scored that much lower (docs/open-vocabulary.md)
NEARLY_WITHIN = 8.0

# an image query taken for a lexicon word whose nearest item by meaning is less similar than this (its word is
# not in the collection, or it was taken for a look-alike) is read against the word lists as well, and searched
# by reading as the word it reads as, as an image read outside the lexicon is (docs/open-vocabulary.md,
# session 39; 0: never)
READ_WHEN_WEAK = 0.7

# Relevance feedback (Rocchio): the query vector plus ROCCHIO_RIGHT x the mean of the hits marked right, minus
# ROCCHIO_WRONG x the mean of those marked wrong (benchmarks/feedback.py)
ROCCHIO_RIGHT, ROCCHIO_WRONG = 0.75, 0.25


class Ranking:
    """Search for the Engine: by image or by words, by meaning and by reading, re-ranked by feedback."""

    def _nearest(self, q: np.ndarray, k: int, allowed: np.ndarray | None, where: dict | None):
        """(scores, ids) of the index's k nearest items to q: the filter pushed into the backend's search
        where it can (`where`: Milvus), else as the allowed ids (FAISS)."""
        index = self._searchable()
        if index.pushes_filters:
            return index.search(q[None], k, where=where)
        return index.search(q[None], k, allowed=allowed)

    def _terms_vector(self, terms: dict[str, list[str]]) -> np.ndarray:
        """The semantic query of a search by words: the unit sum of each script's first term's anchor."""
        q = self.embed_text([ws[0] for lg, ws in terms.items() if ws]).sum(0)
        return (q / np.linalg.norm(q)).astype(np.float32)

    def _rocchio(self, q: np.ndarray, right: list[int], wrong: list[int]) -> np.ndarray:
        """Rocchio's relevance feedback on the query vector: towards the hits marked right, away from
        those marked wrong (as the index holds them), unit length again."""
        out = q.astype(np.float32).copy()
        for ids, w in ((right, ROCCHIO_RIGHT), (wrong, -ROCCHIO_WRONG)):
            got, vecs = self.store.embeddings(self.model_id, ids) if ids else (np.zeros(0, np.int64), None)
            if len(got):
                out += w * self._index_vectors(got, vecs, self.store.labels(got.tolist())).mean(0)
        n = float(np.linalg.norm(out))
        return out / n if n > 0 else q

    def _marked_right(self, q: np.ndarray, ids: list[int], languages: list[str],
                      collection: str | None) -> list[tuple[int, float]]:
        """Items marked right that the search did not return, with their cosine to the query, where they pass
        its script and collection filters."""
        meta = self.store.scripts_and_collections(ids) if ids else {}
        keep = [i for i in ids if i in meta and (set(languages) == set(LANGS) or meta[i]["lang"] in languages)
                and (collection is None or meta[i]["collection"] == collection)]
        got, vecs = self.store.embeddings(self.model_id, keep) if keep else (np.zeros(0, np.int64), None)
        if not len(got):
            return []
        v = self._index_vectors(got, vecs, self.store.labels(got.tolist()))
        return [(int(i), float(q @ x)) for i, x in zip(got, v)]

    def _search_terms(self, terms: dict[str, list[str]], k: int, allowed: np.ndarray | None,
                      q: np.ndarray | None = None, where: dict | None = None,
                      nearly: dict[str, dict[str, float]] | None = None) -> list[tuple[int, float]]:
        """Items ranked by the semantic cosine (to the terms' anchors, or to the query image's embedding
        `q`) fused with their reading scores (as the terms, or as the words an image `nearly` reads as)."""
        from xmr_core.search.reading_search import SHORTLIST, case_fold, fuse, reading_scores

        q = self._terms_vector(terms) if q is None else q
        sc, ids = self._nearest(q, max(100, 5 * k), allowed, where)
        cos = {int(i): float(s) for s, i in zip(sc[0], ids[0]) if i >= 0}
        words = [w for ws in terms.values() for w in ws] + [w for ws in (nearly or {}).values() for w in ws]
        cand = self.store.reading_candidates(self.model_id, words, limit=SHORTLIST)
        if allowed is not None:
            ok = set(allowed.tolist())
            cand = [i for i in cand if i in ok]
        extra = [i for i in cand if i not in cos]
        if extra:
            mids, mvecs = self.store.embeddings(self.model_id, extra)
            if len(mids):
                for i, v in zip(mids, self._index_vectors(mids, mvecs, self.store.labels(mids.tolist()))):
                    cos[int(i)] = float(v @ q)
        # only the shortlist is re-scored: an item sharing no trigram or character with any term reads 0
        langs = self.store.langs(cand)
        if self._fold is None:
            self._fold = case_fold(self.reader.index, len(self.reader.symbols))
        read = reading_scores(self.store.readings(self.model_id, cand), terms, langs, self.reader.index,
                              len(self.reader.symbols), self._fold, nearly)
        return fuse(cos, read)[:k]

    @staticmethod
    def _where(languages: list[str], collection: str | None) -> dict:
        """A search's script and collection filters as the backends that push filters take them."""
        return {**({"lang": languages} if set(languages) != set(LANGS) else {}),
                **({"collection": collection} if collection else {})}

    def _read_when_weak(self, raw: tuple, q: np.ndarray, info: QueryInfo, languages: list[str],
                        collection: str | None) -> None:
        """An image query taken for a lexicon word (searched by its embedding alone), whose nearest item passing
        the search's filters is less similar than READ_WHEN_WEAK: read against the word lists, it is searched
        by reading as that word and the words it nearly reads as too (`info.terms`, `info.nearly`), as an
        image read outside the lexicon is. A query whose lexicon word the collection holds is left as it was.
        `raw`: the query's (posteriors, greedy text, reading against the word lists or None) from `_embed_read`."""
        if READ_WHEN_WEAK <= 0 or self.word_reader is None:
            return
        with self._lock:
            allowed = None if self.index_pushes_filters else self._allowed_ids(languages, collection)
            s, i = self._nearest(q, 1, allowed, self._where(languages, collection))
        if len(i[0]) and i[0][0] >= 0 and float(s[0][0]) >= READ_WHEN_WEAK:
            return
        posts, greedy, read = raw
        read = read if read is not None else self.word_reader.read(posts, greedy)  # read once, as _embed_read would
        if not any(ch.isalpha() for ch in read.word):
            return
        info.text, info.terms = read.word, self.query_terms(read.word, lang=read.lang)
        near = {w: b for w, b in zip(read.others, read.behind) if b <= NEARLY_WITHIN}
        info.nearly = {read.lang: near} if near else {}

    def search(self, image: ImageInput | None = None, text: str | None = None, k: int = 10,
               languages: Iterable[str] = LANGS, collection: str | None = None,
               terms: dict[str, list[str]] | None = None, per_script: bool = False,
               feedback: dict[int, bool] | Callable[[QueryInfo], dict[int, bool]] | None = None,
               exemplars: ExemplarSet | None = None) -> tuple[list[Hit], QueryInfo]:
        """Items nearest to an image or a typed word, restricted to `languages` and a collection: the
        best `k` of all, or with `per_script` the best `k` of each script (best first either way).

        A typed word is searched, with a reading model, as its words in the three scripts (`terms`, or
        `query_terms`: shown in `QueryInfo.terms`, editable by the caller) by meaning and by reading.
        `feedback` (item id -> marked right) re-ranks it: the query moves towards the hits marked right and
        away from those marked wrong (Rocchio); those marked wrong are left out, those marked right lead.
        A function in its place gives the marks from what the query was read as (its QueryInfo), before
        the ranking: a user's standing marks for that query (users.search_as), in one search.
        An image query read as a word outside the lexicon is searched by reading as that word too, and so is
        one taken for a lexicon word that nothing in the collection is near (`_read_when_weak`).
        An image query that looks like samples of a user's `exemplars` starts from its embedding fused with
        their concepts' anchors (exemplars.py), recognised and searched as those concepts' image (words it
        was read as outside the lexicon are dropped); `QueryInfo.exemplars` names them."""
        if (image is None) == (text is None):
            raise ValueError("search takes an image or a text, not both")
        languages = [lg for lg in languages]
        if not set(languages) <= set(LANGS) or not languages:
            raise ValueError(f"languages must be a non-empty subset of {LANGS}")
        if not 1 <= int(k) <= 1000:
            raise ValueError("k must be between 1 and 1000")
        if image is not None:
            if self.reads:  # read once: the embedding, and the words to search for when no lexicon word fits
                x = preprocess(image, self.pre)
                v, scores, readings, opens, raws = self._embed_read(x[None], stored=False, raw=True)
                q = v[0]
                info = QueryInfo("image", recognized=self._recognize_vector(q, 5), preview=x[0],
                                 text=opens[0].word if opens[0] else shown_reading(readings[0][0]))
                if opens[0] is not None:
                    info.terms = self.query_terms(opens[0].word, lang=opens[0].lang)
                    near = {w: b for w, b in zip(opens[0].others, opens[0].behind) if b <= NEARLY_WITHIN}
                    info.nearly = {opens[0].lang: near} if near else {}
            else:
                x, q = self.embed_query(image)
                info = QueryInfo("image", recognized=self._recognize_vector(q, 5), preview=x[0])
            if exemplars is not None and len(exemplars):
                q, info.exemplars = exemplars.fuse(q, self.look(info))
                if info.exemplars:  # the user's word: recognised and searched as their samples' concepts
                    info.recognized, info.terms, info.nearly = self._recognize_vector(q, 5), {}, {}
        else:
            t = validate_query_text(text)
            info = QueryInfo("text", text=t, detected_lang=detect_language(t, self.lexicon))
            if self.reads:
                terms = {lg: [w for w in (validate_query_text(x) for x in ws)] for lg, ws in terms.items()
                         if lg in LANGS and ws} if terms else self.query_terms(t)
                if not terms:
                    raise ValueError("no term to search for: give at least one word")
                info.terms = terms
            else:
                q = self.embed_text([t])[0]
        if collection is not None:
            self.check_collection(collection)
        self.refresh()
        if image is not None and self.reads and not info.terms and not info.exemplars:
            self._read_when_weak(raws[0], q, info, languages, collection)
        if callable(feedback):
            feedback = feedback(info)
        right = [int(i) for i, ok in (feedback or {}).items() if ok]
        wrong = {int(i) for i, ok in (feedback or {}).items() if not ok}
        if right or wrong:
            if image is None and info.terms:
                q = self._terms_vector(info.terms)
            q = self._rocchio(q, right, sorted(wrong))
            info.feedback, info.marks = (len(right), len(wrong)), {int(i): bool(ok) for i, ok in feedback.items()}
        by_words = bool(info.terms) and (image is not None or bool(right or wrong))  # the query vector is q
        ranked: list[tuple[int, float]] = []
        with self._lock:
            for group in ([[lg] for lg in languages] if per_script else [languages]):
                # the allowed ids: FAISS's filter, and the reading candidates' (Milvus filters by `where` itself)
                allowed = self._allowed_ids(group, collection) if info.terms or not self.index_pushes_filters else None
                where = self._where(group, collection)
                if info.terms:
                    ranked += self._search_terms(info.terms, int(k) + len(wrong), allowed, q if by_words else None,
                                                 where, info.nearly)
                else:
                    s, i = self._nearest(q, int(k) + len(wrong), allowed, where)
                    ranked += [(int(a), float(b)) for a, b in zip(i[0], s[0]) if a >= 0]
        if right:  # marked right but not among those found (a narrower later search): they lead all the same
            ranked += self._marked_right(q, [i for i in right if i not in {r[0] for r in ranked}], languages,
                                         collection)
        if per_script:
            ranked.sort(key=lambda r: -r[1])
        if right or wrong:  # marked wrong: gone; marked right: first
            ranked = [r for r in ranked if r[0] not in wrong]
            ranked = [r for r in ranked if r[0] in right] + [r for r in ranked if r[0] not in right]
            if per_script:  # k of each script, as without feedback
                langs, seen, keep = self.store.langs([i for i, _ in ranked]), Counter(), []
                for r in ranked:
                    seen[langs.get(r[0])] += 1
                    if seen[langs.get(r[0])] <= int(k):
                        keep.append(r)
                ranked = keep
            else:
                ranked = ranked[:int(k)]
        scores, ids = np.array([[s for _, s in ranked]]), np.array([[i for i, _ in ranked]], np.int64)
        info.weak = bool(info.terms) and (not len(scores[0]) or float(scores[0][0]) < NO_MATCH_BELOW)
        items = self.store.get_items([int(i) for i in ids[0] if i >= 0])
        hits = []
        for s, i in zip(scores[0], ids[0]):
            it = items.get(int(i))
            if it is None:
                continue
            words = None
            if it.concept_id and it.concept_id in self.lexicon:
                c = self.lexicon.get(it.concept_id)
                words = {lang: c.word(lang) for lang in LANGS}
            hits.append(Hit(it.id, float(s), it.path, it.collection, it.concept_id, it.lang, words, it.bbox,
                            it.page_sha256, missing=not it.path.exists(), source=it.source))
        return hits, info
