"""The reading head (model/reading_head.py): a change of the reader's CTC layer, exact against the full
layer, trained by the CTC loss, saved and served with the model directory."""

import numpy as np
import pytest

from xmr_core.data.lexicon import Lexicon
from xmr_core.data.preprocess import word_ink
from xmr_core.data.render import SyntheticWords
from xmr_core.model.ctc import WordTable
from xmr_core.model.reader import Reader
from xmr_core.model.reading_head import HEAD_FILE, Example, HeadConfig, ReadingHead, fit_head, head_symbols


@pytest.fixture(scope="module")
def reader():
    return Reader()


@pytest.fixture(scope="module")
def renders(lexicon, reader, fonts_ready):
    lex = Lexicon(lexicon.concepts[:12])
    ds = SyntheticWords(lex, "train", seed=8, cases={"lower": 0.5, "upper": 0.5})
    samples = [ds[i] for i in range(36)]
    outs = reader.outputs([word_ink(s.image) for s in samples])
    return lex, samples, outs


def test_the_head_is_the_changed_layer_exactly(reader, renders):
    lex, _, outs = renders
    w, b = reader.ctc_layer()
    table = WordTable.build(lex, reader.index)
    sym = head_symbols(table)
    assert sym[0] == 0 and set(table.labels[table.labels >= 0].tolist()) <= set(sym.tolist())
    zero = ReadingHead.zero(sym)
    rng = np.random.default_rng(0)
    head = ReadingHead(sym, rng.normal(0, 0.05, zero.dw.shape).astype(np.float32),
                       rng.normal(0, 0.5, zero.db.shape).astype(np.float32))
    for post, feat in outs[:4]:
        assert np.allclose(zero.apply(post, feat), post, rtol=1e-4, atol=1e-8)
        w2, b2 = w.copy(), b.copy()
        w2[:, sym] += head.dw.T
        b2[sym] += head.db
        z = feat @ w2 + b2
        z = np.exp(z - z.max(1, keepdims=True))
        want = z / z.sum(1, keepdims=True)
        got = head.apply(post, feat)
        assert np.allclose(got, want, atol=2e-5) and np.allclose(got.sum(1), 1, atol=1e-5)


def test_training_lowers_the_loss_and_a_saved_head_loads_the_same(reader, renders, tmp_path):
    lex, samples, outs = renders
    w, b = reader.ctc_layer()
    examples = [Example(f, [reader.index[ch] for ch in s.text]) for s, (_, f) in zip(samples, outs)]
    sym = head_symbols(WordTable.build(lex, reader.index))
    head, losses = fit_head(examples, w, b, sym, HeadConfig(steps=100, batch=16, lr=3e-3, l2=0.0))
    assert losses[-1] < 0.7 * losses[0], losses
    assert np.abs(head.dw).max() > 0
    head.save(tmp_path / HEAD_FILE)
    back = ReadingHead.load(tmp_path / HEAD_FILE)
    post, feat = outs[0]
    assert np.array_equal(back.apply(post, feat), head.apply(post, feat))
    with pytest.raises(ValueError, match="unknown head config keys"):
        HeadConfig.from_dict({"stpes": 3})


def test_adapting_starts_from_a_head_and_negatives_push_their_word_down(reader, renders):
    """Issue 28: a head tuned from another starts there (a step at a tiny rate: the same head) and is pulled back to
    it; a negative (an image with a word it does not say) lowers that word's likelihood for it."""
    from xmr_core.model.ctc import ctc_log_likelihood

    lex, samples, outs = renders
    w, b = reader.ctc_layer()
    examples = [Example(f, [reader.index[ch] for ch in s.text]) for s, (_, f) in zip(samples, outs)]
    sym = head_symbols(WordTable.build(lex, reader.index))
    start, _ = fit_head(examples, w, b, sym, HeadConfig(steps=30, batch=16, lr=3e-3, l2=0.0))
    same, _ = fit_head(examples[:4], w, b, sym, HeadConfig(steps=1, batch=4, lr=1e-9), init=start)
    assert np.allclose(same.dw, start.dw, atol=1e-6) and np.allclose(same.db, start.db, atol=1e-6)
    post, feat = outs[0]
    label = [reader.index[ch] for ch in samples[0].text]  # the word it is most likely read as, said to be wrong

    def loglik(head):
        return float(ctc_log_likelihood(np.log(np.maximum(head.apply(post, feat), 1e-30)), [label])[0])

    cfg = HeadConfig(steps=40, batch=8, lr=3e-3, l2=0.01)
    plain, _ = fit_head(examples[1:], w, b, sym, cfg, init=start)
    pushed, _ = fit_head(examples[1:], w, b, sym, cfg, init=start, negatives=[Example(feat, label)],
                         negative_weight=2.0)
    assert loglik(pushed) < loglik(plain) - 0.5


def test_a_head_config_with_an_unknown_key_is_refused(tmp_path):
    import json

    from xmr_core.model.reading_head import load_head_config

    good = {"per_word": 1, "seeds": [1], "cases": {"lower": 1.0}, "head": {"steps": 5}}
    (tmp_path / "a.json").write_text(json.dumps(good))
    assert load_head_config(tmp_path / "a.json")["per_word"] == 1
    (tmp_path / "b.json").write_text(json.dumps({**good, "per_wrod": 2}))
    with pytest.raises(ValueError, match="per_wrod"):
        load_head_config(tmp_path / "b.json")
    (tmp_path / "c.json").write_text(json.dumps({**good, "head": {"step": 5}}))
    with pytest.raises(ValueError, match="unknown head config keys"):
        load_head_config(tmp_path / "c.json")
