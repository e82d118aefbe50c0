"""Adapting the reader's trunk to a hand (issue 28): the one change measured to move a hand's reading.

The PP-OCRv6 recognition network is ONNX; `onnx2torch` converts it to torch exactly (the three 2x2
stride-1 `SAME_UPPER` layers given explicit pads, which it lacks). The model's reading head is folded into
the network's CTC layer first, then the network trains with the CTC loss on the queue's samples (half of
each batch, each labelled with its word in the letter case the current model reads best) and renders of
the `train` fonts (the other half, replay: rendered once and cached): the parameters of the last
`fraction` of its layers and the weights the graph keeps as constants above that cut (the MatMul weights
and the biases added after each convolution); nothing below the cut trains, so the backward pass stops
there, and batch-norm statistics stay the reader's. The trained tensors are written back into the reader's
own graph by their ONNX names (`Reader(weights=...)`), checked against the torch network, and saved with
the model (`reader.WEIGHTS_FILE`); docs/adaptation.md has the measurements.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xmr_core.data.configs import check_fields, strict_from_dict
from xmr_core.data.lexicon import LANGS, Lexicon
from xmr_core.data.paths import cache_dir
from xmr_core.data.preprocess import word_ink
from xmr_core.data.render import MissingGlyph, SyntheticWords
from xmr_core.model.ctc import ctc_log_likelihood
from xmr_core.model.reader import WEIGHTS_FILE, Reader, ctc_initializers, reader_input
from xmr_core.model.reading import ReadingModel, _ink_columns
from xmr_core.model.reading_head import ReadingHead
from xmr_core.train.adapt import spellings

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class TrunkConfig:
    steps: int = 60
    batch: int = 32  # half the queue's samples, half replay
    lr: float = 1e-4
    fraction: float = 1 / 3  # the share of the layers whose parameters train, from the top
    chunks: int = 2  # each batch read in this many parts of similar width (less padding than one)
    seed: int = 0

    def __post_init__(self) -> None:
        check_fields(self, "trunk")
        if (self.steps < 1 or self.batch < 2 or not self.lr > 0 or not 0 < self.fraction <= 1
                or not 1 <= self.chunks <= self.batch):
            raise ValueError(f"trunk config {self}: steps >= 1, batch >= 2, lr > 0, fraction in (0, 1], "
                             "chunks in [1, batch]")

    @classmethod
    def from_dict(cls, d: dict) -> TrunkConfig:
        return strict_from_dict(cls, d, "trunk")


def folded_graph(reader: Reader, head: ReadingHead | None):
    """The reader's graph (as it runs: its own weights) with the head's change of the CTC layer's rows
    folded into that layer: the network alone then reads as reader + head."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load_from_string(reader.graph)
    if head is not None:
        init = {t.name: t for t in graph.graph.initializer}
        wn, bn = ctc_initializers(graph)
        w, b = numpy_helper.to_array(init[wn]).copy(), numpy_helper.to_array(init[bn]).copy()
        w[:, head.symbols] += head.dw.T
        b[head.symbols] += head.db
        init[wn].CopyFrom(numpy_helper.from_array(w.astype(np.float32), wn))
        init[bn].CopyFrom(numpy_helper.from_array(b.astype(np.float32), bn))
    return graph


def torch_network(graph):
    """The graph as a torch module, and its tensors' ONNX initializer names (parameters and buffers by
    their torch names; a constant that several nodes use is left out: its copies could train apart)."""
    import onnx
    from onnx2torch import convert
    from onnx2torch.onnx_graph import OnnxGraph, ValueType

    g = onnx.ModelProto()
    g.CopyFrom(graph)
    for n in g.graph.node:
        for a in list(n.attribute):
            if a.name == "auto_pad" and a.s == b"SAME_UPPER":  # 2x2 kernels, stride 1: pad right and below
                n.attribute.remove(a)
                n.attribute.append(onnx.helper.make_attribute("pads", [0, 0, 1, 1]))
    net = convert(g, attach_onnx_mapping=True).eval()
    og = OnnxGraph(g.graph)
    names, k = {}, 0
    for node_name, node in og.nodes.items():  # the order onnx2torch numbers its constant buffers in
        mod = net.get_submodule(node_name)
        for v in mod.onnx_mapping.inputs:
            if og.value_type(v) == ValueType.GRAPH_INITIALIZER:
                names[f"initializers.onnx_initializer_{k}"] = v
                k += 1
        for pname, _ in mod.named_parameters():
            slot = {"weight": 1, "bias": 2}[pname.rsplit(".", 1)[-1]]
            names[f"{node_name}.{pname}"] = node.input_values[slot]
    counts: dict[str, int] = {}
    for v in names.values():
        counts[v] = counts.get(v, 0) + 1
    return net, {t: v for t, v in names.items() if counts[v] == 1}


