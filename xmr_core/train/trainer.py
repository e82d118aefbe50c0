"""Training: synthetic pre-training (stage 1) with batches of several languages per concept.

Batches are rendered on the fly in a worker process; batch `s` depends only on (seed, s), so a run is
deterministic for a seed and resumes exactly from its last checkpoint.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from xmr_core.data.configs import check_fields, drop_retired, strict_from_dict
from xmr_core.data.lexicon import LANGS, Lexicon, load_lexicon
from xmr_core.data.preprocess import PreprocessConfig, preprocess
from xmr_core.data.render import MissingGlyph, SyntheticWords
from xmr_core.model.checkpoint import load_checkpoint, load_model_dir, save_checkpoint, save_model_dir
from xmr_core.model.config import ModelConfig
from xmr_core.model.dual import DualEncoder
from xmr_core.train.losses import XMRLoss, anchor_drift_loss

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    steps: int = 20000  # optimisation steps
    concepts_per_batch: int = 48  # each concept appears in every language of `langs`
    langs: tuple[str, ...] = LANGS
    lr: float = 2e-3  # peak AdamW learning rate (cosine decay after warmup)
    warmup: int = 300
    weight_decay: float = 0.05
    itc: float = 1.0  # loss weights
    inv: float = 0.5
    one_to_k: float = 1.0
    margin: float = 0.0  # additive margin of the 1-to-K loss (cosine units); 0 = plain softmax
    # a trained DAN top held near USE's on words outside the lexicon (anchor_drift_loss); 0 = off
    top_distill: float = 0.0
    distill_words: int = 20000  # pool of USE vocabulary words it is measured on
    distill_batch: int = 512  # of them per step
    kinds: dict = field(default_factory=lambda: {"font": 0.7, "pen": 0.2, "canvas": 0.1})
    strength: float = 1.0  # distortion strength of the renderer
    cursive: float = 0.0  # share of pen and canvas renders written joined-up (running hand)
    abbreviate: float = 0.0  # most Chinese strokes such a running hand leaves out (a share per render)
    cases: dict = field(default_factory=lambda: {"lower": 1.0})  # letter case of Latin words, e.g. title/upper too
    # sampling weight per source (font file or stroke set, named as `xmr eval` names styles); others 1
    source_weights: dict = field(default_factory=dict)
    seed: int = 0
    threads: int = 2  # torch threads in the trainer
    workers: int = 1  # render processes
    device: str = "auto"  # 'auto' (a GPU when torch sees one, else the CPU), 'cpu' or 'cuda'
    ckpt_every: int = 200
    eval_every: int = 1000
    eval_concepts: int = 300  # val-font probe size during training
    channels_last: bool = True  # NHWC activations: faster convolutions on CPU
    manifest: str = ""  # stage 2: labelled images (CSV per DESIGN.md) mixed into every batch
    replay: float = 0.5  # stage 2: share of each batch that stays synthetic (so old styles are kept)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """A training config from JSON; ValueError for an unknown key or a bad value. Options removed
        after a flat A/B (RETIRED) are accepted at their off value, so older configs and models still load."""
        d = drop_retired(dict(d), RETIRED, "training")
        if isinstance(d.get("langs"), list):
            d["langs"] = tuple(d["langs"])
        return strict_from_dict(cls, d, "training")

    def __post_init__(self) -> None:
        check_fields(self, "training")
        if not set(self.langs) <= set(LANGS) or not self.langs:
            raise ValueError(f"training langs {self.langs}: expected a non-empty subset of {LANGS}")
        if not 0 <= self.replay <= 1:
            raise ValueError(f"training replay {self.replay}: expected a value in [0, 1]")
        check_device_name(self.device)


# removed after a flat A/B, with the value that meant off (None: any value; docs/training.md, "Removed options")
RETIRED = {"phoc": 0.0, "pcgrad": False, "teachers": [], "teacher": 0.0, "teacher_scale": None, "rescale": 0.0}


def hard_source_weights(by_style: dict[str, dict], floor: float = 0.5) -> dict[str, float]:
    """Sampling weights that favour the sources a model reads worst: `floor` + (1 - floor) * error / mean
    error, from an evaluation's per-style Acc@1 (`within_by_style` of `xmr eval --split train-fonts`).
    They average 1, so the total stays as it was; a source read without error keeps `floor`."""
    if not 0 <= floor <= 1:
        raise ValueError(f"floor {floor}: expected a value in [0, 1]")
    err = {k: 1.0 - float(v["acc@1"]) for k, v in by_style.items()}
    mean = sum(err.values()) / len(err) if err else 0.0
    if mean <= 0:
        return {k: 1.0 for k in err}
    return {k: round(floor + (1 - floor) * e / mean, 4) for k, e in sorted(err.items())}


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_config(path: Path | str, _seen: tuple = ()) -> dict:
    """A run config: JSON with 'model' and 'train' sections. `"extends": "other.json"` (a path relative to
    this file) starts from that config; this file's keys then replace its keys, nested objects merged key by key."""
    path = Path(path).resolve()
    if path in _seen:
        raise ValueError(f"config {path} extends itself (through {' -> '.join(p.name for p in _seen)})")
    if not path.exists():
        raise FileNotFoundError(f"no config at {path}")
    cfg = json.loads(path.read_text(encoding="utf-8"))
    base = cfg.pop("extends", None)
    return _merge(read_config(path.parent / base, _seen + (path,)), cfg) if base else cfg


