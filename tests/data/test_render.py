import cv2
import numpy as np
import pytest
from PIL import Image

from xmr_core.data.render import (
    EM,
    MissingGlyph,
    Style,
    SyntheticWords,
    augment,
    render_word,
    sample_style,
    word_polylines,
)
from xmr_core.data.render.glyphs import font_can_draw


@pytest.fixture(scope="module")
def train(lexicon, fonts_ready):
    return SyntheticWords(lexicon, "train", seed=3)


def _arr(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.float32)


def test_seeded_determinism(train):
    a = train.sample("cat", "es", np.random.default_rng(7))
    b = train.sample("cat", "es", np.random.default_rng(7))
    c = train.sample("cat", "es", np.random.default_rng(8))
    assert a.style == b.style and a.image.tobytes() == b.image.tobytes()
    assert a.image.tobytes() != c.image.tobytes()
    assert train[5].image.tobytes() == train[5].image.tobytes()


@pytest.mark.parametrize("kind", ["font", "pen", "canvas"])
@pytest.mark.parametrize("lang", ["zh", "en", "es"])
def test_each_kind_draws_each_script(train, kind, lang):
    s = train.sample("year", lang, np.random.default_rng(1), kind=kind)
    assert s.style.kind == kind and s.text == {"zh": "年", "en": "year", "es": "año"}[lang]
    img = s.image
    if kind == "canvas" and s.style.transparent:
        assert img.mode == "RGBA" and _arr(img)[..., 3].max() == 255 and _arr(img)[..., 3].min() == 0
    else:
        assert img.mode == "L"
        a = _arr(img)
        assert a.min() < 120 and np.median(a) > 150  # dark ink on light paper


def test_canvas_style_is_clean_and_uniform(train):
    s = train.sample("cat", "en", np.random.default_rng(2), kind="canvas")
    st = Style(**{**s.style.to_dict(), "transparent": False})
    a = _arr(render_word("cat", st, np.random.default_rng(2)))
    assert (a == 255).mean() > 0.5 and (a[0] == 255).all() and (a[:, 0] == 255).all()  # white, no texture
    assert (a < 30).sum() > 100  # solid black strokes


def test_never_renders_missing_glyphs(lexicon, fonts_ready):
    latin_font = next(k for k in SyntheticWords(lexicon, "train").sources[("latin", "font")])
    assert not font_can_draw(latin_font, "猫")
    with pytest.raises(MissingGlyph):
        render_word("猫", Style(kind="font", source=latin_font), np.random.default_rng(0))
    with pytest.raises(MissingGlyph):
        word_polylines("猫", Style(kind="pen", source="hershey/EMSAllure.svg"), np.random.default_rng(0))


def test_dataset_only_uses_covering_fonts(lexicon, fonts_ready):
    ds = SyntheticWords(lexicon, "val", seed=1)
    for i in range(60):
        s = ds[i * 17]
        assert font_can_draw(s.style.source, s.text)
        assert s.style.source in ds.sources[("han" if s.lang == "zh" else "latin", "font")]


def test_style_sampling_validates_and_scales():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="expected one of"):
        sample_style("crayon", "x", rng)
    calm = sample_style("font", "x", rng, strength=0.0)
    assert calm.slant == calm.elastic == calm.noise == calm.glyph_rotate == 0


def _bar() -> np.ndarray:
    m = np.zeros((40, 80), np.float32)
    m[15:25, 10:70] = 1
    return m


def test_augmentations_are_pure_and_change_the_image():
    rng = lambda: np.random.default_rng(0)  # noqa: E731
    m = _bar()
    keep = m.copy()
    assert augment.change_stroke(m, 2).sum() > m.sum() > augment.change_stroke(m, -1).sum()
    hair = np.zeros((40, 80), np.float32)
    hair[20, 10:70] = 1  # a one-pixel stroke: thinning would erase it, so it is left as it is
    assert np.array_equal(augment.change_stroke(hair, -1), hair)
    assert cv2.erode(hair, np.ones((2, 2), np.uint8)).sum() < augment.THINNING_KEEPS * hair.sum()
    sl = augment.slant(m, 0.5)
    assert sl.shape[1] > m.shape[1] and abs(sl.sum() - m.sum()) < 0.05 * m.sum()
    assert not np.allclose(augment.wave(m, 4, rng()), m)
    assert np.array_equal(augment.wave(m, 4, rng()), augment.wave(m, 4, rng()))
    assert not np.allclose(augment.elastic(m, 2.0, rng()), m)
    assert augment.blur(m, 1.5).max() < 1 and augment.blur(m, 1.5)[20, 9] > 0
    page = augment.compose_on_paper(m, 0.9, 0.2, 0.05, 0.02, rng())
    assert page.dtype == np.uint8 and page[20, 40] < 80 and page[2, 2] > 180
    assert np.array_equal(m, keep)


