"""Second text backend: any local Hugging Face encoder directory (XLM-R, multilingual DistilBERT, ...).

Loaded with `local_files_only=True`: nothing is ever fetched from a hub. Embeddings and all but the
last transformer layer are frozen (the partially frozen anchor); mean pooling, then a projection head.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


class HFTextTower(nn.Module):
    def __init__(self, path: str, embed_dim: int = 256, trainable_layers: int = 1, max_length: int = 32) -> None:
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        if not path or not Path(path).is_dir():
            raise ValueError(f"text backend 'hf' needs a local model directory, got {path!r}")
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.encoder = AutoModel.from_pretrained(path, local_files_only=True)
        self.max_length = max_length
        self.encoder.requires_grad_(False)
        layers = _layers(self.encoder)
        for layer in layers[len(layers) - trainable_layers:] if trainable_layers else []:
            layer.requires_grad_(True)
        self.head = nn.Linear(self.encoder.config.hidden_size, embed_dim)

    def forward(self, texts: list[str], normalize: bool = True) -> torch.Tensor:
        batch = self.tokenizer([t.lower() for t in texts], padding=True, truncation=True,
                               max_length=self.max_length, return_tensors="pt")
        hidden = self.encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        z = self.head(pooled)
        return F.normalize(z, dim=-1) if normalize else z


def _layers(model: nn.Module) -> list[nn.Module]:
    for attr in ("encoder.layer", "transformer.layer", "layers"):
        obj = model
        try:
            for part in attr.split("."):
                obj = getattr(obj, part)
            return list(obj)
        except AttributeError:
            continue
    return []
