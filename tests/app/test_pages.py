"""Every page opens with streamlit's AppTest (canvas patched: AppTest cannot draw), and the main flows
run against a real engine over a small real model."""

import sys
import types

import numpy as np
import pytest
import torch
from helpers import SMALL

from xmr_core.data.lexicon import Lexicon
from xmr_core.data.paths import PROJECT_ROOT
from xmr_core.model.checkpoint import save_model_dir
from xmr_core.model.dual import DualEncoder


@pytest.fixture()
def app_env(lexicon, tmp_path, monkeypatch, fonts_ready):
    """A data folder with a small model as the bundled default, and a fake canvas returning a drawing."""
    torch.manual_seed(0)
    model_dir = save_model_dir(DualEncoder(SMALL).eval(), Lexicon(lexicon.concepts[:40]), tmp_path / "model")
    import xmr_core.search.service as service
    import xmr_core.store.registry as registry

    monkeypatch.setattr(registry, "DEFAULT_MODEL", model_dir)
    monkeypatch.setattr(service, "DEFAULT_MODEL", model_dir)
    monkeypatch.setenv("XMR_DATA", str(tmp_path / "data"))
    drawing = np.zeros((220, 640, 4), np.uint8)
    drawing[100:120, 100:500, 3] = 255  # one black stroke on a transparent canvas
    fake = types.ModuleType("streamlit_drawable_canvas")
    fake.st_canvas = lambda **kw: types.SimpleNamespace(image_data=drawing, json_data=None)
    monkeypatch.setitem(sys.modules, "streamlit_drawable_canvas", fake)
    monkeypatch.setenv("XMR_DEMO_CONCEPTS", "12")
    import xmr_core.search.demo as demo

    monkeypatch.setattr(demo, "READ_BACK", False)  # an untrained model reads no render back as its word
    import streamlit as st

    st.cache_resource.clear()  # the engine is cached per server: start each test with its own
    yield model_dir
    st.cache_resource.clear()


def _run(page: str):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(PROJECT_ROOT / page), default_timeout=120)
    at.session_state["xmr_routed"] = True  # as when app.py's router runs the page
    at.run()
    return at


@pytest.mark.parametrize("page", ["pages/search.py", "pages/explore.py", "pages/annotate.py", "pages/finetune.py",
                                  "pages/models.py", "pages/home.py"])
def test_every_page_opens(app_env, page):
    at = _run(page)
    assert not at.exception, at.exception


def test_router_opens(app_env):
    at = _run("app.py")
    assert not at.exception


def test_search_by_text_and_drawing(app_env):
    at = _run("pages/search.py")
    at.text_input(key="search_text").input("gato")
    at.button(key="search_text_btn").click().run()
    assert not at.exception
    assert not at.error
    at.button(key="search_draw_btn").click().run()
    assert not at.exception and any(m.value.startswith(("Recognised as", "Nearest lexicon words")) for m in at.markdown)


def test_empty_text_shows_a_message(app_env):
    at = _run("pages/search.py")
    at.text_input(key="search_text").input("   ")
    at.button(key="search_text_btn").click().run()
    assert not at.exception and "type a word" in at.error[0].value


def test_explore_shows_map_and_rd(app_env):
    at = _run("pages/explore.py")
    assert not at.exception
    at.radio(key="explore_method").set_value("tsne").run()
    assert not at.exception and len(at.get("plotly_chart")) >= 1
    assert at.dataframe  # the R/D table


def test_annotate_grows_the_queue_and_validates_concepts(app_env):
    at = _run("pages/annotate.py")  # the patched canvas returns a drawing
    assert not at.exception
    at.button(key="annotate_save").click().run()
    assert not at.exception and "Saved as" in at.success[0].value
    assert "1 samples" in at.caption[0].value
    at.text_input(key="annotate_new_zh").input("cat")
    at.text_input(key="annotate_new_en").input("Bad Word")
    at.button(key="annotate_new_btn").click().run()
    assert not at.exception and at.error


def test_finetune_refuses_an_empty_queue(app_env):
    at = _run("pages/finetune.py")
    assert not at.exception
    at.button[0].click().run()  # the form's submit button
    assert not at.exception and "at least 2" in at.error[0].value


@pytest.mark.parametrize("lost", [False, True])
def test_finetune_says_which_path_a_reader_job_took(app_env, tmp_path, lost):
    """A reader model's job trains the head alone first (finetune.py); the job panel says whether the
    reader was adapted too, and why. Before: the sentence was written but never shown."""
    from xmr_core.store.database import Store

    part = {"within_acc@1": 0.9, "cross_acc@1": 0.8}
    result = {"before": {"val_fonts": part}, "after": {"val_fonts": part}, "n_train": 16, "n_heldout": 4,
              "n_negatives": 0, "config": {"steps": 300, "trunk_steps": 60}, "minutes": 0.8,
              "trained": "reader trunk (60 steps) and reading head (300 steps)" if lost else "reading head",
              **({"head_alone": {"val_fonts": {"within_acc@1": 0.871, "cross_acc@1": 0.8}}} if lost else {})}
    store = Store(tmp_path / "data")
    job = store.create_job("finetune", {"base": str(app_env), "name": "x", "config": result["config"]})
    store.update_job(job, status="done", progress=1.0, message="done", result=result)
    at = _run("pages/finetune.py")
    assert not at.exception
    said = " ".join(c.value for c in at.caption if c.value.startswith("Trained the"))
    assert ("87.1% on the held-out fonts, below the model it started from, so the reader was adapted too" in said) == lost
    assert ("did not lose on the held-out fonts, so the reader was left as it was" in said) == (not lost), said


