"""The reading head: what XMR trains on the frozen reader, a correction of its CTC layer.

The reader's last layer turns each step's 120 sequence features f into logits z = W f + b over 18,710
symbols. The head learns, for the symbols the lexicon's words use (and the CTC blank), a change of
their rows: z'_k = z_k + dW_k f + db_k, the other symbols untouched. From the reader's own posteriors p
that is p'_k = p_k e^(d_k) / (sum p + sum_K p_k (e^(d_k) - 1)) with d = 0 off K: no full logits needed.
A zero head is the reader itself. Trained with the CTC loss on renders of the `train` fonts (features
cached once, the trunk never run again), pulled towards zero by an L2 term (`HeadConfig`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from xmr_core.data.configs import check_fields, strict_from_dict

HEAD_FILE = "reading_head.safetensors"


@dataclass(frozen=True)
class HeadConfig:
    steps: int = 1500
    batch: int = 128
    lr: float = 3e-4
    l2: float = 0.01  # weight of the squared change of the rows, summed
    seed: int = 0

    def __post_init__(self) -> None:
        check_fields(self, "head")
        if self.steps < 1 or self.batch < 1 or not self.lr > 0 or not self.l2 >= 0:
            raise ValueError(f"head config {self}: steps and batch >= 1, lr > 0, l2 >= 0")

    @classmethod
    def from_dict(cls, d: dict) -> HeadConfig:
        return strict_from_dict(cls, d, "head")


HEAD_DATA_KEYS = {"per_word": int, "seeds": list, "cases": dict}


def load_head_config(path: Path | str) -> dict:
    """A reading-head build config (configs/reading_head.json): the renders it trains on (`per_word` per
    word and language, `seeds`, letter `cases`) and the `head` training settings; ValueError naming any
    unknown or missing key."""
    import json

    cfg = json.loads(Path(path).read_text())
    want = {*HEAD_DATA_KEYS, "head"}
    if set(cfg) != want:
        raise ValueError(f"{path}: keys {sorted(cfg)}; a reading-head config has exactly {sorted(want)}")
    for k, t in HEAD_DATA_KEYS.items():
        if not isinstance(cfg[k], t):
            raise ValueError(f"{path}: {k} must be a {t.__name__}")
    HeadConfig.from_dict(cfg["head"])
    return cfg


@dataclass
class ReadingHead:
    symbols: np.ndarray  # (K,) the reader's symbol indices whose rows change (0, the blank, among them)
    dw: np.ndarray  # (K, 120)
    db: np.ndarray  # (K,)

    @classmethod
    def zero(cls, symbols: np.ndarray, features: int = 120) -> ReadingHead:
        symbols = np.unique(np.asarray(symbols, np.int64))
        return cls(symbols, np.zeros((len(symbols), features), np.float32), np.zeros(len(symbols), np.float32))

    def apply(self, posteriors: np.ndarray, features: np.ndarray) -> np.ndarray:
        """(steps, symbols) posteriors of one crop as the changed layer gives them."""
        e = np.exp(features.astype(np.float32) @ self.dw.T + self.db)  # (steps, K)
        pk = posteriors[:, self.symbols]
        out = posteriors.copy()
        out[:, self.symbols] = pk * e
        return out / (posteriors.sum(1, keepdims=True) + (pk * (e - 1.0)).sum(1, keepdims=True))

    def save(self, path: Path | str) -> None:
        from safetensors.numpy import save_file

        save_file({"symbols": self.symbols, "dw": self.dw, "db": self.db}, str(path))

    @classmethod
    def load(cls, path: Path | str) -> ReadingHead:
        from safetensors.numpy import load_file

        t = load_file(str(path))
        return cls(t["symbols"].astype(np.int64), t["dw"].astype(np.float32), t["db"].astype(np.float32))


def head_symbols(table) -> np.ndarray:
    """The symbols a word table's words use, and the blank."""
    return np.unique(np.concatenate([[0], table.labels[table.labels >= 0]]))


@dataclass
class Example:
    features: np.ndarray  # (steps, 120), float16 is fine
    label: list[int]  # the reader's symbol indices of the written word


