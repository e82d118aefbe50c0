"""Pre-training the reader's trunk on open words (reader_pretrain.py): the words it draws, the renders, and a
few steps that lower the loss of the words trained on, written back into the reader's graph."""

import numpy as np
import pytest
import torch
from helpers import SMALL

from xmr_core.data.lexicon import Lexicon
from xmr_core.model.ctc import ctc_log_likelihood
from xmr_core.model.dual import DualEncoder
from xmr_core.model.reader import Reader
from xmr_core.model.reading import ReadingModel
from xmr_core.train.reader_pretrain import PretrainConfig, open_word_inks, open_words, pretrain_trunk


@pytest.fixture(scope="module")
def model(lexicon):
    torch.manual_seed(0)
    return ReadingModel(DualEncoder(SMALL).eval(), Lexicon(lexicon.concepts[:30]), threads=2)


def test_open_words_are_frequent_spellable_words_without_the_excluded(model):
    words = open_words(model.reader.index, 300, exclude=["Time", "时间"])
    assert {k: len(v) for k, v in words.items()} == {"zh": 300, "en": 300, "es": 300}
    assert "the" in words["en"] and "que" in words["es"] and "我们" in words["zh"]
    assert "time" not in words["en"] and "时间" not in words["zh"]  # excluded, whatever the case
    assert all(w.isalpha() and w == w.lower() and 2 <= len(w) <= 14 for w in words["en"] + words["es"])
    assert all(all("\u4e00" <= c <= "\u9fff" for c in w) and len(w) <= 6 for w in words["zh"])
    assert all(c in model.reader.index for w in words["zh"] for c in w)


def test_renders_draw_open_and_lexicon_words_in_the_train_split(model, fonts_ready):
    words = open_words(model.reader.index, 200)
    cfg = PretrainConfig(renders=60, held=10, seed=3)
    samples = open_word_inks(model.lexicon, words, cfg)
    assert len(samples) == 60 and all(ink.ndim == 2 and 0 <= ink.min() and ink.max() <= 1 for ink, _ in samples)
    texts = [t for _, t in samples]
    lexicon_words = {c.word(lg) for c in model.lexicon.concepts for lg in ("zh", "en", "es")}
    opened = {w for v in words.values() for w in v}
    assert all(t.lower() in lexicon_words | opened for t in texts)
    assert sum(t.lower() in opened for t in texts) > 30  # most are open words
    assert any(t != t.lower() for t in texts)  # Title and UPPER case too
    assert [t for _, t in open_word_inks(model.lexicon, words, cfg)] == texts  # one stream per seed


def test_a_few_steps_lower_the_loss_and_are_written_back_into_the_reader(model, fonts_ready):
    words = open_words(model.reader.index, 50)
    cfg = PretrainConfig(renders=24, held=8, steps=12, batch=8, lr=3e-4, warmup=1, pen_share=1.0, seed=5)  # pen: read worse
    samples = open_word_inks(model.lexicon, words, cfg)
    weights, record = pretrain_trunk(model, samples, cfg, threads=2)
    assert record["train_samples"] + record["held_samples"] <= 24 and record["held_samples"] == 8
    assert record["max_posterior_difference_onnx_vs_torch"] < 1e-3 and record["trained_values"] > 3e6
    trained = Reader(threads=2, weights=weights)

    def likelihood(reader):  # of the words trained on
        train = samples[:-8]
        posts = reader.posteriors([ink for ink, _ in train])
        return [float(ctc_log_likelihood(np.log(np.maximum(p, 1e-30)), [[reader.index[c] for c in t]])[0])
                for p, (_, t) in zip(posts, train)]

    assert np.mean(likelihood(trained)) > np.mean(likelihood(model.reader)) + 0.1
    assert model.reader.weights == {}  # the model itself is unchanged
    with pytest.raises(ValueError, match="unknown reader pre-training config keys"):
        PretrainConfig.from_dict({"stepz": 3})
    with pytest.raises(ValueError, match="renders > held"):
        PretrainConfig(renders=10, held=10)
    assert PretrainConfig.from_dict({"lang_weights": [1, 0, 0]}).lang_weights == (1, 0, 0)

