"""Adapting the reader's trunk (trunk.py): the ONNX reader as a torch network, its trained tensors
written back into the reader's graph by name, and a few steps on a hand's samples that read them better."""

import numpy as np
import pytest
import torch
from helpers import SMALL

from xmr_core.data.lexicon import Lexicon
from xmr_core.data.preprocess import preprocess, word_ink
from xmr_core.data.render import SyntheticWords
from xmr_core.model.ctc import ctc_log_likelihood
from xmr_core.model.dual import DualEncoder
from xmr_core.model.reader import Reader, reader_input
from xmr_core.model.reading import READING_PREPROCESS, ReadingModel
from xmr_core.model.reading_head import ReadingHead
from xmr_core.train.trunk import TrunkConfig, adapt_trunk, folded_graph, replay_inks, torch_network, trainable, width_chunks


@pytest.fixture(scope="module")
def model(lexicon):
    torch.manual_seed(0)
    return ReadingModel(DualEncoder(SMALL).eval(), Lexicon(lexicon.concepts[:30]), threads=2)


def _inks(lex, n, seed=1):
    ds = SyntheticWords(lex, "val", seed=seed, kinds={"font": 1.0}, langs=("en", "es"))
    rng = np.random.default_rng(seed)
    return [word_ink(ds.sample(c.concept_id, "en", rng).image) for c in lex.concepts[:n]]


def test_the_trained_tensors_written_back_read_as_the_torch_network(model, fonts_ready):
    rng = np.random.default_rng(0)
    sym = np.array([0, 5, 17, 40])
    head = ReadingHead(sym, rng.normal(0, 0.1, (4, 120)).astype(np.float32), rng.normal(0, 0.5, 4).astype(np.float32))
    x, _ = reader_input(_inks(model.lexicon, 5))
    net, names = torch_network(folded_graph(model.reader, head))
    with torch.no_grad():  # the head folded into the CTC layer reads as reader + head
        folded = net(torch.from_numpy(x)).numpy()
    posts, feats = model.reader.run(x, features=True)
    assert np.abs(folded - np.stack([head.apply(p, f) for p, f in zip(posts, feats)])).max() < 1e-4
    params = trainable(net, names, 1 / 3)
    assert 3e6 < sum(t.numel() for t in params.values()) < 6e6  # the top third and the constants used there
    assert len(set(names[n] for n in params)) == len(params)  # one ONNX tensor each
    order = list(names)  # the graph's node order: nothing below the first trained layer trains
    cut = min(order.index(n) for n in params if not n.startswith("initializers."))
    assert all(order.index(n) >= cut for n in params)
    assert any(n.startswith("initializers.") and order.index(n) < cut for n in names)  # constants left below
    assert len(trainable(net, names, 1.0)) > len(params)
    with pytest.raises(ValueError, match="no layer"):
        trainable(net, names, 0.0)
    params = trainable(net, names, 1 / 3)
    with torch.no_grad():
        for t in params.values():
            t.add_(torch.randn_like(t) * 0.01)
        changed = net(torch.from_numpy(x)).numpy()
    weights = {names[n]: t.detach().numpy() for n, t in params.items()}
    back = Reader(threads=2, weights=weights)
    assert np.abs(back.run(x) - changed).max() < 1e-4 < np.abs(back.run(x) - folded).max()
    assert back.sha256 == model.reader.sha256 and back.key != model.reader.key and back.weights
    w, _ = back.ctc_layer()  # the CTC layer as it now is, for a head trained on top
    ctc = next(v for k, v in weights.items() if v.shape == w.shape)
    assert np.array_equal(w, ctc)
    name = next(iter(weights))
    with pytest.raises(ValueError, match="does not fit"):
        Reader(weights={name: np.zeros((3, 3), np.float32)})
    with pytest.raises(ValueError, match="no such tensor"):
        Reader(weights={"not.in.the.graph": np.zeros(3, np.float32)})


def test_a_few_steps_read_the_queue_samples_better(model, fonts_ready):
    lex = model.lexicon
    ds = SyntheticWords(lex, "val", seed=2, kinds={"pen": 1.0}, langs=("en",))  # a pen: one word it misreads
    rng = np.random.default_rng(3)
    samples = [ds.sample(c.concept_id, "en", rng) for c in lex.concepts[:6]]
    x = np.stack([preprocess(s.image, READING_PREPROCESS) for s in samples])
    words = [(lex.get(s.concept_id).en, "en") for s in samples]
    weights, record = adapt_trunk(model, x, words, TrunkConfig(steps=12, batch=8, lr=3e-4), threads=2)
    assert record["queue_samples"] == 6 and record["max_posterior_difference_onnx_vs_torch"] < 1e-3
    adapted = Reader(threads=2, weights=weights)

    def likelihood(reader):
        posts = reader.posteriors([word_ink(s.image) for s in samples])
        return [float(ctc_log_likelihood(np.log(np.maximum(p, 1e-30)), [[reader.index[ch] for ch in s.text]])[0])
                for p, s in zip(posts, samples)]

    before, after = likelihood(model.reader), likelihood(adapted)
    assert np.mean(after) > np.mean(before) + 0.1, (before, after)
    assert model.reader.weights == {}  # the model itself is unchanged
    with pytest.raises(ValueError, match="unknown trunk config keys"):
        TrunkConfig.from_dict({"stepz": 3})
    with pytest.raises(ValueError, match="fraction"):
        TrunkConfig(fraction=0)


def test_replay_renders_are_rendered_once_then_read_from_the_cache(model, fonts_ready, tmp_path):
    first = replay_inks(model.lexicon, 12, seed=4, folder=tmp_path)
    assert len(first) == 12 and all(t and ink.ndim == 2 and 0 <= ink.min() and ink.max() <= 1 for ink, t in first)
    assert len({t for _, t in first}) > 3  # random words of the lexicon
    (path,) = tmp_path.glob("replay-*.npz")
    again = replay_inks(model.lexicon, 12, seed=4, folder=tmp_path)  # from the file, not rendered again
    assert [t for _, t in again] == [t for _, t in first]
    assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(first, again))
    path.unlink()
    other = replay_inks(model.lexicon, 12, seed=5, folder=tmp_path)  # another seed: other words
    assert [t for _, t in other] != [t for _, t in first]


def test_a_batch_is_read_in_chunks_of_similar_width_with_every_sample_once():
    batch = [(np.zeros((48, w), np.float32), [i]) for i, w in enumerate([90, 30, 300, 60, 120, 45, 200])]
    parts = width_chunks(batch, 3)
    assert [len(p) for p in parts] == [2, 3, 2]
    widths = [ink.shape[1] for p in parts for ink, _ in p]
    assert widths == sorted(widths)
    assert sorted(t[0] for p in parts for _, t in p) == list(range(7))
    assert len(width_chunks(batch[:2], 4)) == 2 and width_chunks(batch, 1) == [sorted(batch, key=lambda b: b[0].shape[1])]
