"""Self-training (self_training.py): the unlabelled inputs a reading model reads most surely, with the
concept and script it reads them as; a fine-tune that learns from a collection's unlabelled items."""

import csv

import numpy as np
import pytest
from helpers import png, small_reading_model

from xmr_core.data.lexicon import LANGS
from xmr_core.data.preprocess import preprocess
from xmr_core.data.render import SyntheticWords
from xmr_core.model.reading import READING_PREPROCESS
from xmr_core.train.self_training import pseudo_labels


@pytest.fixture(scope="module")
def model(lexicon):
    return small_reading_model(lexicon, 30)


def test_the_surest_readings_are_kept_with_their_concept_and_script(model, fonts_ready):
    lex = model.lexicon
    ds = SyntheticWords(lex, "train", kinds={"font": 1.0}, seed=3)
    samples = [ds.sample(c.concept_id, LANGS[n % 3], np.random.default_rng(n)) for n, c in enumerate(lex.concepts)]
    x = np.stack([preprocess(s.image, READING_PREPROCESS) for s in samples])
    noise = np.random.default_rng(0).random((4, *x.shape[1:])).astype(np.float32)  # scribbles: no word at all
    x = np.concatenate([x, noise])
    labels = pseudo_labels(model, x, 0.5)
    assert len(labels) == round(0.5 * len(x)) and len({p.index for p in labels}) == len(labels)
    margins = [p.margin for p in labels]
    assert margins == sorted(margins, reverse=True) and margins[-1] >= 0
    scores = model.read(x)
    by_concept = np.sort(scores.max(1), 1)
    dropped = set(range(len(x))) - {p.index for p in labels}
    assert min(margins) >= max(by_concept[n, -1] - by_concept[n, -2] for n in dropped)  # the widest margins kept
    for p in labels:  # each label is the input's best (concept, script) reading
        lang, concept = np.unravel_index(scores[p.index].argmax(), scores[p.index].shape)
        assert (p.concept_id, p.lang) == (lex.concepts[concept].concept_id, LANGS[lang])
    right = [p.index < len(samples) and (p.concept_id, p.lang) == (samples[p.index].concept_id, samples[p.index].lang)
             for p in labels]
    assert np.mean(right) >= 0.9, [(p.index, p.concept_id, p.lang) for p in labels]  # the reader reads fonts well
    assert len(pseudo_labels(model, x, 1.0)) == len(x) and pseudo_labels(model, x[:0], 0.5) == []
    with pytest.raises(ValueError, match="share"):
        pseudo_labels(model, x, 0)


@pytest.mark.slow
def test_a_finetune_learns_from_a_collections_unlabelled_items(model, tmp_path, fonts_ready):
    from dataclasses import asdict

    from xmr_core.model.checkpoint import save_model_dir
    from xmr_core.model.reading import ReadingConfig, reader_record
    from xmr_core.search.annotate import save_annotation
    from xmr_core.search.engine import Engine
    from xmr_core.train.finetune import FinetuneConfig, finetune

    lex = model.lexicon
    d = save_model_dir(model.base, lex, tmp_path / "r", extra={"reading": asdict(ReadingConfig()),
                                                               "reader": reader_record()})
    eng = Engine(tmp_path / "data", model_dir=d)
    ds = SyntheticWords(lex, "train", kinds={"font": 1.0}, seed=4)
    for i in range(4):
        save_annotation(eng, png(ds[i].image), ds[i].concept_id, ds[i].lang)
    pool = [(f"u{i}", png(ds[i].image)) for i in range(10, 20)]
    eng.add("hand", pool)  # unlabelled: what the user added and nobody labelled
    eng.add("hand", [("labelled", png(ds[30].image))], labels=[(ds[30].concept_id, ds[30].lang)])
    item = eng.store.get_items(eng.add("hand", [("queued", png(ds[31].image))]).added)
    item = next(iter(item.values()))  # an item labelled in Annotate: in the queue already
    eng.store.annotate(item.sha256, str(item.path.relative_to(eng.store.root)), ds[31].concept_id, ds[31].lang)
    cfg = dict(steps=2, trunk_steps=0, val_concepts=4, replay_renders=10)
    res = finetune(eng.store, d, tmp_path / "ft", FinetuneConfig(**cfg, self_train="hand", self_train_keep=0.5))
    assert res["self_training"]["read"] == 10 and res["self_training"]["kept"] == 5  # not the labelled, not the queued
    assert res["trained"] == "reading head" and res["n_train"] + res["n_heldout"] == 5  # the queue itself unchanged
    with open(tmp_path / "ft" / "data" / "self_training.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5 and {r["source"] for r in rows} <= {s for s, _ in pool}
    truth = {f"u{i}": (ds[i].concept_id, ds[i].lang) for i in range(10, 20)}
    assert sum((r["concept_id"], r["lang"]) == truth[r["source"]] for r in rows) >= 4
    assert all(r["text"] == lex.get(r["concept_id"]).word(r["lang"]) for r in rows)
    res = finetune(eng.store, d, tmp_path / "ft2", FinetuneConfig(**cfg, self_train="hand", self_train_max=4))
    assert res["self_training"]["read"] == 4 and res["self_training"]["kept"] == 2
    with pytest.raises(ValueError, match="no collection named"):
        finetune(eng.store, d, tmp_path / "ft3", FinetuneConfig(**cfg, self_train="nowhere"))
    edge = save_model_dir(model.base, lex, tmp_path / "edge")
    with pytest.raises(ValueError, match="reader model"):
        finetune(eng.store, edge, tmp_path / "ft4", FinetuneConfig(**cfg, self_train="hand"))
