"""Open vocabulary through the engine: items keep their readings (store schema 2), FTS5 candidate
generation against a brute-force scan, a typed word outside the lexicon found in all three scripts with
the terms shown, and a new unlabelled word's script from its reading."""

import numpy as np
import pytest
from helpers import png

from xmr_core.data.lexicon import LANGS, Concept, Lexicon
from xmr_core.data.render import SyntheticWords
from xmr_core.model.ctc import expand
from xmr_core.search.engine import Engine
from xmr_core.search.ranking import NEARLY_WITHIN, NO_MATCH_BELOW
from xmr_core.store.database import Store
from xmr_core.store.readings import ALSO, RARE_CHARACTERS, RARE_TRIGRAMS, shown_reading
from xmr_core.store.registry import READING_MODEL

WORDS = [("雨伞", "umbrella", "paraguas"), ("蜡烛", "candle", "vela"), ("钥匙", "key", "llave"), ("锚", "anchor", "ancla")]


def test_fts_candidates_match_a_brute_force_scan(tmp_path):
    """Every item sharing one of a Latin term's rarest trigrams or a Chinese term's rarest characters, or
    whose reading is a short term, is returned."""
    store = Store(tmp_path / "s")
    store.create_collection("c")
    rng = np.random.default_rng(0)
    letters, han = list("abcdeklmnorstu"), list("雨伞蜡烛钥匙锚风筝")
    texts = ["".join(rng.choice(letters if i % 3 else han, rng.integers(2, 8))) for i in range(300)]
    texts += ["ok", "ok okra", "rok"]  # a short term finds a reading that is it (and only such)
    ids = store.add_items("c", [{"sha256": f"{i:064x}", "path": f"p{i}"} for i in range(len(texts))], "m",
                          np.zeros((len(texts), 4), np.float32), [(t, b"\0\0\0") for t in texts])
    for terms in (["kite"], ["ancla", "雨伞"], ["锚"], ["ok"], ["Candle", "key"], ["constellation", "mountain"],
                  ["风筝雨伞锚"]):
        got = set(store.reading_candidates("m", terms, limit=10_000))
        want = set()
        for term in (x.lower() for x in terms):
            latin = "".join(ch for ch in term if not "\u3400" <= ch <= "\u9fff")
            # a Latin term's RARE_TRIGRAMS rarest trigrams among those the readings hold (ties: in order)
            tri = sorted({latin[j:j + 3] for j in range(len(latin) - 2)})
            docs = {x: sum(x in t for t in texts) for x in tri}
            rare = sorted((x for x in tri if docs[x]), key=docs.__getitem__)[:RARE_TRIGRAMS]
            chars = sorted({ch for ch in term if "\u3400" <= ch <= "\u9fff"})  # and its rarest characters
            cdocs = {ch: sum(ch in t for t in texts) for ch in chars}
            rare_chars = sorted((ch for ch in chars if cdocs[ch]), key=cdocs.__getitem__)[:RARE_CHARACTERS]
            for i, t in zip(ids, texts):
                if any(ch in t for ch in rare_chars):
                    want.add(i)
                if any(x in t for x in rare):
                    want.add(i)
                if 0 < len(latin) < 3 and (t == latin or t.startswith(latin + " ")):  # a short term: the reading itself
                    want.add(i)
        assert got == want, terms
    okra = ids[texts.index("ok okra")]  # a reading that is the term (one of its words) comes first
    assert store.reading_candidates("m", ["okra"], limit=1) == [okra]
    store.remove_items(ids[:10])  # removed items leave the full-text index too
    assert not set(store.reading_candidates("m", texts[:10], limit=10_000)) & set(ids[:10])


