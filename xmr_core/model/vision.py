"""Visual encoder: a timm backbone (grayscale) behind a small adapter, projected to the shared space."""

from __future__ import annotations

import timm
import torch
import torch.nn.functional as F
from torch import nn


# Named small configurations of timm architectures (name -> timm model, keyword arguments).
PRESETS = {
    # a tiny Swin, as the second design document's option: 1.3M parameters at 48x192
    "swin_tiny_xmr": ("swin_tiny_patch4_window7_224",
                      {"embed_dim": 48, "depths": (2, 2, 2), "num_heads": (3, 6, 12), "window_size": (3, 6)}),
}


class TimmVisualEncoder(nn.Module):
    """trunk (timm features) + pooling + projection, like open_clip's TimmModel.

    The backbone is a timm model name; `pool` is 'avg' or 'gem'."""

    def __init__(self, backbone: str = "mobilenetv3_small_100", embed_dim: int = 256, pool: str = "avg",
                 img_size: tuple[int, int] = (64, 256), dropout: float = 0.0) -> None:
        super().__init__()
        if pool not in ("avg", "gem"):
            raise ValueError(f"pool {pool!r}: expected 'avg' or 'gem'")
        name, kwargs = PRESETS.get(backbone, (backbone, {}))
        if name.startswith(("swin", "vit")):
            kwargs = {**kwargs, "img_size": img_size}
        try:
            self.trunk = timm.create_model(name, pretrained=False, in_chans=1, num_classes=0,
                                           global_pool="", **kwargs)
        except RuntimeError as exc:  # timm's unknown-model error
            raise ValueError(f"unknown timm backbone {backbone!r}: {exc}") from exc
        with torch.no_grad():
            feat = self.trunk(torch.zeros(1, 1, *img_size))
        self.channels_last_out = feat.ndim == 4 and feat.shape[-1] != feat.shape[1] and name.startswith("swin")
        ch = feat.shape[-1] if self.channels_last_out else feat.shape[1]
        self.pool = pool
        self.gem_p = nn.Parameter(torch.tensor(3.0)) if pool == "gem" else None
        self.drop = nn.Dropout(dropout)
        self.proj = nn.Linear(ch, embed_dim)

    def forward(self, x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        return self.project(self.pooled(x), normalize)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Trunk features pooled to one vector per image (what the projection and training's
        auxiliary heads read)."""
        f = self.trunk(x)
        if f.ndim == 4:
            if self.channels_last_out:
                f = f.permute(0, 3, 1, 2)
            if self.pool == "gem":
                f = f.clamp(min=1e-6).pow(self.gem_p).mean((2, 3)).pow(1.0 / self.gem_p)
            else:
                f = f.mean((2, 3))
        elif f.ndim == 3:  # tokens (B, N, C)
            f = f.mean(1)
        return f

    def project(self, f: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        z = self.proj(self.drop(f))
        return F.normalize(z, dim=-1) if normalize else z
