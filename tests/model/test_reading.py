"""The reading model: the image's embedding from the reader's constrained reading (model/reading.py),
saved and loaded as a model directory, checked against the installed reader, served by the engine."""

import json
from dataclasses import asdict

import numpy as np
import pytest
import torch
from helpers import SMALL, png

from xmr_core.data.lexicon import LANGS, Lexicon
from xmr_core.data.preprocess import preprocess
from xmr_core.data.render import SyntheticWords
from xmr_core.model.checkpoint import load_engine_model, save_model_dir
from xmr_core.model.dual import DualEncoder
from xmr_core.model.reading import READING_PREPROCESS, ReadingConfig, ReadingModel, reader_record
from xmr_core.search.engine import Engine


@pytest.fixture(scope="module")
def small(lexicon):
    torch.manual_seed(0)
    return DualEncoder(SMALL).eval(), Lexicon(lexicon.concepts[:40])


def reading_dir(path, small, **cfg):
    model, lex = small
    rcfg = ReadingConfig(**cfg)
    return save_model_dir(model, lex, path, extra={"reading": asdict(rcfg), "reader": reader_record()})


def test_the_embedding_is_the_anchors_weighted_by_the_reading(small):
    """By hand: three concepts with log-likelihoods (-1, -3, -inf) at temperature 2 weigh e^-0.5 : e^-1.5 : 0."""
    model, lex = small
    rm = ReadingModel(model, Lexicon(lex.concepts[:3]), ReadingConfig(temperature=2.0))
    scores = np.full((1, 3, 3), -np.inf)
    scores[0, 1, 0], scores[0, 2, 0], scores[0, 0, 1] = -1.0, -5.0, -3.0  # best word per concept counts
    w = rm.weights(scores)[0]
    want = np.array([np.exp(-0.5), np.exp(-1.5), 0.0])
    assert np.allclose(w, want / want.sum())
    with torch.no_grad():
        a = sum(model.encode_text([c.word(lg) for c in lex.concepts[:3]]).numpy() for lg in LANGS)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    assert np.allclose(rm.anchors, a, atol=1e-6)


def test_a_render_weighs_its_own_concept_most(small, fonts_ready):
    model, lex = small
    rm = ReadingModel(model, lex)
    ds = SyntheticWords(lex, "train", kinds={"font": 1.0}, seed=4)
    samples = [ds[i] for i in range(0, 60, 5)]
    x = np.stack([preprocess(s.image, READING_PREPROCESS) for s in samples])
    best = rm.weights(rm.read(x)).argmax(1)
    right = sum(lex.concepts[b].concept_id == s.concept_id for b, s in zip(best, samples))
    assert right >= 0.8 * len(samples)


def test_save_load_gives_the_same_embeddings_and_a_changed_reader_is_refused(small, tmp_path, fonts_ready):
    d = reading_dir(tmp_path / "r", small, temperature=2.0, visual_weight=0.5)
    a, lex, _ = load_engine_model(d)
    b, _, _ = load_engine_model(d)
    assert isinstance(a, ReadingModel) and a.rcfg.visual_weight == 0.5
    ds = SyntheticWords(lex, "train", kinds={"font": 1.0}, seed=5)
    x = np.stack([preprocess(ds[i].image, READING_PREPROCESS) for i in range(6)])
    assert np.allclose(a.encode_image(x).numpy(), b.encode_image(x).numpy(), atol=1e-6)
    cfg = json.loads((d / "config.json").read_text())
    cfg["reader"]["sha256"] = "0" * 64
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="measured with the reader"):
        load_engine_model(d)
    cfg["reading"]["temprature"] = 1.0  # a typo is refused, never dropped
    with pytest.raises(ValueError):
        ReadingConfig.from_dict(cfg["reading"])


def test_the_engine_ranks_by_the_reading(small, tmp_path, fonts_ready):
    model, lex = small
    d = reading_dir(tmp_path / "r", small)
    eng = Engine(tmp_path / "data", model_dir=d)
    assert eng.reads and eng.pre == READING_PREPROCESS and eng.fast is None
    ds = SyntheticWords(lex, "val", kinds={"font": 1.0}, seed=6)
    samples = [ds[i] for i in range(0, 45, 3)]  # 15 concepts, one script each
    ids = eng.add("c", [(f"{i}", png(s.image)) for i, s in enumerate(samples)]).added
    found = 0
    for s, item in zip(samples, ids):
        other = ds.sample(s.concept_id, s.lang, np.random.default_rng(99))  # another render of the word
        hits, info = eng.search(image=png(other.image), k=1)
        found += hits[0].item_id == item
    assert found >= 12