def test_readings_holding_a_term_are_those_a_scan_finds(tmp_path):
    """A long Latin term is looked for through its rarest trigrams and checked on the text, a short one by
    FTS5's phrase query: either way the first readings (by row) that hold it, as a scan finds them, and not
    those that hold its trigrams apart ('constel stellar lation' holds every trigram of 'constellation')."""
    store = Store(tmp_path / "s")
    store.create_collection("c")
    rng = np.random.default_rng(0)
    pieces = ["constel", "lation", "stellar", "constellation", "ocean", "oceanography", "graph", "phy"]
    texts = [" ".join(rng.choice(pieces, rng.integers(1, 4))) for _ in range(400)]
    store.add_items("c", [{"sha256": f"{i:064x}", "path": f"p{i}"} for i in range(len(texts))], "m",
                    np.zeros((len(texts), 4), np.float32), [(t, b"\0\0\0") for t in texts])
    rows = [(int(r["id"]), r["text"]) for r in store.read("SELECT id, text FROM readings ORDER BY id")]
    grams = lambda t: {t[i:i + 3] for i in range(len(t) - 2)}  # noqa: E731
    assert any(grams("constellation") <= grams(t) and "constellation" not in t for _, t in rows)
    for term, limit in [("constellation", 10_000), ("constellation", 7), ("oceanography", 10_000),
                        ("ocean", 10_000), ("ocean", 7), ("lation stellar", 10_000), ("constellationx", 10_000)]:
        docs = store._token_docs("reading_latin", grams(term))
        got = [row for _, row in store._holding([("reading_latin", term)], limit, docs)]
        assert got == [i for i, t in rows if term in t][:limit], term
    assert len(grams("oceanography")) > 5 >= len(grams("ocean"))  # both ways taken


def test_fts_candidates_come_best_first(tmp_path):
    """A reading that is the term first, then those sharing the most of its rarest trigrams; among those
    sharing as many, the one the rarer trigram finds first (then by row), as the store's counting promises."""
    store = Store(tmp_path / "s")
    store.create_collection("c")
    texts = ["kitz", "kitx ite", "zite", "kite", "nothing"]  # 'kit' and 'ite' in three readings each: 'ite' first
    ids = store.add_items("c", [{"sha256": f"{i:064x}", "path": f"p{i}"} for i in range(len(texts))], "m",
                          np.zeros((len(texts), 4), np.float32), [(t, b"\0\0\0") for t in texts])
    assert store.reading_candidates("m", ["kite"], limit=10) == [ids[3], ids[1], ids[2], ids[0]]
    assert store.reading_candidates("m", ["kite"], limit=2) == [ids[3], ids[1]]


def test_the_other_words_a_reader_nearly_read_are_candidates_but_not_shown(tmp_path):
    """An item read a letter off ('murlo', taken as 'muro') still comes up for the word it shows when that
    word is among the listed words its reading nearly was; a reading that is the term comes first."""
    from xmr_core.model.open_reading import OpenReading
    from xmr_core.search.reading_search import index_text
    from xmr_core.store.readings import ALSO, shown_reading

    read = OpenReading("muro", "es", -3.0, True, -2.0, ("muslo", "mural"))
    assert index_text("murlo", read, read) == f"murlo muro{ALSO}muslo mural"
    assert index_text("muro", read, read) == f"muro{ALSO}muslo mural"  # the greedy reading is the word
    assert index_text("rio", None, read) == f"rio{ALSO}muro muslo mural"  # taken for a lexicon word: all others
    assert index_text("rio") == "rio" and shown_reading(f"murlo muro{ALSO}muslo mural") == "murlo muro"
    store = Store(tmp_path / "s")
    store.create_collection("c")
    texts = [index_text("murlo", read, read), "muslo", "casa", f"mesa{ALSO}misa musa"]
    ids = store.add_items("c", [{"sha256": f"{i:064x}", "path": f"p{i}"} for i in range(len(texts))], "m",
                          np.zeros((len(texts), 4), np.float32), [(t, b"\0\0\0") for t in texts])
    assert store.reading_candidates("m", ["muslo"], limit=10)[:2] == [ids[1], ids[0]]
    assert store.reading_candidates("m", ["musa"], limit=10)[0] == ids[3]  # held after ALSO: first of those sharing
    assert store.readings("m", [ids[0]])[ids[0]][0] == texts[0]


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
    for _i, (text, blob) in stored.items():
        ids, probs = expand(blob)
        assert ids.shape[1] == 6 and np.all(np.diff(probs, axis=1) <= 1e-3) and isinstance(text, str)
    assert not eng.store.items_missing_reading(eng.model_id)


