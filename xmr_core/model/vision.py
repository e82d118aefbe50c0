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


class ColumnHead(nn.Module):
    """Keeps the left-to-right order that pooling discards: the final feature map averaged over its
    height, each column reduced to `dim` channels, the columns concatenated and projected to the shared
    space. Its projection starts at zero, so adding it to a trained model changes nothing at first."""

    def __init__(self, channels: int, width: int, dim: int, embed_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.reduce = nn.Conv1d(channels, dim, 1)
        self.drop = nn.Dropout(dropout)
        self.proj = nn.Linear(dim * width, embed_dim)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.proj(self.drop(F.gelu(self.reduce(f.mean(2))).flatten(1)))


class TimmVisualEncoder(nn.Module):
    """trunk (timm features) + average pooling + projection, like open_clip's TimmModel.

    The backbone is a timm model name; `columns` > 0 adds a `ColumnHead` of that many channels per
    column (CNN backbones)."""

    def __init__(self, backbone: str = "mobilenetv3_small_100", embed_dim: int = 256,
                 img_size: tuple[int, int] = (64, 256), dropout: float = 0.0, columns: int = 0) -> None:
        super().__init__()
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
        self.drop = nn.Dropout(dropout)
        self.proj = nn.Linear(ch, embed_dim)
        self.columns = None
        if columns:
            if feat.ndim != 4:
                raise ValueError(f"columns: backbone {backbone!r} gives tokens, not a feature map")
            self.columns = ColumnHead(ch, feat.shape[2] if self.channels_last_out else feat.shape[-1],
                                      columns, embed_dim, dropout)

    def forward(self, x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        f = self.trunk(x)
        if f.ndim == 4 and self.channels_last_out:
            f = f.permute(0, 3, 1, 2)
        pooled = f.mean(1) if f.ndim == 3 else f.mean((2, 3))  # tokens (B, N, C) or a feature map
        z = self.proj(self.drop(pooled))
        if self.columns is not None:
            z = z + self.columns(f)
        return F.normalize(z, dim=-1) if normalize else z
