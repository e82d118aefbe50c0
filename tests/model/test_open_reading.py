"""Reading a word outside the lexicon against word lists (open_reading.py): the listed word a crop's
posteriors make likeliest, in any letter case, its language, and the greedy reading where no listed word
comes close."""

import numpy as np

from xmr_core.model.open_reading import ALTERNATIVES, WordListReader

SYMBOLS = ["<blank>", *"abcdefghijklmnopqrstuvwxyzCKñ", "雨", "伞", "蜡"]
INDEX = {s: i for i, s in enumerate(SYMBOLS)}
LISTS = {"en": ["case", "cast", "kite", "cat"], "es": ["casa", "cosa", "niño"], "zh": ["雨伞", "蜡"]}


def posteriors(steps: list[dict[str, float]]) -> np.ndarray:
    """(steps, symbols): each step's given probabilities, the rest of its mass on the blank."""
    p = np.full((len(steps), len(SYMBOLS)), 1e-6)
    for t, step in enumerate(steps):
        for s, q in step.items():
            p[t, INDEX[s]] = q
        p[t, 0] += max(0.0, 1.0 - p[t].sum())
    return p / p.sum(1, keepdims=True)


def spell(word: str, sure: float = 0.9) -> list[dict[str, float]]:
    steps = []
    for ch in word:
        steps += [{ch: sure}, {"<blank>": 0.95}]
    return steps


def test_the_likeliest_listed_word_and_its_language():
    wr = WordListReader(LISTS, INDEX)
    # "casa" with its second letter unsure between o and a: the greedy path reads "cosa"... and "casa" if a wins
    steps = spell("casa")
    steps[2] = {"a": 0.5, "o": 0.4}
    got = wr.read(posteriors(steps), "casa")
    assert (got.word, got.lang, got.listed) == ("casa", "es", True)
    # a letter the greedy reading got wrong (e -> c) is put right by the list: "cast" is not as likely as "case"
    steps = spell("case")
    steps[6] = {"c": 0.45, "e": 0.4}
    assert wr.read(posteriors(steps), "casc").word == "case"


def test_the_next_likeliest_listed_words_come_with_the_reading():
    """'cosa' read with its second letter unsure: the reading is 'cosa' and 'casa' is the next word (of
    either Latin list, likeliest first), then the others within the length window; never the word itself."""
    wr = WordListReader(LISTS, INDEX)
    steps = spell("cosa")
    steps[2] = {"o": 0.5, "a": 0.45}
    got = wr.read(posteriors(steps), "cosa")
    assert got.word == "cosa" and got.others[0] == "casa" and "cosa" not in got.others
    assert set(got.others) <= {"casa", "case", "cast", "kite", "cat", "niño"} and len(got.others) <= ALTERNATIVES
    # each how much less likely than the word (likelihood x prior): 'casa' about log(0.5 / 0.45) nats behind
    assert len(got.behind) == len(got.others) and list(got.behind) == sorted(got.behind) and got.behind[0] >= 0
    assert abs(got.behind[0] - np.log(0.5 / 0.45)) < 0.5
    assert wr.read(posteriors(spell("zumbido", 0.99)), "zumbido").others == ()  # nothing near it is listed


def test_letter_case_counts_as_one_symbol():
    wr = WordListReader(LISTS, INDEX)
    got = wr.read(posteriors(spell("Kite")), "Kite")
    assert (got.word, got.lang, got.listed) == ("kite", "en", True)


def test_chinese_readings_use_the_chinese_list_and_unlisted_words_keep_their_reading():
    wr = WordListReader(LISTS, INDEX)
    got = wr.read(posteriors(spell("雨伞")), "雨伞")
    assert (got.word, got.lang, got.listed) == ("雨伞", "zh", True)
    got = wr.read(posteriors(spell("zumbido", 0.99)), "zumbido")  # no list has it, nor anything near it
    assert (got.word, got.listed) == ("zumbido", False) and got.lang in ("en", "es")
    assert np.isclose(got.log_likelihood, np.log(posteriors(spell("zumbido", 0.99)).max(1)).sum())
