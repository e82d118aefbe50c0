"""Users, their history and their standing marks (users.py, issue 28) through a real engine."""

import numpy as np
import pytest
import torch
from helpers import SMALL, png

from xmr_core.data.lexicon import Lexicon
from xmr_core.data.render import SyntheticWords
from xmr_core.model.checkpoint import save_model_dir
from xmr_core.model.dual import DualEncoder
from xmr_core.search.annotate import delete_annotation, relabel_annotation, save_annotation
from xmr_core.search.engine import Engine
from xmr_core.store import users


@pytest.fixture(scope="module")
def eng(lexicon, fonts_ready, tmp_path_factory):
    torch.manual_seed(0)
    lex = Lexicon(lexicon.concepts[:40])
    d = save_model_dir(DualEncoder(SMALL).eval(), lex, tmp_path_factory.mktemp("model") / "m")
    e = Engine(tmp_path_factory.mktemp("data"), model_dir=d, fusion=None)
    ds = SyntheticWords(lex, "val", seed=3)
    samples = [ds[i] for i in range(0, 120, 3)]
    e.add("demo", [(f"s{i}", png(s.image)) for i, s in enumerate(samples)],
          labels=[(s.concept_id, s.lang) for s in samples])
    e.samples = samples
    return e


def test_names_roles_and_bad_names(eng):
    assert users.ensure_user(eng.store, "  ana ") == "ana"
    for bad in ("", " ", "a/b", "x" * 41, "<script>"):
        with pytest.raises(ValueError, match="user name"):
            users.ensure_user(eng.store, bad)
    assert users.role(eng.store, "ana") == "user"
    users.set_role(eng.store, "rita", "reviewer")
    assert users.role(eng.store, "rita") == "reviewer"
    with pytest.raises(ValueError, match="role"):
        users.set_role(eng.store, "ana", "admin")
    assert {u["name"]: u["role"] for u in users.list_users(eng.store)}.items() >= {"ana": "user", "rita": "reviewer"}.items()


def test_history_is_per_user_and_runs_again(eng):
    s = eng.samples[0]
    hits, info, sid, key = users.search_as(eng, "hist-a", {"image": png(s.image)}, k=5)
    _, _, sid2, key2 = users.search_as(eng, "hist-a", {"text": s.text}, k=5)
    assert key.startswith("concept:") and key2 == "text:" + s.text.lower()
    mine = users.history(eng.store, "hist-a")
    assert [h["id"] for h in mine] == [sid2, sid]  # newest first
    assert [r["item_id"] for r in mine[1]["results"]] == [h.item_id for h in hits]
    assert users.history(eng.store, "hist-b") == []  # another user sees none of it
    with pytest.raises(KeyError):
        users.get_search(eng.store, "hist-b", sid)
    # the image was kept in the store and the search runs again to the same hits
    assert (eng.store.root / mine[1]["query"]["image"]).exists()
    assert mine[1]["query"]["image"] in eng.store.referenced_files()
    again, _, sid3, _ = users.rerun(eng, "hist-a", sid)
    assert [h.item_id for h in again] == [h.item_id for h in hits] and sid3 > sid2


def test_standing_marks_rerank_the_same_users_later_searches_only(eng):
    q = {"text": eng.samples[1].text}
    hits, info, sid, key = users.search_as(eng, "mark-a", q, k=8)
    right, wrong = hits[4].item_id, hits[0].item_id
    users.mark(eng.store, "mark-a", sid, right, True, users.query_concept(info, eng.lexicon), hits[4].lang, key)
    users.mark(eng.store, "mark-a", sid, wrong, False, users.query_concept(info, eng.lexicon), hits[0].lang, key)
    later, info2, _, _ = users.search_as(eng, "mark-a", q, k=8)  # a later search, no marks given
    assert later[0].item_id == right and wrong not in [h.item_id for h in later] and info2.feedback == (1, 1)
    assert info2.marks == {right: True, wrong: False}  # the marks it was re-ranked with
    other, info3, _, _ = users.search_as(eng, "mark-b", q, k=8)
    assert [h.item_id for h in other] == [h.item_id for h in hits] and info3.feedback == (0, 0)
    assert users.history(eng.store, "mark-a")[-1]["marks"] == {right: True, wrong: False}
    neg = users.negatives(eng.store)
    assert [(n["item_id"], n["concept_id"]) for n in neg] == [(wrong, eng.samples[1].concept_id)]
    # a changed mark replaces the old one; clearing them restores the plain ranking
    users.mark(eng.store, "mark-a", sid, wrong, True, None, None, key)
    assert users.marks_for(eng.store, "mark-a", key) == {right: True, wrong: True}
    assert users.search_as(eng, "mark-a", q, feedback={}, k=8)[1].feedback == (0, 0)  # {}: no marks at all
    assert users.standing_marks(eng.store, "mark-a", key) == {right: True, wrong: True}
    assert users.clear_marks(eng.store, "mark-a", key) == 2
    plain, _, _, _ = users.search_as(eng, "mark-a", q, k=8)
    assert [h.item_id for h in plain] == [h.item_id for h in hits]


