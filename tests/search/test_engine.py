"""The engine over a real (small, untrained) model: adding, searching, recognising, bad input."""

import base64
import io

import numpy as np
import pytest
import torch
from helpers import SMALL
from helpers import png as _png
from PIL import Image

from xmr_core.data.lexicon import Lexicon
from xmr_core.data.render import SyntheticWords
from xmr_core.model.checkpoint import save_model_dir
from xmr_core.model.dual import DualEncoder
from xmr_core.search.engine import Engine
from xmr_core.search.fusion import FusionConfig, fuse
from xmr_core.search.pages import iou
from xmr_core.search.results import detect_language


@pytest.fixture(scope="module")
def small_model_dir(lexicon, tmp_path_factory):
    torch.manual_seed(0)
    model = DualEncoder(SMALL).eval()
    lex = Lexicon(lexicon.concepts[:60])
    return save_model_dir(model, lex, tmp_path_factory.mktemp("model") / "m")


@pytest.fixture(scope="module")
def samples(lexicon, fonts_ready):
    ds = SyntheticWords(Lexicon(lexicon.concepts[:60]), "val", seed=9)
    return [ds[i] for i in range(0, 60, 4)]



@pytest.fixture()
def engine(small_model_dir, tmp_path, backend):
    """Without fusion: the index holds exactly the image embeddings (fusion has its own test); on each
    vector backend (conftest.backend)."""
    return Engine(tmp_path / "data", model_dir=small_model_dir, fusion=None)


def test_fusion_pulls_labelled_items_to_their_concept(small_model_dir, tmp_path, samples, backend):
    eng = Engine(tmp_path / "data", model_dir=small_model_dir, fusion=FusionConfig(beta=0.25))
    rep = eng.add("demo", [(f"s{i}", _png(s.image)) for i, s in enumerate(samples)],
                  labels=[(s.concept_id, s.lang) for s in samples])
    eng.add("demo", [("unlabelled", _png(samples[0].image.rotate(3, fillcolor="white")))])
    ids, raw = eng.store.embeddings(eng.model_id)
    fused = eng.index.vectors(ids)
    for n, s in enumerate(samples):
        t = np.stack([eng.anchors(lang)[eng.lexicon.index(s.concept_id)] for lang in ("zh", "en", "es")])
        assert (t @ fused[n]).mean() > (t @ raw[n]).mean() + 0.1  # nearer its concept than the image alone
    assert np.allclose(fused[-1], raw[-1])  # unlabelled: the image embedding as it is
    # a typed word finds its labelled item first
    for s, item_id in zip(samples[:5], rep.added):
        hits, _ = eng.search(text=s.text, k=1)
        assert hits[0].item_id == item_id
    # switching fusion off rebuilds the index from the store's image embeddings
    plain = Engine(tmp_path / "data", model_dir=small_model_dir, fusion=None)
    assert np.allclose(plain.index.vectors(ids), raw, atol=1e-6)


def test_added_images_are_searchable_at_once(engine, samples):
    rep = engine.add("demo", [(f"s{i}", _png(s.image)) for i, s in enumerate(samples)],
                     labels=[(s.concept_id, s.lang) for s in samples])
    assert len(rep.added) == len(samples) and not rep.errors
    for s, item_id in zip(samples[:5], rep.added):
        hits, info = engine.search(image=_png(s.image), k=3)
        assert hits[0].item_id == item_id and hits[0].score == pytest.approx(1.0, abs=1e-4)
        assert hits[0].words and hits[0].words[s.lang] == s.text
        assert info.kind == "image" and set(info.recognized) == {"zh", "en", "es"}
    # a language filter returns only that script
    hits, _ = engine.search(image=_png(samples[0].image), k=10, languages=["zh"])
    assert hits and all(h.lang == "zh" for h in hits)


