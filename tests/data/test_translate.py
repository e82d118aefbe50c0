"""Open word lists and dictionaries (dictionary.py) and the translations ranked from them (translate.py):
each source format parsed from a tiny fixture, the table built both ways and through English, the
ranking, and the real table on known words."""

import gzip
import json

import numpy as np
import pytest

from xmr_core.data.dictionary import DictFile, build_table, clean_english, open_table, parse_cedict, parse_dictd
from xmr_core.data.lexicon import LANGS, Concept, Lexicon
from xmr_core.data.translate import Translator

CEDICT = "export default " + json.dumps({"all": [
    ["風箏", "风筝", "feng1 zheng5", 'kite (lit. "wind zither", named after kites fitted with whistles)', [], []],
    ["鳶", "鸢", "yuan1", ["kite (bird of prey)", "Taiwan pr. [yuan2]"], [], []],
    ["貓", "猫", "mao1", ["cat (CL:隻|只[zhi1])", "(dialect) to hide oneself", "(loanword) (coll.) modem"], [], []],
    ["喵星人", "喵星人", "miao1 xing1 ren2", ["(slang) cat"], [], []],
    ["跑", "跑", "pao3", ["to run; to run away", "used in 跑腿"], [], []],
    ["3C", "3C", "san1 C", "computers, communications and consumer electronics", [], []],
]}, ensure_ascii=False)

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def b64(n: int) -> str:
    s = ""
    while True:
        s = B64[n % 64] + s
        n //= 64
        if not n:
            return s


def dictd(entries: list[tuple[str, str]]) -> tuple[str, bytes]:
    """A dictd .index and gzipped .dict of (headword, entry text) pairs."""
    body, index = b"", ["00databaseinfo\tA\tB"]
    for head, text in entries:
        raw = text.encode()
        index.append(f"{head}\t{b64(len(body))}\t{b64(len(raw))}")
        body += raw
    return "\n".join(index) + "\n", gzip.compress(body)


ENG_SPA = [("bank", "bank /bæŋk/\nbanco, escaño\n"), ("bank", "bank /bæŋkəkaunt/\ncuentabancaria\n"),
           ("cat", "cat /kæt/\ngato\n"), ("run", "run /rʌn/\n1. correr\n2. funcionar\n"),
           ("kite", "kite /kaɪt/\ncometa\n")]
SPA_ENG = [("gato", "gato /ɡˈato/\n1. cat\n2. jack\n"), ("cometa", "cometa /koˈmeta/\ncomet, kite\n")]


def test_english_glosses_are_cleaned_to_short_terms():
    assert clean_english("to run; to run away") == ["run", "run away"]
    assert clean_english("cat (CL:隻|只[zhi1])") == ["cat"]
    assert clean_english('kite (lit. "wind zither", named after kites)') == ["kite"]
    assert clean_english("used in 跑腿") == [] and clean_english("Taiwan pr. [yuan2]") == []
    assert clean_english("computers, communications and consumer electronics") == ["computers"]  # <= 3 words


def test_each_source_format_parses():
    got = dict(parse_cedict(CEDICT))
    assert got["风筝"] == ["kite"] and got["猫"] == ["cat", "hide oneself", "modem"] and got["跑"] == ["run", "run away"]
    assert "3C" not in got  # not a Chinese word
    index, data = dictd(ENG_SPA)
    rows = list(parse_dictd(index, data))
    assert ("bank", ["banco", "escaño"]) in rows and ("run", ["correr", "funcionar"]) in rows
    assert ("bank", ["cuentabancaria"]) not in rows  # "bank account" filed under "bank" is not "bank"
    assert dict(parse_dictd(*dictd(SPA_ENG)))["gato"] == ["cat", "jack"]


@pytest.fixture
def tiny_table(tmp_path, monkeypatch):
    monkeypatch.setenv("XMR_CACHE", str(tmp_path))
    files = []
    for name, fname, content in [("cedict", "cedict.js", CEDICT.encode()),
                                 *[(f"{n}.{kind}", f"freedict-{n}.{ext}", blob) for n, rows in
                                   (("eng-spa", ENG_SPA), ("spa-eng", SPA_ENG))
                                   for kind, ext, blob in zip(("index", "dict"), ("index", "dict.dz"),
                                                              (dictd(rows)[0].encode(), dictd(rows)[1]))]]:
        f = DictFile(name, "npm:fixture@0", name, fname, "0" * 64, "test")
        f.path.parent.mkdir(parents=True, exist_ok=True)
        f.path.write_bytes(content)
        files.append(f)
    return build_table(files=files, top=400)


