"""Issue 23 in the app: labels as the image shows, relabel once, model names that are not paths, a bad
active model that leaves the app usable, a map that never carries file paths. AppTest over real
engines; the canvas is patched (AppTest cannot draw) to return the image a test sets."""

import json
import sys
import types

import numpy as np
import pytest
from helpers import SMALL, png

from xmr_core.data.lexicon import Lexicon
from xmr_core.data.paths import PROJECT_ROOT
from xmr_core.data.render import SyntheticWords
from xmr_core.model.checkpoint import save_model_dir
from xmr_core.model.dual import DualEncoder
from xmr_core.store.database import Store
from xmr_core.store.registry import DEFAULT_MODEL, activate, active_model_dir


class Canvas:
    """What the patched st_canvas returns: the RGBA drawing a test puts on it."""

    def __init__(self) -> None:
        self.image = np.zeros((220, 640, 4), np.uint8)
        self.image[100:120, 100:500, 3] = 255

    def draw(self, gray) -> None:
        """A rendered word as canvas strokes: black ink, opacity from the ink."""
        g = np.asarray(gray.convert("L").resize((600, 200)), np.uint8)
        rgba = np.zeros((200, 600, 4), np.uint8)
        rgba[..., 3] = 255 - g
        self.image = rgba


@pytest.fixture()
def env(tmp_path, monkeypatch, fonts_ready):
    """The bundled model over an empty data folder (the demo kept small), and a settable canvas."""
    canvas = Canvas()
    fake = types.ModuleType("streamlit_drawable_canvas")
    fake.st_canvas = lambda **kw: types.SimpleNamespace(image_data=canvas.image, json_data=None)
    monkeypatch.setitem(sys.modules, "streamlit_drawable_canvas", fake)
    monkeypatch.setenv("XMR_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("XMR_DEMO_CONCEPTS", "6")
    import streamlit as st

    st.cache_resource.clear()
    yield types.SimpleNamespace(canvas=canvas, data=tmp_path / "data", tmp=tmp_path)
    st.cache_resource.clear()


def _run(page: str, at=None):
    from streamlit.testing.v1 import AppTest

    at = at or AppTest.from_file(str(PROJECT_ROOT / page), default_timeout=180)
    at.session_state["xmr_routed"] = True
    at.run()
    return at


def test_each_sample_is_saved_in_the_script_it_shows(env, lexicon):
    """Chinese and Latin samples in turn: before, the script radio kept the previous sample's value."""
    ds = SyntheticWords(lexicon, "train", kinds={"font": 1.0}, seed=3)
    order = ["zh", "en", "zh", "es", "en"]
    samples = [ds[3 * (40 + n) + ["zh", "en", "es"].index(lg)] for n, lg in enumerate(order)]
    at = _run("pages/annotate.py")
    for n, s in enumerate(samples):
        env.canvas.draw(s.image)
        at.run()
        assert not at.exception, at.exception
        at.button(key="annotate_save").click().run()
        assert not at.exception and any("Saved as" in m.value for m in at.success)
        queue = Store(env.data).list_annotations()
        assert len(queue) == n + 1
        assert queue[-1]["lang"] == s.lang, (s.text, queue[-1])


def test_relabel_changes_concept_and_script_once(env, lexicon):
    at = _run("pages/annotate.py")
    at.button(key="annotate_save").click().run()
    store = Store(env.data)
    (a,) = store.list_annotations()
    concept_id = next(c for c in lexicon.ids() if c != a["concept_id"])
    at.selectbox(key=f"annotate_relabel_concept_{a['id']}").set_value(concept_id)
    at.radio(key=f"annotate_relabel_lang_{a['id']}").set_value("es")
    next(b for b in at.button if b.label == "Apply").click()
    at.run()  # before: a selectbox that kept its value relabelled and reran without end
    assert not at.exception
    (b,) = store.list_annotations()
    assert (b["concept_id"], b["lang"]) == (concept_id, "es")
    at.run()
    assert not at.exception and len(store.list_annotations()) == 1


def _queue_two(store: Store, lexicon) -> None:
    ds = SyntheticWords(Lexicon(lexicon.concepts[:5]), "train", kinds={"font": 1.0}, seed=1)
    for i in range(2):
        sha, rel = store.put_image(png(ds[i].image))
        store.annotate(sha, str(rel), ds[i].concept_id, ds[i].lang)


@pytest.mark.parametrize("name", ["/tmp/xmr-victim", "..", "."])
def test_finetune_refuses_a_path_for_a_name(env, lexicon, name):
    _queue_two(Store(env.data), lexicon)
    at = _run("pages/finetune.py")
    at.text_input(key="finetune_name").input(name)
    at.button[0].click().run()
    assert not at.exception and "model name" in at.error[0].value
    assert Store(env.data).list_jobs() == []


def test_a_model_that_fails_to_load_leaves_models_usable(env, lexicon):
    """Before: a promoted model that could not load put the same traceback on every page, Models too."""
    store = Store(env.data)
    broken = env.data / "models" / "bad" / "model"
    save_model_dir(DualEncoder(SMALL).eval(), Lexicon(lexicon.concepts[:5]), broken)
    (broken / "model.safetensors").write_bytes(b"not weights")
    activate(store, broken)
    at = _run("pages/search.py")
    assert not at.exception and "could not start" in at.error[0].value
    at = _run("pages/models.py")
    assert not at.exception
    assert any(r == "bad" for r in at.dataframe[0].value["name"])
    at.button(key="models_rollback").click().run()
    assert not at.exception and "rolled back" in at.success[0].value
    assert active_model_dir(store).resolve() == DEFAULT_MODEL.resolve()
    at = _run("pages/search.py")
    assert not at.exception and not at.error


def test_the_map_carries_item_ids_not_paths(env):
    at = _run("pages/explore.py")
    assert not at.exception
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    data = [d for d in spec["data"] if d.get("customdata")]
    assert data
    values = [v[0] for d in data for v in d["customdata"]]
    assert all(isinstance(v, int) for v in values)
    assert not any(str(env.data) in json.dumps(d) or ".png" in json.dumps(d) for d in data)
    store = Store(env.data)
    assert set(v for v in values if v >= 0) <= {it.id for it in store.list_items()}
