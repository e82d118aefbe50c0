"""A user's labelled samples as exemplars at query time: the attention fusion applied to a query image.

A query image that looks like samples the user labelled (the visual encoder's look, `Engine.look`, within
cosine EXEMPLAR_NEAR) is fused with those samples' concept anchors the way a labelled item is fused in the
index (fusion.py): q' = beta q + sum_k alpha_k t_k, alpha = softmax(look . look_k / tau) over the near
samples, t_k the anchor of sample k's concept in its script. Recognition, suggestions and the search then
start from q': a word the user labelled in their own hand is recognised as their label when a new image
of it looks like their sample, whatever the reader makes of it.
Measured by benchmarks/exemplars.py (docs/adaptation.md): on ten hands, cosine 0.75 gained 5 points on
repeats of the labelled words on two hands and changed nothing on the other words of any hand (0.8 gained
nothing); beta 0.5 and 1.0 measured the same there, and 0.5 is kept so that the user's label outweighs a
reading that is sure of another word (at 1.0 the two tie). The limit is the look: a word the reader
misreads in a hand is seldom near its own sample (median cosine 0.6 on the weakest hand).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xmr_core.data.preprocess import preprocess

EXEMPLAR_NEAR = 0.75  # a query uses the samples whose look is at least this close to its own
EXEMPLAR_TAU = 0.05  # attention temperature over those samples
EXEMPLAR_BETA = 0.5  # weight of the query's own embedding: the samples (1 in all) outweigh a sure reading


@dataclass(frozen=True)
class ExemplarSet:
    """One user's labelled samples: their concepts, scripts, looks (m, d) and concept anchors (m, d)."""

    author: str
    concept_ids: list[str]
    langs: list[str]
    looks: np.ndarray
    anchors: np.ndarray

    def __len__(self) -> int:
        return len(self.concept_ids)

    def near(self, look: np.ndarray) -> list[tuple[int, float]]:
        """(sample row, cosine) of the samples within EXEMPLAR_NEAR of a query's look, nearest first."""
        if not len(self):
            return []
        sims = self.looks @ np.asarray(look, np.float32)
        rows = np.flatnonzero(sims >= EXEMPLAR_NEAR)
        return sorted(((int(r), float(sims[r])) for r in rows), key=lambda r: -r[1])

    def fuse(self, q: np.ndarray, look: np.ndarray) -> tuple[np.ndarray, list[tuple[str, str, float]]]:
        """The query embedding fused with the near samples' anchors (unit length), and those samples as
        (concept_id, script, cosine), nearest first; q itself and [] when none is near."""
        near = self.near(look)
        if not near:
            return q, []
        rows = [r for r, _ in near]
        sims = np.array([s for _, s in near])
        alpha = np.exp((sims - sims.max()) / EXEMPLAR_TAU)
        out = EXEMPLAR_BETA * q + (alpha / alpha.sum()) @ self.anchors[rows]
        return (out / np.linalg.norm(out)).astype(np.float32), [(self.concept_ids[r], self.langs[r], s) for r, s in near]


class Exemplars:
    """The Engine's exemplars: a user's labelled samples (the annotations they saved), their looks cached."""

    def exemplars_of(self, author: str) -> ExemplarSet:
        """The samples `author` labelled (queued or trained on) whose concept the engine knows, as exemplars;
        each image's look computed once per engine."""
        rows = [a for a in self.store.list_annotations(status=None) if a["author"] == author
                and a["concept_id"] in self.lexicon and (self.store.root / a["path"]).exists()]
        todo = [a for a in rows if a["sha256"] not in self._looks]
        if todo:
            x = np.stack([preprocess(str(self.store.root / a["path"]), self.pre) for a in todo])
            for a, v in zip(todo, self.look_of(x)):
                self._looks[a["sha256"]] = v
        if not rows:
            return ExemplarSet(author, [], [], np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32))
        looks = np.stack([self._looks[a["sha256"]] for a in rows])
        anchors = np.stack([self.anchors(a["lang"])[self.lexicon.index(a["concept_id"])] for a in rows])
        return ExemplarSet(author, [a["concept_id"] for a in rows], [a["lang"] for a in rows], looks, anchors)