def test_pen_strokes_have_pressure_and_tremor(train):
    st = Style(kind="pen", source="hanzi-writer-data", pen_width=0.08, pressure=0.0, tremor=0.0)
    still = word_polylines("书", st, np.random.default_rng(0))
    shaky = word_polylines("书", Style(**{**st.to_dict(), "tremor": 0.02}), np.random.default_rng(0))
    assert len(still) == len(shaky) == 4  # 书 has four strokes
    assert max(np.abs(a - b).max() for a, b in zip(still, shaky)) > 0.5
    a = render_word("书", Style(**{**st.to_dict(), "pressure": 0.9}), np.random.default_rng(0))
    b = render_word("书", st, np.random.default_rng(0))
    assert (_arr(a) < 128).sum() < (_arr(b) < 128).sum()  # pressure thins stroke ends
    assert EM == 48


def test_letter_case_of_latin_words(lexicon, fonts_ready):
    """Title and UPPER case renders for English and Spanish (people write capitals); Chinese untouched."""
    rng = np.random.default_rng(0)
    upper = SyntheticWords(lexicon, "train", seed=3, cases={"upper": 1.0})
    assert upper.sample("milk", "en", rng).text == "MILK"
    assert upper.sample("milk", "es", rng).text == "LECHE"
    assert upper.sample("milk", "zh", rng).text == "牛奶"
    mixed = SyntheticWords(lexicon, "train", seed=3, cases={"lower": 1.0, "title": 1.0, "upper": 1.0})
    seen = {mixed.sample("water", "en", np.random.default_rng(i)).text for i in range(40)}
    assert seen == {"water", "Water", "WATER"}
    a = mixed.sample("water", "es", np.random.default_rng(7))
    b = mixed.sample("water", "es", np.random.default_rng(7))
    assert a.text == b.text and np.array_equal(np.asarray(a.image), np.asarray(b.image))
    with pytest.raises(ValueError, match="cases"):
        SyntheticWords(lexicon, "train", cases={"italic": 1.0})
    with pytest.raises(ValueError, match="cases"):
        SyntheticWords(lexicon, "train", cases={"upper": 0.0})


def test_source_weights_steer_which_fonts_draw(lexicon, fonts_ready):
    """Weighted sources are drawn in proportion to their weight; a weight of 0 never draws."""
    plain = SyntheticWords(lexicon, "train", seed=3, kinds={"font": 1.0})
    keys = plain.usable_sources("cat", "en", "font")
    heavy, never = keys[0], keys[1]
    weights = {heavy: 10.0 * len(keys), never: 0.0}  # heavy: about 10/11 of the draws
    ds = SyntheticWords(lexicon, "train", seed=3, kinds={"font": 1.0}, source_weights=weights)
    drawn = [ds.sample("cat", "en", np.random.default_rng(i)).style.source for i in range(200)]
    assert never not in drawn
    assert 0.8 < drawn.count(heavy) / len(drawn) < 0.98
    assert drawn.count(heavy) / len(drawn) > 10 * sum(plain.sample("cat", "en", np.random.default_rng(i)).style.source
                                                      == heavy for i in range(200)) / 200
    with pytest.raises(ValueError, match="weights"):
        SyntheticWords(lexicon, "train", source_weights={heavy: -1.0})
    silenced = SyntheticWords(lexicon, "train", kinds={"font": 1.0}, source_weights={k: 0.0 for k in keys})
    with pytest.raises(MissingGlyph, match="no source"):  # every font that can draw it weighted 0: none draws
        silenced.sample("cat", "en", np.random.default_rng(0))


def _pieces(img: Image.Image) -> int:
    """Connected pieces of ink."""
    import cv2

    return cv2.connectedComponents((np.asarray(img) < 128).astype(np.uint8))[0] - 1