def test_finetune_can_learn_from_a_collections_unlabelled_items(app_env, tmp_path, monkeypatch):
    """Self-training on the Fine-tune page: a reader model's job can also learn from a collection's
    unlabelled items; the job is sent with that collection, and a finished one says how many it used."""
    import os
    import signal
    import time
    from dataclasses import asdict

    from helpers import png

    import xmr_core.search.service as service
    import xmr_core.store.registry as registry
    from xmr_core.data.render import SyntheticWords
    from xmr_core.model.checkpoint import load_model_dir
    from xmr_core.model.reading import ReadingConfig, reader_record
    from xmr_core.search.annotate import save_annotation
    from xmr_core.search.engine import Engine
    from xmr_core.search.jobs import refresh_dead_jobs

    model, lex, _ = load_model_dir(app_env)
    d = save_model_dir(model, lex, tmp_path / "reading", extra={"reading": asdict(ReadingConfig()),
                                                                "reader": reader_record()})
    monkeypatch.setattr(registry, "DEFAULT_MODEL", d)
    monkeypatch.setattr(service, "DEFAULT_MODEL", d)
    eng = Engine(tmp_path / "data")
    ds = SyntheticWords(lex, "train", kinds={"font": 1.0}, seed=2)
    eng.add("letters", [(f"u{i}", png(ds[i].image)) for i in range(3)])
    eng.add("labelled", [("l", png(ds[3].image))], labels=[(ds[3].concept_id, ds[3].lang)])
    for i in (4, 5):
        save_annotation(eng, png(ds[i].image), ds[i].concept_id, ds[i].lang)
    at = _run("pages/finetune.py")
    pool = at.selectbox(key="finetune_pool")
    assert not at.exception and pool.options == ["no collection (the queue alone)", "letters (3 unlabelled items)"]
    pool.set_value("letters")
    at.button[0].click().run()  # the form's submit button
    assert not at.exception and not at.error
    job = eng.store.list_jobs(1)[0]
    assert job["params"]["config"]["self_train"] == "letters"
    os.killpg(job["pid"], signal.SIGKILL)  # the job itself is tested in tests/train/test_self_training.py
    while eng.store.get_job(job["id"])["status"] in ("queued", "running"):
        time.sleep(0.2)
        refresh_dead_jobs(eng.store)
    part = {"within_acc@1": 0.9, "cross_acc@1": 0.8}
    result = {"before": {"val_fonts": part}, "after": {"val_fonts": part}, "n_train": 2, "n_heldout": 0,
              "n_negatives": 0, "config": {"steps": 300, "trunk_steps": 0, "self_train": "letters"}, "minutes": 0.5,
              "trained": "reading head", "self_training": {"collection": "letters", "read": 3, "kept": 2, "min_margin": 4.1}}
    done = eng.store.create_job("finetune", {"base": str(d), "name": "y", "config": result["config"]})
    eng.store.update_job(done, status="done", progress=1.0, message="done", result=result)
    at = _run("pages/finetune.py")
    said = " ".join(c.value for c in at.caption if c.value.startswith("Trained the"))
    assert "on 2 queue samples, 2 of the 3 unlabelled items of 'letters' labelled with the model's own reading" in said


def test_a_drawn_query_whose_hit_is_marked_right_joins_the_queue(app_env, tmp_path):
    """Issue 28: the user's own writing teaches a fine-tune their hand; once a hit of a drawn query is
    marked right, the query itself can be queued as that hit's concept, in the script the reader finds."""
    from helpers import png

    from xmr_core.data.render import SyntheticWords
    from xmr_core.search.engine import Engine

    eng = Engine(tmp_path / "data")
    ds = SyntheticWords(eng.lexicon, "train", kinds={"font": 1.0}, seed=2)
    eng.add("letters", [(f"l{i}", png(ds[i].image)) for i in range(6)],
            labels=[(ds[i].concept_id, ds[i].lang) for i in range(6)])
    at = _run("pages/search.py")
    at.button(key="search_draw_btn").click().run()
    assert not at.exception and not [b for b in at.button if b.key == "search_queue_query"]  # nothing marked yet
    right = next(b for b in at.button if b.key.startswith("hit_right_"))
    item = eng.store.get_items([int(right.key.rsplit("_", 1)[1])])
    item = next(iter(item.values()))
    right.click().run()
    add = at.button(key="search_queue_query")
    c = eng.lexicon.get(item.concept_id)
    assert not at.exception and f"Add your query to the fine-tune queue as {c.en} / {c.zh} / {c.es}" in add.label
    add.click().run()
    assert not at.exception
    queued = eng.store.list_annotations()
    assert len(queued) == 1 and queued[0]["concept_id"] == item.concept_id and queued[0]["author"] == "anonymous"
    assert queued[0]["sha256"] != item.sha256  # the drawing itself, not the hit
    assert not [b for b in at.button if b.key == "search_queue_query"]  # queued once
    at.button(key="search_draw_btn").click().run()  # a new search: its query can be queued in its turn
    assert not at.exception and at.button(key="search_queue_query")


