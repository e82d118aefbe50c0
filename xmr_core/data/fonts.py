"""Font and stroke-data manifest: fetching from npm and Debian, hash checks, glyph coverage.

The manifest `assets/fonts.tsv` pins every file XMR renders with: its package (npm or Debian, with
version), the member inside the package, its sha256 and its split (`train` or the held-out `val`).
`fetch_fonts` brings the files into the cache, verifies them and records each font's coverage.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable

from xmr_core.data.paths import ASSETS, cache_dir

log = logging.getLogger(__name__)

MANIFEST = ASSETS / "fonts.tsv"
COLUMNS = ["family", "script", "style", "kind", "package", "member", "index", "file", "sha256", "designer", "split"]
SCRIPTS = ("latin", "han")
KINDS = ("font", "strokes")
SPLITS = ("train", "val")


@dataclass(frozen=True)
class FontEntry:
    """One file of the manifest: a font face or a stroke-data file."""

    family: str  # family name as in shared/fonts-allowed.tsv
    script: str  # 'latin' or 'han'
    style: str  # free text: handwriting, brush, print, ...
    kind: str  # 'font' (TTF/OTF/TTC/WOFF2) or 'strokes' (hanzi-writer JSON dir, Hershey SVG font)
    package: str  # 'npm:<name>@<version>' or 'deb:<name>=<version>'
    member: str  # path inside the package archive
    index: int  # face index inside a font collection (TTC), else 0
    file: str  # path below <cache>/fonts
    sha256: str  # of the file (for a directory: of its sorted member names and contents)
    designer: str  # from the font's name table where known
    split: str  # 'train' or 'val'

    def __post_init__(self) -> None:
        if self.script not in SCRIPTS:
            raise ValueError(f"script {self.script!r}: expected one of {SCRIPTS}")
        if self.kind not in KINDS:
            raise ValueError(f"kind {self.kind!r}: expected one of {KINDS}")
        if self.split not in SPLITS:
            raise ValueError(f"split {self.split!r}: expected one of {SPLITS}")

    @property
    def path(self) -> Path:
        return cache_dir() / "fonts" / self.file

    @property
    def key(self) -> str:
        """Stable short name used in style records and coverage."""
        return self.file if self.index == 0 else f"{self.file}#{self.index}"


@dataclass
class FetchReport:
    present: list[str] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # key -> reason

    def summary(self) -> str:
        lines = [f"{len(self.present)} present, {len(self.fetched)} fetched, {len(self.skipped)} skipped"]
        lines += [f"  skipped {k}: {why}" for k, why in sorted(self.skipped.items())]
        return "\n".join(lines)


def load_manifest(path: Path | str = MANIFEST) -> list[FontEntry]:
    """Read the font manifest (TSV with the header in COLUMNS)."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    out = []
    for r in rows:
        missing = [c for c in COLUMNS if c not in r]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}")
        out.append(FontEntry(**{**{c: r[c] for c in COLUMNS}, "index": int(r["index"] or 0)}))
    return out


def save_manifest(entries: Iterable[FontEntry], path: Path | str = MANIFEST) -> None:
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, delimiter="\t", lineterminator="\n")
        w.writeheader()
        for e in entries:
            w.writerow(asdict(e))
    os.replace(tmp, path)


def sha256_path(path: Path) -> str:
    """sha256 of a file, or of a directory's sorted relative names and contents."""
    h = hashlib.sha256()
    if path.is_dir():
        for p in sorted(q for q in path.rglob("*") if q.is_file()):
            h.update(p.relative_to(path).as_posix().encode())
            h.update(p.read_bytes())
    else:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- downloading


