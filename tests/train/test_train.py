"""A short CPU training run on synthetic renders must lower the loss and raise accuracy (tiny lexicon)."""

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from xmr_core.data.lexicon import LANGS, Lexicon
from xmr_core.evaluate.retrieval import evaluate, render_eval_set, torch_embedder
from xmr_core.model.checkpoint import load_model_dir
from xmr_core.model.config import ModelConfig
from xmr_core.model.dual import DualEncoder
from xmr_core.train.trainer import TrainConfig, read_config, train

TINY_MODEL = {"embed_dim": 64, "vision": {"backbone": "mobilenetv3_small_050", "dropout": 0.0},
              "text": {"trainable_top": False}, "preprocess": {"height": 32, "width": 128, "pad": 2}}


@pytest.fixture(scope="module")
def tiny_lexicon(lexicon):
    ids = ["cat", "dog", "water", "fire", "book", "tree"]
    return Lexicon([lexicon.get(i) for i in ids])


@pytest.mark.slow
def test_training_lowers_loss_and_improves_accuracy(tiny_lexicon, fonts_ready, tmp_path):
    mcfg = ModelConfig.from_dict(TINY_MODEL)
    tcfg = TrainConfig(steps=150, concepts_per_batch=6, lr=3e-3, warmup=5, workers=0, threads=1,
                       kinds={"font": 1.0}, strength=0.5, ckpt_every=45, eval_every=1000, eval_concepts=0, seed=1)
    hist: list[dict] = []
    out = train(mcfg, tcfg, tmp_path / "run", tiny_lexicon, progress=hist.append)
    first = np.mean([h["total"] for h in hist[:10]])
    last = np.mean([h["total"] for h in hist[-10:]])
    assert last < first * 0.8, (first, last)

    model, lex, _ = load_model_dir(out, tiny_lexicon)
    data = render_eval_set(lex, mcfg.preprocess, split="train", per_word=3, seed=5)
    after = evaluate(model, lex, data)
    torch.manual_seed(0)
    from xmr_core.model.dual import DualEncoder

    before = evaluate(DualEncoder(mcfg).eval(), lex, data)
    assert after["within_acc@1"] >= before["within_acc@1"] + 0.2, (before["within_acc@1"], after["within_acc@1"])
    assert after["within_acc@1"] > 1 / 6 + 0.2  # chance is 1/6


class Killed(Exception):
    pass


def assert_resumes_exactly(mcfg, cfg, lexicon, tmp_path, straight) -> None:
    """A run killed after step 3 (last checkpoint: step 2) and restarted in tmp_path/'b' ends with the
    weights of `straight`, the uninterrupted run."""
    def kill_at_3(rec):
        if rec["step"] == 3:
            raise Killed

    with pytest.raises(Killed):
        train(mcfg, cfg, tmp_path / "b", lexicon, progress=kill_at_3)
    assert json.loads((tmp_path / "b" / "checkpoint" / "checkpoint.json").read_text())["step"] == 2
    resumed = load_model_dir(train(mcfg, cfg, tmp_path / "b", lexicon))[0]
    for (k, a), (_, b) in zip(straight.state_dict().items(), resumed.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), k


def test_checkpoint_resume_is_exact(tiny_lexicon, fonts_ready, tmp_path):
    """A run killed after step 3 (last checkpoint: step 2) and restarted ends with the weights of an
    uninterrupted run."""
    mcfg = ModelConfig.from_dict(TINY_MODEL)
    cfg = TrainConfig(steps=6, concepts_per_batch=3, lr=1e-3, warmup=2, workers=0, threads=1, kinds={"font": 1.0},
                      ckpt_every=2, eval_every=1000, eval_concepts=0, seed=3)
    straight = load_model_dir(train(mcfg, cfg, tmp_path / "a", tiny_lexicon))[0]
    assert_resumes_exactly(mcfg, cfg, tiny_lexicon, tmp_path, straight)


