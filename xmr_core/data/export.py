"""What the app hands a user to download: rows as CSV, images with their manifest as a zip."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path


def rows_csv(rows: list[dict]) -> str:
    """Rows of one kind (the same keys) as CSV text."""
    out = io.StringIO()
    if rows:
        w = csv.DictWriter(out, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return out.getvalue()


def manifest_zip(files: list[tuple[Path, dict]]) -> bytes:
    """A zip of images and a `manifest.csv` naming each (its `path` inside the zip, then its fields);
    an image file that is gone is left out of the zip and its row says so."""
    buf, rows = io.BytesIO(), []
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for src, fields in files:
            rel = f"images/{Path(src).name}"
            if Path(src).exists():
                z.write(src, rel)
            rows.append({"path": rel if Path(src).exists() else "(missing)", **fields})
        z.writestr("manifest.csv", rows_csv(rows))
    return buf.getvalue()
