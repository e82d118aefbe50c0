"""Model configuration: small dataclasses that round-trip through JSON."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field

from xmr_core.data.preprocess import PreprocessConfig


def strict_from_dict(cls, d: dict, what: str):
    """A config dataclass from a dict; ValueError naming any unknown key and the valid ones."""
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = set(d) - set(names)
    if unknown:
        raise ValueError(f"unknown {what} config keys {sorted(unknown)}: expected {names}")
    return cls(**d)

SCHEMA_VERSION = 1
TEXT_BACKENDS = ("use-m3", "hf")


@dataclass
class VisionConfig:
    backbone: str = "mobilenetv3_small_100"  # any timm model name
    pool: str = "avg"  # 'avg' or 'gem'
    dropout: float = 0.1  # before the projection
    columns: int = 0  # channels per feature-map column in an order-keeping branch (0: off)
    keep_width: bool = False  # the last downsampling halves height only: a final map twice as wide


@dataclass
class TextConfig:
    backend: str = "use-m3"  # 'use-m3' (bundled package) or 'hf' (a local Hugging Face encoder directory)
    hf_path: str = ""  # local directory for the 'hf' backend; never a hub name
    trainable_top: bool = True  # train USE's DAN top (the base stays frozen)

    def __post_init__(self) -> None:
        if self.backend not in TEXT_BACKENDS:
            raise ValueError(f"text backend {self.backend!r}: expected one of {TEXT_BACKENDS}")


@dataclass
class ModelConfig:
    embed_dim: int = 256  # shared embedding space
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    init_logit_scale: float = 2.659  # log(1/0.07), as CLIP

    @classmethod
    def from_dict(cls, d: dict | "ModelConfig") -> "ModelConfig":
        if isinstance(d, cls):
            return d
        d = dict(d)
        return cls(
            embed_dim=d.get("embed_dim", 256),
            vision=VisionConfig(**d.get("vision", {})),
            text=TextConfig(**d.get("text", {})),
            preprocess=PreprocessConfig.from_dict(d.get("preprocess")),
            init_logit_scale=d.get("init_logit_scale", 2.659),
        )

    def to_dict(self) -> dict:
        return asdict(self)
