import csv
import random

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from xmr_core.data.fonts import SPLITS, FontEntry, covers, fetch_fonts, load_coverage, load_manifest, sha256_path
from xmr_core.data.paths import ASSETS


@pytest.fixture(scope="module")
def manifest(fonts_ready):
    return load_manifest()


def _allowed_families() -> set[str]:
    lines = [ln for ln in (ASSETS / "fonts-allowed.tsv").read_text(encoding="utf-8").splitlines()
             if ln and not ln.startswith("#")]
    return {r["family"] for r in csv.DictReader(lines, delimiter="\t")}


def test_only_allowed_families(manifest):
    allowed = _allowed_families()
    for e in manifest:
        family = "hersheytext (EMS and Hershey single-stroke fonts)" if e.family.startswith("hersheytext") else e.family
        assert family in allowed, e.family


def test_counts_and_split(manifest):
    fonts = [e for e in manifest if e.kind == "font"]
    latin = [e for e in fonts if e.script == "latin"]
    han = [e for e in fonts if e.script == "han"]
    assert len({e.family for e in latin}) >= 120
    val_share = sum(e.split == "val" for e in latin) / len(latin)
    assert 0.12 <= val_share <= 0.3
    han_val = [e for e in han if e.split == "val"]
    assert sum(e.style in ("handwriting", "casual", "brush", "cursive (grass script)") or "handwriting" in e.style
               for e in han_val) >= 2
    assert {e.split for e in manifest} <= set(SPLITS)
    # a designer's fonts never straddle the split
    by_designer: dict[str, set[str]] = {}
    for e in latin:
        if e.designer:
            by_designer.setdefault(e.designer, set()).add(e.split)
    assert all(len(s) == 1 for s in by_designer.values())
    strokes = [e for e in manifest if e.kind == "strokes"]
    assert any(e.family == "hanzi-writer-data" for e in strokes)
    assert sum(e.family.startswith("hersheytext") for e in strokes) >= 10


def test_cache_matches_hashes(manifest):
    for e in random.Random(0).sample([e for e in manifest if e.path.is_file()], 25):
        assert sha256_path(e.path) == e.sha256, e.key


def test_second_fetch_is_a_noop(manifest):
    report = fetch_fonts()
    assert not report.fetched and not report.skipped and len(report.present) == len(manifest)


def test_damaged_file_is_refetched(manifest, tmp_path, monkeypatch):
    """A file whose hash no longer matches is downloaded again and verified."""
    monkeypatch.setenv("XMR_CACHE", str(tmp_path))
    e = next(x for x in manifest if x.family == "Caveat")
    e.path.parent.mkdir(parents=True)
    e.path.write_bytes(b"damaged")
    report = fetch_fonts([e])
    assert report.fetched == [e.key] and sha256_path(e.path) == e.sha256
    bad = FontEntry(**{**e.__dict__, "sha256": "0" * 64})
    report = fetch_fonts([bad])
    assert report.skipped == {bad.key: "sha256 differs from the manifest"} and not bad.path.exists()


def _tofu(font: ImageFont.FreeTypeFont, ch: str) -> bytes:
    img = Image.new("L", (120, 120), 0)
    ImageDraw.Draw(img).text((10, 90), ch, font=font, fill=255, anchor="ls")
    return img.tobytes()


def test_coverage_recorded_and_no_tofu(manifest, lexicon):
    """Every character a font claims to cover draws differently from its missing-glyph box."""
    cov = load_coverage()
    zh_chars = sorted({ch for c in lexicon for ch in c.zh})
    es_chars = sorted({ch for c in lexicon for ch in c.en + c.es})
    rng = random.Random(1)
    for e in manifest:
        if e.kind != "font":
            continue
        assert e.key in cov, e.key
        font = ImageFont.truetype(str(e.path), 48, index=e.index)
        missing = _tofu(font, "\U0010fffd")
        chars = rng.sample(zh_chars, 40) if e.script == "han" else es_chars
        for ch in chars:
            if covers(e, ch):
                assert _tofu(font, ch) != missing, (e.key, ch)


def test_latin_fonts_cover_spanish(manifest, lexicon):
    latin = [e for e in manifest if e.kind == "font" and e.script == "latin"]
    accented = "áéíóúñü"
    full = [e for e in latin if all(covers(e, ch) for ch in accented)]
    assert len(full) >= 0.9 * len(latin)
    han = [e for e in manifest if e.kind == "font" and e.script == "han"]
    zh_words = [c.zh for c in lexicon]
    share = {e.family: np.mean([covers(e, w) for w in zh_words]) for e in han}
    assert sum(v > 0.99 for v in share.values()) >= 10, share