class BatchStream(IterableDataset):
    """Yields (images, concept indices, language indices) for steps start, start+1, ..."""

    def __init__(self, lexicon: Lexicon, cfg: TrainConfig, pre: PreprocessConfig, start: int) -> None:
        self.lexicon, self.cfg, self.pre, self.start = lexicon, cfg, pre, start

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        ds = SyntheticWords(self.lexicon, "train", self.cfg.langs, self.cfg.kinds, self.cfg.seed, self.cfg.strength,
                            self.cfg.cases, self.cfg.source_weights, self.cfg.cursive,
                            self.cfg.abbreviate)
        labelled = load_labelled(self.cfg.manifest, self.lexicon, self.cfg.langs, self.pre) if self.cfg.manifest else None
        step = self.start + wid
        while True:
            yield make_batch(ds, self.cfg, self.pre, step, labelled)
            step += nw


def load_labelled(manifest: str, lexicon: Lexicon, langs: tuple[str, ...], pre: PreprocessConfig):
    """(inputs, concept indices, language indices) of a labelled-image manifest."""
    from xmr_core.evaluate.retrieval import load_manifest_set

    data = load_manifest_set(manifest, lexicon, pre)
    ids = lexicon.ids()
    return data.x, np.array([ids.index(c) for c in data.concept_ids]), np.array([langs.index(lg) for lg in data.langs])


