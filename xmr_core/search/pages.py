"""Pages: a scanned or photographed page of handwriting -> its words, each with its box on the page.

Text lines come from PP-OCRv6's text detector (`PP-OCRv6_det_small.onnx`, Apache-2.0, inside the installed
rapidocr wheel beside the reader; run by onnxruntime on the page scaled to MAX_SIDE and normalised as rapidocr
does, with rapidocr's own DB post-processing). Each
line is cut out along its rotated box, which deskews a rotated or photographed page line by line, and split
into words where its ink leaves a gap of at least WORD_GAP line heights (Chinese words: the character groups
those gaps leave). Also splitting narrower gaps where the reader reads a space was measured and dropped: on
the synthetic pages it only cut widely spaced words in two (docs/pages.md). Each word keeps its deskewed
crop and its box on the page (the axis-aligned box around its turned box).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from xmr_core.data.preprocess import ImageInput, ink_map, open_image
from xmr_core.model.reader import reader_path

DETECTOR_FILE = "PP-OCRv6_det_small.onnx"
DETECTOR_SHA256 = "090f04abcd9d9a7498bc4ebf677e4cb9bdce1fe4197ddb7e529f1ef44e1ff94f"  # rapidocr 3.10.0
Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in page pixels

WORD_GAP = 0.8  # an ink gap this many line heights wide splits words (0.55 / 0.7 / 0.8 / 0.9: docs/pages.md)
INK_SHARE, INK_MIN, INK_MAX = 0.3, 0.08, 0.35  # what counts as ink in a line (docs/pages.md)
MAX_SIDE = 1600  # the detector sees the page with its longer side at most this many pixels
MAX_WORK = 4000  # lines are cut from the page at most this many pixels on its longer side


@dataclass
class PageWord:
    box: Box  # on the page
    image: Image.Image  # the word cut from its deskewed line, dark ink on light paper
    quad: np.ndarray  # (4, 2) its corners on the page


class Detector:
    """The text-line detector, one onnxruntime session."""

    def __init__(self, threads: int = 1) -> None:
        import onnxruntime as ort
        from rapidocr.ch_ppocr_det.utils import DBPostProcess

        path = reader_path().parent / DETECTOR_FILE
        if not path.exists():
            raise RuntimeError(f"the text detector {DETECTOR_FILE} was not found beside the reader {reader_path()}: "
                               "install the rapidocr version pinned in requirements.txt (`make setup`)")
        data = path.read_bytes()
        self.sha256 = hashlib.sha256(data).hexdigest()
        if self.sha256 != DETECTOR_SHA256:
            raise RuntimeError(f"the text detector {path} is not the file XMR was built with (sha256 "
                               f"{self.sha256[:16]}...): reinstall the rapidocr version pinned in requirements.txt")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        self.session = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        # rapidocr's settings for this model (config.yaml: thresh, box_thresh, unclip_ratio, dilation)
        self.post = DBPostProcess(thresh=0.3, box_thresh=0.5, max_candidates=1000, unclip_ratio=1.6,
                                  score_mode="fast", use_dilation=True)

    def lines(self, rgb: np.ndarray) -> list[np.ndarray]:
        """(4, 2) float corner arrays of the text lines of an RGB page, in reading order."""
        h, w = rgb.shape[:2]
        f = min(1.0, MAX_SIDE / max(h, w))
        rh, rw = max(32, int(round(h * f / 32)) * 32), max(32, int(round(w * f / 32)) * 32)
        x = cv2.resize(rgb, (rw, rh), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        x = ((x - 0.5) / 0.5).transpose(2, 0, 1)[None]
        pred = self.session.run(None, {self.session.get_inputs()[0].name: np.ascontiguousarray(x)})[0]
        quads, _ = self.post(pred, (h, w))
        quads = [_order(q.astype(np.float32)) for q in quads]
        return sorted(quads, key=lambda q: (round(float(q[:, 1].mean()) / max(8.0, _height(q))), float(q[:, 0].min())))


def _order(q: np.ndarray) -> np.ndarray:
    """Corners as top-left, top-right, bottom-right, bottom-left, the long side horizontal-ish."""
    c = q.mean(0)
    ang = np.arctan2(q[:, 1] - c[1], q[:, 0] - c[0])
    q = q[np.argsort(ang)]  # clockwise in image coordinates, from the left-most upper corner
    tl = int(np.argmin(q[:, 0] + q[:, 1]))
    return np.roll(q, -tl, axis=0)


def _height(q: np.ndarray) -> float:
    return float((np.linalg.norm(q[3] - q[0]) + np.linalg.norm(q[2] - q[1])) / 2)


def _width(q: np.ndarray) -> float:
    return float((np.linalg.norm(q[1] - q[0]) + np.linalg.norm(q[2] - q[3])) / 2)


def _line_crop(gray: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The line cut out along its quadrilateral, straightened: (crop, the 3x3 map crop -> page)."""
    w, h = max(2, int(round(_width(q)))), max(2, int(round(_height(q))))
    dst = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    m = cv2.getPerspectiveTransform(q.astype(np.float32), dst)
    crop = cv2.warpPerspective(gray, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return crop, np.linalg.inv(m)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def split_line(ink: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Word boxes (x0, y0, x1, y1) inside a straightened line's ink map: the columns with ink (ink above
    INK_SHARE of the line's darkest, between INK_MIN and INK_MAX: a faint word is still ink), split at gaps
    at least WORD_GAP ink heights wide, each box tightened to its ink."""
    on = ink > float(np.clip(INK_SHARE * np.percentile(ink, 99.5), INK_MIN, INK_MAX))
    cols = on.sum(0) > 0
    rows = np.flatnonzero(on.sum(1) > 0)
    if not cols.any() or not len(rows):
        return []
    ink_h = float(rows[-1] - rows[0] + 1)
    spans = _runs(cols)
    words = [list(spans[0])]
    for a, b in spans[1:]:
        if a - words[-1][1] >= WORD_GAP * ink_h:
            words.append([a, b])
        else:
            words[-1][1] = b
    out = []
    for a, b in words:
        ys = np.flatnonzero(on[:, a:b].sum(1) > 0)
        if b - a >= 2 and len(ys) and (b - a) * len(ys) >= 0.02 * ink_h * ink_h:  # no specks
            out.append((int(a), int(ys[0]), int(b), int(ys[-1] + 1)))
    return out


class PageReader:
    """Pages -> words: the detector's lines, straightened and split at their gaps."""

    def __init__(self, threads: int = 1) -> None:
        self.detector = Detector(threads)

    def words(self, src: ImageInput) -> list[PageWord]:
        """The page's words in reading order, boxes in the page's pixels as opened (`open_image(src,
        MAX_WORK)`: the file's own below MAX_WORK); ValueError for a page with no text."""
        img = open_image(src, MAX_WORK).convert("RGB")  # a huge scan is worked on at MAX_WORK pixels
        rgb = np.asarray(img)
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        out: list[PageWord] = []
        for q in self.detector.lines(rgb):
            crop, back = _line_crop(gray, q)
            ink = ink_map(crop)
            for x0, y0, x1, y1 in split_line(ink):
                m = max(2, (y1 - y0) // 8)
                a, b = max(0, x0 - m), max(0, y0 - m)
                c, d = min(crop.shape[1], x1 + m), min(crop.shape[0], y1 + m)
                corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
                quad = cv2.perspectiveTransform(corners[None], back)[0]
                box = (int(max(0, quad[:, 0].min())), int(max(0, quad[:, 1].min())),
                       int(min(img.width, np.ceil(quad[:, 0].max()))), int(min(img.height, np.ceil(quad[:, 1].max()))))
                word = Image.fromarray((np.clip(crop[b:d, a:c], 0, 1) * 255).astype(np.uint8))
                out.append(PageWord(box, word, quad))
        if not out:
            raise ValueError("no text was found on the page")
        return out


def iou(a: Box, b: Box) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def box_recall(pred: list[Box], truth: list[Box], threshold: float = 0.5) -> float:
    """Share of true boxes matched by a predicted box at IoU >= threshold."""
    return float(np.mean([any(iou(p, t) >= threshold for p in pred) for t in truth])) if truth else 1.0


def box_precision(pred: list[Box], truth: list[Box], threshold: float = 0.5) -> float:
    """Share of predicted boxes that match a true box at IoU >= threshold."""
    return box_recall(truth, pred, threshold) if pred else 0.0
