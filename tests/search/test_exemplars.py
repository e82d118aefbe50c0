"""A user's labelled samples as exemplars at query time (exemplars.py, issue 28) through the reader model:
a word written again in the same hand is recognised, suggested and searched as the concept its sample was
labelled with, for that user only; a word that looks like none of them is left alone."""

import numpy as np
import pytest
from helpers import png

from xmr_core.cli import main
from xmr_core.data.fonts import list_fonts
from xmr_core.data.render import SyntheticWords
from xmr_core.search.annotate import save_annotation, suggest
from xmr_core.search.engine import Engine
from xmr_core.search.exemplars import EXEMPLAR_NEAR, ExemplarSet
from xmr_core.store import users
from xmr_core.store.registry import READING_MODEL

HAND = "Pacifico_400Regular.ttf"  # one `val` font: the user's hand


def test_fuse_pulls_a_query_to_the_samples_it_looks_like():
    anchors = np.eye(4, dtype=np.float32)[:2]
    looks = np.array([[1, 0, 0], [0, 1, 0]], np.float32)
    ex = ExemplarSet("ana", ["a", "b"], ["en", "es"], looks, anchors)
    q = np.array([0, 0, 0.6, 0.8], np.float32)
    fused, near = ex.fuse(q, np.array([0.9, 0.1, np.sqrt(1 - 0.82)], np.float32))
    assert [(c, lg) for c, lg, _ in near] == [("a", "en")] and near[0][2] == pytest.approx(0.9)
    assert np.linalg.norm(fused) == pytest.approx(1) and fused[0] > fused[1] and fused[0] > 0.5
    far = np.array([EXEMPLAR_NEAR - 0.05, 0, np.sqrt(1 - (EXEMPLAR_NEAR - 0.05) ** 2)], np.float32)
    same, none = ex.fuse(q, far)
    assert none == [] and same is q
    assert ExemplarSet("bob", [], [], np.zeros((0, 0)), np.zeros((0, 0))).fuse(q, far) == (q, [])


@pytest.fixture(scope="module")
def hand_engine(lexicon, fonts_ready, dictionaries_ready, tmp_path_factory):
    fonts = {e.key for e in list_fonts("val", "latin", "font")}
    assert HAND in fonts
    ds = SyntheticWords(lexicon, "val", langs=("en",), kinds={"font": 1.0}, seed=5,
                        source_weights={k: float(k == HAND) for k in fonts})
    eng = Engine(tmp_path_factory.mktemp("ex"), model_dir=READING_MODEL)
    cat, dog, tea = (lexicon.lookup(w)[0] for w in ("cat", "dog", "tea"))
    eng.add("archive", [(f"{c.en}", png(ds.sample(c.concept_id, "en", np.random.default_rng([9, n])).image))
                        for n, c in enumerate((cat, dog, tea))])

    def draw(c, seed):
        return png(ds.sample(c.concept_id, "en", np.random.default_rng([seed])).image)

    return eng, draw, cat, dog, tea


def test_a_users_sample_teaches_what_their_word_means(hand_engine, tmp_path, capsys):
    """ana labels her 'cat' as the concept dog (what the word means to her archive); her next 'cat', in
    the same hand, is recognised, suggested and searched as dog; bob's is still cat, and ana's 'tea'
    (nothing like her sample) is still tea."""
    eng, draw, cat, dog, tea = hand_engine
    save_annotation(eng, draw(cat, 1), dog.concept_id, "es", author="ana")
    again = draw(cat, 2)
    plain = eng.recognize(again)
    assert plain["en"][0][0] == cat.concept_id
    ex = eng.exemplars_of("ana")
    assert len(ex) == 1 and len(eng.exemplars_of("bob")) == 0
    assert eng.recognize(again, exemplars=ex)["en"][0][0] == dog.concept_id
    assert suggest(eng, again, exemplars=ex)[0][:2] == (dog.concept_id, "es")
    assert suggest(eng, again)[0][0] == cat.concept_id

    hits, info, _, key = users.search_as(eng, "ana", {"image": again}, k=3, record=False)
    assert [c for c, _, _ in info.exemplars] == [dog.concept_id] and info.exemplars[0][2] >= EXEMPLAR_NEAR
    assert key == f"concept:{dog.concept_id}" and not info.terms
    assert hits[0].source == "dog"
    hits, info, _, key = users.search_as(eng, "bob", {"image": again}, k=3, record=False)
    assert info.exemplars == [] and key == f"concept:{cat.concept_id}"
    assert hits[0].source == "cat"
    _, info, _, key = users.search_as(eng, "ana", {"image": draw(tea, 3)}, k=3, record=False)
    assert info.exemplars == [] and key == f"concept:{tea.concept_id}"

    (tmp_path / "cat.png").write_bytes(again)  # the CLI: `xmr recognize IMAGE --user ana`
    args = ["recognize", str(tmp_path / "cat.png"), "--data", str(eng.store.root), "--model", str(READING_MODEL)]
    assert main(args + ["--user", "ana"]) == 0
    out = capsys.readouterr().out
    assert f"looks like ana's samples of: {dog.es} (es" in out and out.splitlines()[-2].startswith(f"en: {dog.en} (")
    assert main(args + ["--user", "bob"]) == 0
    out = capsys.readouterr().out
    assert "looks like" not in out and out.splitlines()[-2].startswith(f"en: {cat.en} (")
