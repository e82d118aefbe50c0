"""The concept lexicon: one meaning per concept, with its simplified Chinese, English and Spanish word.

`assets/lexicon.tsv` is the bundled lexicon (contract in DESIGN.md). User-defined concepts are kept
by the store and merged in with `Lexicon.with_concepts`; the asset itself is never edited at run time.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from xmr_core.data.paths import ASSETS

LANGS = ("zh", "en", "es")
DEFAULT_PATH = ASSETS / "lexicon.tsv"
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_ES_LETTERS = set("abcdefghijklmnopqrstuvwxyzáéíóúüñ")
_EN_LETTERS = set("abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True)
class Concept:
    concept_id: str
    zh: str
    en: str
    es: str
    category: str = ""

    def word(self, lang: str) -> str:
        if lang not in LANGS:
            raise ValueError(f"language {lang!r}: expected one of {LANGS}")
        return getattr(self, lang)


def normalize_word(text: str) -> str:
    """Lookup form of a word: NFC, trimmed, lowercase (accents kept)."""
    return unicodedata.normalize("NFC", text).strip().lower()


HAN = re.compile(r"[\u3400-\u9fff]")  # CJK ideographs (with extension A): what counts as Chinese in a reading


def is_han(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff"


def validate_concept(concept: Concept) -> None:
    """Raise ValueError saying what is wrong with a (user-defined) concept's words."""
    problems = []
    if not _ID_RE.match(concept.concept_id):
        problems.append(f"concept_id {concept.concept_id!r} must be 1-64 of a-z, 0-9, '_', '.', '-'")
    zh = concept.zh.strip()
    if not zh or not all(is_han(c) for c in zh) or len(zh) > 8:
        problems.append(f"zh {concept.zh!r} must be 1-8 Chinese characters")
    else:
        try:
            zh.encode("gb2312")
        except UnicodeEncodeError:
            problems.append(f"zh {concept.zh!r} must be simplified Chinese (GB2312)")
    en, es = concept.en, unicodedata.normalize("NFC", concept.es)
    if not en or en != en.lower() or not set(en) <= _EN_LETTERS or len(en) > 24:
        problems.append(f"en {concept.en!r} must be 1-24 lowercase letters a-z")
    if not es or es != es.lower() or not set(es) <= _ES_LETTERS or len(es) > 24:
        problems.append(f"es {concept.es!r} must be 1-24 lowercase Spanish letters (accents and ñ allowed)")
    if problems:
        raise ValueError("; ".join(problems))


class Lexicon:
    """An ordered set of concepts with lookup by id and by any of their words."""

    def __init__(self, concepts: Iterable[Concept]):
        self.concepts: list[Concept] = list(concepts)
        self._by_id: dict[str, Concept] = {}
        self._by_word: dict[str, list[Concept]] = {}
        for c in self.concepts:
            if c.concept_id in self._by_id:
                raise ValueError(f"duplicate concept_id {c.concept_id!r}")
            self._by_id[c.concept_id] = c
            for lang in LANGS:
                self._by_word.setdefault(normalize_word(c.word(lang)), []).append(c)
        for lang in LANGS:
            seen: dict[str, str] = {}
            for c in self.concepts:
                w = normalize_word(c.word(lang))
                if w in seen:
                    raise ValueError(f"{lang} word {w!r} used by both {seen[w]!r} and {c.concept_id!r}")
                seen[w] = c.concept_id

    def __len__(self) -> int:
        return len(self.concepts)

    def __iter__(self):
        return iter(self.concepts)

    def __contains__(self, concept_id: str) -> bool:
        return concept_id in self._by_id

    def get(self, concept_id: str) -> Concept:
        try:
            return self._by_id[concept_id]
        except KeyError:
            raise KeyError(f"unknown concept {concept_id!r}") from None

    def index(self, concept_id: str) -> int:
        return self.ids().index(concept_id)

    def ids(self) -> list[str]:
        return [c.concept_id for c in self.concepts]

    def words(self, lang: str) -> list[str]:
        return [c.word(lang) for c in self.concepts]

    def lookup(self, word: str) -> list[Concept]:
        """Concepts having `word` in any language (case- and whitespace-insensitive)."""
        return list(self._by_word.get(normalize_word(word), []))

    def search(self, query: str, limit: int = 20) -> list[Concept]:
        """Concepts whose id or any word contains `query` (exact matches first)."""
        q = normalize_word(query)
        if not q:
            return []
        exact = self.lookup(q)
        rest = [c for c in self.concepts if c not in exact and
                any(q in normalize_word(w) for w in (c.concept_id, c.zh, c.en, c.es))]
        return (exact + rest)[:limit]

    def with_concepts(self, extra: Iterable[Concept]) -> "Lexicon":
        """A new lexicon with user-defined concepts appended (each validated)."""
        extra = list(extra)
        for c in extra:
            validate_concept(c)
        return Lexicon(self.concepts + extra)

    def to_tsv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, delimiter="\t", lineterminator="\n")
        w.writerow(["concept_id", *LANGS, "category"])
        for c in self.concepts:
            w.writerow([c.concept_id, c.zh, c.en, c.es, c.category])
        return buf.getvalue()

    def hash(self) -> str:
        """sha256 of the concepts and their words, in order (what a model was trained against)."""
        h = hashlib.sha256()
        for c in self.concepts:
            h.update("\t".join((c.concept_id, c.zh, c.en, c.es)).encode() + b"\n")
        return h.hexdigest()


def load_lexicon(path: Path | str = DEFAULT_PATH) -> Lexicon:
    """Read a lexicon TSV (header `concept_id zh en es`, optional further columns)."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        missing = [c for c in ("concept_id", *LANGS) if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: header lacks {missing}")
        concepts = [Concept(r["concept_id"], r["zh"], r["en"], unicodedata.normalize("NFC", r["es"]),
                            r.get("category") or "") for r in reader]
    return Lexicon(concepts)


def save_lexicon(lexicon: Lexicon, path: Path | str) -> None:
    Path(path).write_text(lexicon.to_tsv(), encoding="utf-8")
