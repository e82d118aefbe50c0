"""The visual tower on the pretrained reader: an image's place in the shared space from its reading.

The reader (reader.py, frozen) gives CTC posteriors, corrected by the trained reading head when the
model has one (reading_head.py); every lexicon word is scored by its CTC
likelihood (ctc.py, constrained recognition); the embedding is the concepts' text anchors weighted by
a softmax of those log-likelihoods at `temperature` (each concept's anchor is the mean of its zh, en and
es anchors, so the embedding is the same whichever script the word is written in), optionally mixed
with the trained visual encoder's embedding (`visual_weight`, measured). Training-free: only the text
tower it reuses was trained.

Input is the one `preprocess` at READING_PREPROCESS (the ink fitted 40 pixels high in a 48 x 320 box);
the reader gets the ink's own columns, the trained encoder the ink refitted into its own box.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from xmr_core.data.configs import check_fields, strict_from_dict
from xmr_core.data.lexicon import LANGS, Lexicon
from xmr_core.data.preprocess import PreprocessConfig, crop_to_ink, fit
from xmr_core.model.ctc import WordTable
from xmr_core.model.dual import DualEncoder
from xmr_core.model.reader import HEIGHT, MAX_WIDTH, PAD, READER_PACKAGE, READER_SHA256, STRIDE, Reader
from xmr_core.model.reading_head import ReadingHead

READING_PREPROCESS = PreprocessConfig(height=HEIGHT, width=MAX_WIDTH, pad=PAD)


@dataclass(frozen=True)
class ReadingConfig:
    temperature: float = 1.0  # softmax temperature over the words' CTC log-likelihoods
    floor: float = 1e-3  # a word using a symbol never this probable is not scored (ctc.py)
    visual_weight: float = 0.0  # share of the trained visual encoder's embedding in the image's (0: reading only)
    # the encoder is run only for images whose reading is less sure than this (its best concept's posterior
    # at temperature 1); a surer image's embedding is its reading's (1.0: the encoder always counts)
    visual_below: float = 1.0

    def __post_init__(self) -> None:
        check_fields(self, "reading")
        if (not self.temperature > 0 or not 0 < self.floor < 1 or not 0 <= self.visual_weight <= 1
                or not 0 < self.visual_below <= 1):
            raise ValueError(f"reading config {self}: temperature > 0, floor in (0, 1), visual_weight in [0, 1], "
                             "visual_below in (0, 1]")

    @classmethod
    def from_dict(cls, d: dict) -> ReadingConfig:
        return strict_from_dict(cls, d, "reading")


def reader_record() -> dict:
    """What a model directory records of the reader it was measured with."""
    from importlib.metadata import version

    from xmr_core.model.reader import READER_FILE

    return {"package": READER_PACKAGE, "version": version(READER_PACKAGE), "file": READER_FILE,
            "sha256": READER_SHA256}


class ReadingModel:
    """Reader trunk + the base model's text tower (and, weighted, its visual encoder)."""

    def __init__(self, base: DualEncoder, lexicon: Lexicon, cfg: ReadingConfig | None = None,
                 reader: Reader | None = None, threads: int = 1, visual=None,
                 head: ReadingHead | None = None) -> None:
        self.base, self.rcfg, self.head = base.eval(), cfg or ReadingConfig(), head
        # the trained encoder as a callable on (N, 1, H, W) inputs: its ONNX graph when the directory has one
        self.visual = visual or (lambda x: self.base.encode_image(torch.from_numpy(x)).numpy())
        self.cfg = dataclasses.replace(base.cfg, preprocess=READING_PREPROCESS)
        self.reader = reader or Reader(threads=threads)
        self.set_lexicon(lexicon)

    def eval(self) -> ReadingModel:
        return self

    @torch.no_grad()
    def set_lexicon(self, lexicon: Lexicon) -> None:
        """The words the reader is constrained to, and their concepts' anchors."""
        self.lexicon = lexicon
        self.table = WordTable.build(lexicon, self.reader.index)
        a = sum(self.base.encode_text(lexicon.words(lg)).numpy() for lg in LANGS)
        self.anchors = a / np.linalg.norm(a, axis=1, keepdims=True)

    @torch.no_grad()
    def encode_text(self, texts: list[str], normalize: bool = True) -> torch.Tensor:
        return self.base.encode_text(texts, normalize=normalize)

    def posteriors(self, x: np.ndarray) -> list[np.ndarray]:
        """Per model input, the reader's posteriors at its ink's own width, through the head if one was trained."""
        inks = [_ink_columns(m[0]) for m in x]
        if self.head is None:
            return self.reader.posteriors(inks)
        return [self.head.apply(p, f) for p, f in self.reader.outputs(inks)]

    def read(self, x: np.ndarray, posteriors: bool = False):
        """(N, 3, n_concepts) CTC log-likelihood of each concept's word in each language (and, with
        `posteriors`, the posteriors they were scored under)."""
        posts = self.posteriors(x)
        scores = np.stack([self.table.by_concept(self.table.score(p, self.rcfg.floor)) for p in posts])
        return (scores, posts) if posteriors else scores

    def weights(self, scores: np.ndarray, temperature: float | None = None) -> np.ndarray:
        """(N, n_concepts) softmax over concepts of their best word's log-likelihood / temperature."""
        z = scores.max(1) / (temperature or self.rcfg.temperature)
        z = z - z.max(1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(1, keepdims=True)

    @torch.no_grad()
    def encode_signals(self, x: np.ndarray, scores: np.ndarray | None = None,
                       every: bool = False) -> dict[str, np.ndarray]:
        """Each signal's unit embeddings of a batch: 'reading' (the anchors weighted by the reading, from
        `scores` = `read(x)` when the caller has them) and, when it has a weight, 'visual' (the trained
        encoder on the ink refitted to its own box), run only on the images `combine` mixes it into (rows
        of zeros elsewhere) unless `every`; 'sure' marks the images whose reading alone is their embedding."""
        scores = self.read(x) if scores is None else scores
        v = self.weights(scores) @ self.anchors
        out = {"reading": v / np.linalg.norm(v, axis=1, keepdims=True),
               "sure": self.weights(scores, 1.0).max(1) >= self.rcfg.visual_below}
        if self.rcfg.visual_weight > 0:
            rows = np.arange(len(x)) if every else np.flatnonzero(~out["sure"])
            out["visual"] = np.zeros((len(x), v.shape[1]), np.float32)
            if len(rows):
                out["visual"][rows] = self.look(x[rows])
        return out

    @torch.no_grad()
    def look(self, x: np.ndarray) -> np.ndarray:
        """(N, d) the trained visual encoder's unit embeddings of model inputs: how an image looks,
        whatever it is read as (the ink refitted into the encoder's own box)."""
        v = self.visual(np.stack([fit(crop_to_ink(m[0]), self.base.cfg.preprocess)[None] for m in x]))
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    def combine(self, signals: dict[str, np.ndarray]) -> np.ndarray:
        """The image's embedding: the signals mixed by `visual_weight` (the reading alone where 'sure'),
        normalised."""
        w = self.rcfg.visual_weight
        v = signals["reading"]
        if w > 0:
            w = np.where(signals["sure"], 0.0, w)[:, None]
            v = (1 - w) * v + w * signals["visual"]
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    def encode_image(self, x: torch.Tensor | np.ndarray, normalize: bool = True) -> torch.Tensor:
        x = x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        return torch.from_numpy(self.combine(self.encode_signals(x)))


def _ink_columns(ink: np.ndarray) -> np.ndarray:
    """A fitted ink map cut to its ink (the reader is run at the word's own width)."""
    rows, cols = np.nonzero(ink.max(1) > 0.05)[0], np.nonzero(ink.max(0) > 0.05)[0]
    if not len(cols):
        return ink[:, :STRIDE]
    return ink[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]
