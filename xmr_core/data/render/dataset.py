"""Synthetic handwriting samples: (image, concept, language, style) drawn from a font split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from xmr_core.data.fonts import list_fonts
from xmr_core.data.lexicon import LANGS, Lexicon
from xmr_core.data.render.glyphs import MissingGlyph, font_can_draw, strokes_can_draw
from xmr_core.data.render.style import Style, sample_style
from xmr_core.data.render.word import render_word

SCRIPT_OF = {"zh": "han", "en": "latin", "es": "latin"}
# how a Latin word is written: as in the (lowercase) lexicon, with a capital, or in capitals
CASES = {"lower": lambda t: t, "title": str.capitalize, "upper": str.upper}


@dataclass
class Sample:
    image: Image.Image
    concept_id: str
    lang: str
    text: str
    style: Style


class SyntheticWords:
    """Renders lexicon words with the fonts and stroke data of one split.

    Item `i` is deterministic for a seed (concept `i // 3`, language `i % 3`, cycling), so a dataset
    can be indexed like a list; `sample` draws a given concept and language with any generator.
    """

    def __init__(self, lexicon: Lexicon, split: str = "train", langs: tuple[str, ...] = LANGS,
                 kinds: dict[str, float] | None = None, seed: int = 0, strength: float = 1.0,
                 cases: dict[str, float] | None = None, source_weights: dict[str, float] | None = None,
                 cursive: float = 0.0, abbreviate: float = 0.0):
        self.lexicon, self.split, self.langs, self.seed, self.strength = lexicon, split, tuple(langs), seed, strength
        if not 0 <= cursive <= 1:
            raise ValueError(f"cursive {cursive}: the share of pen renders written joined-up, in [0, 1]")
        if not 0 <= abbreviate < 1 or (abbreviate and not cursive):
            raise ValueError(f"abbreviate {abbreviate}: the most Chinese strokes a running hand leaves out, "
                             "in [0, 1), and only with cursive above 0")
        self.cursive, self.abbreviate = cursive, abbreviate
        # how often each source (font file or stroke set) is drawn against the others; unlisted ones 1
        self.source_weights = dict(source_weights or {})
        if any(not w >= 0 for w in self.source_weights.values()):
            raise ValueError("source weights must be 0 or more")
        # letter case of Latin words (the lexicon is lowercase; people also write Title and UPPER case)
        self.cases = {k: w for k, w in (cases or {"lower": 1.0}).items() if w > 0}
        if not self.cases or set(self.cases) - set(CASES):
            raise ValueError(f"cases {cases!r}: weights for {sorted(CASES)}, at least one above 0")
        kinds = kinds or ({"font": 0.7, "pen": 0.2, "canvas": 0.1} if split == "train" else {"font": 1.0})
        self.sources: dict[tuple[str, str], list[str]] = {}
        for script in ("han", "latin"):
            self.sources[(script, "font")] = [e.key for e in list_fonts(split, script, "font")]
            strokes = [e.key for e in list_fonts(split, script, "strokes")]
            self.sources[(script, "pen")] = self.sources[(script, "canvas")] = strokes
        self._usable: dict[tuple[str, str, str], list[str]] = {}
        self.kinds = {k: w for k, w in kinds.items() if w > 0}
        if not any(self.sources[(s, "font")] for s in ("han", "latin")):
            raise RuntimeError(f"no fonts of split {split!r} in the cache: run `xmr fonts fetch`")

    def __len__(self) -> int:
        return len(self.lexicon) * len(self.langs)

    def __getitem__(self, i: int) -> Sample:
        c = self.lexicon.concepts[(i // len(self.langs)) % len(self.lexicon)]
        return self.sample(c.concept_id, self.langs[i % len(self.langs)], np.random.default_rng([self.seed, i]))

    def usable_sources(self, text: str, lang: str, kind: str) -> list[str]:
        """Sources of this split that have every glyph of `text` and a weight above 0 (cached per word)."""
        key = (text, lang, kind)
        if key not in self._usable:
            can = font_can_draw if kind == "font" else strokes_can_draw
            self._usable[key] = [k for k in self.sources[(SCRIPT_OF[lang], kind)]
                                 if self.source_weights.get(k, 1.0) > 0 and can(k, text)]
        return self._usable[key]

    @staticmethod
    def _pick(weights: dict[str, float], rng: np.random.Generator) -> str:
        """One key by weight; draws from `rng` only when there is a choice (old streams stay as they were)."""
        if len(weights) == 1:
            return next(iter(weights))
        names = list(weights)
        p = np.array([weights[k] for k in names])
        return names[int(rng.choice(len(names), p=p / p.sum()))]

    def _source(self, keys: list[str], rng: np.random.Generator) -> str:
        """One of `keys`, uniformly unless source weights are set (old streams stay as they were)."""
        if not self.source_weights:
            return keys[int(rng.integers(len(keys)))]
        p = np.array([self.source_weights.get(k, 1.0) for k in keys])
        return keys[int(rng.choice(len(keys), p=p / p.sum()))]

    def sample(self, concept_id: str, lang: str, rng: np.random.Generator, kind: str | None = None) -> Sample:
        text = self.lexicon.get(concept_id).word(lang)
        if SCRIPT_OF[lang] == "latin":
            text = CASES[self._pick(self.cases, rng)](text)
        names = list(self.kinds)
        p = np.array([self.kinds[k] for k in names])
        order = [kind] if kind else list(rng.choice(names, size=len(names), replace=False, p=p / p.sum()))
        for k in order:
            keys = self.usable_sources(text, lang, k)
            if not keys:
                continue
            for _ in range(3):
                style = sample_style(k, self._source(keys, rng), rng, self.strength, self.cursive,
                                     self.abbreviate)
                try:
                    return Sample(render_word(text, style, rng), concept_id, lang, text, style)
                except MissingGlyph:
                    continue
        raise MissingGlyph(f"no source of split {self.split!r} can draw {text!r} in styles {order}")
