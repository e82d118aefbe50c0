"""Page segmentation: a scanned or photographed page of handwriting -> word boxes (lines, then words)."""

from __future__ import annotations

import cv2
import numpy as np

from .preprocess import ImageInput, ink_map, open_image, to_gray

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in page pixels


def segment_page(src: ImageInput, min_height: int = 6) -> list[Box]:
    """Word boxes in reading order. Lines come from merging ink horizontally; words from gaps wider
    than a share of the line height (letters of a word sit closer than words do)."""
    img = open_image(src)
    full_w, full_h = img.size
    gray = to_gray(img)
    sy, sx = full_h / gray.shape[0], full_w / gray.shape[1]
    ink = ink_map(gray) > 0.35
    if ink.sum() < 10:
        raise ValueError("the page is blank: no ink was found")
    h, w = ink.shape
    u8 = ink.astype(np.uint8)
    # characteristic stroke/character height from component heights
    n, _, stats, _ = cv2.connectedComponentsWithStats(u8, connectivity=8)
    heights = stats[1:, cv2.CC_STAT_HEIGHT]
    char_h = float(np.median(heights[heights >= 3])) if (heights >= 3).any() else 10.0
    line_mask = cv2.dilate(u8, cv2.getStructuringElement(cv2.MORPH_RECT, (max(3, int(char_h * 2.5)), 1)))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(line_mask, connectivity=8)
    lines = sorted((stats[i] for i in range(1, n) if stats[i, cv2.CC_STAT_HEIGHT] >= min_height),
                   key=lambda s: (s[cv2.CC_STAT_TOP], s[cv2.CC_STAT_LEFT]))
    boxes: list[Box] = []
    for s in lines:
        x, y, bw, bh = s[0], s[1], s[2], s[3]
        band = u8[y:y + bh, x:x + bw]
        gap = max(2, int(0.5 * bh))
        words = cv2.dilate(band, cv2.getStructuringElement(cv2.MORPH_RECT, (gap, max(1, bh // 2))))
        m, _, ws, _ = cv2.connectedComponentsWithStats(words, connectivity=8)
        for j in sorted(range(1, m), key=lambda j: ws[j, 0]):
            wx, wy, ww, wh = ws[j, 0], ws[j, 1], ws[j, 2], ws[j, 3]
            sub = band[wy:wy + wh, wx:wx + ww]
            ys, xs = np.nonzero(sub)
            if len(xs) < 8:
                continue
            x0, y0 = x + wx + xs.min(), y + wy + ys.min()
            x1, y1 = x + wx + xs.max() + 1, y + wy + ys.max() + 1
            if y1 - y0 < min_height // 2:
                continue
            boxes.append((int(x0 * sx), int(y0 * sy), int(np.ceil(x1 * sx)), int(np.ceil(y1 * sy))))
    return boxes


def iou(a: Box, b: Box) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def box_recall(pred: list[Box], truth: list[Box], threshold: float = 0.5) -> float:
    """Share of true word boxes matched by a predicted box with IoU >= threshold."""
    if not truth:
        return float("nan")
    return sum(any(iou(t, p) >= threshold for p in pred) for t in truth) / len(truth)