def test_the_table_reads_each_dictionary_both_ways_and_joins_zh_es_through_english(tiny_table):
    import sqlite3

    db = sqlite3.connect(tiny_table)
    pairs = {(a, b, c, d) for a, b, c, d in db.execute("SELECT src_lang, src, dst_lang, dst FROM pairs")}
    assert ("zh", "猫", "en", "cat") in pairs and ("en", "cat", "zh", "猫") in pairs
    assert ("en", "kite", "es", "cometa") in pairs and ("es", "cometa", "en", "kite") in pairs
    assert ("zh", "风筝", "es", "cometa") in pairs and ("es", "gato", "zh", "猫") in pairs
    assert db.execute("SELECT count(*) FROM words WHERE lang='zh'").fetchone()[0] > 300


def test_translations_are_ranked_and_the_lexicon_comes_first(tiny_table, use_model):
    lex = Lexicon([Concept("c_cat", "猫", "cat", "gato", "test")])
    tr = Translator(lex, embed=use_model, neighbours=400)
    kite = tr.translate("Kite")
    assert kite.lang == "en" and kite.terms["en"][0][:2] == ("kite", 1.0)
    assert kite.terms["es"][0][0] == "cometa" and {w for w, _, _ in kite.terms["zh"]} == {"风筝", "鸢"}
    # ranked by cosine + FREQ_WEIGHT x zipf - SENSE_WEIGHT x sense: recompute the order
    for w, s, _ in kite.terms["zh"]:
        assert abs(s - float(tr.embed([w])[0] @ tr.embed(["kite"])[0])) < 1e-5
    keys = [s + tr.freq_weight * tr.zipf(w, "zh") - tr.sense_weight * n for (w, s, _), n in
            zip(kite.terms["zh"], [dict((w, n) for w, _, n in tr.candidates("kite", "en", "zh"))[w]
                                    for w, _, _ in kite.terms["zh"]])]
    assert keys == sorted(keys, reverse=True)
    cat = tr.translate("cat", "en")
    assert cat.terms["zh"][0] == ("猫", 1.0, "lexicon") and cat.terms["es"][0][0] == "gato"
    assert tr.translate("cat", "en", use_lexicon=False).terms["zh"][0][0] == "猫"  # more frequent than 喵星人
    unknown = tr.translate("piano", "en")  # in no fixture dictionary: USE-m3's nearest listed words
    assert all(src == "use-m3" for _, _, src in unknown.terms["es"]) and len(unknown.terms["es"]) == 3
    with pytest.raises(ValueError, match="empty"):
        tr.translate("  ")


def test_a_translator_on_a_text_towers_base_translates_as_the_package(tiny_table, use_model):
    """The engine's translator (`Translator.sharing`: the text tower's frozen base, the known words' features
    from the files setup makes) ranks as the package's USE-m3 does, and a known word costs no pass through
    the base."""
    from xmr_core.model.text import UseTextTower

    lex = Lexicon([Concept("c_cat", "猫", "cat", "gato", "test")])
    plain = Translator(lex, embed=use_model, neighbours=400)
    setup = UseTextTower()
    for lg in LANGS:  # as `xmr dictionaries fetch --neighbours` does
        assert setup.list_features(plain.known(lg), plain.list_file(lg, "features"))
    tower = UseTextTower()
    shared = Translator.sharing(tower, lex, neighbours=400)
    assert {"cometa", "gato"} <= set(shared.known("es")) and "风筝" in shared.known("zh")
    assert len(shared.known("en")) > len(shared.listed("en"))  # the dictionaries' words beyond the list
    passed = []
    features = tower.features
    tower.features = lambda texts: passed.append(texts) or features(texts)
    try:
        for word in ("Kite", "cat", "piano", "gato", "风筝"):
            a, b = plain.translate(word), shared.translate(word)
            for lg in LANGS:
                assert [w for w, _, _ in a.terms[lg]] == [w for w, _, _ in b.terms[lg]], (word, lg)
                assert np.allclose([s for _, s, _ in a.terms[lg]], [s for _, s, _ in b.terms[lg]], atol=2e-3)
    finally:
        del tower.features
    known = {w for lg in LANGS for w in shared.known(lg)}
    assert not [t for texts in passed for t in texts if t in known]  # only unknown words went through the base


def test_the_real_table_translates_known_words(dictionaries_ready, use_model):
    tr = Translator(embed=use_model)
    assert tr.detect("paraguas") == "es" and tr.detect("雨伞") == "zh" and tr.detect("umbrella") == "en"
    u = tr.translate("umbrella").best(3)
    assert "雨伞" in u["zh"] and "paraguas" in u["es"]
    assert "umbrella" in tr.translate("雨伞").best(1)["en"]
    db = open_table(build=False)
    assert db.execute("SELECT count(*) FROM pairs WHERE source='cc-cedict'").fetchone()[0] > 100_000
    assert np.isfinite(tr.translate("lighthouse").terms["zh"][0][1])