def test_feedback_leaves_out_the_wrong_puts_the_right_first_and_moves_the_query(engine, samples):
    """Issue 28: hits marked wrong are gone, those marked right lead, and the query vector moves towards
    the right ones (Rocchio): an item near them climbs."""
    rep = engine.add("demo", [(f"s{i}", _png(s.image)) for i, s in enumerate(samples)])
    query = _png(samples[0].image)
    hits, info = engine.search(image=query, k=10)
    ids = [h.item_id for h in hits]
    assert info.feedback == (0, 0) and len(ids) == 10
    right, wrong = ids[5], ids[:2]
    again, info = engine.search(image=query, k=10, feedback={right: True, wrong[0]: False, wrong[1]: False})
    got = [h.item_id for h in again]
    assert info.feedback == (1, 2) and len(got) == 10
    assert got[0] == right and not set(wrong) & set(got)
    q0 = engine.embed_query(query)[1]
    moved = engine._rocchio(q0, [right], wrong)
    _, vecs = engine.store.embeddings(engine.model_id, [right])
    assert float(moved @ vecs[0]) > float(q0 @ vecs[0]) and abs(float(np.linalg.norm(moved)) - 1) < 1e-5
    # a hit marked right leads a later, narrower search that would not find it
    one, _ = engine.search(image=query, k=1, feedback={right: True})
    assert [h.item_id for h in one] == [right]
    lang = next(h.lang for h in hits if h.item_id == right)
    other = next(lg for lg in ("zh", "en", "es") if lg != lang)
    assert right not in [h.item_id for h in engine.search(image=query, k=3, languages=[other],
                                                           feedback={right: True})[0]]  # unless filtered out
    # by script too: still k of each
    per, _ = engine.search(image=query, k=2, per_script=True, feedback={wrong[0]: False})
    assert wrong[0] not in [h.item_id for h in per]
    assert max(sum(h.lang == lg for h in per) for lg in ("zh", "en", "es")) <= 2
    assert set(rep.added) >= set(got)


def test_text_search_and_language_detection(engine, samples, lexicon):
    engine.add("demo", [("a", _png(samples[0].image))])
    hits, info = engine.search(text="tres", k=5)
    assert info.detected_lang == "es" and len(hits) == 1
    assert detect_language("猫", lexicon) == "zh" and detect_language("cat", lexicon) == "en"
    assert detect_language("zanahoria", lexicon) == "es" and detect_language("Straße", lexicon) == "other"


@pytest.mark.parametrize("text, msg", [("", "type a word"), ("   ", "type a word"), ("x" * 10_000, "at most"),
                                        ("🙂🙂", "no letters")])
def test_bad_text_queries(engine, text, msg):
    with pytest.raises(ValueError, match=msg):
        engine.search(text=text)


def test_right_to_left_text_is_searched(engine, samples):
    engine.add("demo", [("a", _png(samples[0].image))])
    hits, info = engine.search(text="قطة", k=1)  # Arabic: the anchor knows it
    assert info.detected_lang == "other" and len(hits) == 1


def test_bad_images_are_reported_and_nothing_is_lost(engine, samples):
    rep = engine.add("demo", [("good", _png(samples[0].image))])
    before = engine.store.count_items()
    blank = _png(Image.new("L", (200, 80), 255))
    rep = engine.add("demo", [("text.txt", b"hello"), ("blank.png", blank), ("trunc.png", _png(samples[1].image)[:100])])
    assert set(rep.errors) == {"text.txt", "blank.png", "trunc.png"} and not rep.added
    assert engine.store.count_items() == before
    with pytest.raises(ValueError):
        engine.search(image=b"not an image")


def test_remove_and_rebuild_after_restart(engine, small_model_dir, samples):
    rep = engine.add("demo", [(f"s{i}", _png(s.image)) for i, s in enumerate(samples[:6])])
    engine.remove(rep.added[:2])
    hits, _ = engine.search(image=_png(samples[0].image), k=10)
    assert rep.added[0] not in [h.item_id for h in hits] and len(hits) == 4
    engine._index_path().write_bytes(b"damaged")  # a damaged index is rebuilt from the store
    again = Engine(engine.store.root, model_dir=small_model_dir)
    assert len(again.index) == 4
    hits, _ = again.search(image=_png(samples[3].image), k=1)
    assert hits[0].item_id == rep.added[3]


