"""The reader (PP-OCRv6 recognition from the rapidocr wheel): CTC scoring against brute force, the
file check, and reading real renders."""

import itertools

import numpy as np
import pytest

from xmr_core.data.lexicon import LANGS, Lexicon
from xmr_core.data.preprocess import word_ink
from xmr_core.data.render import SyntheticWords
from xmr_core.model.ctc import WordTable, ctc_log_likelihood
from xmr_core.model.reader import Reader, reader_input


def brute_force(logp: np.ndarray, label: list[int]) -> float:
    """log of the sum over every path of T symbols that collapses (repeats merged, blanks dropped) to label."""
    T, C = logp.shape
    total = []
    for path in itertools.product(range(C), repeat=T):
        merged = [s for n, s in enumerate(path) if s != 0 and (n == 0 or s != path[n - 1])]
        if merged == label:
            total.append(sum(logp[t, s] for t, s in enumerate(path)))
    return float(np.logaddexp.reduce(total)) if total else -np.inf


def test_ctc_matches_brute_force_on_a_tiny_alphabet():
    rng = np.random.default_rng(0)
    for T in (1, 3, 5):
        logits = rng.normal(size=(T, 4))
        logp = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
        labels = [[1], [2, 3], [1, 1], [3, 2, 1], [2, 2, 2], [1, 2, 1, 2]]
        got = ctc_log_likelihood(logp, labels)
        for lab, g in zip(labels, got):
            want = brute_force(logp, lab)
            assert (np.isinf(want) and np.isinf(g)) or abs(g - want) < 1e-9, (T, lab, g, want)


def test_reader_input_keeps_the_ink_dark_and_the_width_proportional():
    ink = np.zeros((20, 100), np.float32)
    ink[5:15, 10:90] = 1
    x, steps = reader_input([ink, ink[:, :40]])
    assert x.shape[:3] == (2, 3, 48) and x.shape[3] % 8 == 0 and steps[0] > steps[1]
    assert x.min() == -1 and x.max() == 1 and x[0, :, 0].mean() == 1  # paper is +1, ink -1


def test_a_changed_file_is_refused(tmp_path):
    from xmr_core.model.reader import reader_path

    bad = tmp_path / "rec.onnx"
    bad.write_bytes(reader_path().read_bytes()[:-1] + b"\0")
    with pytest.raises(RuntimeError, match="not the file XMR was built with"):
        Reader(path=bad)


def test_the_reader_reads_renders_and_names_their_script(lexicon, fonts_ready):
    reader = Reader()
    lex = Lexicon(lexicon.concepts[:60])
    table = WordTable.build(lex, reader.index)
    ds = SyntheticWords(lex, "val", kinds={"font": 1.0}, seed=2)
    right = script = 0
    n = 60
    for i in range(n):
        s = ds[i]
        best = int(table.score(reader.posteriors([word_ink(s.image)])[0]).argmax())
        word, lang = lex.concepts[table.concept[best]].word(LANGS[table.lang[best]]), LANGS[table.lang[best]]
        right += word == s.text
        script += lang == s.lang or lex.get(s.concept_id).word(lang) == s.text
    assert right >= 0.85 * n and script >= 0.9 * n


def _rapidocr_input(img) -> np.ndarray:
    """RapidOCR's own recognition input for one crop (rapidocr/ch_ppocr_rec/main.py, resize_norm_img)."""
    import math

    import cv2

    a = np.asarray(img.convert("RGB"))[:, :, ::-1]  # RapidOCR works in BGR as OpenCV loads it
    h, w = a.shape[:2]
    width = max(320, int(48 * w / h))
    rw = min(width, int(math.ceil(48 * w / h)))
    x = (cv2.resize(a, (rw, 48)).astype(np.float32).transpose(2, 0, 1) / 255 - 0.5) / 0.5
    out = np.zeros((1, 3, 48, width), np.float32)
    out[0, :, :, :rw] = x
    return out


