"""The engine's collections: adding images and pages, the embedding map, removal."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from xmr_core.data.lexicon import LANGS
from xmr_core.data.preprocess import encode_png, fit, open_image, png_bytes, storable, word_ink
from xmr_core.search.results import AddReport, Hit, Progress
from xmr_core.store.items import Item

if TYPE_CHECKING:
    import pandas as pd


def _style(source: str) -> str:
    """The hand or font of an item where its source name records it (demo renders: name@font.png)."""
    return Path(source).stem.rsplit("@", 1)[1] if "@" in Path(source).stem else "not recorded"


class Collections:
    """Collections for the Engine: add images and pages, show the map, remove items."""

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
                img = storable(data)
                ink = word_ink(img)  # decoded once: the model reads what is stored
                x = fit(ink, self.pre)[None]  # = preprocess(img, self.pre)
                raw = encode_png(img)
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

        raw = png_bytes(page, MAX_WORK)  # a page is kept larger than a word (up to MAX_WORK pixels)
        with self._lock:
            self._pages = self._pages or PageReader(torch.get_num_threads())
        words = self._pages.words(open_image(raw, MAX_WORK))
        boxes = [w.box for w in words]
        page_sha, _ = self.store.put_image(raw, ".png")
        crops = [(f"{source}#{b[0]},{b[1]},{b[2]},{b[3]}", w.image) for w, b in zip(words, boxes)]
        return self.add(collection, crops, progress=progress, pages=[(page_sha, b) for b in boxes])

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
                max_items: int = 1500) -> tuple[pd.DataFrame, dict]:
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

    def thumbnails(self, ids: list[int], height: int = 64) -> dict[int, str]:
        """Small grey PNGs of stored items as data URIs, by item id (what the Explore map shows on hover);
        an id that names no item, or an item whose file is missing, is left out."""
        out = {}
        for i, it in self.store.get_items([int(i) for i in ids if int(i) >= 0]).items():
            if not it.path.exists():
                continue
            img = Image.open(it.path).convert("L")
            img.thumbnail((4 * height, height))
            out[i] = "data:image/png;base64," + base64.b64encode(encode_png(img)).decode()
        return out

    def remove(self, ids: list[int]) -> int:
        n = self.store.remove_items(ids)
        with self._index_lock():
            self._sync_index()
        return n
