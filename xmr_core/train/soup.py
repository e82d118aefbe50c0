"""Model soups: the weights of several runs that started from one model, averaged into one model.

Runs continued from the same weights stay in one basin of the loss, so their average is a model of
its own, often better than each of them (Wortsman et al., "Model soups", ICML 2022), at no cost at
query time. BatchNorm running statistics are averaged like the weights.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch

from xmr_core.model.checkpoint import load_model_dir, model_state, save_model_dir
from xmr_core.train.trainer import TrainConfig


def _differences(base: dict, other: dict) -> dict:
    """The training settings of `other` that differ from `base`'s (source weights left out; a setting an
    older config lacks has its default)."""
    defaults = asdict(TrainConfig())
    base, other = {**defaults, **base}, {**defaults, **other}
    keys = (set(base) | set(other)) - {"source_weights", "steps"}
    return {k: other.get(k) for k in sorted(keys) if base.get(k) != other.get(k)}


def soup(paths: list[Path | str], out: Path | str) -> Path:
    """Average the weights of the model directories `paths` (same architecture and lexicon) into the model
    directory `out`; its config keeps the first run's training settings and lists every ingredient."""
    if len(paths) < 2:
        raise ValueError("a soup needs two model directories or more")
    loaded = [load_model_dir(p) for p in paths]
    model, lexicon, config = loaded[0]
    for p, (_, lex, cfg) in zip(paths[1:], loaded[1:]):
        if cfg["model"] != config["model"]:
            raise ValueError(f"{p}: another architecture than {paths[0]}; only runs of one model can be averaged")
        if lex.hash() != lexicon.hash():
            raise ValueError(f"{p}: another lexicon than {paths[0]}; only runs of one model can be averaged")
    states = [model_state(m) for m, _, _ in loaded]
    mean = {k: (torch.stack([s[k].double() for s in states]).mean(0).to(v.dtype) if v.is_floating_point() else v)
            for k, v in states[0].items()}
    model.load_state_dict(mean, strict=False)
    train = config.get("train", {})
    ingredients = [{"model": str(p), "train_step": cfg.get("train_step"), "train_seconds": cfg.get("train_seconds"),
                    "seed": cfg.get("train", {}).get("seed"), "differs": _differences(train, cfg.get("train", {}))}
                   for p, (_, _, cfg) in zip(paths, loaded)]
    extra = {"train": train, "train_step": config.get("train_step"),
             "train_seconds": sum(i["train_seconds"] or 0 for i in ingredients), "soup": ingredients}
    return save_model_dir(model, lexicon, out, extra=extra)