def test_greedy_readings_equal_rapidocr_on_the_same_input(lexicon, fonts_ready):
    """The file, its symbol table (blank first, space last) and the decoding are RapidOCR's own."""
    from rapidocr import RapidOCR

    ocr = RapidOCR(params={"Global.log_level": "error"})
    reader = Reader()
    ds = SyntheticWords(Lexicon(lexicon.concepts[:40]), "val", kinds={"font": 1.0}, seed=3)
    same = 0
    n = 30
    for i in range(n):
        img = ds[i].image
        theirs = ocr(np.asarray(img.convert("RGB"))[:, :, ::-1].copy(), use_det=False, use_cls=False, use_rec=True)
        ours = reader.decode(reader.run(_rapidocr_input(img))[0]).text
        same += ours == (theirs.txts[0] if theirs.txts else "")
    assert same == n


def test_the_sequence_features_are_what_the_ctc_layer_reads(lexicon, fonts_ready):
    """softmax(features @ W + b), with the CTC layer's own weights from the ONNX file, is the posteriors."""
    import onnx
    from onnx import numpy_helper

    reader = Reader()
    init = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(reader.path)).graph.initializer}
    ds = SyntheticWords(Lexicon(lexicon.concepts[:5]), "val", kinds={"font": 1.0}, seed=3)
    inks = [word_ink(ds[i].image) for i in range(4)]
    for (post, feat), ink in zip(reader.outputs(inks), inks):
        assert feat.shape == (post.shape[0], 120)
        z = feat @ init["linear_8.w_0"] + init["linear_8.b_0"]
        z = np.exp(z - z.max(1, keepdims=True))
        assert np.allclose(z / z.sum(1, keepdims=True), post, atol=1e-4)
        assert np.array_equal(reader.posteriors([ink])[0].argmax(1), post.argmax(1))


def test_a_compact_reading_keeps_the_word_and_its_likelihood(lexicon, fonts_ready):
    """A few hundred bytes per item: the greedy text is the same, and each word's CTC log-likelihood
    under it is close to the one under the full posteriors (the best word stays best)."""
    from xmr_core.model.ctc import compact, compact_log_likelihood, greedy_text

    reader = Reader()
    lex = Lexicon(lexicon.concepts[:30])
    ds = SyntheticWords(lex, "val", kinds={"font": 1.0}, seed=5)
    table = WordTable.build(lex, reader.index)
    rows = [n for n in range(len(table.words)) if table.readable[n]]
    labels = [table.labels[n][table.labels[n] >= 0].tolist() for n in rows]
    kept, close = 0, 0
    for i in range(0, 60, 3):
        s = ds[i % len(ds)]
        post = reader.posteriors([word_ink(s.image)])[0]
        blob = compact(post)
        assert len(blob) == 3 + 24 * len(post) and greedy_text(blob, reader.symbols) == reader.decode(post).text
        full = ctc_log_likelihood(np.log(np.maximum(post, 1e-30)), labels)
        approx = compact_log_likelihood(blob, labels, len(reader.symbols))
        best = int(np.argmax(full))
        close += abs(approx[best] - full[best]) < 0.05
        kept += int(np.argmax(approx)) == best
    assert kept >= 18 and close >= 16, (kept, close)


def test_compact_likelihoods_at_once_equal_one_by_one(lexicon, fonts_ready):
    """The batched recursion (readings of different lengths padded with sure blanks) gives each
    reading's likelihoods exactly as scoring it alone does."""
    from xmr_core.model.ctc import compact, compact_log_likelihood, compact_log_likelihoods

    reader = Reader()
    ds = SyntheticWords(Lexicon(lexicon.concepts[:10]), "val", kinds={"font": 1.0}, seed=6)
    blobs = [compact(p) for p in reader.posteriors([word_ink(ds[i].image) for i in range(0, 30, 2)])]
    labels = [[reader.index[ch] for ch in w] for w in ("water", "agua", "水", "Water", "cat")]
    many = compact_log_likelihoods(blobs, labels, len(reader.symbols))
    for n, blob in enumerate(blobs):
        assert np.allclose(many[n], compact_log_likelihood(blob, labels, len(reader.symbols)), atol=1e-9)
    assert len({len(b) for b in blobs}) > 1  # the readings did differ in length