def test_a_typed_word_shows_the_terms_searched_and_they_can_be_edited(app_env, tmp_path, monkeypatch,
                                                                     dictionaries_ready):
    """With a reading model, a typed word is searched as its words in the three scripts; the page says
    which, and searching the edited terms searches those."""
    from dataclasses import asdict

    import xmr_core.search.service as service
    import xmr_core.store.registry as registry
    from xmr_core.model.checkpoint import load_model_dir
    from xmr_core.model.reading import ReadingConfig, reader_record

    model, lex, _ = load_model_dir(app_env)
    d = save_model_dir(model, lex, tmp_path / "reading", extra={"reading": asdict(ReadingConfig()),
                                                                "reader": reader_record()})
    monkeypatch.setattr(registry, "DEFAULT_MODEL", d)
    monkeypatch.setattr(service, "DEFAULT_MODEL", d)
    at = _run("pages/search.py")
    at.text_input(key="search_text").input("umbrella")
    at.button(key="search_text_btn").click().run()
    assert not at.exception and not at.error
    said = " ".join(m.value for m in at.markdown)
    assert "Searching for" in said and "雨伞" in said and "paraguas" in said
    es = next(t for t in at.text_input if t.key.startswith("search_terms_es"))
    assert "paraguas" in es.value
    es.input("vela")
    for lg in ("zh", "en"):
        next(t for t in at.text_input if t.key.startswith(f"search_terms_{lg}")).input("")
    at.button(key="search_terms_btn").click().run()
    assert not at.exception and not at.error
    said = " ".join(m.value for m in at.markdown)
    assert "**vela**" in said and "雨伞" not in said


def test_each_user_has_their_own_history_and_samples(app_env):
    """Issue 28: the sidebar's user; one user's searches are listed for them only and run again; a
    user changes only their own samples in the queue."""
    at = _run("pages/search.py")
    at.text_input(key="xmr_user_box_anonymous").input("ana").run()
    assert at.query_params["user"] in ("ana", ["ana"])  # kept in the address: a reload keeps the user
    at.text_input(key="search_text").input("gato")
    at.button(key="search_text_btn").click().run()
    assert not at.exception
    listed = [m.value for m in at.markdown if "typed **gato**" in m.value]
    assert len(listed) == 1
    again = [b for b in at.button if b.key.startswith("search_again_")]
    again[0].click().run()
    assert not at.exception and sum("typed **gato**" in m.value for m in at.markdown) == 2  # run again: listed
    ann = _run("pages/annotate.py")
    ann.text_input(key="xmr_user_box_anonymous").input("ana").run()
    ann.button(key="annotate_save").click().run()
    assert not ann.exception and any(b.key.startswith("annotate_delete_") for b in ann.button)

    other = _run("pages/search.py")  # a second browser: its own session
    other.text_input(key="xmr_user_box_anonymous").input("ben").run()
    assert not other.exception and not [m.value for m in other.markdown if "gato" in m.value]
    assert any("None yet" in c.value for c in other.caption)
    ann2 = _run("pages/annotate.py")
    ann2.text_input(key="xmr_user_box_anonymous").input("ben").run()
    assert not any(b.key.startswith("annotate_delete_") for b in ann2.button)
    assert any("ana's sample" in c.value for c in ann2.caption)


def test_a_sample_like_ones_a_user_labelled_suggests_and_searches_as_their_label(app_env):
    """Issue 28, exemplars: ana labels the drawing as a concept the model does not suggest first; the same
    drawing then suggests her label first for her (not for ben), and her search by drawing says it looks
    like her sample."""
    from xmr_core.model.checkpoint import load_model_dir

    ann = _run("pages/annotate.py")
    ann.text_input(key="xmr_user_box_anonymous").input("ana").run()
    first = ann.radio[0].value
    label = next(c for c in load_model_dir(app_env)[1].ids() if c != first)
    ann.selectbox[0].set_value(label).run()
    ann.button(key="annotate_save").click().run()
    assert not ann.exception and "Saved as" in ann.success[0].value
    again = _run("pages/annotate.py")
    again.text_input(key="xmr_user_box_anonymous").input("ana").run()
    assert not again.exception and again.radio[0].value == label
    ben = _run("pages/annotate.py")
    ben.text_input(key="xmr_user_box_anonymous").input("ben").run()
    assert ben.radio[0].value == first

    at = _run("pages/search.py")
    at.text_input(key="xmr_user_box_anonymous").input("ana").run()
    at.button(key="search_draw_btn").click().run()
    assert not at.exception and any(c.value.startswith("Looks like samples you labelled") for c in at.caption)