def test_users_edit_only_their_own_annotations_unless_reviewer(eng):
    s = eng.samples[2]
    mine = save_annotation(eng, png(s.image), s.concept_id, s.lang, author="own-a")
    other = eng.lexicon.concepts[5].concept_id
    with pytest.raises(PermissionError, match="own-a"):
        relabel_annotation(eng, "own-b", mine, other, "en")
    with pytest.raises(PermissionError, match="own-a"):
        delete_annotation(eng, "own-b", mine)
    relabel_annotation(eng, "own-a", mine, other, "en")
    assert next(a for a in eng.store.list_annotations() if a["id"] == mine)["concept_id"] == other
    users.set_role(eng.store, "own-r", "reviewer")
    delete_annotation(eng, "own-r", mine)
    assert mine not in [a["id"] for a in eng.store.list_annotations()]


def test_an_image_near_an_earlier_marked_one_gets_its_marks(eng, monkeypatch):
    """Another drawing of a word, recognised as something else than the first (another query key), still
    gets the marks given on the first when their embeddings are within users.SIMILAR_QUERY."""
    a = eng.samples[3]
    hits, info, sid, _ = users.search_as(eng, "near-a", {"image": png(a.image)}, k=6)
    look = eng.look(info)
    assert look is not None and abs(float(look @ look) - 1) < 1e-4
    right = hits[3].item_id
    users.mark(eng.store, "near-a", sid, right, True, None, hits[3].lang, "concept:another", look)
    again, info2, _, key = users.search_as(eng, "near-a", {"image": png(a.image)}, k=6, record=False)
    assert key != "concept:another" and again[0].item_id == right and info2.feedback == (1, 0)
    assert users.similar_marks(eng.store, "near-a", look, 0.99) == {right: True}
    other = np.random.default_rng(0).normal(size=look.shape).astype(np.float32)
    assert users.similar_marks(eng.store, "near-a", other / np.linalg.norm(other), 0.9) == {}  # a far query
    assert users.similar_marks(eng.store, "near-b", look, 0.9) == {}  # another user's
    monkeypatch.setattr(users, "SIMILAR_QUERY", 2.0)  # by the query's key only
    plain, _, _, _ = users.search_as(eng, "near-a", {"image": png(a.image)}, k=6, record=False)
    assert [h.item_id for h in plain] == [h.item_id for h in hits]


def test_the_concept_a_query_meant(eng):
    from xmr_core.search.results import QueryInfo

    c = eng.lexicon.concepts[0]
    assert users.query_concept(QueryInfo("text", text=c.en), eng.lexicon) == c.concept_id
    assert users.query_concept(QueryInfo("text", text="zzzq"), eng.lexicon) is None
    seen = QueryInfo("image", recognized={"en": [(c.concept_id, c.en, 0.9)], "zh": [("x", "x", 0.1)]})
    assert users.query_key(seen) == f"concept:{c.concept_id}" and users.query_concept(seen, eng.lexicon) == c.concept_id
    read = QueryInfo("image", text="Kite", terms={"en": ["kite"]})  # read outside the lexicon: no concept
    assert users.query_key(read) == "read:kite" and users.query_concept(read, eng.lexicon) is None