def test_a_reindex_reads_again_the_items_whose_reading_is_of_an_older_format(engine_with_new_words):
    """Readings stored before the other listed words were kept (format 1, a store of schema 4) get them at
    the next reindex; the items' embeddings and the rest of their readings stay."""
    eng, items = engine_with_new_words
    stored = eng.store.readings(eng.model_id, list(items))
    i = next(i for i, (text, _) in stored.items() if ALSO in text)
    with eng.store.tx() as db:  # as the code of schema 4 left it
        db.execute("UPDATE readings SET text=?, format=1 WHERE item_id=? AND model_id=?",
                   (shown_reading(stored[i][0]), i, eng.model_id))
    assert [it.id for it in eng.store.items_missing_reading(eng.model_id)] == [i]
    n = eng.reindex()
    assert n == len(eng.index) >= len(items) and not eng.store.items_missing_reading(eng.model_id)
    assert eng.store.readings(eng.model_id, list(items)) == stored


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


def test_an_image_of_a_word_outside_the_lexicon_finds_it_in_all_three_scripts(engine_with_new_words):
    """Another hand's "candle" is read against the word lists, translated, and found in each script; the
    items outside the lexicon were stored with their listed words."""
    eng, items = engine_with_new_words
    lex = Lexicon([Concept(f"x{i}", *w, "test") for i, w in enumerate(WORDS)])
    query = SyntheticWords(lex, "val", kinds={"font": 1.0}, seed=11).sample("x1", "en", np.random.default_rng(11))
    hits, info = eng.search(image=png(query.image), k=12)
    assert info.text == "candle" and "蜡烛" in info.terms["zh"] and "vela" in info.terms["es"], (info.text, info.terms)
    # the words it nearly reads as: English (its script), not the word itself, each at most NEARLY_WITHIN behind
    assert set(info.nearly) <= {"en"} and "candle" not in info.nearly.get("en", {})
    assert all(0 <= b <= NEARLY_WITHIN for b in info.nearly.get("en", {}).values())
    first = {}
    for h in hits:
        first.setdefault(items[h.item_id].lang, items[h.item_id].concept_id)
    assert first == {"zh": "x1", "en": "x1", "es": "x1"}, first
    texts = {items[i].text: t for i, (t, _) in eng.store.readings(eng.model_id, list(items)).items()}
    assert sum(w.lower() in texts[w].lower().split() for w in texts) >= len(texts) - 2, texts


def test_recognize_says_what_a_word_outside_the_lexicon_reads_as(engine_with_new_words, tmp_path, capsys):
    from xmr_core.cli import main

    eng, _ = engine_with_new_words
    lex = Lexicon([Concept(f"x{i}", *w, "test") for i, w in enumerate(WORDS)])
    img = SyntheticWords(lex, "val", kinds={"font": 1.0}, seed=12).sample("x1", "es", np.random.default_rng(12)).image
    (tmp_path / "vela.png").write_bytes(png(img))
    word, terms = eng.read_word(png(img))
    assert (word.word, word.lang) == ("vela", "es") and "candle" in terms["en"], (word, terms)
    assert main(["recognize", str(tmp_path / "vela.png"), "--data", str(eng.store.root), "--model", str(READING_MODEL)]) == 0
    out = capsys.readouterr().out
    assert "read as 'vela' (es; not a lexicon word)" in out and "candle" in out and "nearest lexicon words" in out


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
    assert not info.weak and hits[0].score >= NO_MATCH_BELOW
    assert main(["search", "archive", "--text", "lighthouse", "-k", "2", "--data", str(eng.store.root),
                 "--model", str(READING_MODEL)]) == 0
    out = capsys.readouterr().out
    assert "nothing in the collection matches well" in out and "searching for 灯塔" in out