def trainable(net, names: dict[str, str], fraction: float) -> dict[str, object]:
    """By torch name: the parameters of the last `fraction` of the layers that have any, and the graph's
    float constants of over 64 values used at or above the first of those layers (`names` is in the
    graph's node order); those are set to take gradients, everything else not, so the backward pass
    stops at that cut."""
    import torch

    net.requires_grad_(False)
    layers = [n for n, m in net.named_modules() if list(m.parameters(recurse=False))]
    top = set(layers[int(len(layers) * (1 - fraction)):])
    out = {n: p for n, p in net.named_parameters() if n.rsplit(".", 1)[0] in top and n in names}
    if not out:
        raise ValueError(f"fraction {fraction}: no layer of the reader's network trains")
    order = {n: i for i, n in enumerate(names)}
    cut = min(order[n] for n in out)
    out.update({n: b for n, b in net.named_buffers() if n.startswith("initializers.") and n in names
                and order[n] >= cut and b.dtype == torch.float32 and b.numel() > 64})
    for t in out.values():
        t.requires_grad_(True)
    return out


def adapt_trunk(model: ReadingModel, x: np.ndarray, words: list[tuple[str, str]], cfg: TrunkConfig,
                threads: int = 2, progress: Progress | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """The model's reader (with its head folded in) trained on labelled inputs (N, 1, H, W) at
    READING_PREPROCESS with their (word, lang), with replay. Returns the changed graph tensors by ONNX
    name (with those the reader had), for `Reader(weights=...)` with no head, and a record (losses,
    seconds, the largest difference between the graph written back and the trained network). The model
    itself is not changed."""
    import torch

    say = progress or (lambda f, m: None)
    t0 = time.time()
    torch.set_num_threads(threads)
    inks = [_ink_columns(m[0]) for m in x]
    queue = []
    for ink, p, (word, lang) in zip(inks, model.posteriors(x), words):
        labels = spellings(word, lang, model.reader.index)
        if labels:
            best = int(np.argmax(ctc_log_likelihood(np.log(np.maximum(p, 1e-30)), labels)))
            queue.append((ink, labels[best]))
    if not queue:
        raise ValueError("no queue sample spells its word in symbols the reader knows")
    say(0.02, "converting the reader to torch")
    net, names = torch_network(folded_graph(model.reader, model.head))
    params = trainable(net, names, cfg.fraction)
    opt = torch.optim.Adam(list(params.values()), lr=cfg.lr)
    training(net)
    half = cfg.batch // 2
    say(0.03, f"replay: {cfg.steps * (cfg.batch - half)} renders of the train fonts (cached after the first time)")
    replay = [(ink, ids) for ink, text in replay_inks(model.lexicon, cfg.steps * (cfg.batch - half), cfg.seed,
                                                      lambda d, t: say(0.03 + 0.02 * d / t, f"replay: {d}/{t}"))
              if None not in (ids := [model.reader.index.get(ch) for ch in text])]
    rng = np.random.default_rng(cfg.seed + 7)
    losses, t1, at = [], time.time(), 0
    for step in range(cfg.steps):
        batch = [queue[int(i)] for i in rng.choice(len(queue), half)]
        while len(batch) < cfg.batch and replay:
            batch.append(replay[at % len(replay)])
            at += 1
        opt.zero_grad()
        total = 0.0
        for part in width_chunks(batch, cfg.chunks):  # each chunk padded to its own widest: less padding read
            loss = symbol_losses(net, part).sum() / len(batch)
            loss.backward()  # the batch's mean over samples of the loss per target symbol, as one chunk gave
            total += float(loss.detach())
        opt.step()
        losses.append(total)
        if step % 10 == 9 or step == cfg.steps - 1:
            sec = time.time() - t1
            say(0.05 + 0.9 * (step + 1) / cfg.steps, f"reader step {step + 1}/{cfg.steps}, loss "
                f"{np.mean(losses[-10:]):.3f}, ETA {sec / (step + 1) * (cfg.steps - step - 1):.0f} s")
    net.eval()
    weights = {names[n]: t.detach().numpy().copy() for n, t in params.items()}
    say(0.97, "writing the adapted reader back into its graph and checking it")
    weights = {**model.reader.weights, **_folded_head(model), **weights}  # an adapted reader's earlier changes too
    check = Reader(threads=threads, path=model.reader.path, sha256=model.reader.sha256, weights=weights)
    probe = [ink for ink, _ in queue[:4]]
    xp, _ = reader_input(probe)
    with torch.no_grad():
        ref = net(torch.from_numpy(xp)).numpy()
    diff = float(np.abs(check.run(xp) - ref).max())
    if not diff < 1e-3:
        raise RuntimeError(f"the adapted reader written back differs from the trained network by {diff:.2g}")
    record = {"steps": cfg.steps, "batch": cfg.batch, "chunks": cfg.chunks, "lr": cfg.lr, "fraction": round(cfg.fraction, 4),
              "trained_values": int(sum(t.numel() for t in params.values())), "queue_samples": len(queue),
              "loss_first_10": round(float(np.mean(losses[:10])), 4),
              "loss_last_10": round(float(np.mean(losses[-10:])), 4),
              "max_posterior_difference_onnx_vs_torch": diff, "train_seconds": round(time.time() - t1, 1),
              "seconds": round(time.time() - t0, 1)}
    return weights, record


def training(net) -> None:
    """The network in training mode with its normalisation statistics kept the reader's."""
    import torch

    net.train()
    for mod in net.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            mod.eval()


def symbol_losses(net, part: list[tuple[np.ndarray, list[int]]]):
    """Each (ink, labels) sample's CTC loss per target symbol, the samples read as one padded batch."""
    import torch
    import torch.nn.functional as F

    xb, steps = reader_input([ink for ink, _ in part])
    logp = torch.log(net(torch.from_numpy(xb)).clamp_min(1e-12)).permute(1, 0, 2)
    per = F.ctc_loss(logp, torch.tensor([i for _, t in part for i in t]), torch.tensor(steps),
                     torch.tensor([len(t) for _, t in part]), blank=0, zero_infinity=True, reduction="none")
    return per / torch.tensor([len(t) for _, t in part], dtype=per.dtype)


def width_chunks(batch: list[tuple[np.ndarray, list[int]]], chunks: int) -> list[list]:
    """The batch's (ink, labels) sorted by width and cut into `chunks` parts of near-equal size."""
    order = sorted(batch, key=lambda b: b[0].shape[1])
    cuts = np.linspace(0, len(order), min(chunks, len(order)) + 1).round().astype(int)
    return [order[a:b] for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


def replay_inks(lexicon: Lexicon, n: int, seed: int, progress: Callable[[int, int], None] | None = None,
                folder: Path | None = None) -> list[tuple[np.ndarray, str]]:
    """`n` renders of random lexicon words in the `train` fonts as ink crops (`word_ink`) with their text;
    kept in `folder` (default: the cache's `trunk/`; 8-bit ink) per lexicon, count and seed, so a later job
    does not render them again."""
    key = hashlib.sha256(json.dumps([n, seed, lexicon.hash()]).encode()).hexdigest()[:16]
    path = (folder or cache_dir() / "trunk") / f"replay-{key}.npz"
    if path.exists():
        z = np.load(path, allow_pickle=False)
        inks = np.split(z["ink"], np.cumsum(z["height"] * z["width"])[:-1])
        return [(a.reshape(h, w).astype(np.float32) / 255, str(t))
                for a, h, w, t in zip(inks, z["height"], z["width"], z["text"])]
    ds = SyntheticWords(lexicon, "train", seed=seed + 3, kinds={"font": 1.0},
                        cases={"lower": 0.6, "title": 0.25, "upper": 0.15})
    rng = np.random.default_rng(seed + 5)
    out: list[tuple[np.ndarray, str]] = []
    while len(out) < n:
        c, lg = lexicon.concepts[int(rng.integers(len(lexicon)))], LANGS[int(rng.integers(3))]
        try:
            s = ds.sample(c.concept_id, lg, rng)
        except MissingGlyph:
            continue
        if s.text:
            out.append((np.round(np.clip(word_ink(s.image), 0, 1) * 255).astype(np.uint8), s.text))
            if progress and len(out) % 100 == 0:
                progress(len(out), n)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, ink=np.concatenate([a.ravel() for a, _ in out]), height=[a.shape[0] for a, _ in out],
             width=[a.shape[1] for a, _ in out], text=np.array([t for _, t in out]))
    tmp.replace(path)
    return [(a.astype(np.float32) / 255, t) for a, t in out]


def _folded_head(model: ReadingModel) -> dict[str, np.ndarray]:
    """The CTC layer with the model's head folded in, by ONNX name (empty when the model has no head)."""
    if model.head is None:
        return {}
    from onnx import numpy_helper

    graph = folded_graph(model.reader, model.head)
    wanted = set(ctc_initializers(graph))
    return {t.name: numpy_helper.to_array(t) for t in graph.graph.initializer if t.name in wanted}


def save_trunk(weights: dict[str, np.ndarray], model_dir: Path | str) -> Path:
    """Write the adapted reader tensors into a model directory (checkpoint.load_engine_model reads them)."""
    from safetensors.numpy import save_file

    path = Path(model_dir) / WEIGHTS_FILE
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: np.ascontiguousarray(v) for k, v in weights.items()}, str(tmp))
    tmp.replace(path)
    return path
