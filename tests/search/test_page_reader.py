"""Pages (issue 27): PP-OCRv6's text detector finds the lines, straightened lines are split into words;
word boxes measured against the true boxes of synthetic pages (benchmarks/pages.py has the full table)."""

import numpy as np
import pytest
from PIL import Image

from xmr_core.data.lexicon import load_lexicon
from xmr_core.data.render import SyntheticWords
from xmr_core.data.render.page import KINDS, synthetic_page
from xmr_core.search.pages import PageReader, box_precision, box_recall, iou, split_line


@pytest.fixture(scope="module")
def page_reader():
    return PageReader()


def test_iou_recall_and_precision():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    assert box_recall([(0, 0, 10, 10)], [(0, 0, 10, 10), (50, 50, 60, 60)]) == 0.5
    assert box_precision([(0, 0, 10, 10), (80, 80, 90, 90)], [(0, 0, 10, 10)]) == 0.5


def test_a_line_splits_at_word_gaps_not_letter_gaps():
    ink = np.zeros((40, 300), np.float32)
    for x0, x1 in [(10, 30), (36, 60), (66, 90), (150, 200), (205, 240)]:  # two words: gaps 6 px inside, 60 between
        ink[8:32, x0:x1] = 1
    assert split_line(ink) == [(10, 8, 90, 32), (150, 8, 240, 32)]


@pytest.mark.parametrize("kind", KINDS)
def test_word_boxes_on_synthetic_pages(page_reader, kind, fonts_ready):
    ds = SyntheticWords(load_lexicon(), "val", seed=1)
    rec, prec = [], []
    for p in range(3):
        page, truth = synthetic_page(kind, ds, np.random.default_rng(1000 * KINDS.index(kind) + p))
        words = page_reader.words(page)
        pred = [w.box for w in words]
        rec.append(box_recall(pred, truth))
        prec.append(box_precision(pred, truth))
        assert all(w.image.width >= 2 and w.image.height >= 2 for w in words)
    # the home-made segmenter it replaces: 0.950 / 0.815, 0.867 / 0.675, 0.809 / 0.724 (docs/pages.md)
    assert np.mean(rec) >= 0.95 and np.mean(prec) >= 0.95, (kind, rec, prec)


def test_a_blank_page_says_so(page_reader):
    with pytest.raises(ValueError, match="no text"):
        page_reader.words(Image.new("L", (800, 600), 240))
