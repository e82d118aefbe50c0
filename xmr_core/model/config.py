"""Model configuration: small dataclasses that round-trip through JSON, built strictly (data/configs.py)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from xmr_core.data.configs import check_fields, check_keys, drop_retired, strict_from_dict
from xmr_core.data.preprocess import PreprocessConfig

SCHEMA_VERSION = 1
TEXT_BACKENDS = ("use-m3", "hf")
# vision options removed after a flat A/B (or never used), with the value that meant off (docs/training.md)
RETIRED_VISION = {"keep_width": False, "pool": "avg"}


@dataclass
class VisionConfig:
    backbone: str = "mobilenetv3_small_100"  # any timm model name
    dropout: float = 0.1  # before the projection
    columns: int = 0  # channels per feature-map column in an order-keeping branch (0: off)

    def __post_init__(self) -> None:
        check_fields(self, "vision")
        if not 0 <= self.dropout < 1 or self.columns < 0:
            raise ValueError(f"vision config {self}: dropout in [0, 1), columns >= 0")


@dataclass
class TextConfig:
    backend: str = "use-m3"  # 'use-m3' (bundled package) or 'hf' (a local Hugging Face encoder directory)
    hf_path: str = ""  # local directory for the 'hf' backend; never a hub name
    trainable_top: bool = True  # train USE's DAN top (the base stays frozen)

    def __post_init__(self) -> None:
        check_fields(self, "text")
        if self.backend not in TEXT_BACKENDS:
            raise ValueError(f"text backend {self.backend!r}: expected one of {TEXT_BACKENDS}")


@dataclass
class ModelConfig:
    embed_dim: int = 256  # shared embedding space
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    init_logit_scale: float = 2.659  # log(1/0.07), as CLIP

    def __post_init__(self) -> None:
        check_fields(self, "model")
        if self.embed_dim < 2:
            raise ValueError(f"model config embed_dim={self.embed_dim!r}: expected an int >= 2")

    @classmethod
    def from_dict(cls, d: dict | ModelConfig) -> ModelConfig:
        if isinstance(d, cls):
            return d
        check_keys(cls, d, "model")  # each section is checked by its own dataclass
        vision, text = d.get("vision") or {}, d.get("text") or {}
        return cls(
            vision=vision if isinstance(vision, VisionConfig)
            else strict_from_dict(VisionConfig, drop_retired(vision, RETIRED_VISION, "vision"), "vision"),
            text=text if isinstance(text, TextConfig) else strict_from_dict(TextConfig, text, "text"),
            preprocess=PreprocessConfig.from_dict(d.get("preprocess")),
            **{k: d[k] for k in ("embed_dim", "init_logit_scale") if k in d},
        )

    def to_dict(self) -> dict:
        return asdict(self)
