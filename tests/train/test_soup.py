import json

import numpy as np
import pytest
import torch
from helpers import SMALL

from xmr_core.cli import main
from xmr_core.data.lexicon import Lexicon
from xmr_core.evaluate.card import model_card
from xmr_core.model.checkpoint import load_model_dir, model_state, save_model_dir
from xmr_core.model.dual import DualEncoder
from xmr_core.train.soup import soup


def _run(lex, out, seed, **train):
    torch.manual_seed(seed)
    model = DualEncoder(SMALL).eval()
    with torch.no_grad():  # BatchNorm statistics as a trained model has them
        for _name, buf in model.named_buffers():
            if buf.is_floating_point():
                buf.uniform_(0.5, 1.5)
    return save_model_dir(model, lex, out, extra={"train": {"seed": seed, "lr": 1e-3, **train}, "train_step": 100,
                                                  "train_seconds": 3600.0 * (seed + 1)})


def test_a_soup_is_the_mean_of_its_ingredients(lexicon, tmp_path):
    lex = Lexicon(lexicon.concepts[:20])
    a, b = _run(lex, tmp_path / "a", 0, abbreviate=0.0), _run(lex, tmp_path / "b", 1, cursive=0.5)
    out = soup([a, b], tmp_path / "soup")
    (ma, _, _), (mb, _, _), (ms, _, cfg) = (load_model_dir(p) for p in (a, b, out))
    sa, sb, ss = model_state(ma), model_state(mb), model_state(ms)
    floats = [k for k, v in sa.items() if v.is_floating_point()]
    assert any("running_var" in k for k in floats)  # BatchNorm statistics averaged too
    for k in floats:
        assert torch.allclose(ss[k], (sa[k] + sb[k]) / 2, atol=1e-6), k
    assert sum(not torch.equal(sa[k], sb[k]) for k in floats) > len(floats) / 2  # the two runs do differ
    assert cfg["train"] == {"seed": 0, "lr": 1e-3, "abbreviate": 0.0} and cfg["train_seconds"] == pytest.approx(3 * 3600.0)
    assert [i["seed"] for i in cfg["soup"]] == [0, 1]
    # b's config lacks "abbreviate" (an older run): its default, as a's, so not a difference
    assert cfg["soup"][1]["differs"] == {"cursive": 0.5, "seed": 1} and cfg["soup"][0]["differs"] == {}
    card = model_card("m", cfg, {})
    assert "the average of 2 models of one training chain" in card and "trained with: seed 0; seed 1, cursive 0.5. The" in card
    assert "for all the runs averaged" in card
    assert "average of" not in model_card("m", load_model_dir(a)[2], {})


def test_a_soup_of_one_model_with_itself_embeds_as_it(lexicon, tmp_path):
    lex = Lexicon(lexicon.concepts[:20])
    a = _run(lex, tmp_path / "a", 0)
    assert main(["soup", str(a), str(a), "--out", str(tmp_path / "same")]) == 0
    (ma, _, _), (ms, _, _) = load_model_dir(a), load_model_dir(tmp_path / "same")
    pre = ma.cfg.preprocess
    x = torch.from_numpy(np.random.default_rng(0).random((2, 1, pre.height, pre.width), np.float32))
    with torch.no_grad():
        assert torch.allclose(ma.encode_image(x), ms.encode_image(x), atol=1e-6)
        assert torch.allclose(ma.encode_text(lex.words("es")), ms.encode_text(lex.words("es")), atol=1e-6)


def test_a_soup_refuses_models_that_do_not_mix(lexicon, tmp_path, capsys):
    lex = Lexicon(lexicon.concepts[:20])
    a = _run(lex, tmp_path / "a", 0)
    other_lex = _run(Lexicon(lexicon.concepts[20:40]), tmp_path / "b", 1)
    with pytest.raises(ValueError, match="another lexicon"):
        soup([a, other_lex], tmp_path / "x")
    wider = save_model_dir(DualEncoder({**SMALL, "embed_dim": SMALL["embed_dim"] * 2}).eval(), lex, tmp_path / "c")
    with pytest.raises(ValueError, match="another architecture"):
        soup([a, wider], tmp_path / "x")
    with pytest.raises(ValueError, match="two model directories"):
        soup([a], tmp_path / "x")
    assert main(["soup", str(a), str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]) == 2
    assert "not a model directory" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    assert json.loads((a / "config.json").read_text())["train"]["seed"] == 0
