"""Few-shot adaptation of a reading model to a hand: its reading head tuned on the fine-tune queue.

A reading model's one trained part is its reading head (model/reading_head.py), a change of the frozen
reader's CTC layer; it sees letters, so what a few labelled words of a hand teach it carries over to the
hand's other words. Each queue sample is read as it is and in a few jittered copies (slant, width,
stroke, elastic: the trunk runs once per copy, the head trains on the cached features), labelled with
its word in the letter case the current model reads best; the head starts from the model's own and is
pulled back towards it (L2), and half of each batch replays renders of the `train` fonts (read once and
cached), so the rest of what it reads is kept.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from xmr_core.data.configs import check_fields, strict_from_dict
from xmr_core.data.lexicon import LANGS, Lexicon
from xmr_core.data.paths import cache_dir
from xmr_core.data.preprocess import preprocess
from xmr_core.data.render import MissingGlyph, SyntheticWords
from xmr_core.data.render.augment import change_stroke, elastic, slant
from xmr_core.model.ctc import LATIN_CASES, WordTable, ctc_log_likelihood
from xmr_core.model.reading import READING_PREPROCESS, ReadingModel, _ink_columns
from xmr_core.model.reading_head import Example, HeadConfig, ReadingHead, fit_head, head_symbols

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class AdaptConfig:
    steps: int = 300  # head optimisation steps
    batch: int = 64
    lr: float = 1e-3
    l2: float = 0.05  # weight of the squared change from the model's own head
    replay: float = 0.5  # share of each batch replayed from `train`-font renders
    copies: int = 8  # jittered copies of each queue sample, besides the sample itself
    replay_renders: int = 600  # `train`-font renders read for replay (cached per reader, lexicon and seed)
    seed: int = 0

    def __post_init__(self) -> None:
        check_fields(self, "adapt")
        if (self.steps < 1 or self.batch < 2 or not self.lr > 0 or not self.l2 >= 0 or not 0 <= self.replay < 1
                or self.copies < 0 or self.replay_renders < 0):
            raise ValueError(f"adapt config {self}: steps >= 1, batch >= 2, lr > 0, l2 >= 0, replay in [0, 1), "
                             "copies and replay_renders >= 0")

    @classmethod
    def from_dict(cls, d: dict) -> AdaptConfig:
        return strict_from_dict(cls, d, "adapt")


def jitter(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A copy of an ink map (0 = paper) as the same hand might have written it another time."""
    h, w = ink.shape
    out = cv2.resize(ink, (max(8, int(w * rng.uniform(0.85, 1.15))), h), interpolation=cv2.INTER_LINEAR)
    out = slant(out, float(rng.uniform(-0.15, 0.15)))
    out = elastic(out, float(rng.uniform(0.5, 1.5)), rng)
    if rng.random() < 0.5:
        out = change_stroke(out, int(rng.choice([-1, 1])))
    return np.clip(out, 0, 1).astype(np.float32)


def spellings(word: str, lang: str, index: dict[str, int]) -> list[list[int]]:
    """The reader's symbol ids of the word's spellings (Latin: lower, Title and UPPER case) it can write."""
    forms = [word] if lang == "zh" else list(dict.fromkeys(f(word) for f in LATIN_CASES))
    out = [[index.get(ch) for ch in f] for f in forms]
    return [ids for ids in out if ids and None not in ids]


def queue_examples(model: ReadingModel, x: np.ndarray, words: list[tuple[str, str]], copies: int,
                   rng: np.random.Generator) -> list[Example]:
    """Head examples of labelled inputs (N, 1, H, W) at READING_PREPROCESS with their (word, lang): each
    input and `copies` jittered copies, labelled with the spelling the current model finds most likely."""
    out: list[Example] = []
    for m, (word, lang) in zip(x, words):
        ink = _ink_columns(m[0])
        labels = spellings(word, lang, model.reader.index)
        if not labels:
            continue
        variants = [ink] + [jitter(ink, rng) for _ in range(copies)]
        outs = model.reader.outputs(variants)
        p, f = outs[0]
        p = model.head.apply(p, f) if model.head is not None else p
        best = labels[int(np.argmax(ctc_log_likelihood(np.log(np.maximum(p, 1e-30)), labels)))]
        out += [Example(feat.astype(np.float16), best) for _, feat in outs]
    return out


