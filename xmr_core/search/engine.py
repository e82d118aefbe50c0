"""The engine: the one facade the app and the CLI use for search, recognition and collections."""

from __future__ import annotations

import fcntl
import io
import logging
import threading
import unicodedata
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

import numpy as np
import torch
from PIL import Image

from xmr_core.model.checkpoint import load_engine_model
from xmr_core.model.fastpath import load_fast_path
from xmr_core.search.fusion import FusionConfig, fuse
from xmr_core.store.index import IndexConfig, VectorIndex, build_index, index_path, open_index, vector_uri
from xmr_core.data.lexicon import HAN, LANGS, Concept, Lexicon, is_han, normalize_word
from xmr_core.data.paths import data_dir as default_data_dir
from xmr_core.data.preprocess import WORK_SIDE, ImageInput, fit, open_image, preprocess, to_gray, word_ink
from xmr_core.store.registry import active_model_dir, model_id
from xmr_core.store.database import Item, Store

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)
# a search by words (typed, or an image read as a word outside the lexicon) whose best fused score is below
# this found nothing that matches well (chosen by benchmarks/open_vocab.py: docs/open-vocabulary.md)
NO_MATCH_BELOW = 1.10
# An image shows a lexicon word when the reading is sure of one and that word is at most LEXICON_MARGIN nats
# less likely than the reader's own best path (960 `val` renders of 320 words outside the lexicon: 0.6% pass,
# of 320 lexicon words 90%), or at most LIST_MARGIN less likely than the word lists' best (open_reading.py).
# Otherwise it is embedded by TEXT_WEIGHT x its word's text embedding + the rest its visual one. The three
# chosen on benchmarks/open_vocab.py (docs/open-vocabulary.md: TEXT_WEIGHT 0.5 / 0.7 / 1, LIST_MARGIN 2 / 4).
LEXICON_MARGIN = 5.0
LIST_MARGIN = 4.0
TEXT_WEIGHT = 0.7

# Relevance feedback (Rocchio): the query vector plus ROCCHIO_RIGHT x the mean of the hits marked right, minus
# ROCCHIO_WRONG x the mean of those marked wrong (benchmarks/feedback.py)
ROCCHIO_RIGHT, ROCCHIO_WRONG = 0.75, 0.25

# Attention fusion for labelled items: on, as measured by benchmarks/fusion.py (README, Engine).
DEFAULT_FUSION: FusionConfig | None = FusionConfig(beta=0.25)
MAX_QUERY_CHARS = 200
Progress = Callable[[int, int, str], None]


@dataclass
class Hit:
    item_id: int
    score: float
    path: Path
    collection: str
    concept_id: str | None
    lang: str | None
    words: dict[str, str] | None  # the concept's zh/en/es words, when labelled
    bbox: tuple[int, int, int, int] | None
    page_sha256: str
    missing: bool = False  # the image file is gone from the data folder (`xmr doctor` finds these)
    source: str = ""  # where the image came from (a file name, or a page's name and the word's box)


@dataclass
class QueryInfo:
    kind: str  # 'image' or 'text'
    text: str = ""
    detected_lang: str = ""  # typed queries: zh, en, es, or 'other'
    recognized: dict[str, list[tuple[str, str, float]]] = field(default_factory=dict)
    preview: np.ndarray | None = None  # what the model sees (image queries)
    terms: dict[str, list[str]] = field(default_factory=dict)  # typed queries: the words searched per script
    weak: bool = False  # the best hit scores below NO_MATCH_BELOW: nothing in the collection matches well
    feedback: tuple[int, int] = (0, 0)  # hits marked right and wrong that re-ranked this search (Rocchio)
    marks: dict[int, bool] = field(default_factory=dict)  # the feedback (item id -> right) it was re-ranked with


@dataclass
class AddReport:
    added: list[int] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # source -> reason