@pytest.mark.parametrize("word, source", [("朋友", "hanzi-writer-data"), ("school", "hershey/HersheySans1.svg")])
def test_running_hand_keeps_the_pen_down_between_strokes(fonts_ready, word, source):
    """A cursive pen joins a stroke's end to the next stroke's start (when near), so the word falls into
    fewer pieces of ink than the same strokes written print-style."""
    from xmr_core.data.render.word import joins, smooth

    st = Style(kind="pen", source=source, pen_width=0.05)
    lines = word_polylines(word, st, np.random.default_rng(0))
    hair = joins(lines, 1.0, np.random.default_rng(0))
    ends = {(tuple(a[-1]), tuple(b[0])) for a, b in zip(lines, lines[1:])}
    assert hair and all((tuple(h[0]), tuple(h[-1])) in ends for h in hair)  # stroke end -> next stroke's start
    assert all(np.hypot(*(h[-1] - h[0])) <= 0.6 * EM for h in hair)
    assert not joins(lines, 0.0, np.random.default_rng(0))
    bent = np.array([[0, 0], [EM, 0], [EM, EM]], np.float32)  # a right angle
    rounded = smooth(bent, 0.06 * EM)
    assert np.allclose(rounded[[0, -1]], bent[[0, -1]])  # ends kept
    assert np.hypot(*(rounded - [EM, 0]).T).min() > 1.0  # the corner is cut
    cursive = Style(**{**st.to_dict(), "cursive": 1.0})
    joined, apart = (render_word(word, s, np.random.default_rng(0)) for s in (cursive, st))
    assert _pieces(joined) < _pieces(apart)


def test_cursive_styles_are_drawn_only_when_asked(lexicon, fonts_ready):
    """`cursive` is the share of pen and canvas styles written joined-up; at 0 the random stream is the
    one of before (old training runs replay exactly), and fonts never get it."""
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    assert sample_style("pen", "x", a) == sample_style("pen", "x", b, cursive=0.0)
    assert a.random() == b.random()
    rng = np.random.default_rng(6)
    pens = [sample_style("pen", "x", rng, cursive=0.5).cursive for _ in range(400)]
    assert 0.4 < np.mean([c > 0 for c in pens]) < 0.6 and all(c == 0 or 0.4 <= c <= 1 for c in pens)
    assert all(sample_style("font", "x", rng, cursive=1.0).cursive == 0 for _ in range(20))
    ds = SyntheticWords(lexicon, "train", seed=3, kinds={"pen": 1.0}, cursive=1.0)
    assert all(ds.sample("cat", lang, np.random.default_rng(i)).style.cursive > 0 for i, lang in enumerate("zh en es".split()))
    with pytest.raises(ValueError, match="cursive"):
        SyntheticWords(lexicon, "train", cursive=1.5)


def test_abbreviated_running_hand_leaves_out_chinese_strokes(lexicon, fonts_ready):
    """`abbreviate` drops strokes after a Chinese character's first (characters of 3 strokes or more), as a
    running or grass hand merges and leaves them out; Latin strokes and short characters are kept, and
    at 0 the strokes and the random stream are those of before."""
    st = Style(kind="pen", source="hanzi-writer-data")
    full = word_polylines("朋友", st, np.random.default_rng(0))
    a, b = np.random.default_rng(0), np.random.default_rng(0)
    word_polylines("朋友", st, a)
    short = word_polylines("朋友", Style(**{**st.to_dict(), "abbreviate": 0.5}), b)
    assert 2 <= len(short) < len(full)
    assert np.array_equal(short[0], full[0])  # a character's first stroke always stays
    terse = Style(**{**st.to_dict(), "abbreviate": 0.99})  # at most, all but each character's first stroke go
    assert len(word_polylines("朋友", terse, np.random.default_rng(1))) == 2
    assert len(word_polylines("二", Style(**{**st.to_dict(), "abbreviate": 0.99}), np.random.default_rng(1))) == 2
    latin = Style(kind="pen", source="hershey/HersheySans1.svg")
    assert len(word_polylines("school", Style(**{**latin.to_dict(), "abbreviate": 0.99}), np.random.default_rng(1))) \
        == len(word_polylines("school", latin, np.random.default_rng(1)))
    # sampled only for running-hand styles, up to the share asked for; the stream unchanged at 0
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    assert sample_style("pen", "x", a, cursive=0.5) == sample_style("pen", "x", b, cursive=0.5, abbreviate=0.0)
    assert a.random() == b.random()
    rng = np.random.default_rng(6)
    styles = [sample_style("pen", "x", rng, cursive=0.5, abbreviate=0.3) for _ in range(400)]
    assert all((s.cursive > 0) == (s.abbreviate > 0) and s.abbreviate <= 0.3 for s in styles)
    with pytest.raises(ValueError, match="abbreviate"):
        SyntheticWords(lexicon, "train", abbreviate=0.3)  # without a running hand
    with pytest.raises(ValueError, match="abbreviate"):
        SyntheticWords(lexicon, "train", cursive=0.5, abbreviate=1.0)