def replay_examples(model: ReadingModel, lexicon: Lexicon, n: int, seed: int,
                    progress: Callable[[int, int], None] | None = None) -> list[Example]:
    """`n` renders of random lexicon words in the `train` fonts (and pens), read once and cached."""
    if n <= 0:
        return []
    key = hashlib.sha256(json.dumps([n, seed, model.reader.key, lexicon.hash()]).encode()).hexdigest()[:16]
    path = cache_dir() / "adapt" / f"replay-{key}.npz"
    if path.exists():
        z = np.load(path, allow_pickle=False)
        feats = np.split(z["features"], np.cumsum(z["steps"])[:-1])
        labels = np.split(z["labels"], np.cumsum(z["lengths"])[:-1])
        return [Example(f, t.tolist()) for f, t in zip(feats, labels)]
    ds = SyntheticWords(lexicon, "train", seed=seed, cases={"lower": 0.6, "title": 0.25, "upper": 0.15})
    rng = np.random.default_rng(seed)
    feats, labels = [], []
    tries = 0
    while len(feats) < n and tries < 3 * n:
        tries += 1
        c = lexicon.concepts[int(rng.integers(len(lexicon)))]
        lang = LANGS[int(rng.integers(3))]
        try:
            s = ds.sample(c.concept_id, lang, rng)
        except MissingGlyph:
            continue
        ids = [model.reader.index.get(ch) for ch in s.text]
        if not s.text or None in ids:
            continue
        feats += model.reader.features([_ink_columns(preprocess(s.image, READING_PREPROCESS)[0])])
        labels.append(np.array(ids, np.int64))
        if progress and len(feats) % 50 == 0:
            progress(len(feats), n)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, features=np.concatenate(feats).astype(np.float16), steps=[len(f) for f in feats],
             labels=np.concatenate(labels), lengths=[len(t) for t in labels])
    tmp.replace(path)
    return [Example(f.astype(np.float16), t.tolist()) for f, t in zip(feats, labels)]


def adapt_head(model: ReadingModel, x: np.ndarray, words: list[tuple[str, str]], cfg: AdaptConfig,
               progress: Progress | None = None,
               negatives: tuple[np.ndarray, list[tuple[str, str]]] | None = None) -> tuple[ReadingHead, dict]:
    """The model's reading head tuned on labelled inputs (the queue), with replay, and pushed away from
    the words `negatives` do not say (inputs and (word, lang): hits marked wrong); the head and a record
    (examples, losses, seconds). The model itself is not changed."""
    say = progress or (lambda f, m: None)
    t0 = time.time()
    rng = np.random.default_rng(cfg.seed)
    say(0.0, f"reading {len(x)} queue samples and {cfg.copies} jittered copies of each")
    own = queue_examples(model, x, words, cfg.copies, rng)
    if not own:
        raise ValueError("no queue sample spells its word in symbols the reader knows")
    wrong = queue_examples(model, negatives[0], negatives[1], 0, rng) if negatives and len(negatives[0]) else []
    say(0.1, f"replay: reading {cfg.replay_renders} renders of the train fonts (cached after the first time)")
    again = replay_examples(model, model.lexicon, cfg.replay_renders, cfg.seed,
                            lambda d, t: say(0.1 + 0.3 * d / max(t, 1), f"replay: read {d}/{t} renders"))
    t1 = time.time()
    table = WordTable.build(model.lexicon, model.reader.index)
    symbols = head_symbols(table)
    if model.head is not None:
        symbols = np.union1d(symbols, model.head.symbols)
    w, b = model.reader.ctc_layer()
    hcfg = HeadConfig(steps=cfg.steps, batch=cfg.batch, lr=cfg.lr, l2=cfg.l2, seed=cfg.seed)
    head, losses = fit_head(own, w, b, symbols, hcfg, init=model.head, replay=again, replay_share=cfg.replay,
                            negatives=wrong, progress=lambda s, n, sec: say(0.4 + 0.6 * s / n, f"head step {s}/{n}, {sec:.0f} s"))
    record = {"config": asdict(cfg), "queue_examples": len(own), "replay_examples": len(again),
              "negative_examples": len(wrong),
              "losses_every_50_steps": [round(v, 4) for v in losses],
              "read_seconds": round(t1 - t0, 1), "train_seconds": round(time.time() - t1, 1)}
    return head, record
