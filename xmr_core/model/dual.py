"""The asymmetric dual encoder: small CNN for handwriting, partially frozen multilingual text anchor."""

from __future__ import annotations

import torch
from torch import nn

from xmr_core.model.config import ModelConfig
from xmr_core.model.text import UseTextTower
from xmr_core.model.vision import TimmVisualEncoder


class DualEncoder(nn.Module):
    def __init__(self, cfg: ModelConfig | dict | None = None) -> None:
        super().__init__()
        self.cfg = ModelConfig.from_dict(cfg or {})
        c = self.cfg
        self.visual = TimmVisualEncoder(c.vision.backbone, c.embed_dim, (c.preprocess.height, c.preprocess.width),
                                        c.vision.dropout, c.vision.columns)
        if c.text.backend == "use-m3":
            self.text = UseTextTower(c.embed_dim, c.text.trainable_top)
        else:
            from xmr_core.model.hf_text import HFTextTower

            self.text = HFTextTower(c.text.hf_path, c.embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(c.init_logit_scale))

    def encode_image(self, x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        return self.visual(x, normalize=normalize)

    def encode_text(self, texts: list[str], normalize: bool = True) -> torch.Tensor:
        return self.text(texts, normalize=normalize)

    def lock_text_tower(self, unlocked_top: bool = False) -> None:
        """Freeze the text tower (keeping USE's DAN top trainable if `unlocked_top`)."""
        self.text.requires_grad_(False)
        if unlocked_top and hasattr(self.text, "top"):
            self.text.top.requires_grad_(True)

    def forward(self, images: torch.Tensor, texts: list[str]) -> dict[str, torch.Tensor]:
        return {
            "image_features": self.encode_image(images),
            "text_features": self.encode_text(texts),
            "logit_scale": self.logit_scale.exp().clamp(max=100),
        }

    def n_visual_params(self) -> int:
        return sum(p.numel() for p in self.visual.parameters())