def test_cli_collection_add_search(small_model_dir, samples, tmp_path, capsys):
    import json

    from xmr_core.cli import main

    data = str(tmp_path / "d")
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, s in enumerate(samples[:4]):
        s.image.save(folder / f"w{i}.png")
    (folder / "bad.png").write_bytes(b"not a png")
    assert main(["collection", "create", "mine", "--data", data]) == 0
    assert main(["add", "mine", str(folder), "--data", data, "--model", str(small_model_dir)]) == 0
    out = capsys.readouterr().out
    assert "added 4 images" in out and "bad.png" in out
    assert main(["search", "mine", "--image", str(folder / "w2.png"), "--json", "-k", "2",
                 "--data", data, "--model", str(small_model_dir)]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["hits"][0]["path"].endswith(".png") and res["hits"][0]["score"] > 0.999
    assert main(["search", "--text", "", "--data", data, "--model", str(small_model_dir)]) == 2
    assert "type a word" in capsys.readouterr().err


def test_page_ingestion_keeps_boxes(engine, lexicon, fonts_ready):
    from xmr_core.data.render.page import render_page

    ds = SyntheticWords(Lexicon(lexicon.concepts[:60]), "val", seed=2)
    rng = np.random.default_rng(0)
    words = [(lexicon.concepts[i].concept_id, "en") for i in range(8)]
    page, boxes, _ = render_page(ds, words, rng)
    rep = engine.add_page("pages", "page1.png", _png(page))
    assert len(rep.added) >= 6
    items = engine.store.get_items(rep.added)
    it = items[rep.added[0]]
    assert it.bbox is not None and it.page_sha256 and engine.page_path(it.page_sha256).exists()
    # a page is kept and read at up to 4,000 pixels (a word at 1,600): a scan at twice the size has its
    # boxes at twice the size, on the page as stored
    big = page.resize((page.width * 2, page.height * 2))
    rep2 = engine.add_page("scans", "page1-2x.png", _png(big))
    small = [it.bbox for it in items.values()]
    large = list(engine.store.get_items(rep2.added).values())
    assert Image.open(engine.page_path(large[0].page_sha256)).size == big.size
    assert sum(any(iou(tuple(v // 2 for v in it.bbox), s) >= 0.7 for s in small) for it in large) >= 6, (small, large)


_ADDER = r"""
import io, sys
import numpy as np
from PIL import Image
from xmr_core.search.engine import Engine
eng = Engine(sys.argv[1], model_dir=sys.argv[2])
rng = np.random.default_rng(0)
i = 0
while True:
    batch = []
    for _ in range(8):
        img = Image.new("L", (160, 60), 255)
        a = np.asarray(img).copy()
        a[20:40, 10 + i % 100: 60 + i % 100] = 0
        buf = io.BytesIO(); Image.fromarray(a).save(buf, "PNG")
        batch.append((f"w{i}", buf.getvalue())); i += 1
    eng.add("c", batch)
    print(i, flush=True)
    if sys.argv[3] == "reindex" and i > 40:
        eng.reindex()
"""


@pytest.mark.parametrize("phase", ["add", "reindex"])
def test_sigkill_mid_write_leaves_a_consistent_store(small_model_dir, tmp_path, phase, backend):
    import signal
    import subprocess
    import sys
    import time

    data = tmp_path / "d"
    proc = subprocess.Popen([sys.executable, "-c", _ADDER, str(data), str(small_model_dir), phase],
                            stdout=subprocess.PIPE, text=True)
    seen = 0
    while seen < 56:
        line = proc.stdout.readline()
        if not line:
            break
        seen = int(line)
    time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    eng = Engine(data, model_dir=small_model_dir)  # restart
    n_items = eng.store.count_items()
    ids, vecs = eng.store.embeddings(eng.model_id)
    assert n_items >= 56 and len(ids) == n_items and len(eng.index) == n_items
    shas = [it.sha256 for it in eng.store.list_items(limit=100_000)]
    assert len(shas) == len(set(shas))  # nothing duplicated
    assert all(it.path.exists() for it in eng.store.list_items(limit=100_000))  # nothing lost


def test_sixteen_bit_scan_is_stored_viewable(engine, samples):
    a = (np.asarray(samples[0].image.convert("L"), np.uint16) * 257).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    rep = engine.add("demo", [("scan16.png", buf.getvalue())])
    stored = Image.open(engine.store.get_items(rep.added)[rep.added[0]].path)
    assert stored.mode == "L" and np.asarray(stored).min() < 100 and np.asarray(stored).max() > 200


def test_fuse_hand_computed():
    v = np.array([[1.0, 0.0]], np.float32)
    anchors = np.array([[[1.0, 0.0], [0.0, 1.0]]], np.float32)
    a = np.exp(1) / (np.exp(1) + 1)  # softmax of logits (1, 0) at tau 1
    want = np.array([a + 1.0, 1 - a]) / np.hypot(a + 1.0, 1 - a)
    assert np.allclose(fuse(v, anchors, FusionConfig(beta=1.0, tau=1.0))[0], want, atol=1e-6)
    assert np.allclose(fuse(v, anchors, FusionConfig(beta=0.0, tau=1e-3))[0], [1.0, 0.0], atol=1e-6)


def test_demo_and_explore_map(engine, fonts_ready, monkeypatch):
    import xmr_core.search.demo as demo
    from xmr_core.search.demo import build_demo

    monkeypatch.setattr(demo, "READ_BACK", False)  # the untrained test model reads no render back
    n = build_demo(engine, n_concepts=6)
    assert n == engine.store.count_items("demo") and n >= 15  # 6 concepts x 3 scripts, few glyphs missing
    df, rd = engine.explore("demo", method="pca")
    images, anchors = df[df.kind == "image"], df[df.kind == "anchor"]
    assert len(images) == n and len(anchors) == 3 * images.concept.nunique()
    assert images["style"].str.len().min() > 0 and "not recorded" not in set(images["style"])  # the demo's fonts
    assert set(anchors["style"]) == {"text anchor"} and {"all", "zh", "en", "es"} <= set(rd)
    assert all(rd[lg] > 0 for lg in ("zh", "en", "es"))  # before: 0, one image per concept and script
    assert images["words"].str.count(" / ").eq(2).all()  # hover shows the three words
    assert np.isfinite(df[["x", "y"]].to_numpy()).all()
    # hover's images: one small PNG per stored image; anchors (-1), unknown ids and missing files none
    ids = images["item_id"].tolist()
    item = engine.store.get_items([ids[0]])[ids[0]]
    item.path.rename(item.path.with_suffix(".gone"))
    thumbs = engine.thumbnails([*ids, -1, 10**9], height=32)
    item.path.with_suffix(".gone").rename(item.path)
    assert set(thumbs) == set(ids[1:])
    thumb = Image.open(io.BytesIO(base64.b64decode(thumbs[ids[1]].removeprefix("data:image/png;base64,"))))
    stored = Image.open(engine.store.get_items([ids[1]])[ids[1]].path)
    assert thumb.mode == "L" and thumb.height <= 32 and thumb.width <= 4 * 32
    assert abs(thumb.width / thumb.height - stored.width / stored.height) < 0.2 * stored.width / stored.height


def test_the_demo_leaves_out_renders_the_model_cannot_read_back(tmp_path, fonts_ready):
    """Issue 26: an illegible demo render ("oil") turned up in many unrelated results."""
    from xmr_core.search.demo import build_demo, demo_concepts, render_val_words
    from xmr_core.store.registry import EDGE_MODEL

    eng = Engine(tmp_path / "data", model_dir=EDGE_MODEL)
    assert [c.en for c in demo_concepts(eng.lexicon, 2)][0] == "cat"  # the Search page's example first
    images, labels = render_val_words(eng.lexicon, 4, seed=7)
    wrong = [(c, lg) for (_, lg), c in zip(labels, [labels[-1][0]] * len(labels))]  # all labelled as one concept
    rep = eng.add("t", images[:3], wrong[:3], readable_only=True)
    assert not rep.added and all("read it back" in e for e in rep.errors.values())
    assert eng.store.count_items() == 0 and not list((tmp_path / "data" / "images").rglob("*.png"))  # nothing kept
    n = build_demo(eng, 4)
    assert 9 <= n <= 12 and eng.store.count_items("demo") == n