def test_both_bundled_models_load_and_search(tmp_path, fonts_ready):
    """The reader model is the default; the edge model still loads, takes its ONNX path and searches."""
    from xmr_core.store.database import Store
    from xmr_core.store.registry import DEFAULT_MODEL, EDGE_MODEL, READING_MODEL, list_models

    assert DEFAULT_MODEL == READING_MODEL
    names = {m["name"]: m["reads"] for m in list_models(Store(tmp_path / "s"))}
    assert names["reader"] is True and names["edge"] is False
    lex = Lexicon(load_small_lexicon())
    ds = SyntheticWords(lex, "val", kinds={"font": 1.0}, seed=12)
    samples = [ds[i] for i in range(0, 30, 3)]
    for d in (READING_MODEL, EDGE_MODEL):
        eng = Engine(tmp_path / d.name, model_dir=d)
        assert eng.reads == (d == READING_MODEL) and (eng.fast_path == "onnx-fp32") == (d == EDGE_MODEL)
        ids = eng.add("c", [(f"{i}", png(s.image)) for i, s in enumerate(samples)],
                      labels=[(s.concept_id, s.lang) for s in samples]).added
        hits, _ = eng.search(text=samples[0].text, k=3)
        assert hits[0].item_id == ids[0]


def load_small_lexicon():
    from xmr_core.data.lexicon import load_lexicon

    return load_lexicon().concepts[:10]


def test_the_encoder_is_run_only_where_the_reading_is_unsure(small, fonts_ready):
    """visual_below: a sure image's embedding is its reading's and the encoder never sees it; an unsure
    image mixes both; `every` runs the encoder on all (each signal alone, for `xmr eval`)."""
    model, lex = small
    seen = []
    enc = lambda x: (seen.append(len(x)), model.encode_image(torch.from_numpy(x)).numpy())[1]  # noqa: E731
    rm = ReadingModel(model, lex, ReadingConfig(visual_weight=0.5, visual_below=0.99), visual=enc)
    ds = SyntheticWords(lex, "train", kinds={"font": 1.0}, seed=4)
    x = np.stack([preprocess(ds[i].image, READING_PREPROCESS) for i in range(0, 40, 4)])
    scores = rm.read(x)
    scores[0] = np.where(np.arange(len(lex))[None] == 0, 0.0, -30.0)  # sure: concept 0 by e^30
    scores[1] = np.where(np.arange(len(lex))[None] < 2, 0.0, -30.0)  # unsure: two concepts tie
    sig = rm.encode_signals(x, scores)
    sure = sig["sure"]
    assert sure[0] and not sure[1] and seen == [int((~sure).sum())]
    v = rm.combine(sig)
    assert np.allclose(v[sure], sig["reading"][sure], atol=1e-6)
    every = rm.encode_signals(x, scores, every=True)
    assert seen[-1] == len(x) and np.allclose(rm.combine(every), v, atol=1e-6)
    mixed = every["reading"][1] + every["visual"][1]
    assert np.allclose(v[1], mixed / np.linalg.norm(mixed), atol=1e-5)
    # an image's look (what the user's marks are matched by) is that encoder's embedding, for any image
    assert np.allclose(rm.look(x), every["visual"], atol=1e-5) and seen[-1] == len(x)


def test_a_directory_with_a_reading_head_serves_it(small, tmp_path, fonts_ready):
    """The head file travels with the directory: loaded, used by read(), part of the model's content id."""
    from xmr_core.model.reading_head import HEAD_FILE, ReadingHead, head_symbols
    from xmr_core.store.registry import model_id

    d = reading_dir(tmp_path / "r", small)
    plain, lex, _ = load_engine_model(d)
    before = model_id(d)
    sym = head_symbols(plain.table)
    rng = np.random.default_rng(1)
    ReadingHead(sym, rng.normal(0, 0.05, (len(sym), 120)).astype(np.float32),
                np.zeros(len(sym), np.float32)).save(d / HEAD_FILE)
    headed, _, _ = load_engine_model(d)
    assert plain.head is None and headed.head is not None and model_id(d) != before
    from safetensors.numpy import save_file

    from xmr_core.model.reader import WEIGHTS_FILE

    with_head = model_id(d)
    save_file({"t": np.zeros(2, np.float32)}, str(d / WEIGHTS_FILE))
    assert model_id(d) != with_head  # an adapted reader's tensors are part of it too
    (d / WEIGHTS_FILE).unlink()
    ds = SyntheticWords(lex, "train", kinds={"font": 1.0}, seed=5)
    x = np.stack([preprocess(ds[i].image, READING_PREPROCESS) for i in range(4)])
    assert not np.allclose(plain.read(x), headed.read(x))


