import csv
import io
import zipfile

import numpy as np
import pytest
import torch
from helpers import SMALL
from helpers import png as _png
from PIL import Image

from xmr_core.data.lexicon import Lexicon
from xmr_core.data.render import SyntheticWords
from xmr_core.evaluate.retrieval import load_manifest_set
from xmr_core.model.checkpoint import save_model_dir
from xmr_core.model.dual import DualEncoder
from xmr_core.search.annotate import create_concept, queue_zip, save_annotation, suggest
from xmr_core.search.engine import Engine


@pytest.fixture()
def engine(lexicon, tmp_path):
    torch.manual_seed(0)
    d = save_model_dir(DualEncoder(SMALL).eval(), Lexicon(lexicon.concepts[:30]), tmp_path / "m")
    return Engine(tmp_path / "data", model_dir=d)



def test_suggest_save_relabel_export(engine, lexicon, fonts_ready, tmp_path):
    ds = SyntheticWords(Lexicon(lexicon.concepts[:30]), "val", seed=1)
    s = ds[4]
    top = suggest(engine, _png(s.image))
    assert len(top) == 5 and len({c for c, _, _ in top}) == 5
    a = save_annotation(engine, _png(s.image), s.concept_id, s.lang, author="ana")
    save_annotation(engine, _png(ds[7].image), ds[7].concept_id, ds[7].lang)
    assert len(engine.store.list_annotations()) == 2
    with pytest.raises(ValueError, match="blank"):
        save_annotation(engine, _png(Image.new("L", (100, 40), 255)), s.concept_id, s.lang)
    with pytest.raises(ValueError, match="unknown concept"):
        save_annotation(engine, _png(s.image), "no-such", "en")
    engine.store.relabel_annotation(a, ds[7].concept_id, ds[7].lang)
    zipfile.ZipFile(io.BytesIO(queue_zip(engine))).extractall(tmp_path / "export")
    path = tmp_path / "export" / "manifest.csv"
    rows = list(csv.DictReader(open(path, encoding="utf-8")))
    assert [r["concept_id"] for r in rows] == [ds[7].concept_id] * 2 and (path.parent / rows[0]["path"]).exists()
    data = load_manifest_set(path, engine.lexicon, engine.pre)  # the export reads back as a manifest
    assert len(data.x) == 2


def test_new_concepts_are_validated(engine):
    c = create_concept(engine, "短尾", "Quokka", "Quokka")  # Latin words lowercased, not refused
    assert c.concept_id == "user.quokka" and "user.quokka" in engine.lexicon and (c.en, c.es) == ("quokka", "quokka")
    assert len(engine.anchors("en")) == len(engine.lexicon)
    again = Engine(engine.store.root, model_dir=engine.model_dir)  # kept in the store
    assert "user.quokka" in again.lexicon
    with pytest.raises(ValueError):
        create_concept(engine, "cat", "Quokka2", "x y")
    with pytest.raises(ValueError, match="used by both|exists"):
        create_concept(engine, "短尾", "quokka", "quokka")


def test_a_marked_querys_script_is_the_one_its_concept_is_read_in(engine, fonts_ready):
    """Search's "Add your query": the query joins the queue as the marked hit's concept, in the script the
    reader finds that concept's word written in (the hit itself may be in another script)."""
    from xmr_core.data.lexicon import LANGS
    from xmr_core.search.annotate import query_script

    lex = engine.lexicon
    ds = SyntheticWords(lex, "train", kinds={"font": 1.0}, seed=6)
    concepts = [c for c in lex.concepts if c.en != c.es][:4]
    cases = [(c.concept_id, lg) for c in concepts for lg in LANGS]
    got = [query_script(engine, _png(ds.sample(cid, lg, np.random.default_rng(n)).image), cid)
           for n, (cid, lg) in enumerate(cases)]
    assert sum(g == lg for g, (_, lg) in zip(got, cases)) >= len(cases) - 1, list(zip(got, cases))