def test_eval_of_a_set_lacking_scripts(tiny_lexicon, fonts_ready):
    """A fine-tune queue may hold only English samples: within and cross are over the scripts asked."""
    from dataclasses import replace

    from xmr_core.model.dual import DualEncoder

    torch.manual_seed(0)
    mcfg = ModelConfig.from_dict(TINY_MODEL)
    full = render_eval_set(tiny_lexicon, mcfg.preprocess, split="train", per_word=1, seed=5)
    en = [i for i, lg in enumerate(full.langs) if lg == "en"]
    data = replace(full, x=full.x[en], concept_ids=[full.concept_ids[i] for i in en], langs=["en"] * len(en), raw=None,
                   styles=[full.styles[i] for i in en])
    res = evaluate(DualEncoder(mcfg).eval(), tiny_lexicon, data)
    i2t = res["image_to_text"]
    assert res["within_acc@1"] == pytest.approx(i2t["en->en"]["acc@1"])
    assert res["cross_acc@1"] == pytest.approx((i2t["en->zh"]["acc@1"] + i2t["en->es"]["acc@1"]) / 2)


def test_eval_breakdowns_agree_with_the_language_matrix(tiny_lexicon, fonts_ready):
    """By-length and by-font within-language Acc@1 partition the images: their weighted means give the
    diagonal of the language matrix back."""
    torch.manual_seed(1)
    mcfg = ModelConfig.from_dict(TINY_MODEL)
    data = render_eval_set(tiny_lexicon, mcfg.preprocess, split="train", per_word=2, seed=3)
    model = DualEncoder(mcfg).eval()
    res = evaluate(model, tiny_lexicon, data)
    given = evaluate(model, tiny_lexicon, data, vectors=torch_embedder(model)(data.x))  # embeddings at hand
    assert {k: v for k, v in given.items() if k != "latency_ms_p50"} == {k: v for k, v in res.items() if k != "latency_ms_p50"}
    with pytest.raises(ValueError, match="vectors for"):
        evaluate(model, tiny_lexicon, data, vectors=np.zeros((3, 8), np.float32))
    diag = res["image_to_text"]
    n_own = sum(diag[f"{q}->{q}"]["n"] for q in LANGS)
    correct = sum(diag[f"{q}->{q}"]["acc@1"] * diag[f"{q}->{q}"]["n"] for q in LANGS)
    for key in ("within_by_length", "within_by_style"):
        groups = res[key]
        assert sum(g["n"] for g in groups.values()) == n_own == len(data.x)
        assert sum(g["acc@1"] * g["n"] for g in groups.values()) == pytest.approx(correct)
    assert set(res["within_by_style"]) == set(data.styles)
    assert {k.split(":")[0] for k in res["within_by_length"]} == set(LANGS)


def test_device_choice():
    from xmr_core.train.trainer import resolve_device

    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="expected 'auto', 'cpu' or 'cuda'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="sees no GPU"):
            resolve_device("cuda")


def test_text_cache_follows_the_model_across_devices():
    """Cached word features are dropped when the tower moves (a GPU run saves its model on the CPU)."""
    from xmr_core.model.text import UseTextTower

    tower = UseTextTower(32, trainable_top=False).eval()
    before = tower(["milk", "leche"]).detach()
    assert tower._cache
    tower.to(torch.float64)
    assert not tower._cache and not tower._top_cache
    assert tower(["milk", "leche"]).dtype == torch.float64
    tower.to(torch.float32)
    assert torch.allclose(tower(["milk", "leche"]), before, atol=1e-6)