def jitter(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Small random scale, shift and rotation of a preprocessed input (labelled samples are few)."""
    import cv2

    h, w = x.shape[-2:]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.uniform(-4, 4)), float(rng.uniform(0.85, 1.05)))
    m[:, 2] += rng.uniform(-0.06, 0.06, 2) * (w, h)
    return cv2.warpAffine(x[0], m, (w, h), flags=cv2.INTER_LINEAR)[None]


def make_batch(ds: SyntheticWords, cfg: TrainConfig, pre: PreprocessConfig, step: int, labelled=None):
    rng = np.random.default_rng([cfg.seed, step])
    n = len(ds.lexicon)
    xs, cs, ls = [], [], []
    n_syn = cfg.concepts_per_batch
    if labelled is not None:
        lx, lc, ll = labelled
        n_lab = int(round((1 - cfg.replay) * cfg.concepts_per_batch * len(cfg.langs)))
        n_syn = max(1, int(round(cfg.replay * cfg.concepts_per_batch)))
        for j in rng.integers(0, len(lx), n_lab):
            xs.append(jitter(lx[j], rng))
            cs.append(int(lc[j]))
            ls.append(int(ll[j]))
    concepts = rng.choice(n, size=min(n_syn, n), replace=False)
    for ci in concepts:
        cid = ds.lexicon.concepts[ci].concept_id
        for li, lang in enumerate(cfg.langs):
            try:
                image = ds.sample(cid, lang, rng).image
                x = preprocess(image, pre)
            except (MissingGlyph, ValueError):
                continue
            xs.append(x)
            cs.append(int(ci))
            ls.append(li)
    return torch.from_numpy(np.stack(xs)), torch.tensor(cs), torch.tensor(ls)


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def drift_reference(model: DualEncoder, lexicon: Lexicon, cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """For `top_distill`: USE's frozen features of `distill_words` words of its vocabulary (neither the
    lexicon's nor the unseen-word benchmark's) and what the original DAN top makes of them."""
    from xmr_core.evaluate.retrieval import unseen_word_pairs
    from xmr_core.model.text import UseTop, normalize_text, vocabulary_words

    top = getattr(model.text, "top", None)
    if top is None or not any(p.requires_grad for p in top.parameters()):
        raise ValueError("top_distill keeps a trained DAN top near USE's: it needs the use-m3 text backend "
                         "with \"trainable_top\": true")
    held = [w for pair in unseen_word_pairs(lexicon) for w in pair] + [w for lg in LANGS for w in lexicon.words(lg)]
    words = vocabulary_words(cfg.distill_words, cfg.seed, {normalize_text(w) for w in held})
    with torch.no_grad():
        pooled = torch.cat([model.text.features(words[i:i + 2048]) for i in range(0, len(words), 2048)])
        return pooled, UseTop(model.text.base).to(pooled.device)(pooled)


def check_device_name(name: str) -> None:
    """ValueError unless `name` is a device a config may name: 'auto', 'cpu', 'cuda' or 'cuda:N'."""
    if name not in ("auto", "cpu", "cuda") and not name.startswith("cuda:"):
        raise ValueError(f"device {name!r}: expected 'auto', 'cpu' or 'cuda'")


def resolve_device(name: str) -> torch.device:
    """The torch device for a config's `device`; a clear error for a GPU that is not there."""
    check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but torch sees no GPU here; use 'auto' or 'cpu'")
    return torch.device(name)


def resize_columns(weight: torch.Tensor, dim: int, columns: int) -> torch.Tensor:
    """A column head's projection (embed_dim x dim*columns_old, flattened channel-major) carried to
    `columns` columns, for a run that starts from a model trained at another input width: each reduced
    channel's weights interpolated linearly along the columns and scaled so that their sum stays the same."""
    embed_dim, n_old = weight.shape
    old = n_old // dim
    if old == columns:
        return weight
    w = torch.nn.functional.interpolate(weight.reshape(embed_dim * dim, 1, old), size=columns, mode="linear",
                                        align_corners=True)
    return (w * (old / columns)).reshape(embed_dim, dim * columns)


