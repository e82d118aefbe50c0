"""Few-shot adaptation's data (adapt.py): queue samples read with jittered copies and labelled in the
letter case the model reads best; replay renders read once and cached."""

import numpy as np
import pytest
from helpers import small_reading_model

from xmr_core.data.preprocess import preprocess
from xmr_core.data.render import SyntheticWords
from xmr_core.model.reading import READING_PREPROCESS
from xmr_core.train.adapt import AdaptConfig, jitter, queue_examples, replay_examples


@pytest.fixture(scope="module")
def model(lexicon):
    return small_reading_model(lexicon, 20)


def test_queue_samples_are_read_with_copies_in_the_case_they_are_written(model, fonts_ready):
    lex = model.lexicon
    ds = SyntheticWords(lex, "train", langs=("en",), kinds={"font": 1.0}, seed=3, cases={"upper": 1.0})
    samples = [ds.sample(c.concept_id, "en", np.random.default_rng(n)) for n, c in enumerate(lex.concepts[:6])]
    x = np.stack([preprocess(s.image, READING_PREPROCESS) for s in samples])
    rng = np.random.default_rng(0)
    ex = queue_examples(model, x, [(lex.get(s.concept_id).en, "en") for s in samples], 3, rng)
    assert len(ex) == 4 * len(samples)  # each sample and three copies
    index = model.reader.index
    upper = sum(ex[4 * n].label == [index[ch] for ch in s.text] for n, s in enumerate(samples))
    assert upper >= 5, [(s.text, "".join(model.reader.symbols[i] for i in e.label)) for s, e in zip(samples, ex[::4])]
    assert all(e.label == ex[4 * (n // 4)].label for n, e in enumerate(ex))  # copies keep their sample's label
    ink = np.zeros((40, 120), np.float32)
    ink[10:30, 10:110] = 1
    j = jitter(ink, np.random.default_rng(1))
    assert j.shape[0] == 40 and j.dtype == np.float32 and 0 <= j.min() and j.max() <= 1
    assert j.shape != ink.shape or not np.allclose(j, ink)  # another writing of the same ink


def test_replay_renders_are_cached(model, fonts_ready, tmp_path, monkeypatch):
    import xmr_core.train.adapt as adapt

    monkeypatch.setattr(adapt, "cache_dir", lambda: tmp_path)  # the fonts stay where they are
    first = replay_examples(model, model.lexicon, 12, seed=4)
    assert len(first) == 12 and list((tmp_path / "adapt").glob("replay-*.npz"))
    again = replay_examples(model, model.lexicon, 12, seed=4)
    assert [e.label for e in again] == [e.label for e in first]
    assert all(np.allclose(a.features, b.features, atol=1e-2) for a, b in zip(first, again))
    with pytest.raises(ValueError, match="unknown adapt config keys"):
        AdaptConfig.from_dict({"stepz": 3})
    with pytest.raises(ValueError, match="replay"):
        AdaptConfig(replay=1.0)