def ctc_loss(head_rows: tuple[torch.Tensor, torch.Tensor], w0: torch.Tensor, b0: torch.Tensor,
             rest: torch.Tensor, feats: torch.Tensor, steps: torch.Tensor,
             targets: torch.Tensor, lengths: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """CTC loss of a padded batch (mean, or with reduction "none" each example's -log P(label)): logits
    of K from the changed rows, the untouched symbols as one class of log mass `rest` (N, T) per step."""
    dw, db = head_rows
    z = feats @ (w0 + dw).T + (b0 + db)
    logp = F.log_softmax(torch.cat([z, rest[..., None]], -1), -1).transpose(0, 1)
    return F.ctc_loss(logp, targets, steps, lengths, blank=0, zero_infinity=True, reduction=reduction)


def _padded(batch: list, features: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    T = max(len(f) for f, _, _ in batch)
    feats = torch.zeros(len(batch), T, features)
    rest = torch.full((len(batch), T), -1e4)
    for n, (f, r, _) in enumerate(batch):
        feats[n, :len(f)] = torch.from_numpy(f)
        rest[n, :len(r)] = torch.from_numpy(r)
    return (feats, rest, torch.tensor([len(f) for f, _, _ in batch]), torch.tensor([s for _, _, t in batch for s in t]),
            torch.tensor([len(t) for _, _, t in batch]))


def fit_head(examples: list[Example], w: np.ndarray, b: np.ndarray, symbols: np.ndarray,
             cfg: HeadConfig | None = None, progress: Callable[[int, int, float], None] | None = None,
             init: ReadingHead | None = None, replay: list[Example] | None = None, replay_share: float = 0.5,
             negatives: list[Example] | None = None, negative_weight: float = 0.5
             ) -> tuple[ReadingHead, list[float]]:
    """Train a head on cached features. `w` (120, n_symbols), `b` are the reader's CTC layer; returns the
    head and the loss every 50 steps (the first is before any step). With `init`, training starts from
    that head (its rows where `symbols` has them, zero for new symbols) and the L2 term pulls towards it;
    with `replay`, `replay_share` of each batch is drawn from those examples, the rest from `examples`;
    `negatives` are images with a word they do *not* say (a hit marked wrong): each step adds
    `negative_weight` x the mean of -log(1 - P(that word)) over up to 8 of them (unlikelihood)."""
    cfg = cfg or HeadConfig()
    symbols = np.unique(np.asarray(symbols, np.int64))
    pos = {int(s): n for n, s in enumerate(symbols)}
    rest_mask = np.ones(w.shape[1], bool)
    rest_mask[symbols] = False
    w_rest, b_rest = np.ascontiguousarray(w[:, rest_mask]), b[rest_mask]

    def prepared(exs: list[Example]) -> list:
        data = []
        for ex in exs:
            if ex.label and all(s in pos for s in ex.label):
                f = ex.features.astype(np.float32)
                z = f @ w_rest + b_rest  # the untouched symbols' log mass, once per example
                m = z.max(1, keepdims=True)
                rest = (m + np.log(np.exp(z - m).sum(1, keepdims=True)))[:, 0]
                data.append((f, rest.astype(np.float32), [pos[s] for s in ex.label]))
        return data

    data, again, wrong = prepared(examples), prepared(replay or []), prepared(negatives or [])
    if not data:
        raise ValueError("no example spells its word in the head's symbols")
    if not 0 <= replay_share < 1:
        raise ValueError(f"replay share {replay_share}: in [0, 1)")
    torch.manual_seed(cfg.seed)
    w0 = torch.from_numpy(np.ascontiguousarray(w[:, symbols].T))
    b0 = torch.from_numpy(np.ascontiguousarray(b[symbols]))
    dw0, db0 = np.zeros(tuple(w0.shape), np.float32), np.zeros(len(symbols), np.float32)
    if init is not None:
        rows = {int(s): n for n, s in enumerate(init.symbols)}
        for n, s in enumerate(symbols):
            if int(s) in rows:
                dw0[n], db0[n] = init.dw[rows[int(s)]], init.db[rows[int(s)]]
    dw0, db0 = torch.from_numpy(dw0), torch.from_numpy(db0)
    dw = dw0.clone().requires_grad_(True)
    db = db0.clone().requires_grad_(True)
    opt = torch.optim.Adam([dw, db], lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    n_again = int(round(replay_share * cfg.batch)) if again else 0
    n_own = min(cfg.batch - n_again, len(data)) if again else min(cfg.batch, len(data))
    losses: list[float] = []
    t0 = time.time()
    for step in range(cfg.steps + 1):
        batch = [data[i] for i in rng.integers(0, len(data), n_own)]
        batch += [again[i] for i in rng.integers(0, len(again), n_again)] if n_again else []
        feats, rest, steps, targets, lengths = _padded(batch, w.shape[0])
        loss = ctc_loss((dw, db), w0, b0, rest, feats, steps, targets, lengths)
        if wrong:
            feats, rest, steps, targets, lengths = _padded(
                [wrong[i] for i in rng.integers(0, len(wrong), min(8, len(wrong)))], w.shape[0])
            nll = ctc_loss((dw, db), w0, b0, rest, feats, steps, targets, lengths, reduction="none")
            p = torch.exp(-nll).clamp(max=1 - 1e-6)
            loss = loss + negative_weight * (-torch.log1p(-p)).mean()
        if step % 50 == 0:
            losses.append(float(loss.detach()))
            if progress:
                progress(step, cfg.steps, time.time() - t0)
        if step == cfg.steps:
            break
        opt.zero_grad()
        (loss + cfg.l2 * (((dw - dw0) ** 2).sum() + ((db - db0) ** 2).sum())).backward()
        opt.step()
    return ReadingHead(symbols, dw.detach().numpy().copy(), db.detach().numpy().copy()), losses