def test_top_distill_holds_a_trained_top_near_use_on_words_outside_the_lexicon(tiny_lexicon, fonts_ready, tmp_path):
    """The same short run with USE's DAN top trained, with and without the drift term: with it, the top
    moves less on USE vocabulary words it was never shown (another seed's draw), and the term is in the
    total; it asks for a trainable top and resumes exactly."""
    from xmr_core.model.text import UseTop, vocabulary_words
    from xmr_core.train.losses import anchor_drift_loss

    mcfg = ModelConfig.from_dict({**TINY_MODEL, "text": {"trainable_top": True}})
    base = dict(steps=6, concepts_per_batch=3, lr=1e-2, warmup=1, workers=0, threads=1, kinds={"font": 1.0},
                ckpt_every=2, eval_every=1000, eval_concepts=0, seed=5, distill_words=2000, distill_batch=256)
    unseen = vocabulary_words(300, seed=99)
    drift, hist = {}, []
    for w in (0.0, 20.0):
        cfg = TrainConfig(**base, top_distill=w)
        model = load_model_dir(train(mcfg, cfg, tmp_path / str(w), tiny_lexicon,
                                     progress=hist.append if w else None))[0]
        with torch.no_grad():
            pooled = model.text.pooled(unseen)
            drift[w] = anchor_drift_loss(model.text.top(pooled), UseTop(model.text.base)(pooled)).item()
    assert drift[0.0] > 0.01, drift  # the run moves the top at all
    assert drift[20.0] < 0.5 * drift[0.0], drift
    assert all(h["drift"] >= 0 for h in hist)
    assert hist[-1]["total"] == pytest.approx(hist[-1]["itc"] + 0.5 * hist[-1]["inv"] + hist[-1]["one_to_k"]
                                              + 20.0 * hist[-1]["drift"], rel=1e-3)
    assert_resumes_exactly(mcfg, TrainConfig(**base, top_distill=20.0), tiny_lexicon, tmp_path,
                           load_model_dir(tmp_path / "20.0" / "model")[0])
    with pytest.raises(ValueError, match="trainable_top"):
        train(ModelConfig.from_dict(TINY_MODEL), TrainConfig(**base, top_distill=1.0), tmp_path / "frozen",
              tiny_lexicon)


def test_eval_set_in_capitals(tiny_lexicon, fonts_ready):
    pre = ModelConfig.from_dict(TINY_MODEL).preprocess
    lower = render_eval_set(tiny_lexicon, pre, split="train", per_word=1, seed=5)
    upper = render_eval_set(tiny_lexicon, pre, split="train", per_word=1, seed=5, case="upper")
    assert "upper case" in upper.source and "case" not in lower.source
    assert upper.langs == lower.langs and upper.concept_ids == lower.concept_ids
    zh = [i for i, lg in enumerate(lower.langs) if lg == "zh"]
    en = [i for i, lg in enumerate(lower.langs) if lg == "en"]
    assert all(np.array_equal(lower.x[i], upper.x[i]) for i in zh)  # same stream, Chinese unchanged
    assert not any(np.array_equal(lower.x[i], upper.x[i]) for i in en)


def test_init_adds_a_column_head_that_starts_silent_then_learns(tiny_lexicon, fonts_ready, tmp_path):
    """A config that adds the order-keeping column head can start from a model without one: the head
    starts at zero (same embeddings as the start), trains, saves, reloads and exports to ONNX."""
    from xmr_core.model.fastpath import OnnxVisual, export_onnx

    cfg = TrainConfig(steps=2, concepts_per_batch=3, lr=1e-3, warmup=1, workers=0, threads=1, kinds={"font": 1.0},
                      ckpt_every=100, eval_every=1000, eval_concepts=0, seed=6)
    start_dir = train(ModelConfig.from_dict(TINY_MODEL), cfg, tmp_path / "a", tiny_lexicon)
    cols = ModelConfig.from_dict({**TINY_MODEL, "vision": {**TINY_MODEL["vision"], "columns": 8}})
    silent_dir = train(cols, TrainConfig(**{**asdict(cfg), "steps": 0}), tmp_path / "b", tiny_lexicon, init=start_dir)
    trained_dir = train(cols, cfg, tmp_path / "c", tiny_lexicon, init=start_dir)
    x = torch.rand(5, 1, 32, 128)
    with torch.no_grad():
        ref = load_model_dir(start_dir)[0].encode_image(x)
        assert torch.equal(load_model_dir(silent_dir)[0].encode_image(x), ref)
        trained = load_model_dir(trained_dir)[0]
        assert trained.visual.columns.proj.weight.abs().sum() > 0
        out = trained.encode_image(x)
    assert not torch.allclose(out, ref, atol=1e-4)
    onnx = OnnxVisual(export_onnx(trained, tmp_path / "v.onnx"))(x.numpy())
    assert (out.numpy() * onnx).sum(1).min() > 0.9999
    with pytest.raises(ValueError, match="columns"):
        DualEncoder({"vision": {"backbone": "vit_tiny_patch16_224", "columns": 8}, "preprocess": {"height": 48, "width": 192}})