def test_reading_scores_compare_each_item_with_its_scripts_terms():
    """Each item's score is its best term of its own script (Latin: English and Spanish; unknown: all)
    under its compact reading, mapped from [LL_FLOOR, 0] to [0, 1]; checked against one item at a time."""
    from xmr_core.model.ctc import compact, compact_log_likelihood
    from xmr_core.search.reading_search import LL_FLOOR, reading_scores

    symbols = ["<blank>", *"acdelnvé", "蜡", "烛"]
    index = {s: i for i, s in enumerate(symbols)}

    def reading(word: str, sure: float) -> bytes:
        p = np.full((2 * len(word) + 1, len(symbols)), 1e-4)
        p[::2, 0] = 1.0
        for n, ch in enumerate(word):
            p[2 * n + 1, index[ch]] = sure
            p[2 * n + 1, 0] = 1 - sure
        return compact(p / p.sum(1, keepdims=True))

    readings = {1: ("vela", reading("vela", 0.9)), 2: ("蜡烛", reading("蜡烛", 0.6)),
                3: ("candle", reading("candle", 0.8)), 4: ("vela", reading("vela", 0.5))}
    langs = {1: "es", 2: "zh", 3: "en", 4: None}
    terms = {"zh": ["蜡烛"], "en": ["candle"], "es": ["vela"]}
    got = reading_scores(readings, terms, langs, index, len(symbols))
    lab = {w: [[index[ch] for ch in w]] for w in ("vela", "蜡烛", "candle")}
    by = lambda i, words: max(float(compact_log_likelihood(readings[i][1], lab[w], len(symbols))[0]) for w in words)  # noqa: E731
    want = {1: by(1, ["candle", "vela"]), 2: by(2, ["蜡烛"]), 3: by(3, ["candle", "vela"]), 4: by(4, ["candle", "vela", "蜡烛"])}
    for i, ll in want.items():
        assert np.isclose(got[i], np.clip(1 - ll / LL_FLOOR, 0, 1)), (i, got[i], ll)
    assert got[1] > got[4] > 0 and got[3] > 0.5
    # accents and letter case count as one symbol: "Véla" scores as "vela" does
    assert reading_scores(readings, {"es": ["Véla"]}, langs, index, len(symbols))[1] == got[1]
    # an item compared with a script's terms only: a Chinese item scores 0 when only Latin terms are searched
    assert reading_scores(readings, {"es": ["vela"]}, langs, index, len(symbols))[2] == 0.0
    # a word an image query nearly read as counts that many nats lower, and only in its script
    near = reading_scores(readings, {"en": ["cancel"]}, langs, index, len(symbols), nearly={"es": {"vela": 3.0}})
    assert np.isclose(near[1], np.clip(1 - (by(1, ["vela"]) - 3.0) / LL_FLOOR, 0, 1)) and 0 < near[1] < got[1]
    assert near[2] == 0.0


def test_an_image_taken_for_a_lexicon_word_the_collection_lacks_is_searched_by_reading(
        tmp_path, dictionaries_ready, fonts_ready, monkeypatch):
    """A `val` render of 'ash' (outside the lexicon) that the reader takes for a lexicon look-alike: with
    nothing of that look-alike in the collection (its nearest item below READ_WHEN_WEAK), the query is read
    against the word lists and searched by reading as 'ash', and finds the other render of it; without
    that step it is searched by its embedding alone and does not. (The render is the open-vocabulary
    benchmark's own query image, session 39.)"""
    import csv

    import xmr_core.search.ranking as ranking
    from xmr_core.data.paths import ASSETS

    with open(ASSETS / "open_vocab.tsv", encoding="utf-8", newline="") as f:
        asset = [Concept(**r) for r in csv.DictReader(f, delimiter="\t")]
    ov = [c for c in asset if c.concept_id in ("ov_ash", "ov_request", "ov_horn", "ov_both")]
    eng = Engine(tmp_path / "e", model_dir=READING_MODEL)
    items = SyntheticWords(Lexicon(ov), "val", kinds={"font": 1.0}, seed=1)
    renders = [items.sample(c.concept_id, lg, np.random.default_rng([1, n, j]))
               for n, c in enumerate(ov) for j, lg in enumerate(LANGS)]
    ids = eng.add("archive", [(f"{s.concept_id}-{s.lang}", png(s.image)) for s in renders]).added
    ash_en = ids[[c.concept_id for c in ov].index("ov_ash") * len(LANGS) + LANGS.index("en")]
    # the benchmark's own query image (benchmarks/open_vocab.py renders the asset's concepts with seed 2)
    n = [c.concept_id for c in asset].index("ov_ash")
    query = png(SyntheticWords(Lexicon(asset), "val", kinds={"font": 1.0}, seed=2).sample(
        "ov_ash", "en", np.random.default_rng([2, n, LANGS.index("en")])).image)
    monkeypatch.setattr(ranking, "READ_WHEN_WEAK", 0.0)
    hits, info = eng.search(image=query, k=5, languages=["en"])
    assert not info.terms and hits[0].item_id != ash_en  # taken for a lexicon word: by its embedding alone
    monkeypatch.setattr(ranking, "READ_WHEN_WEAK", 0.7)
    hits, info = eng.search(image=query, k=5, languages=["en"])
    assert info.text == "ash" and "ash" in info.terms["en"] and hits[0].item_id == ash_en
