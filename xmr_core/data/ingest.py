"""Reading images to add: files, folders and zip archives, with limits that keep bad archives harmless.

Zip members are read into memory by entry, never extracted by name, so path-traversal names cannot
write anywhere; sizes and counts are capped before decompression (zip bombs)."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Iterator

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".heic", ".heif"}
MAX_FILE_BYTES = 60 * 1024 * 1024
MAX_ZIP_TOTAL = 1024 * 1024 * 1024
MAX_ZIP_MEMBERS = 20_000
MAX_RATIO = 200  # uncompressed / compressed size of one member


def iter_inputs(paths: list[str | Path], errors: dict[str, str]) -> Iterator[tuple[str, bytes]]:
    """(source name, bytes) for every image under `paths`; problems go into `errors`."""
    for p in map(Path, paths):
        if p.is_dir():
            for f in sorted(q for q in p.rglob("*") if q.is_file()):
                if f.suffix.lower() in IMAGE_SUFFIXES or f.suffix.lower() == ".zip":
                    yield from iter_inputs([f], errors)
        elif p.suffix.lower() == ".zip":
            yield from _iter_zip(p, errors)
        elif p.is_file():
            if p.stat().st_size > MAX_FILE_BYTES:
                errors[str(p)] = f"larger than {MAX_FILE_BYTES >> 20} MB"
                continue
            yield str(p), p.read_bytes()
        else:
            errors[str(p)] = "no such file or folder"


def _iter_zip(path: Path, errors: dict[str, str]) -> Iterator[tuple[str, bytes]]:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        errors[str(path)] = f"not a readable zip archive: {exc}"
        return
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if len(members) > MAX_ZIP_MEMBERS:
            errors[str(path)] = f"more than {MAX_ZIP_MEMBERS} files"
            return
        if sum(m.file_size for m in members) > MAX_ZIP_TOTAL:
            errors[str(path)] = "uncompressed size over 1 GB (zip bomb?)"
            return
        for m in members:
            name = f"{path.name}:{m.filename}"
            if Path(m.filename).suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if m.file_size > MAX_FILE_BYTES or (m.compress_size and m.file_size / m.compress_size > MAX_RATIO):
                errors[name] = "member too large or too compressed (zip bomb?)"
                continue
            try:
                with zf.open(m) as f:
                    data = f.read(MAX_FILE_BYTES + 1)
            except (zipfile.BadZipFile, OSError, RuntimeError) as exc:
                errors[name] = f"cannot be read: {exc}"
                continue
            if len(data) > MAX_FILE_BYTES:
                errors[name] = "member larger than declared (zip bomb?)"
                continue
            yield name, data
