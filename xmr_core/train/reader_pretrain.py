"""Pre-training the reader's trunk on open words in the `train` fonts (session 35; the bundled model's reader, docs/reader.md).

The same network and cut as a hand's adaptation (trunk.py: PP-OCRv6 as torch, the model's reading head folded
into its CTC layer, the top `fraction` of its layers and the constants used there trained with the CTC loss),
but on renders of any word: wordfreq's most frequent words in en, es and zh (a share of lexicon words beside),
in the `train` fonts and pen strokes, Latin words in lower, Title and UPPER case. Words a caller excludes (the
benchmarks' own) are never drawn. Returns the reader's changed tensors by ONNX name, for `Reader(weights=...)`
with no head, as `adapt_trunk` does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import numpy as np

from xmr_core.data.configs import check_fields, strict_from_dict
from xmr_core.data.lexicon import LANGS, Lexicon
from xmr_core.data.preprocess import word_ink
from xmr_core.data.render import MissingGlyph, SyntheticWords
from xmr_core.data.render.dataset import SCRIPT_OF
from xmr_core.data.render.style import sample_style
from xmr_core.data.render.word import render_word
from xmr_core.model.reader import Reader
from xmr_core.model.reading import ReadingModel
from xmr_core.train.trunk import _folded_head, folded_graph, symbol_losses, torch_network, trainable, training, width_chunks

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class PretrainConfig:
    renders: int = 40_000  # rendered once; the last `held` are kept out of training to follow the loss
    held: int = 600
    top_words: int = 20_000  # per language, from wordfreq's ranking
    lexicon_share: float = 0.25  # renders of a lexicon word instead of an open one
    pen_share: float = 0.15  # renders drawn with pen strokes (half of them joined-up) instead of a font
    lang_weights: tuple[float, float, float] = (0.4, 0.3, 0.3)  # zh, en, es (LANGS' order)
    steps: int = 2000
    batch: int = 32
    lr: float = 1e-4  # Adam; warmed up over `warmup` steps, then a cosine down to a tenth
    warmup: int = 50
    fraction: float = 1 / 3
    chunks: int = 2
    seed: int = 7

    def __post_init__(self) -> None:
        check_fields(self, "reader pre-training")
        if (self.renders <= self.held or self.held < 1 or self.steps < 1 or self.batch < 2 or not self.lr > 0
                or not 0 < self.fraction <= 1 or not 0 <= self.lexicon_share <= 1 or not 0 <= self.pen_share <= 1
                or len(self.lang_weights) != len(LANGS) or min(self.lang_weights) < 0 or not sum(self.lang_weights) > 0):
            raise ValueError(f"reader pre-training config {self}: renders > held >= 1, steps >= 1, batch >= 2, lr > 0, "
                             "fraction in (0, 1], shares in [0, 1], one weight per language")

    @classmethod
    def from_dict(cls, d: dict) -> PretrainConfig:
        d = dict(d)
        if "lang_weights" in d:
            d["lang_weights"] = tuple(d["lang_weights"])
        return strict_from_dict(cls, d, "reader pre-training")


def open_words(index: dict[str, int], top: int, exclude: Iterable[str] = ()) -> dict[str, list[str]]:
    """Per language, wordfreq's `top` most frequent words the reader can spell, lowercase, not in `exclude`:
    Latin words of letters only (2-14 of them), Chinese words of CJK ideographs only (at most 6)."""
    import wordfreq

    banned = {w.lower() for w in exclude}
    out = {}
    for lang in LANGS:
        words = []
        for w in wordfreq.top_n_list(lang, 5 * top // 4):
            if w in banned or any(c not in index for c in w):
                continue
            if (all("\u4e00" <= c <= "\u9fff" for c in w) and len(w) <= 6 if SCRIPT_OF[lang] == "han"
                    else w.isalpha() and 2 <= len(w) <= 14):
                words.append(w)
        out[lang] = words[:top]
    return out


def open_word_inks(lexicon: Lexicon, words: dict[str, list[str]], cfg: PretrainConfig,
                   progress: Callable[[int, int], None] | None = None) -> list[tuple[np.ndarray, str]]:
    """`cfg.renders` ink crops (`word_ink`, float 0-1) of the `train` split with their text."""
    ds = SyntheticWords(lexicon, "train")
    rng = np.random.default_rng(cfg.seed)
    p = np.array(cfg.lang_weights, float) / sum(cfg.lang_weights)
    out: list[tuple[np.ndarray, str]] = []
    while len(out) < cfg.renders:
        lang = LANGS[int(rng.choice(len(LANGS), p=p))]
        if rng.random() < cfg.lexicon_share or not words[lang]:
            text = lexicon.concepts[int(rng.integers(len(lexicon)))].word(lang)
        else:
            text = words[lang][int(rng.integers(len(words[lang])))]
        if SCRIPT_OF[lang] == "latin":
            r = rng.random()
            text = text.title() if r < 0.25 else text.upper() if r < 0.37 else text
        kind = "pen" if rng.random() < cfg.pen_share else "font"
        keys = ds.usable_sources(text, lang, kind)
        if not keys:
            continue
        try:
            style = sample_style(kind, keys[int(rng.integers(len(keys)))], rng, 1.0, 0.5 if kind == "pen" else 0.0)
            ink = word_ink(render_word(text, style, rng))
        except (MissingGlyph, ValueError):  # a glyph missing after all, or nothing drawn
            continue
        out.append((np.clip(ink, 0, 1).astype(np.float32), text))
        if progress and len(out) % 1000 == 0:
            progress(len(out), cfg.renders)
    return out


def pretrain_trunk(model: ReadingModel, samples: list[tuple[np.ndarray, str]], cfg: PretrainConfig,
                   threads: int = 2, progress: Progress | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """The model's reader (its head folded in) trained on (ink, text) samples; the last `cfg.held` are held
    out and their loss recorded. Returns the reader's tensors by ONNX name (for `Reader(weights=...)` with no
    head) and a record (losses, held-out loss before and after, seconds). The model is not changed."""
    import torch

    say = progress or (lambda f, m: None)
    t0 = time.time()
    torch.set_num_threads(threads)
    data = [(ink, ids) for ink, text in samples if None not in (ids := [model.reader.index.get(c) for c in text])]
    held, train = data[-cfg.held:], data[:-cfg.held]
    if len(train) < cfg.batch:
        raise ValueError(f"{len(train)} training samples the reader can spell: fewer than a batch of {cfg.batch}")
    net, names = torch_network(folded_graph(model.reader, model.head))
    params = trainable(net, names, cfg.fraction)
    opt = torch.optim.Adam(list(params.values()), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / cfg.warmup) * (
        0.1 + 0.45 * (1 + np.cos(np.pi * min(s, cfg.steps) / cfg.steps))))

    def held_loss() -> float:
        net.eval()
        with torch.no_grad():
            v = float(torch.cat([symbol_losses(net, part) for part in width_chunks(held, max(1, len(held) // 30))]).mean())
        training(net)
        return v

    before = held_loss()
    rng = np.random.default_rng(cfg.seed + 1)
    losses, t1 = [], time.time()
    for step in range(cfg.steps):
        batch = [train[int(i)] for i in rng.choice(len(train), cfg.batch, replace=False)]
        opt.zero_grad()
        total = 0.0
        for part in width_chunks(batch, cfg.chunks):
            loss = symbol_losses(net, part).sum() / len(batch)
            loss.backward()
            total += float(loss.detach())
        opt.step()
        sched.step()
        losses.append(total)
        if step % 50 == 49 or step == cfg.steps - 1:
            sec = time.time() - t1
            say((step + 1) / cfg.steps, f"step {step + 1}/{cfg.steps}, loss {np.mean(losses[-50:]):.3f}, "
                f"ETA {sec / (step + 1) * (cfg.steps - step - 1):.0f} s")
    after = held_loss()
    net.eval()
    weights = {**model.reader.weights, **_folded_head(model),
               **{names[n]: t.detach().numpy().copy() for n, t in params.items()}}
    check = Reader(threads=threads, path=model.reader.path, sha256=model.reader.sha256, weights=weights)
    from xmr_core.model.reader import reader_input

    xp, _ = reader_input([ink for ink, _ in held[:4]])
    with torch.no_grad():
        diff = float(np.abs(check.run(xp) - net(torch.from_numpy(xp)).numpy()).max())
    if not diff < 1e-3:
        raise RuntimeError(f"the pre-trained reader written back differs from the trained network by {diff:.2g}")
    record = {"config": asdict(cfg), "train_samples": len(train), "held_samples": len(held),
              "trained_values": int(sum(t.numel() for t in params.values())),
              "held_loss_before": round(before, 4), "held_loss_after": round(after, 4),
              "loss_every_50_steps": [round(float(np.mean(losses[i:i + 50])), 4) for i in range(0, len(losses), 50)],
              "max_posterior_difference_onnx_vs_torch": diff, "train_seconds": round(time.time() - t1, 1),
              "seconds": round(time.time() - t0, 1)}
    return weights, record
