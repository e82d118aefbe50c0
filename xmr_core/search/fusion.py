"""Attention fusion of a labelled item's image embedding with its concept's text anchors.

The second design document's v' = sum_k alpha_k t_k + beta v, alpha = softmax(t_k . v / tau) over the
concept's anchors in every language, L2-normalised. A label then pulls the item next to its concept in
the shared space, while beta keeps what is particular to the image (its script, its hand).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xmr_core.data.configs import check_fields, strict_from_dict


@dataclass(frozen=True)
class FusionConfig:
    beta: float = 1.0  # weight of the image's own embedding
    tau: float = 0.1  # attention temperature over the anchors

    def __post_init__(self) -> None:
        check_fields(self, "fusion")
        if self.beta < 0 or self.tau <= 0:
            raise ValueError(f"fusion config {self}: beta >= 0, tau > 0")

    @classmethod
    def from_dict(cls, d: dict) -> FusionConfig:
        return strict_from_dict(cls, d, "fusion")


def fuse(v: np.ndarray, anchors: np.ndarray, cfg: FusionConfig) -> np.ndarray:
    """v (n, d) image embeddings, anchors (n, K, d) each item's concept anchors -> (n, d) unit vectors."""
    logits = np.einsum("nd,nkd->nk", v, anchors) / cfg.tau
    alpha = np.exp(logits - logits.max(1, keepdims=True))
    alpha /= alpha.sum(1, keepdims=True)
    out = np.einsum("nk,nkd->nd", alpha, anchors) + cfg.beta * v
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)