@pytest.mark.slow
def test_a_finetune_of_a_reading_model_adapts_its_reader_then_its_head(small, tmp_path, fonts_ready):
    from xmr_core.model.reader import WEIGHTS_FILE
    from xmr_core.model.reading_head import HEAD_FILE, ReadingHead, head_symbols
    from xmr_core.search.annotate import save_annotation
    from xmr_core.store.registry import worse_on_fonts
    from xmr_core.train.finetune import FinetuneConfig, finetune

    d = reading_dir(tmp_path / "r", small, visual_weight=0.5)
    rm, lex, _ = load_engine_model(d)
    sym = head_symbols(rm.table)
    ReadingHead(sym, np.full((len(sym), 120), 0.01, np.float32), np.zeros(len(sym), np.float32)).save(d / HEAD_FILE)
    eng = Engine(tmp_path / "data", model_dir=d)
    ds = SyntheticWords(lex, "train", seed=4)
    for i in range(8):
        save_annotation(eng, png(ds[i].image), ds[i].concept_id, ds[i].lang)
    from xmr_core.store.users import mark

    item = eng.add("c", [("w", png(ds[9].image))]).added[0]  # a hit marked wrong: a negative
    mark(eng.store, "ana", None, item, False, ds[10].concept_id, "en", "text:x")
    res = finetune(eng.store, d, tmp_path / "ft", FinetuneConfig(steps=4, trunk_steps=3, val_concepts=4,
                                                                 replay_renders=20, trunk_always=True))
    out = tmp_path / "ft" / "model"
    assert res["model_dir"] == str(out) and res["trained"] == "reader trunk + reading head"
    assert res["n_negatives"] == 1
    tuned, _, cfg = load_engine_model(out)
    assert isinstance(tuned, ReadingModel) and tuned.head is not None and (out / WEIGHTS_FILE).exists()
    assert tuned.reader.weights and tuned.reader.key != rm.reader.key  # it reads with its adapted reader
    assert cfg["trunk_record"]["max_posterior_difference_onnx_vs_torch"] < 1e-3
    assert np.abs(tuned.head.dw).max() > 0  # a new head, trained on the adapted reader (from zero)
    assert (out / "model.safetensors").read_bytes() == (d / "model.safetensors").read_bytes()  # nothing else
    x = np.stack([preprocess(ds[i].image, READING_PREPROCESS) for i in range(3)])
    assert not np.allclose(tuned.read(x), rm.read(x))
    # a head-only fine-tune of the adapted model keeps its reader
    res2 = finetune(eng.store, out, tmp_path / "ft2", FinetuneConfig(steps=2, trunk_steps=0, val_concepts=4,
                                                                    replay_renders=20))
    assert res2["trained"] == "reading head"
    assert (tmp_path / "ft2" / "model" / WEIGHTS_FILE).read_bytes() == (out / WEIGHTS_FILE).read_bytes()
    assert set(res["before"]) == set(res["after"]) == {"val_fonts", "queue_heldout"}
    for r in (res["before"], res["after"]):  # each render's top-1, for the guard's paired comparison
        assert len(r["val_fonts"]["within_top1"]) == r["val_fonts"]["n_images"]
        assert r["val_fonts"]["within_top1"].count("1") / r["val_fonts"]["n_images"] == pytest.approx(
            r["val_fonts"]["within_acc@1"], abs=0.05)
    # by default the head alone trains first, and the reader is adapted only when that loses on the check
    res3 = finetune(eng.store, d, tmp_path / "ft3", FinetuneConfig(steps=4, trunk_steps=3, val_concepts=4,
                                                                  replay_renders=20))
    alone = res3.get("head_alone", res3["after"])  # the head alone's scores: kept, or kept beside the trunk's
    if worse_on_fonts(res3["before"], alone):
        assert res3["trained"] == "reader trunk + reading head" and (tmp_path / "ft3" / "model" / WEIGHTS_FILE).exists()
    else:
        assert res3["trained"] == "reading head" and "head_alone" not in res3
        assert not (tmp_path / "ft3" / "model" / WEIGHTS_FILE).exists()  # it reads with the reader as it came
    from xmr_core.evaluate.retrieval import render_eval_set
    from xmr_core.train.finetune import font_check_cache

    fonts = render_eval_set(lex, READING_PREPROCESS, "val", concepts=4)  # the job's check, as it rendered it
    kept = font_check_cache(d, lex, fonts.x)  # the base's score, kept for the next job from it
    assert json.loads(kept.read_text()) == res["before"]["val_fonts"]
    assert font_check_cache(out, lex, fonts.x) != kept
