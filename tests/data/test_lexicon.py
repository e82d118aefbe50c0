import os
import unicodedata

import numpy as np
import pytest

from xmr_core.data.lexicon import LANGS, Concept, Lexicon, load_lexicon, validate_concept

# Concepts allowed to miss the mutual-translation rule (USE-m3 top 5), with the reason. None kept.
TRANSLATION_EXCEPTIONS: dict[str, str] = {}


def test_size_and_header(lexicon):
    assert len(lexicon) >= 1000
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "assets", "lexicon.tsv"), encoding="utf-8") as f:
        assert f.readline().rstrip("\n").split("\t")[:4] == ["concept_id", "zh", "en", "es"]


@pytest.mark.parametrize("lang", LANGS)
def test_words_unique_per_language(lexicon, lang):
    words = [w.lower() for w in lexicon.words(lang)]
    assert len(words) == len(set(words))


def test_chinese_is_gb2312_level1(lexicon):
    bad = []
    for c in lexicon:
        for ch in c.zh:
            b = ch.encode("gb2312")  # raises for anything outside GB2312
            if not 0xB0 <= b[0] <= 0xD7:  # level 1 = rows 16-55
                bad.append((c.concept_id, ch))
    assert not bad


def test_every_word_known_to_use_vocabulary(lexicon, use_model):
    tok = use_model._tokenizer
    unknown = [w for c in lexicon for w in (c.zh, c.en, c.es)
               if 0 in tok.encode(w.lower(), out_type=int, add_bos=False, add_eos=False)]
    assert not unknown


def test_english_lowercase_and_spanish_spelling(lexicon):
    for c in lexicon:
        assert c.en == c.en.lower() and c.en.isascii() and c.en.isalpha(), c
        assert c.es == unicodedata.normalize("NFC", c.es) and c.es == c.es.lower() and c.es.isalpha(), c
        assert set(c.es) <= set("abcdefghijklmnopqrstuvwxyzáéíóúüñ"), c
    by_en = {c.en: c.es for c in lexicon}
    # spot checks of accents and ñ
    assert by_en["year"] == "año" and by_en["heart"] == "corazón" and by_en["tree"] == "árbol"
    assert by_en["child"] == "niño" and by_en["penguin"] == "pingüino"


def test_words_are_mutual_translations(lexicon, use_model):
    """The en word is in the top 5 of the zh word's and of the es word's nearest en words."""
    emb = {lang: use_model.encode([c.word(lang).lower() for c in lexicon]) for lang in LANGS}
    failures = {}
    for src in ("zh", "es"):
        sim = emb[src] @ emb["en"].T
        rank = (sim > np.diag(sim)[:, None]).sum(1)
        for i in np.nonzero(rank >= 5)[0]:
            cid = lexicon.concepts[i].concept_id
            if cid not in TRANSLATION_EXCEPTIONS:
                failures[cid] = (src, int(rank[i]))
    assert not failures


def test_lookup_by_any_word(lexicon):
    for word in ("猫", "cat", "gato", "GATO ", "Año"):
        hits = lexicon.lookup(word)
        assert hits, word
    assert lexicon.lookup("猫")[0].concept_id == lexicon.lookup("gato")[0].concept_id == "cat"
    assert lexicon.lookup("no-such-word") == []
    assert lexicon.search("gat")[0].concept_id == "cat"


def test_user_concepts_are_validated_and_added(lexicon):
    new = Concept("user.quokka", "短尾", "quokka", "quokka")
    bigger = lexicon.with_concepts([new])
    assert len(bigger) == len(lexicon) + 1 and bigger.lookup("quokka")[0] is new
    assert bigger.hash() != lexicon.hash()
    assert len(load_lexicon()) == len(lexicon)  # the asset is untouched
    for bad, msg in [
        (Concept("user.x", "cat", "x", "x"), "Chinese"),
        (Concept("user.x", "猫咪", "Cat", "x"), "lowercase"),
        (Concept("user.x", "猫咪", "x", "ga to"), "Spanish"),
        (Concept("Bad Id", "猫咪", "x", "x"), "concept_id"),
        (Concept("user.x", "貓", "x", "x"), "simplified"),
    ]:
        with pytest.raises(ValueError, match=msg):
            validate_concept(bad)
    with pytest.raises(ValueError, match="used by both"):
        lexicon.with_concepts([Concept("user.cat2", "猫咪", "cat", "gatito")])


def test_duplicate_ids_rejected():
    with pytest.raises(ValueError, match="duplicate"):
        Lexicon([Concept("a", "猫", "cat", "gato"), Concept("a", "狗", "dog", "perro")])
