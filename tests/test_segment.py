import numpy as np
import pytest
from PIL import Image

from xmr_core.render import SyntheticWords
from xmr_core.render.page import render_page
from xmr_core.segment import box_recall, iou, segment_page


def test_iou_and_recall():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    assert box_recall([(0, 0, 10, 10)], [(0, 0, 10, 10), (50, 50, 60, 60)]) == 0.5


def test_word_box_recall_on_synthetic_pages(lexicon, fonts_ready):
    ds = SyntheticWords(lexicon, "val", seed=1)
    recalls = []
    for p in range(4):
        rng = np.random.default_rng(p)
        words = [(lexicon.concepts[int(i)].concept_id, ("zh", "en", "es")[int(rng.integers(3))])
                 for i in rng.integers(0, len(lexicon), 24)]
        page, boxes, _ = render_page(ds, words, rng)
        recalls.append(box_recall(segment_page(page), boxes))
    assert np.mean(recalls) >= 0.85, recalls


def test_blank_page():
    with pytest.raises(ValueError, match="blank"):
        segment_page(Image.new("L", (800, 600), 240))
