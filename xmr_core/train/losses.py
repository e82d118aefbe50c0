"""Losses of the dual encoder: ITC, INV, 1-to-K, and the drift term that holds a trained text top near USE's.

Each loss is a pure function of embeddings (tests call these directly) wrapped by a module that holds
only hyperparameters; `XMRLoss.forward` takes the model's output dict, so training calls `loss(**out)`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _soft_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return -(targets * F.log_softmax(logits, dim=-1)).sum(-1).mean()


def itc_loss(image: torch.Tensor, text: torch.Tensor, labels: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """Symmetric InfoNCE between paired images and texts; pairs of the same concept count as positives."""
    logits = scale * image @ text.T
    pos = (labels[:, None] == labels[None, :]).float()
    targets = pos / pos.sum(1, keepdim=True)
    return 0.5 * (_soft_ce(logits, targets) + _soft_ce(logits.T, targets.T))


def inv_loss(features: torch.Tensor, labels: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """Semantic consistency: every embedding (any language, any modality) is pulled towards all others of
    its concept and pushed from the rest (supervised contrastive form, so it cannot collapse)."""
    n = len(features)
    logits = scale * features @ features.T
    self_mask = torch.eye(n, dtype=torch.bool, device=features.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    pos = (labels[:, None] == labels[None, :]) & ~self_mask
    has = pos.any(1)
    if not has.any():
        return features.sum() * 0
    logp = F.log_softmax(logits, dim=1).masked_fill(~pos, 0.0)
    return -(logp.sum(1)[has] / pos.sum(1)[has]).mean()


def one_to_k_loss(image: torch.Tensor, texts: torch.Tensor, image_labels: torch.Tensor, text_labels: torch.Tensor,
                  scale: torch.Tensor | float, margin: float = 0.0) -> torch.Tensor:
    """Each image against all candidate texts at once; its concept's texts in all K languages are the
    positives (-log of their summed probability). `margin` is subtracted from the positives' cosines
    (CosFace's additive margin): an image must beat every other word by at least that much."""
    pos = image_labels[:, None] == text_labels[None, :]
    logits = scale * (image @ texts.T - margin * pos)
    if not pos.any(1).all():
        raise ValueError("every image needs at least one positive text among the candidates")
    return (torch.logsumexp(logits, 1) - torch.logsumexp(logits.masked_fill(~pos, float("-inf")), 1)).mean()


def anchor_drift_loss(out: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """How far a trained text top has moved from the original on the same inputs: squared distance of
    each output from its reference, relative to the reference's squared norm, averaged; 0 when unchanged."""
    return (((out - ref) ** 2).sum(-1) / (ref ** 2).sum(-1).clamp(min=1e-12)).mean()


class XMRLoss(nn.Module):
    """L = w_itc * L_ITC + w_inv * L_INV + w_1k * L_1toK (weights from the training config); `margin`
    is the 1-to-K loss's additive margin."""

    def __init__(self, itc: float = 1.0, inv: float = 0.5, one_to_k: float = 1.0, margin: float = 0.0) -> None:
        super().__init__()
        self.w = {"itc": itc, "inv": inv, "one_to_k": one_to_k}
        self.margin = margin

    def forward(self, image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor,
                labels: torch.Tensor, candidate_features: torch.Tensor | None = None,
                candidate_labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        if self.w["itc"]:
            out["itc"] = itc_loss(image_features, text_features, labels, logit_scale)
        if self.w["inv"]:
            feats = torch.cat([image_features, text_features])
            out["inv"] = inv_loss(feats, torch.cat([labels, labels]), logit_scale)
        if self.w["one_to_k"] and candidate_features is not None:
            out["one_to_k"] = one_to_k_loss(image_features, candidate_features, labels, candidate_labels, logit_scale,
                                            self.margin)
        out["total"] = sum(self.w[k] * v for k, v in out.items())
        return out
