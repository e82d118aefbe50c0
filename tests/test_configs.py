"""Every config is strict: an unknown key or a bad value raises ValueError naming the key and the valid
ones; options removed after a flat A/B load at their off value only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xmr_core.data.preprocess import PreprocessConfig
from xmr_core.model.config import ModelConfig
from xmr_core.model.reading import ReadingConfig
from xmr_core.model.reading_head import HeadConfig
from xmr_core.search.fusion import FusionConfig
from xmr_core.store.index import IndexConfig
from xmr_core.train.adapt import AdaptConfig
from xmr_core.train.finetune import FinetuneConfig
from xmr_core.train.trainer import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
# (config, how it is built from JSON, a valid key, a value of the wrong type for it)
CONFIGS = [
    (TrainConfig, TrainConfig.from_dict, "steps", "many"),
    (FinetuneConfig, FinetuneConfig.from_dict, "steps", 2.5),
    (AdaptConfig, AdaptConfig.from_dict, "copies", "8"),
    (HeadConfig, HeadConfig.from_dict, "lr", "fast"),
    (ReadingConfig, ReadingConfig.from_dict, "temperature", True),
    (IndexConfig, IndexConfig.from_dict, "nprobe", 6.5),
    (FusionConfig, FusionConfig.from_dict, "beta", "half"),
    (PreprocessConfig, PreprocessConfig.from_dict, "height", "48"),
    (ModelConfig, ModelConfig.from_dict, "embed_dim", 2.5),
]


@pytest.mark.parametrize("cls,build,key,bad", CONFIGS, ids=[c[0].__name__ for c in CONFIGS])
def test_a_typo_or_a_bad_value_is_refused_by_name(cls, build, key, bad):
    assert isinstance(build({}), cls)  # the defaults are valid
    with pytest.raises(ValueError, match=r"unknown .*\['stesp'\].*" + key):
        build({"stesp": 1})
    with pytest.raises(ValueError, match=key):
        build({key: bad})


def test_nested_model_sections_are_strict_too():
    with pytest.raises(ValueError, match=r"unknown vision config keys \['colums'\].*columns"):
        ModelConfig.from_dict({"vision": {"colums": 32}})
    with pytest.raises(ValueError, match=r"unknown text config keys"):
        ModelConfig.from_dict({"text": {"trainable": True}})
    with pytest.raises(ValueError, match="text backend"):
        ModelConfig.from_dict({"text": {"backend": "bert"}})
    with pytest.raises(ValueError, match="dropout"):
        ModelConfig.from_dict({"vision": {"dropout": 1.5}})


def test_removed_options_load_when_off_and_are_refused_when_on():
    old = {"phoc": 0.0, "pcgrad": False, "teachers": [], "teacher": 0.0, "teacher_scale": 20.0, "rescale": 0.0}
    assert TrainConfig.from_dict({**old, "steps": 5}).steps == 5
    for key, on in (("phoc", 0.5), ("pcgrad", True), ("teachers", ["m"]), ("rescale", 0.5)):
        with pytest.raises(ValueError, match=f"'{key}' was removed"):
            TrainConfig.from_dict({key: on})
    assert ModelConfig.from_dict({"vision": {"pool": "avg", "keep_width": False}}).vision.columns == 0
    with pytest.raises(ValueError, match="'keep_width' was removed"):
        ModelConfig.from_dict({"vision": {"keep_width": True}})
    with pytest.raises(ValueError, match="'pool' was removed"):
        ModelConfig.from_dict({"vision": {"pool": "gem"}})


def test_bad_values_name_what_is_allowed():
    with pytest.raises(ValueError, match="langs"):
        TrainConfig.from_dict({"langs": ["zh", "fr"]})
    with pytest.raises(ValueError, match="device"):
        TrainConfig.from_dict({"device": "tpu"})
    with pytest.raises(ValueError, match="nprobe"):
        IndexConfig.from_dict({"nprobe": 0})
    with pytest.raises(ValueError, match="tau"):
        FusionConfig.from_dict({"tau": 0.0})
    with pytest.raises(ValueError, match="JSON object"):
        IndexConfig.from_dict(["nprobe", 8])


@pytest.mark.parametrize("name", ["edge", "reader"])
def test_the_bundled_models_configs_load_strictly(name):
    cfg = json.loads((ROOT / "assets" / "models" / name / "config.json").read_text())
    assert ModelConfig.from_dict(cfg["model"]).vision.columns == 32
    assert TrainConfig.from_dict(cfg["train"]).margin == 0.1  # the recipe it was trained with
    if "reading" in cfg:
        assert ReadingConfig.from_dict(cfg["reading"]).visual_below == 0.99