def download_package(package: str, dest: Path) -> Path:
    """Download one npm tarball or Debian package into `dest`; returns the archive path."""
    dest.mkdir(parents=True, exist_ok=True)
    source, spec = package.split(":", 1)
    if source == "npm":
        out = subprocess.run(["npm", "pack", spec, "--silent", "--pack-destination", str(dest)],
                             capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            raise RuntimeError(f"npm pack {spec} failed: {out.stderr.strip()[-300:]}")
        return dest / out.stdout.strip().splitlines()[-1]
    if source == "deb":
        cmd = ["apt-get", "download", spec]
        out = subprocess.run(cmd, cwd=dest, capture_output=True, text=True, timeout=600)
        if out.returncode != 0 and os.geteuid() == 0:  # stale package lists on a fresh machine
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=600)
            out = subprocess.run(cmd, cwd=dest, capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            raise RuntimeError(f"apt-get download {spec} failed: {out.stderr.strip()[-300:]}")
        name = spec.split("=")[0]
        debs = sorted(dest.glob(f"{name}_*.deb"))
        if not debs:
            raise RuntimeError(f"apt-get download {spec} wrote no .deb")
        return debs[-1]
    raise ValueError(f"package {package!r}: expected 'npm:...' or 'deb:...'")


def extract_member(archive: Path, member: str, target: Path) -> None:
    """Copy one file (or a directory, when `member` ends with '/') out of a .tgz or .deb."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        tmp = Path(tmp)
        if archive.suffix == ".deb":
            data = tmp / "data.tar"
            with open(data, "wb") as f:
                subprocess.run(["dpkg-deb", "--fsys-tarfile", str(archive)], stdout=f, check=True)
            archive_tar = data
        else:
            archive_tar = archive
        with tarfile.open(archive_tar) as tar:
            names = [m for m in tar.getmembers() if m.isfile() and
                     (m.name == member or (member.endswith("/") and m.name.startswith(member)))]
            if not names:
                raise RuntimeError(f"{member} not found in {archive.name}")
            tar.extractall(tmp / "x", members=names, filter="data")
        src = tmp / "x" / member.rstrip("/")
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        os.replace(src, target)


def fetch_fonts(entries: list[FontEntry] | None = None, workers: int = 6,
                progress: Callable[[int, int, str], None] | None = None) -> FetchReport:
    """Bring every manifest file into the cache, verify hashes and record coverage.

    Files already present with the right hash are left alone, so a second run is quick. A package
    that cannot be downloaded or a file whose hash differs is skipped and reported, never fatal.
    """
    entries = load_manifest() if entries is None else entries
    report = FetchReport()
    todo: dict[str, list[FontEntry]] = {}
    for e in entries:
        if e.path.exists() and _hash_ok(e):
            report.present.append(e.key)
        else:
            todo.setdefault(e.package, []).append(e)
    downloads = cache_dir() / "downloads"
    done = 0

    def work(package: str) -> tuple[str, dict[str, str]]:
        errors: dict[str, str] = {}
        try:
            with tempfile.TemporaryDirectory(dir=_mkdir(downloads)) as tmp:
                archive = download_package(package, Path(tmp))
                for e in todo[package]:
                    try:
                        extract_member(archive, e.member, e.path)
                        if sha256_path(e.path) != e.sha256:
                            errors[e.key] = "sha256 differs from the manifest"
                            shutil.rmtree(e.path) if e.path.is_dir() else e.path.unlink()
                    except Exception as exc:  # one bad member must not stop the others
                        errors[e.key] = str(exc)
        except Exception as exc:
            errors.update({e.key: str(exc) for e in todo[package]})
        return package, errors

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for package, errors in pool.map(work, list(todo)):
            done += 1
            for e in todo[package]:
                if e.key in errors:
                    report.skipped[e.key] = errors[e.key]
                else:
                    report.fetched.append(e.key)
            if progress:
                progress(done, len(todo), package)
    update_coverage([e for e in entries if e.key not in report.skipped and e.kind == "font"])
    return report


def _hash_ok(e: FontEntry) -> bool:
    if e.path.is_file():
        return sha256_path(e.path) == e.sha256
    # a directory's hash is slow (thousands of files): a stamp records a verified extraction
    stamp = e.path.with_name(e.path.name + ".sha256")
    if stamp.exists() and stamp.read_text() == e.sha256:
        return True
    ok = sha256_path(e.path) == e.sha256
    if ok:
        stamp.write_text(e.sha256)
    return ok


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


# --------------------------------------------------------------------------- coverage


def _coverage_file() -> Path:
    return cache_dir() / "fonts" / "coverage.json"


def font_codepoints(path: Path, index: int = 0) -> set[int]:
    """Code points the font's cmap maps to a glyph (TTF, OTF, TTC face, WOFF2)."""
    from fontTools.ttLib import TTFont

    font = TTFont(str(path), fontNumber=index, lazy=True)
    try:
        return set(font.getBestCmap() or {})
    finally:
        font.close()


def _to_ranges(cps: set[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for c in sorted(cps):
        if out and out[-1][1] == c - 1:
            out[-1][1] = c
        else:
            out.append([c, c])
    return out


def update_coverage(entries: list[FontEntry]) -> None:
    """Record the cmap of each font in the cache (kept between runs, recomputed when missing)."""
    cov = _read_coverage()
    changed = False
    for e in entries:
        if e.key in cov and cov[e.key].get("sha256") == e.sha256:
            continue
        cov[e.key] = {"sha256": e.sha256, "ranges": _to_ranges(font_codepoints(e.path, e.index))}
        changed = True
    if changed:
        tmp = _coverage_file().with_suffix(".tmp")
        tmp.write_text(json.dumps(cov))
        os.replace(tmp, _coverage_file())
        load_coverage.cache_clear()


def _read_coverage() -> dict:
    p = _coverage_file()
    return json.loads(p.read_text()) if p.exists() else {}


@lru_cache(maxsize=1)
def load_coverage() -> dict[str, frozenset[int]]:
    """Font key -> the code points it covers, as recorded by `fetch_fonts`."""
    out = {}
    for key, rec in _read_coverage().items():
        out[key] = frozenset(c for a, b in rec["ranges"] for c in range(a, b + 1))
    return out


def covers(entry: FontEntry, text: str) -> bool:
    """True when every non-space character of `text` is in the font's cmap."""
    cps = load_coverage().get(entry.key)
    return cps is not None and all(ord(ch) in cps for ch in text if not ch.isspace())


def list_fonts(split: str | None = None, script: str | None = None, kind: str = "font",
               available: bool = True) -> list[FontEntry]:
    """Manifest entries filtered by split/script/kind; `available` keeps only fetched files."""
    out = []
    for e in load_manifest():
        if (split and e.split != split) or (script and e.script != script) or e.kind != kind:
            continue
        if available and not e.path.exists():
            continue
        out.append(e)
    return out