def detect_language(text: str, lexicon: Lexicon) -> str:
    """zh / en / es for a typed word (lexicon words first, then script and Spanish letters), else 'other'."""
    t = normalize_word(text)
    for c in lexicon.lookup(t):
        for lang in LANGS:
            if normalize_word(c.word(lang)) == t:
                return lang
    if any(is_han(ch) for ch in t):
        return "zh"
    if any(ch in "áéíóúüñ¿¡" for ch in t):
        return "es"
    if t.isascii() and any(ch.isalpha() for ch in t):
        return "en"
    return "other"


def validate_query_text(text: str) -> str:
    t = unicodedata.normalize("NFC", text or "").strip()
    if not t:
        raise ValueError("type a word to search for")
    if len(t) > MAX_QUERY_CHARS:
        raise ValueError(f"a query is a word or short phrase: at most {MAX_QUERY_CHARS} characters")
    if not any(ch.isalpha() for ch in t):
        raise ValueError("the query has no letters or characters to search for")
    return t


class Engine:
    """Model + store + index for one data folder. Thread-safe for searches; writes are serialised, also
    across processes: the index is changed and saved only under a file lock, after catching up by id
    with what the store holds (`_sync_index`), so any interleaving of writers leaves it exact, and a
    long-running engine picks up what other processes added before it answers a query."""

    def __init__(self, data: Path | str | None = None, model_dir: Path | str | None = None,
                 index_cfg: IndexConfig | None = None, progress: Progress | None = None,
                 fusion: FusionConfig | None = DEFAULT_FUSION, fast_path: bool = True,
                 vector: str | None = None) -> None:
        self.store = Store(data or default_data_dir())
        # the vector backend: FAISS in the data folder, or Milvus (`vector` or XMR_VECTOR_URI; index.py)
        self.vector_uri = vector_uri(self.store.root, vector)
        self.model_dir = Path(model_dir) if model_dir else active_model_dir(self.store)
        self.model, base_lexicon, self.model_config = load_engine_model(self.model_dir, torch.get_num_threads())
        self.reads = "reading" in self.model_config  # the visual tower stands on the pretrained reader
        # the ONNX (INT8 or FP32) visual encoder the model chose (fastpath.py); INT8 embeddings are kept
        # apart from FP32 ones, so the id names that path
        fast = load_fast_path(self.model_dir, torch.get_num_threads()) if fast_path and not self.reads else None
        self.fast_path, self.fast = fast if fast else ("torch", None)
        self.model_id = model_id(self.model_dir) + ("-int8" if self.fast_path == "int8" else "")
        # a fine-tuned model's lexicon already holds the user concepts it was trained with
        self.set_lexicon(base_lexicon.with_concepts(
            Concept(c["concept_id"], c["zh"], c["en"], c["es"], "user") for c in self.store.list_concepts()
            if c["concept_id"] not in base_lexicon))
        self.pre = self.model.cfg.preprocess
        self.index_cfg = index_cfg or IndexConfig()
        self.fusion = fusion  # None: the index holds image embeddings only
        self._lock = threading.RLock()
        self._reader = None  # the pretrained reader (model/reader.py), loaded on first use
        self._table = None  # the lexicon's words as the reader spells them (model/ctc.py)
        self._translator = None  # translations of any word (translate.py), made on first use
        self._word_reader = None  # the word lists as the reader spells them (open_reading.py)
        self._fold = None  # the reader's symbols with letter case folded (reading_search.py)
        self._pages = None  # the page reader (pages.py), loaded on first use
        self._synced = -1  # the store version the index last caught up with
        self._allowed: dict[tuple, np.ndarray] = {}  # search filters at self._synced
        self.busy: str | None = None  # why this process holds no index (index.py: Milvus Lite held elsewhere)
        self.index = self._open_index(progress)

    def set_lexicon(self, lexicon: Lexicon) -> None:
        """The concepts the engine knows (the model's and the user's): anchors and readable words follow."""
        self.lexicon, self._anchors, self._table, self._translator = lexicon, {}, None, None
        if self.reads and lexicon.hash() != self.model.lexicon.hash():
            self.model.set_lexicon(lexicon)

    # ------------------------------------------------------------------ embedding
    @torch.no_grad()
    def embed_images(self, xs: np.ndarray, batch: int = 128) -> np.ndarray:
        encode = self.fast or (lambda x: self.model.encode_image(torch.from_numpy(x)).numpy())
        out = [encode(xs[i:i + batch]) for i in range(0, len(xs), batch)]
        return np.concatenate(out) if out else np.zeros((0, self.model.cfg.embed_dim), np.float32)

    @torch.no_grad()
    def embed_text(self, texts: list[str]) -> np.ndarray:
        return self.model.encode_text(texts).numpy()

    def anchors(self, lang: str) -> np.ndarray:
        """Text anchors of every lexicon concept in `lang` (cached)."""
        if lang not in self._anchors:
            self._anchors[lang] = self.embed_text(self.lexicon.words(lang))
        return self._anchors[lang]

    # ------------------------------------------------------------------ index
    def _index_path(self) -> Path:
        return index_path(self.store.root, self.model_id, self.vector_uri)

    def _load_index(self) -> VectorIndex:
        """The saved index of this engine's state (ValueError when there is none or it does not match)."""
        return open_index(self._index_path(), self._made_by(), self.vector_uri, self._collection())

    def _collection(self) -> str:
        """The Milvus collection of this data folder, model and fusion ("" on FAISS)."""
        if self.vector_uri is None:
            return ""
        from xmr_core.store.milvus_index import collection_name

        return collection_name({**self._made_by(), "store": self.store.store_id()})

    def _made_by(self) -> dict:
        """What the index file must have been made by to be usable for this engine."""
        return {"model_id": self.model_id, "fusion": asdict(self.fusion) if self.fusion else None}

    @contextmanager
    def _index_lock(self):
        """This engine's threads and every other process writing this model's index, one at a time."""
        with self._lock:
            path = self._index_path().with_suffix(".lock")
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a") as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(f, fcntl.LOCK_UN)

    def _save_index(self) -> None:
        self.index.save(self._index_path(), self._made_by())

    def _index_fields(self, ids: np.ndarray) -> list[dict] | None:
        """Each item's script and collection, for a backend that filters by them inside its search."""
        if not self.index_pushes_filters:
            return None
        got = self.store.scripts_and_collections([int(i) for i in ids])
        return [got.get(int(i), {}) for i in ids]

    @property
    def index_pushes_filters(self) -> bool:
        return self.vector_uri is not None

    def _index_vectors(self, ids: np.ndarray, vecs: np.ndarray, labels: dict[int, str] | None = None) -> np.ndarray:
        """What the index holds for these items: with fusion on, labelled items' embeddings fused
        with their concept's anchors (fusion.py); the store keeps the image embeddings."""
        if self.fusion is None or not len(ids):
            return vecs
        labels = self.store.labels() if labels is None else labels
        rows = [n for n, i in enumerate(ids) if labels.get(int(i)) in self.lexicon]
        if not rows:
            return vecs
        concepts = [self.lexicon.index(labels[int(ids[n])]) for n in rows]
        anchors = np.stack([self.anchors(lang)[concepts] for lang in LANGS], axis=1)  # (m, 3, d)
        out = vecs.copy()
        out[rows] = fuse(vecs[rows], anchors, self.fusion)
        return out

    def _open_index(self, progress: Progress | None = None) -> VectorIndex | None:
        """The index, caught up with the store; None when a Milvus Lite file is held by another process,
        which keeps the index (this engine then writes to the store only: that process catches up)."""
        from xmr_core.store.milvus_index import IndexBusy

        missing = self.store.items_missing_embedding(self.model_id)
        if missing:
            self._embed_items(missing, progress)
        with self._index_lock():
            try:
                try:
                    self.index = self._load_index()
                except ValueError as exc:
                    log.info("rebuilding the index: %s", exc)
                    self.index = self._rebuild_index()
            except IndexBusy as exc:
                log.warning("%s: this process writes to the store only", exc)
                self.busy, self.index = str(exc), None
                return None
            self._sync_index()
        return self.index

    def _searchable(self) -> VectorIndex:
        if self.index is None:
            raise RuntimeError(f"no search in this process: {self.busy}")
        return self.index

    def _embed_items(self, items: list[Item], progress: Progress | None = None, batch: int = 256) -> None:
        for start in range(0, len(items), batch):
            chunk = items[start:start + batch]
            ok, xs = [], []
            for it in chunk:
                try:
                    xs.append(preprocess(str(it.path), self.pre))
                    ok.append(it.id)
                except (ValueError, FileNotFoundError) as exc:
                    log.warning("item %s cannot be embedded: %s", it.id, exc)
            if ok and self.reads:
                vecs, _, readings, _ = self._embed_read(np.stack(xs))
                self.store.set_embeddings(self.model_id, ok, vecs)
                self.store.set_readings(self.model_id, list(zip(ok, readings)))
            elif ok:
                self.store.set_embeddings(self.model_id, ok, self.embed_images(np.stack(xs)))
            if progress:
                progress(min(start + batch, len(items)), len(items), "embedding items")

    def _rebuild_index(self) -> VectorIndex:
        ids, vecs = self.store.embeddings(self.model_id)
        vecs = self._index_vectors(ids, vecs) if len(ids) else np.zeros((0, self.model.cfg.embed_dim), np.float32)
        idx = build_index(ids, vecs, self.model.cfg.embed_dim, self.index_cfg, self.vector_uri, self._collection(),
                          self._index_fields(ids))
        self.index = idx
        self._save_index()
        return idx

    def _sync_index(self) -> bool:
        """Bring the index to exactly the store's items embedded by this model (adding what others
        added, dropping what they removed) and save it if it changed. Call under `_index_lock`."""
        if self.index is None:  # another process keeps the index (Milvus Lite): it catches up itself
            return False
        version = self.store.version()  # read first: a change after it is caught by the next sync
        want, have = self.store.embedded_ids(self.model_id), self.index.ids()
        new, gone = np.setdiff1d(want, have), np.setdiff1d(have, want)
        if len(gone):
            self.index.remove(gone)
        if len(new):
            ids, vecs = self.store.embeddings(self.model_id, new.tolist())
            if len(ids):
                self.index.add(ids, self._index_vectors(ids, vecs, self.store.labels(ids.tolist())),
                               self._index_fields(ids))
        changed = bool(len(new) or len(gone))
        if changed or not self._index_path().exists():
            self._save_index()
        self._synced, self._allowed = version, {}
        return changed

    def refresh(self) -> None:
        """Catch up with changes other processes made to the store since the last look (cheap when none)."""
        if self.index is not None and self.store.version() != self._synced:
            with self._index_lock():
                self._sync_index()

    def reindex(self, progress: Progress | None = None) -> int:
        """Embed any item lacking this model's embedding and rebuild the index from the store."""
        with self._index_lock():
            todo = self.store.items_missing_embedding(self.model_id)
            if self.reads:  # and those stored before readings were kept (schema 1)
                have = {it.id for it in todo}
                todo += [it for it in self.store.items_missing_reading(self.model_id) if it.id not in have]
            self._embed_items(todo, progress)
            if self.index is None:  # another process keeps the index: it rebuilds from the store
                return len(self.store.embedded_ids(self.model_id))
            self._rebuild_index()
            self._sync_index()
            return len(self.index)

    # ------------------------------------------------------------------ queries
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
        x = info.preview[None, None]
        return (self.model.look(x) if self.reads else self.embed_images(x))[0]

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

    def _embed_read(self, x: np.ndarray, batch: int = 128):
        """A reading model's embeddings, `read_inks` scores, readings (greedy text, compact posteriors:
        what the store keeps) and open readings of model inputs, each crop read once.

        A crop the reader does not find a lexicon word in (`_lexical`) is read against the word lists
        (open_reading.py) and embedded by that word's text (the text tower, as a typed word is), mixed
        with its visual embedding by TEXT_WEIGHT; its open reading is None otherwise."""
        from xmr_core.model.ctc import compact

        vecs, scores, readings, opens = [], [], [], []
        for i in range(0, len(x), batch):
            s, posts = self.model.read(x[i:i + batch], posteriors=True)
            v = self.model.combine(self.model.encode_signals(x[i:i + batch], s))
            greedy = [self.reader.decode(p).text for p in posts]
            got = [None if lex or self.word_reader is None else self.word_reader.read(p, g)
                   for p, g, lex in zip(posts, greedy, self._lexical(s, posts))]
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
            readings += [(g if o is None or o.word == g.lower() else f"{g} {o.word}", compact(p))
                         for g, o, p in zip(greedy, got, posts)]
        return np.concatenate(vecs), np.concatenate(scores), readings, opens

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
            v, scores, _, _ = self._embed_read(x)
            return v[0], scores[0]
        return self.embed_images(x)[0], self.read_inks([ink])[0]

    def recognize(self, image: ImageInput, top: int = 5) -> dict[str, list[tuple[str, str, float]]]:
        """What the image says: the top lexicon words per language as (concept_id, word, score)."""
        return self._recognize_vector(self.embed_query(image)[1], top)

    def read_word(self, image: ImageInput):
        """What an image says when it is not a lexicon word: its reading against the word lists
        (open_reading.OpenReading) and that word's terms in each script; (None, {}) for a lexicon word, or
        without a reading model or dictionaries."""
        if not self.reads:
            return None, {}
        opens = self._embed_read(preprocess(image, self.pre)[None])[3]
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
        """Translations of any word (translate.py), or None when the dictionaries are not fetched."""
        from xmr_core.data.dictionary import table_path

        if self._translator is None and table_path().exists():
            from xmr_core.data.translate import Translator

            with self._lock:
                self._translator = self._translator or Translator(self.lexicon)
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
                      q: np.ndarray | None = None, where: dict | None = None) -> list[tuple[int, float]]:
        """Items ranked by the semantic cosine (to the terms' anchors, or to the query image's embedding
        `q`) fused with their reading scores."""
        from xmr_core.search.reading_search import SHORTLIST, case_fold, fuse, reading_scores

        q = self._terms_vector(terms) if q is None else q
        sc, ids = self._nearest(q, max(100, 5 * k), allowed, where)
        cos = {int(i): float(s) for s, i in zip(sc[0], ids[0]) if i >= 0}
        cand = self.store.reading_candidates(self.model_id, [w for ws in terms.values() for w in ws], limit=SHORTLIST)
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
                              len(self.reader.symbols), self._fold)
        return fuse(cos, read)[:k]

    def search(self, image: ImageInput | None = None, text: str | None = None, k: int = 10,
               languages: Iterable[str] = LANGS, collection: str | None = None,
               terms: dict[str, list[str]] | None = None, per_script: bool = False,
               feedback: dict[int, bool] | None = None) -> tuple[list[Hit], QueryInfo]:
        """Items nearest to an image or a typed word, restricted to `languages` and a collection: the
        best `k` of all, or with `per_script` the best `k` of each script (best first either way).

        A typed word is searched, with a reading model, as its words in the three scripts (`terms`, or
        `query_terms`: shown in `QueryInfo.terms`, editable by the caller) by meaning and by reading.
        `feedback` (item id -> marked right) re-ranks it: the query moves towards the hits marked right and
        away from those marked wrong (Rocchio); those marked wrong are left out, those marked right lead."""
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
                v, scores, readings, opens = self._embed_read(x[None])
                q = v[0]
                info = QueryInfo("image", recognized=self._recognize_vector(q, 5), preview=x[0],
                                 text=opens[0].word if opens[0] else readings[0][0])
                if opens[0] is not None:
                    info.terms = self.query_terms(opens[0].word, lang=opens[0].lang)
            else:
                x, q = self.embed_query(image)
                info = QueryInfo("image", recognized=self._recognize_vector(q, 5), preview=x[0])
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
                where = {**({"lang": group} if set(group) != set(LANGS) else {}),
                         **({"collection": collection} if collection else {})}
                if info.terms:
                    ranked += self._search_terms(info.terms, int(k) + len(wrong), allowed, q if by_words else None,
                                                 where)
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

    def check_collection(self, name: str) -> None:
        """ValueError naming the collections there are, when `name` is not one of them."""
        names = self.store.collection_names()
        if name not in names:
            have = ", ".join(names) if names else "none yet"
            raise ValueError(f"no collection named {name!r} (collections: {have}); add images with "
                             "`xmr add NAME FILES` or build the demo collection with `xmr demo`")

    def _allowed_ids(self, languages: list[str], collection: str | None) -> np.ndarray | None:
        """The item ids a filtered search may return, cached until the store changes."""
        if set(languages) == set(LANGS) and collection is None:
            return None
        key = (tuple(sorted(languages)), collection)
        if key not in self._allowed:
            self._allowed[key] = self._query_allowed(languages, collection)
        return self._allowed[key]

    def _query_allowed(self, languages: list[str], collection: str | None) -> np.ndarray:
        where, args = [], []
        if collection:
            where.append("c.name = ?")
            args.append(collection)
        if set(languages) != set(LANGS):
            where.append(f"i.lang IN ({','.join('?' * len(languages))})")
            args += languages
        rows = self.store.read("SELECT i.id FROM items i JOIN collections c ON c.id = i.collection_id WHERE "
                               + " AND ".join(where), tuple(args))
        return np.array([r["id"] for r in rows], np.int64)

    # ------------------------------------------------------------------ collections
    def add(self, collection: str, images: list[tuple[str, bytes | Image.Image]],
            labels: list[tuple[str, str] | None] | None = None, progress: Progress | None = None,
            pages: list[tuple[str, tuple[int, int, int, int]]] | None = None,
            readable_only: bool = False) -> AddReport:
        """Add images (source name, bytes or PIL image) to a collection, searchable at once.

        `labels` gives (concept_id, lang) per image or None. Unreadable or blank images are reported,
        never fatal; what was stored before stays as it was. With `readable_only`, a labelled image the
        model does not recognise as its own concept in its own script is reported and not added (the
        demo: an illegible render would turn up in unrelated results)."""
        report = AddReport()
        labels = labels or [None] * len(images)
        pages = pages or [None] * len(images)  # type: ignore[list-item]
        if len(labels) != len(images) or len(pages) != len(images):
            raise ValueError("one label (or None) and one page box (or None) per image")
        self.store.create_collection(collection)
        records, xs, inks = [], [], []
        for n, ((source, data), label, page) in enumerate(zip(images, labels, pages)):
            try:
                if label and (label[0] not in self.lexicon or label[1] not in LANGS):
                    raise ValueError(f"unknown concept or language {label!r}")
                img = _normalised(data)
                ink = word_ink(img)  # decoded once: the model reads what is stored
                x = fit(ink, self.pre)[None]  # = preprocess(img, self.pre)
                raw = _encode_png(img)
            except ValueError as exc:
                report.errors[source] = str(exc)
                continue
            records.append({"raw": raw, "source": source,
                            "concept_id": label[0] if label else None, "lang": label[1] if label else None,
                            "page_sha256": page[0] if page else "", "bbox": page[1] if page else None})
            xs.append(x)
            inks.append(ink if not label else None)
            if progress:
                progress(n + 1, len(images), "reading images")
        if not records:
            return report
        # a reading model reads every image for its embedding: its scores give the scripts too
        vecs, read, readings, opens = (self._embed_read(np.stack(xs)) if self.reads
                                       else (self.embed_images(np.stack(xs)), None, None, None))
        if readable_only:
            ok = [rec["concept_id"] is None or int(self.concept_scores(v)[LANGS.index(rec["lang"])].argmax())
                  == self.lexicon.index(rec["concept_id"]) for rec, v in zip(records, vecs)]
            for rec, good in zip(records, ok):
                if not good:
                    report.errors[rec["source"]] = "the model does not read it back as its label"
            keep = [n for n, good in enumerate(ok) if good]
            records, vecs, inks = [records[n] for n in keep], vecs[keep], [inks[n] for n in keep]
            read = read[keep] if read is not None else None
            readings = [readings[n] for n in keep] if readings is not None else None
            opens = [opens[n] for n in keep] if opens is not None else None
            if not records:
                return report
        for rec in records:  # stored only once kept
            rec["sha256"], rec["path"] = self.store.put_image(rec.pop("raw"), ".png")
        unlabelled = [n for n, rec in enumerate(records) if rec["lang"] is None]
        if unlabelled:  # the script each is written in: the language of the word the reader finds most likely
            scores = read[unlabelled] if read is not None else self.read_inks([inks[n] for n in unlabelled])
            for n, sc in zip(unlabelled, scores):
                records[n]["lang"] = self._script_of(sc, readings[n][0] if readings else "", opens[n] if opens else None)
        ids = self.store.add_items(collection, records, self.model_id, vecs, readings)
        with self._index_lock():  # the index takes the new items (and any other writer's) by id
            self._sync_index()
        report.added = list(dict.fromkeys(ids))  # one id per item, when a batch repeats an image
        return report

    def add_page(self, collection: str, source: str, page: bytes | Image.Image,
                 progress: Progress | None = None) -> AddReport:
        """Find a page's words (pages.py: PP-OCRv6's text detector, lines straightened and split at their
        gaps) and add each, with the page and its box on it, so a hit can show where on the page it is."""
        from xmr_core.search.pages import MAX_WORK, PageReader

        raw = _png_bytes(page, MAX_WORK)  # a page is kept larger than a word (up to MAX_WORK pixels)
        with self._lock:
            self._pages = self._pages or PageReader(torch.get_num_threads())
        words = self._pages.words(open_image(raw, MAX_WORK))
        boxes = [w.box for w in words]
        page_sha, _ = self.store.put_image(raw, ".png")
        crops = [(f"{source}#{b[0]},{b[1]},{b[2]},{b[3]}", w.image) for w, b in zip(words, boxes)]
        return self.add(collection, crops, progress=progress, pages=[(page_sha, b) for b in boxes])

    def model_metrics(self) -> dict:
        """The active model's metrics.json (empty when it has none)."""
        import json

        p = self.model_dir / "metrics.json"
        return json.loads(p.read_text()) if p.exists() else {}

    def page_with_box(self, hit: Hit) -> Image.Image:
        """The page a hit was cut from, with the word's box drawn on it."""
        from PIL import ImageDraw

        page = Image.open(self.page_path(hit.page_sha256)).convert("RGB")
        if hit.bbox:
            ImageDraw.Draw(page).rectangle(hit.bbox, outline=(230, 40, 40), width=max(2, page.width // 300))
        return page

    def page_path(self, page_sha256: str) -> Path:
        return self.store.root / "images" / page_sha256[:2] / f"{page_sha256}.png"

    def explore(self, collection: str | None = None, concepts: list[str] | None = None, method: str = "pca",
                max_items: int = 1500) -> tuple["pd.DataFrame", dict]:
        """2-D map of a collection's embeddings with the lexicon anchors of the concepts shown, and the
        R/D ratio (overall and per script) of the labelled items."""
        from xmr_core.evaluate.metrics import rd_ratio
        from xmr_core.evaluate.plots import embedding_frame

        ids, vecs = self.store.embeddings(self.model_id)
        items = self.store.get_items(ids.tolist())
        keep = [n for n, i in enumerate(ids) if i in items and (collection is None or items[i].collection == collection)
                and (not concepts or items[i].concept_id in concepts)][:max_items]
        if not keep:
            raise ValueError("nothing to show: the collection has no items (with those concepts)")
        def words(c: str | None) -> str:
            return " / ".join(self.lexicon.get(c).word(lg) for lg in LANGS) if c in self.lexicon else "unlabelled"

        rows = [{"item_id": int(ids[n]), "lang": items[ids[n]].lang or "?", "style": _style(items[ids[n]].source),
                 "concept": items[ids[n]].concept_id or "unlabelled", "words": words(items[ids[n]].concept_id),
                 "label": self.lexicon.get(items[ids[n]].concept_id).word(items[ids[n]].lang)
                 if items[ids[n]].concept_id in self.lexicon and items[ids[n]].lang else "?"} for n in keep]
        shown = sorted({r["concept"] for r in rows if r["concept"] in self.lexicon})
        anchor_vecs = np.array([self.anchors(lg)[self.lexicon.index(c)] for c in shown for lg in LANGS])
        anchor_rows = [{"item_id": -1, "lang": lg, "style": "text anchor", "concept": c, "words": words(c),
                        "label": self.lexicon.get(c).word(lg)}
                       for c in shown for lg in LANGS]
        df = embedding_frame(vecs[keep], rows, anchor_vecs, anchor_rows, method)
        lab = np.array([r["concept"] in self.lexicon for r in rows])
        rd = {}
        if lab.sum() >= 2:
            v, c = vecs[keep][lab], np.array([r["concept"] for r in rows])[lab]
            langs = np.array([r["lang"] for r in rows])[lab]
            rd["all"] = rd_ratio(v, c)
            for lg in LANGS:  # that script's images around their concepts' centres over all scripts (the
                # demo holds one image per concept and script: a centre of its own would put R at 0)
                rd[lg] = rd_ratio(v, c, members=langs == lg) if (langs == lg).any() else float("nan")
        return df, rd

    def selected_items(self, points: list) -> list[Item]:
        """The stored items a map selection names. Each point carries an item id (the browser's custom
        data); anything else (a path, a string, a forged value) names nothing. Order kept, no repeats."""
        ids = []
        for p in points:
            v = p[0] if isinstance(p, (list, tuple)) and p else p  # the id first, then what hover shows
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not float(v).is_integer() or v < 0:
                continue
            ids.append(int(v))
        ids = list(dict.fromkeys(ids))
        items = self.store.get_items(ids)
        return [items[i] for i in ids if i in items]

    def remove(self, ids: list[int]) -> int:
        n = self.store.remove_items(ids)
        with self._index_lock():
            self._sync_index()
        return n


def _style(source: str) -> str:
    """The hand or font of an item where its source name records it (demo renders: name@font.png)."""
    return Path(source).stem.rsplit("@", 1)[1] if "@" in Path(source).stem else "not recorded"


def _normalised(data: bytes | Image.Image, max_side: int = WORK_SIDE) -> Image.Image:
    """An input image opened for storage: EXIF orientation applied, size capped, 8-bit modes."""
    img = open_image(data, max_side)
    if img.mode.startswith(("I", "F")):  # 16-bit and float scans: scale to 8 bits, not clip
        img = Image.fromarray((to_gray(img) * 255).astype(np.uint8), "L")
    elif img.mode not in ("L", "LA", "RGB", "RGBA"):
        img = img.convert("RGBA" if "A" in img.mode or img.mode == "P" else "RGB")
    return img


def _encode_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")  # default settings: the sha256 of a stored image must not change
    return buf.getvalue()


def _png_bytes(data: bytes | Image.Image, max_side: int = WORK_SIDE) -> bytes:
    """Normalise an input image to PNG bytes for storage (at most `max_side` pixels on its longer side)."""
    return _encode_png(_normalised(data, max_side))
