"""Open vocabulary through the engine: items keep their readings (store schema 2), FTS5 candidate
generation against a brute-force scan, a typed word outside the lexicon found in all three scripts with
the terms shown, and a new unlabelled word's script from its reading."""

import numpy as np
import pytest

from xmr_core.engine import Engine
from xmr_core.lexicon import LANGS, Concept, Lexicon
from xmr_core.model.ctc import expand
from xmr_core.registry import READING_MODEL
from xmr_core.render import SyntheticWords
from xmr_core.store import Store

from helpers import png

WORDS = [("雨伞", "umbrella", "paraguas"), ("蜡烛", "candle", "vela"), ("钥匙", "key", "llave"), ("锚", "anchor", "ancla")]


def test_fts_candidates_match_a_brute_force_scan(tmp_path):
    """Every item sharing a trigram (Latin), a character (Chinese) or holding a short term is returned."""
    store = Store(tmp_path / "s")
    store.create_collection("c")
    rng = np.random.default_rng(0)
    letters, han = list("abcdeklmnorstu"), list("雨伞蜡烛钥匙锚风筝")
    texts = ["".join(rng.choice(letters if i % 3 else han, rng.integers(2, 8))) for i in range(300)]
    ids = store.add_items("c", [{"sha256": f"{i:064x}", "path": f"p{i}"} for i in range(len(texts))], "m",
                          np.zeros((len(texts), 4), np.float32), [(t, b"\0\0\0") for t in texts])
    for terms in (["kite"], ["ancla", "雨伞"], ["锚"], ["ok"], ["Candle", "key"]):
        got = set(store.reading_candidates("m", terms, limit=10_000))
        want = set()
        for i, t in zip(ids, texts):
            for term in (x.lower() for x in terms):
                latin = "".join(ch for ch in term if not "\u3400" <= ch <= "\u9fff")
                if any(ch in t for ch in term if "\u3400" <= ch <= "\u9fff"):
                    want.add(i)
                if len(latin) >= 3 and any(latin[j:j + 3] in t for j in range(len(latin) - 2)):
                    want.add(i)
                if 0 < len(latin) < 3 and latin in t:
                    want.add(i)
        assert got == want, terms
    store.remove_items(ids[:10])  # removed items leave the full-text index too
    assert not set(store.reading_candidates("m", texts[:10], limit=10_000)) & set(ids[:10])


@pytest.fixture(scope="module")
def engine_with_new_words(tmp_path_factory, dictionaries_ready, fonts_ready):
    lex = Lexicon([Concept(f"x{i}", *w, "test") for i, w in enumerate(WORDS)])
    ds = SyntheticWords(lex, "val", kinds={"font": 1.0}, seed=3)
    eng = Engine(tmp_path_factory.mktemp("ov"), model_dir=READING_MODEL)
    samples = [ds.sample(c.concept_id, lg, np.random.default_rng([3, n, j]))
               for n, c in enumerate(lex.concepts) for j, lg in enumerate(LANGS)]
    ids = eng.add("archive", [(f"{s.concept_id}-{s.lang}", png(s.image)) for s in samples]).added
    return eng, dict(zip(ids, samples))


def test_items_keep_their_readings(engine_with_new_words):
    eng, items = engine_with_new_words
    stored = eng.store.readings(eng.model_id, list(items))
    assert set(stored) == set(items)
    for i, (text, blob) in stored.items():
        ids, probs = expand(blob)
        assert ids.shape[1] == 6 and np.all(np.diff(probs, axis=1) <= 1e-3) and isinstance(text, str)
    assert not eng.store.items_missing_reading(eng.model_id)


def test_a_typed_word_outside_the_lexicon_finds_all_three_scripts(engine_with_new_words):
    eng, items = engine_with_new_words
    assert "umbrella" not in {c.en for c in eng.lexicon.concepts}
    hits, info = eng.search(text="umbrella", k=12)
    assert "雨伞" in info.terms["zh"] and "paraguas" in info.terms["es"] and info.terms["en"][0] == "umbrella"
    first = {}
    for h in hits:
        s = items[h.item_id]
        first.setdefault(s.lang, s.concept_id)
    assert first == {"zh": "x0", "en": "x0", "es": "x0"}, first
    # the user edits the terms: only what they keep is searched
    hits, info = eng.search(text="umbrella", terms={"es": ["vela"]}, k=3)
    assert info.terms == {"es": ["vela"]} and items[hits[0].item_id].concept_id == "x1"


def test_a_new_unlabelled_word_gets_its_script_from_its_reading(engine_with_new_words):
    eng, items = engine_with_new_words
    got = eng.store.get_items(list(items))
    right = sum(got[i].lang == s.lang for i, s in items.items())
    assert all(got[i].lang == "zh" for i, s in items.items() if s.lang == "zh")
    assert right >= len(items) - 2, [(s.text, got[i].lang) for i, s in items.items()]


def test_no_match_is_said_and_the_nearest_are_still_shown(engine_with_new_words, capsys):
    """A word with no image in the collection is flagged weak (engine, CLI) and still gets its nearest items;
    a word that is there is not."""
    from xmr_core.cli import main

    eng, _ = engine_with_new_words
    hits, info = eng.search(text="lighthouse", k=3)
    assert info.weak and len(hits) == 3
    hits, info = eng.search(text="umbrella", k=3)
    assert not info.weak and hits[0].score >= 0.69
    assert main(["search", "archive", "--text", "lighthouse", "-k", "2", "--data", str(eng.store.root),
                 "--model", str(READING_MODEL)]) == 0
    out = capsys.readouterr().out
    assert "nothing in the collection matches well" in out and "searching for 灯塔" in out