def test_a_batch_depends_only_on_seed_and_step(tiny_lexicon, fonts_ready):
    from xmr_core.train.trainer import BatchStream

    pre = ModelConfig.from_dict(TINY_MODEL).preprocess

    def batch(seed: int, step: int):  # the first batch of a stream starting at `step`, as training draws it
        return next(iter(BatchStream(tiny_lexicon, TrainConfig(concepts_per_batch=3, seed=seed), pre, step)))

    x, c, _ = batch(0, 5)
    x2, c2, _ = batch(0, 5)
    assert torch.equal(x, x2) and torch.equal(c, c2)  # a run resumes (or repeats) exactly
    for other in (batch(1, 5), batch(0, 6)):  # a new seed, like a new step, renders other images
        assert other[0].shape != x.shape or not torch.allclose(other[0], x)


def test_a_config_extends_another_key_by_key(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "a.json").write_text(json.dumps(
        {"model": {"embed_dim": 64, "vision": {"backbone": "b0", "dropout": 0.1}},
         "train": {"steps": 100, "lr": 0.002, "cases": {"lower": 1.0}}}))
    (tmp_path / "b.json").write_text(json.dumps(
        {"extends": "base/a.json", "model": {"vision": {"columns": 32}}, "train": {"lr": 0.001}}))
    (tmp_path / "c.json").write_text(json.dumps({"extends": "b.json", "train": {"steps": 5}}))
    assert read_config(tmp_path / "c.json") == {
        "model": {"embed_dim": 64, "vision": {"backbone": "b0", "dropout": 0.1, "columns": 32}},
        "train": {"steps": 5, "lr": 0.001, "cases": {"lower": 1.0}}}
    (tmp_path / "loop.json").write_text(json.dumps({"extends": "loop2.json"}))
    (tmp_path / "loop2.json").write_text(json.dumps({"extends": "loop.json"}))
    with pytest.raises(ValueError, match="extends itself"):
        read_config(tmp_path / "loop.json")
    (tmp_path / "orphan.json").write_text(json.dumps({"extends": "missing.json"}))
    with pytest.raises(FileNotFoundError, match="missing.json"):
        read_config(tmp_path / "orphan.json")


def test_the_shipped_configs_resolve_to_the_recipes_they_name():
    configs = Path(__file__).resolve().parents[2] / "configs"
    from xmr_core.model.reading_head import load_head_config
    from xmr_core.train.reader_pretrain import PretrainConfig

    assert load_head_config(configs / "reading_head.json")["head"]["steps"] > 0  # the reading model's head
    settings = json.loads((configs / "reader_pretrain.json").read_text())  # and its reader (pretrain_reader.py)
    assert settings.pop("seeds") == [7, 8]  # the measured recipe (docs/reader.md, session 35)
    cfg = PretrainConfig.from_dict(settings)
    assert (cfg.renders, cfg.steps, cfg.batch, cfg.lr) == (40_000, 2000, 32, 1e-4)
    for path in configs.rglob("*.json"):
        if path.name in ("reading_head.json", "reader_pretrain.json"):
            continue
        cfg = read_config(path)
        assert set(cfg) == {"model", "train"}, path
        assert ModelConfig.from_dict(cfg["model"]).embed_dim > 0 and TrainConfig.from_dict(cfg["train"]).steps > 0
    margin = read_config(configs / "continue_margin.json")
    assert margin["train"]["margin"] == 0.1 and margin["model"]["vision"]["columns"] == 32
    assert margin["train"]["lr"] == 0.001 and margin["train"]["cases"]["upper"] == 0.15
    assert "margin" not in read_config(configs / "continue_columns.json")["train"]


