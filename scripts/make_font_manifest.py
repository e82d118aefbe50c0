"""Build assets/fonts.tsv from shared/fonts-allowed.tsv (maintainer tool; run rarely).

Downloads each allowed family's package, picks the regular face, reads its designer, hashes it and
assigns a split: a deterministic ~20% of Latin designers (family where the designer is unknown) and
a fixed set of Chinese families go to the held-out `val` split. Usage:

    python scripts/make_font_manifest.py ../shared/fonts-allowed.tsv
"""

from __future__ import annotations

import csv
import hashlib
import re
import sys
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xmr_core.data.fonts import FontEntry, download_package, extract_member, save_manifest, sha256_path  # noqa: E402
from xmr_core.data.paths import cache_dir  # noqa: E402

# Debian families: package=version and the face to use (member path, face index).
DEBIAN = {
    "LXGW WenKai": ("fonts-lxgw-wenkai=1.250+repack-1", "./usr/share/fonts/truetype/lxgw-wenkai/LXGWWenKai-Regular.ttf", 0),
    "AR PL UKai": ("fonts-arphic-ukai=0.2.20080216.2-5", "./usr/share/fonts/truetype/arphic/ukai.ttc", 0),
    "AR PL UMing": ("fonts-arphic-uming=0.2.20080216.2-11", "./usr/share/fonts/truetype/arphic/uming.ttc", 0),
    "AR PL KaitiM GB": ("fonts-arphic-gkai00mp=2.11-16", "./usr/share/fonts/truetype/arphic-gkai00mp/gkai00mp.ttf", 0),
    "AR PL KaitiM Big5": ("fonts-arphic-bkai00mp=2.10-21", "./usr/share/fonts/truetype/arphic-bkai00mp/bkai00mp.ttf", 0),
    "cwTeX Kai": ("fonts-cwtex-kai=1.0-4", "./usr/share/fonts/truetype/cwtex/cwkai.ttf", 0),
    "TW-Kai": ("fonts-cns11643-kai=103.1+20181001-1", "./usr/share/fonts/truetype/cns11643/TW-Kai-98_1.ttf", 0),
    "SetoFont": ("fonts-seto=6.20-8", "./usr/share/fonts/truetype/seto/setofont.ttf", 0),
    "WenQuanYi Zen Hei": ("fonts-wqy-zenhei=0.9.45-8", "./usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
    "WenQuanYi Micro Hei": ("fonts-wqy-microhei=0.2.0-beta-3.1", "./usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
    "Smiley Sans": ("fonts-smiley-sans=1.1.1-1", "./usr/share/fonts/truetype/smiley-sans/SmileySans-Oblique.ttf", 0),
    "Klee One": ("fonts-klee=1.000-20210121-2", "./usr/share/fonts/truetype/klee/KleeOne-Regular.ttf", 0),
    "Kiloji": ("fonts-kiloji=1:2.1.0-25", "./usr/share/fonts/truetype/kiloji/kiloji.ttf", 0),
    "DKG Handwriting": ("fonts-dkg-handwriting=0.17-1", "./usr/share/fonts/truetype/fifthhorseman/dkg.ttf", 0),
    "SJ Fonts (Delphine, Steve)": ("fonts-sjfonts=2.1-2", "./usr/share/fonts/truetype/sjfonts/SteveHand.ttf", 0),
    "Comic Neue": ("fonts-comic-neue=2.51-4", "./usr/share/fonts/opentype/comic-neue/ComicNeue-Regular.otf", 0),
}
# Chinese families held out for validation: two handwriting-like, one casual, two print (one designer).
HAN_VAL = {"Zhi Mang Xing", "ZCOOL KuaiLe", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Kiloji"}
VAL_SHARE = 5  # one in five Latin designers


def read_allowed(path: Path) -> list[dict]:
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln and not ln.startswith("#")]
    return list(csv.DictReader(lines, delimiter="\t"))


def slug_of(source: str) -> str | None:
    m = re.search(r"@expo-google-fonts/([a-z0-9-]+)", source)
    return m.group(1) if m else None


def npm_version(archive: Path) -> str:
    with tarfile.open(archive) as tar:
        import json
        return json.load(tar.extractfile("package/package.json"))["version"]


def pick_member(archive: Path) -> str | None:
    with tarfile.open(archive) as tar:
        names = [m.name for m in tar.getmembers()]
    ttf = sorted(n for n in names if n.endswith(".ttf"))
    woff = sorted(n for n in names if n.endswith("-latin-400-normal.woff2"))
    for n in ttf:
        if "/400Regular/" in n:
            return n
    return (ttf or woff or [None])[0]


def designer_of(path: Path, index: int = 0) -> str:
    from fontTools.ttLib import TTFont

    font = TTFont(str(path), fontNumber=index, lazy=True)
    try:
        name = font["name"].getDebugName(9) or ""
    finally:
        font.close()
    return re.sub(r"\s+", " ", name).strip()[:80]


def is_val(key: str) -> bool:
    return int(hashlib.sha256(key.lower().encode()).hexdigest(), 16) % VAL_SHARE == 0


def resolve(row: dict, work: Path) -> list[FontEntry] | str:
    """Download and describe one allowed family; a string is the reason it was skipped."""
    family, script, style, source = row["family"], row["script"], row["style"], row["source"]
    if family in DEBIAN:
        spec, member, index = DEBIAN[family]
        package = f"deb:{spec}"
        archive = download_package(package, work / family.replace(" ", "_"))
    else:
        slug = slug_of(source)
        if not slug:
            return "no npm or Debian source used"
        for name in (f"@expo-google-fonts/{slug}", f"@fontsource/{slug}"):
            try:
                archive = download_package(f"npm:{name}", work / slug)
                break
            except RuntimeError:
                continue
        else:
            return "not on npm under @expo-google-fonts or @fontsource"
        member, index = pick_member(archive), 0
        if member is None:
            return "package has no TTF or latin woff2"
        package = f"npm:{name}@{npm_version(archive)}"
    file = f"{Path(member).stem}{Path(member).suffix}"
    entry = FontEntry(family, script, style, "font", package, member, index, file, "", "", "train")
    extract_member(archive, member, entry.path)
    designer = designer_of(entry.path, index)
    val = family in HAN_VAL if script == "han" else is_val(designer or family)
    return [FontEntry(family, script, style, "font", package, member, index, file,
                      sha256_path(entry.path), designer, "val" if val else "train")]


def stroke_entries(work: Path) -> list[FontEntry]:
    out = []
    archive = download_package("npm:hanzi-writer-data@2.0.1", work / "hwd")
    e = FontEntry("hanzi-writer-data", "han", "stroke medians", "strokes", "npm:hanzi-writer-data@2.0.1",
                  "package/", 0, "hanzi-writer-data", "", "Make Me a Hanzi / Arphic", "train")
    extract_member(archive, "package/", e.path)
    out.append(FontEntry(**{**e.__dict__, "sha256": sha256_path(e.path)}))
    archive = download_package("npm:hersheytext@2.0.0", work / "hershey")
    with tarfile.open(archive) as tar:
        svgs = sorted(m.name for m in tar.getmembers() if m.name.startswith("package/svg_fonts/") and m.name.endswith(".svg"))
    for member in svgs:
        name = Path(member).stem
        if "Goth" in name:  # blackletter is not handwriting
            continue
        e = FontEntry(f"hersheytext {name}", "latin", "single-stroke", "strokes", "npm:hersheytext@2.0.0",
                      member, 0, f"hershey/{name}.svg", "", "Hershey / EMS", "val" if is_val(name) else "train")
        extract_member(archive, member, e.path)
        out.append(FontEntry(**{**e.__dict__, "sha256": sha256_path(e.path)}))
    return out


def main(allowed: str) -> None:
    rows = [r for r in read_allowed(Path(allowed)) if r["script"] in ("latin", "han")]
    entries, skipped = [], []
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        work = Path(tmp)
        with ThreadPoolExecutor(8) as pool:
            for row, res in zip(rows, pool.map(lambda r: _safe(resolve, r, work), rows)):
                if isinstance(res, str):
                    skipped.append((row["family"], res))
                else:
                    entries += res
        entries += stroke_entries(work)
    entries.sort(key=lambda e: (e.kind, e.script, e.family))
    save_manifest(entries)
    for fam, why in skipped:
        print(f"skipped {fam}: {why}")
    for kind in ("font", "strokes"):
        for script in ("latin", "han"):
            for split in ("train", "val"):
                n = sum(e.kind == kind and e.script == script and e.split == split for e in entries)
                print(f"{kind:8s} {script:6s} {split:6s} {n}")


def _safe(fn, row, work):
    try:
        return fn(row, work)
    except Exception as exc:
        return f"error: {exc}"


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).resolve().parents[2] / "shared" / "fonts-allowed.tsv"))
