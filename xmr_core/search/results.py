"""What a search returns: hits, what the query was taken as, and an add's report; query text checks."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xmr_core.data.lexicon import LANGS, Lexicon, is_han, normalize_word

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
    # image queries read as a word: the other listed words it nearly reads as (script -> word -> nats less likely),
    # searched by reading in its own script beside the terms, not shown
    nearly: dict[str, dict[str, float]] = field(default_factory=dict)
    weak: bool = False  # the best hit scores below NO_MATCH_BELOW: nothing in the collection matches well
    feedback: tuple[int, int] = (0, 0)  # hits marked right and wrong that re-ranked this search (Rocchio)
    marks: dict[int, bool] = field(default_factory=dict)  # the feedback (item id -> right) it was re-ranked with
    exemplars: list[tuple[str, str, float]] = field(default_factory=list)  # the user's samples it looks like


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