def test_hard_source_weights_by_hand():
    from xmr_core.train.trainer import hard_source_weights

    by_style = {"a.ttf": {"acc@1": 0.9, "n": 10}, "b.ttf": {"acc@1": 0.7, "n": 10}, "c.ttf": {"acc@1": 1.0, "n": 5}}
    # errors 0.1, 0.3, 0.0, mean 0.4/3; weight = 0.5 + 0.5 * error / mean
    w = hard_source_weights(by_style, floor=0.5)
    assert w == pytest.approx({"a.ttf": 0.875, "b.ttf": 1.625, "c.ttf": 0.5})
    assert sum(w.values()) / len(w) == pytest.approx(1.0)
    assert hard_source_weights(by_style, floor=1.0) == pytest.approx({"a.ttf": 1.0, "b.ttf": 1.0, "c.ttf": 1.0})
    assert hard_source_weights({"a.ttf": {"acc@1": 1.0, "n": 3}}) == {"a.ttf": 1.0}
    with pytest.raises(ValueError, match="floor"):
        hard_source_weights(by_style, floor=1.5)


def test_hard_sources_script_writes_a_config_from_training_fonts_only(tmp_path):
    import importlib.util

    root = Path(__file__).resolve().parents[2]
    spec = importlib.util.spec_from_file_location("hard_sources", root / "scripts" / "hard_sources.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    (tmp_path / "base.json").write_text(json.dumps({"model": {}, "train": {"steps": 10, "margin": 0.1}}))
    styles = {"a.ttf": {"acc@1": 0.5, "n": 4}, "b.ttf": {"acc@1": 1.0, "n": 4}}
    report = tmp_path / "eval.json"
    report.write_text(json.dumps({"source": "renders of the 'train' fonts", "within_by_style": styles}))
    out = tmp_path / "hard.json"
    assert script.main([str(report), "--extends", "base.json", "--out", str(out)]) == 0
    cfg = read_config(out)
    assert cfg["train"]["margin"] == 0.1 and cfg["train"]["source_weights"] == {"a.ttf": 1.5, "b.ttf": 0.5}
    assert TrainConfig.from_dict(cfg["train"]).source_weights == {"a.ttf": 1.5, "b.ttf": 0.5}
    val = tmp_path / "val.json"
    val.write_text(json.dumps({"source": "renders of the 'val' fonts", "within_by_style": styles}))
    with pytest.raises(SystemExit, match="training fonts"):
        script.main([str(val), "--extends", "base.json", "--out", str(tmp_path / "leak.json")])
    assert not (tmp_path / "leak.json").exists()
    with pytest.raises(FileNotFoundError):
        script.main([str(report), "--extends", "nowhere.json", "--out", str(tmp_path / "x.json")])


def test_the_model_card_names_what_the_training_data_drew():
    from xmr_core.evaluate.card import model_card

    root = Path(__file__).resolve().parents[2] / "assets" / "models" / "edge"
    config, metrics = (json.loads((root / f).read_text()) for f in ("config.json", "metrics.json"))
    plain = {**config, "train": {**config["train"], "source_weights": {}}}
    weighted = {**config, "train": {**config["train"], "source_weights": {"a.ttf": 0.5, "b.ttf": 3.25}}}
    assert "drawn by weight" not in model_card("m", plain, metrics)
    assert "2 sources drawn by weight (x0.50 to x3.25" in model_card("m", weighted, metrics)
    assert "| within-language Acc@1 | " in model_card("m", plain, metrics)
    held = {**config, "model": {**config["model"], "text": {**config["model"]["text"], "trainable_top": True}},
            "train": {**config["train"], "top_distill": 10.0, "distill_words": 20000, "cursive": 0.5}}
    assert "DAN top trainable (held near the original's outputs on 20,000 words" in model_card("m", held, metrics)
    assert "drift loss x10.0" in model_card("m", held, metrics)
    assert "50% of pen and canvas renders written joined-up" in model_card("m", held, metrics)
    terse = {**held, "train": {**held["train"], "abbreviate": 0.3}}
    assert "joined-up (running hand), leaving out up to 30% of a Chinese character's strokes" in model_card("m", terse, metrics)
    free = {**config, "train": {**config["train"], "top_distill": 0.0, "cursive": 0.0, "abbreviate": 0.0}}
    assert "held near" not in model_card("m", free, metrics) and "joined-up" not in model_card("m", free, metrics)
    assert "leaving out" not in model_card("m", free, metrics) + model_card("m", held, metrics)


def test_resize_columns_keeps_a_constant_column_profile_and_its_sum():
    """A column head's projection carried to more or fewer columns: a weight constant along the columns
    stays constant (so a word whose columns all read alike gets the same output), a ramp stays a ramp
    from the same first to the same last column (before the scaling), and the channel-major layout of
    the flattened (channel, column) inputs is kept."""
    from xmr_core.train.trainer import resize_columns

    dim, embed = 3, 4
    per_channel = torch.arange(1.0, embed * dim + 1).reshape(embed, dim, 1)
    const = per_channel.expand(embed, dim, 6).reshape(embed, dim * 6)
    wide = resize_columns(const, dim, 8)
    assert wide.shape == (embed, dim * 8)
    assert torch.allclose(wide.reshape(embed, dim, 8), per_channel.expand(embed, dim, 8) * 6 / 8)
    feats = torch.rand(2, dim, 1)  # a word whose columns all read alike
    assert torch.allclose(feats.expand(2, dim, 6).flatten(1) @ const.T, feats.expand(2, dim, 8).flatten(1) @ wide.T,
                          atol=1e-4)
    ramp = torch.linspace(0, 5, 6).repeat(embed, dim, 1).reshape(embed, dim * 6)
    narrow = resize_columns(ramp, dim, 4).reshape(embed, dim, 4) * 4 / 6
    assert torch.allclose(narrow[0, 0], torch.tensor([0.0, 5 / 3, 10 / 3, 5.0]), atol=1e-5)
    assert resize_columns(ramp, dim, 6) is ramp


def test_init_from_a_model_trained_at_another_input_size(tiny_lexicon, fonts_ready, tmp_path):
    """A run at a larger input starts from a model trained at a smaller one: the column head is
    carried over to the new number of columns and the run trains, saves and reloads at the new size."""
    cfg = TrainConfig(steps=1, concepts_per_batch=3, lr=1e-3, warmup=1, workers=0, threads=1, kinds={"font": 1.0},
                      ckpt_every=100, eval_every=1000, eval_concepts=0, seed=6)
    small = {**TINY_MODEL, "vision": {**TINY_MODEL["vision"], "columns": 8}}
    start_dir = train(ModelConfig.from_dict(small), cfg, tmp_path / "a", tiny_lexicon)
    large = ModelConfig.from_dict({**small, "preprocess": {"height": 48, "width": 192, "pad": 3}})
    out_dir = train(large, TrainConfig(**{**asdict(cfg), "steps": 0}), tmp_path / "b", tiny_lexicon, init=start_dir)
    start, moved = load_model_dir(start_dir)[0], load_model_dir(out_dir)[0]
    assert moved.cfg.preprocess.width == 192
    old, new = start.visual.columns.proj.weight, moved.visual.columns.proj.weight
    assert new.shape[1] == old.shape[1] * 6 // 4
    assert torch.equal(moved.visual.columns.reduce.weight, start.visual.columns.reduce.weight)
    with torch.no_grad():
        assert moved.encode_image(torch.rand(2, 1, 48, 192)).shape == (2, TINY_MODEL["embed_dim"])