def start_weights(model: DualEncoder, lexicon: Lexicon, init: Path | str | None) -> None:
    """Weights of a new run: a model directory's (`init`; modules its config lacks keep their own
    initialisation, and a column head trained at another input width is carried to this one's columns),
    else fresh, with the text head whitened over the lexicon's words."""
    if init:
        start, _, _ = load_model_dir(init)  # its weights do not depend on the lexicon
        weights = start.state_dict()
        head = getattr(model.visual, "columns", None)
        if head is not None and "visual.columns.proj.weight" in weights:
            dim = head.reduce.out_channels
            weights["visual.columns.proj.weight"] = resize_columns(weights["visual.columns.proj.weight"], dim,
                                                                   head.proj.in_features // dim)
        missing, unexpected = model.load_state_dict(weights, strict=False)
        if unexpected:
            raise ValueError(f"{init}: its weights do not fit this config (unexpected {unexpected[:3]})")
        if missing:  # modules the config adds (e.g. vision.columns) start from their own init
            log.info("init %s: new in this config, initialised fresh: %s", init,
                     sorted({k.rsplit(".", 1)[0] for k in missing}))
    elif hasattr(model.text, "init_head_whitened"):
        model.text.init_head_whitened(lexicon.words("zh") + lexicon.words("en") + lexicon.words("es"))


def train(model_cfg: ModelConfig, cfg: TrainConfig, out: Path | str, lexicon: Lexicon | None = None,
          progress: Callable[[dict], None] | None = None, probe: Callable[[DualEncoder], dict] | None = None,
          init: Path | str | None = None) -> Path:
    """Run (or resume) training into `out`; writes checkpoints there and the final model dir.

    `init` starts a new run (step 0, fresh schedule) from a model directory's weights (same
    architecture), as fine-tuning does; an existing checkpoint in `out` always takes precedence."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lexicon = lexicon or load_lexicon()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    model = DualEncoder(model_cfg).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    other = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": other, "weight_decay": 0.0}], lr=cfg.lr)
    state = load_checkpoint(out / "checkpoint", model, opt)
    if state is None:
        state = {"step": 0, "history": [], "seconds": 0.0}
        start_weights(model, lexicon, init)
    drift = drift_reference(model, lexicon, cfg) if cfg.top_distill else None
    (out / "train_config.json").write_text(json.dumps({"model": model_cfg.to_dict(), "train": asdict(cfg)}, indent=2))
    loss_fn = XMRLoss(cfg.itc, cfg.inv, cfg.one_to_k, cfg.margin)
    words = [c.word(lang) for c in lexicon for lang in cfg.langs]
    word_concept = torch.arange(len(lexicon), device=device).repeat_interleave(len(cfg.langs))
    loader = DataLoader(BatchStream(lexicon, cfg, model_cfg.preprocess, state["step"]), batch_size=None,
                        num_workers=cfg.workers, prefetch_factor=4 if cfg.workers else None,
                        persistent_workers=False, pin_memory=device.type == "cuda")
    if cfg.channels_last:
        model.visual.to(memory_format=torch.channels_last)
    model.train()
    t0, seen, t_last = time.time(), 0, time.time()
    step = state["step"]
    for images, concepts, langs in loader:
        if step >= cfg.steps:
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        images, concepts, langs = (t.to(device, non_blocking=True) for t in (images, concepts, langs))
        if cfg.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        img = model.visual(images)
        all_text = model.encode_text(words)
        idx = concepts * len(cfg.langs) + langs
        losses = loss_fn(img, all_text[idx], model.logit_scale.exp().clamp(max=100), concepts,
                         all_text, word_concept)
        if drift is not None:
            n = len(drift[0])
            pick = torch.from_numpy(np.random.default_rng([cfg.seed, step, 1]).choice(n, min(cfg.distill_batch, n),
                                                                                      replace=False)).to(device)
            losses["drift"] = anchor_drift_loss(model.text.top(drift[0][pick]), drift[1][pick])
            losses["total"] = losses["total"] + cfg.top_distill * losses["drift"]
        opt.zero_grad(set_to_none=True)
        losses["total"].backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        step += 1
        seen += len(images)
        rec = {"step": step, "lr": lr_at(step, cfg), **{k: round(float(v.detach()), 4) for k, v in losses.items()},
               "images_per_s": round(seen / (time.time() - t0), 1)}
        if probe and (step % cfg.eval_every == 0 or step == cfg.steps):
            model.eval()
            with torch.no_grad():
                rec["probe"] = probe(model)
            model.train()
            log.info("probe at step %d: %s", step, rec["probe"])
        if progress:
            progress(rec)
        if step % 20 == 0 or "probe" in rec:
            state["history"].append(rec)
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            state["seconds"] += time.time() - t_last
            t_last = time.time()
            state["step"] = step
            save_checkpoint(out / "checkpoint", model, opt, state)
    model.eval().cpu()
    save_model_dir(model, lexicon, out / "model", extra={"train": asdict(cfg), "train_step": step,
                                                         "train_seconds": state["seconds"]})
    return out / "model"
