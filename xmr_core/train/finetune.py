"""Stage 2: fine-tune a model on the annotation queue, mixed with synthetic replay, and compare
before/after on the held-out fonts and on a held-out part of the queue.

A reading model trains a new reading head first (adapt.py) and keeps it when it does not lose on the
held-out-font check; otherwise it adapts its reader's trunk (trunk.py: the top of the network and its
constant weights, with the reading head folded in) and then a new reading head on it; the visual encoder
stays as it is; an edge model trains its visual encoder (train.py), as every fine-tune did
before issue 28 (on the edge model it cost a real hand 8 points: docs/adaptation.md)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from xmr_core.data.configs import check_fields, strict_from_dict
from xmr_core.data.lexicon import Concept, Lexicon
from xmr_core.data.paths import cache_dir
from xmr_core.data.preprocess import preprocess
from xmr_core.evaluate.retrieval import evaluate, load_manifest_set, measure_latency, render_eval_set, torch_embedder
from xmr_core.model.checkpoint import atomic_write_text, load_engine_model, load_model_dir, save_model_dir
from xmr_core.model.dual import DualEncoder
from xmr_core.model.fastpath import ONNX_FILE, OnnxVisual, export_onnx
from xmr_core.model.reader import Reader
from xmr_core.model.reading import READING_PREPROCESS
from xmr_core.model.reading_head import HEAD_FILE
from xmr_core.store.database import Store
from xmr_core.store.registry import model_id, worse_on_fonts
from xmr_core.train.adapt import AdaptConfig, adapt_head
from xmr_core.train.trainer import TrainConfig, train
from xmr_core.train.trunk import TrunkConfig, adapt_trunk, save_trunk


@dataclass
class FinetuneConfig:
    steps: int = 300  # optimisation steps (of the reading head, or of the edge model's encoder)
    trunk_steps: int = 60  # reading model: steps adapting the reader's trunk (trunk.py) before a new head, when the
    # head alone (trained first) loses on the held-out-font check; 0: the head alone
    trunk_always: bool = False  # reading model: adapt the reader even when the head alone passes that check
    lr: float | None = None  # None: 1e-3 for a reading head, 5e-4 for an encoder
    replay: float = 0.5  # share of each batch replayed from the train fonts
    holdout: float = 0.2  # share of the queue kept out of training for the after/before comparison
    val_concepts: int = 200  # held-out-font check on the first N concepts (all concepts are candidates)
    concepts_per_batch: int = 32  # edge model: concepts per batch
    replay_renders: int = 600  # reading model: `train`-font renders read for replay (adapt.py)
    self_train: str = ""  # reading model: also train on this collection's unlabelled items, labelled by the
    # model's own reading (self_training.py); "": the queue alone
    self_train_keep: float = 0.5  # share of those items kept: the ones read with the widest margin
    self_train_max: int = 600  # at most this many unlabelled items read (a random sample of more)
    seed: int = 0
    threads: int = 2

    def __post_init__(self) -> None:
        check_fields(self, "fine-tune")
        if (self.steps < 0 or self.trunk_steps < 0 or self.steps + self.trunk_steps < 1
                or (self.lr is not None and not self.lr > 0) or not 0 <= self.replay < 1
                or not 0 <= self.holdout < 1 or self.val_concepts < 0 or self.threads < 1
                or not 0 < self.self_train_keep <= 1 or self.self_train_max < 1):
            raise ValueError(f"fine-tune config {self}: steps and trunk_steps >= 0 (not both 0), lr > 0, replay "
                             "and holdout in [0, 1), val_concepts >= 0, threads >= 1, self_train_keep in (0, 1], "
                             "self_train_max >= 1")

    @classmethod
    def from_dict(cls, d: dict) -> FinetuneConfig:
        return strict_from_dict(cls, d, "fine-tune")


def split_queue(annotations: list[dict], holdout: float) -> tuple[list[dict], list[dict]]:
    """About `holdout` of the queue (at least one sample when any concept has two) for the before/after
    check, taken round-robin from concepts with at least two samples, so every concept keeps a training
    sample."""
    by_concept: dict[str, list[dict]] = {}
    for a in annotations:
        by_concept.setdefault(a["concept_id"], []).append(a)
    target = max(int(round(holdout * len(annotations))), int(holdout > 0))
    held: list[dict] = []
    while len(held) < target:
        took = False
        for rows in by_concept.values():
            if len(rows) >= 2 and len(held) < target:
                held.append(rows.pop())
                took = True
        if not took:
            break
    kept = {id(a) for a in held}
    return [a for a in annotations if id(a) not in kept], held


def _write_manifest(rows: list[dict], store: Store, lexicon: Lexicon, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "text", "lang", "concept_id"])
        for a in rows:
            rel = os.path.relpath(store.root / a["path"], path.parent)
            w.writerow([rel, lexicon.get(a["concept_id"]).word(a["lang"]), a["lang"], a["concept_id"]])
    return path


def finetune(store: Store, base_dir: Path | str, out_dir: Path | str, cfg: FinetuneConfig,
             progress: Callable[[float, str], None] | None = None) -> dict:
    """Fine-tune `base_dir` on the store's queue into `out_dir`; returns the before/after comparison."""
    say = progress or (lambda f, m: None)
    t_start = time.time()
    out = Path(out_dir)
    queue = store.list_annotations()
    if len(queue) < 2:
        raise ValueError("the fine-tune queue needs at least 2 labelled samples")
    base, base_lex, base_cfg = load_model_dir(base_dir)
    extra = [Concept(c["concept_id"], c["zh"], c["en"], c["es"], "user") for c in store.list_concepts()
             if c["concept_id"] not in base_lex]
    lexicon = base_lex.with_concepts(extra)
    reads = "reading" in base_cfg  # a reading model: adapt its reader and head, serve and score it as read
    if not reads and cfg.steps < 1:
        raise ValueError("an edge model's fine-tune trains its encoder: steps >= 1")
    if cfg.self_train and not reads:
        raise ValueError("self-training labels items with the model's reading: it needs a reader model")
    pool = store.unlabelled_items(cfg.self_train) if cfg.self_train else []  # an unknown collection is refused here
    train_rows, held_rows = split_queue(queue, cfg.holdout)
    train_csv = _write_manifest(train_rows, store, lexicon, out / "data" / "train.csv")
    held_csv = _write_manifest(held_rows, store, lexicon, out / "data" / "heldout.csv") if held_rows else None
    pre = READING_PREPROCESS if reads else base.cfg.preprocess
    n_check = min(cfg.val_concepts or len(lexicon), len(lexicon))
    say(0.01, f"rendering the held-out fonts' check set ({n_check} concepts x 3 scripts)")
    fonts = render_eval_set(lexicon, pre, "val", concepts=cfg.val_concepts,
                            progress=lambda d, t: say(0.01 + 0.03 * d / max(t, 1),
                                                      f"rendering the held-out fonts' check set: {d}/{t}"))
    held = load_manifest_set(held_csv, lexicon, pre) if held_csv else None

    def scores(model, cache: Path | None = None) -> dict:  # as the engine runs it; the base's font check cached
        if cache is not None and cache.exists():
            r = {"val_fonts": json.loads(cache.read_text())}
        else:
            r = {"val_fonts": _summary(evaluate(model, lexicon, fonts, per_image=True))}
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(cache, json.dumps(r["val_fonts"]))
        if held is not None:
            r["queue_heldout"] = _summary(evaluate(model, lexicon, held))
        return r

    check_cache = font_check_cache(base_dir, lexicon, fonts.x)
    final = out / "model"
    final.mkdir(parents=True, exist_ok=True)
    lost = None  # a reading model's head alone's scores, when they lost on the held-out fonts
    if reads:
        served, _, _ = load_engine_model(base_dir, threads=cfg.threads)
        served.set_lexicon(lexicon)
        say(0.04, f"scoring the current model on {len(fonts.x)} held-out renders"
                  + (f" and {len(held.x)} held-out queue samples" if held is not None else ""))
        before = scores(served, check_cache)
        data = load_manifest_set(train_csv, lexicon, pre, keep_raw=0)
        negatives = _negatives(store, lexicon)
        words = [(lexicon.get(c).word(lg), lg) for c, lg in zip(data.concept_ids, data.langs)]
        x = data.x
        if cfg.self_train:
            more, more_words, self_trained = _self_training(served, store, pool, queue, cfg, out / "data", say)
            x, words = (np.concatenate([x, more]), words + more_words) if len(more) else (x, words)
        acfg = AdaptConfig(steps=cfg.steps, lr=cfg.lr or AdaptConfig.lr, replay=cfg.replay, seed=cfg.seed,
                           replay_renders=cfg.replay_renders)

        def new_head(lo: float, hi: float, what: str = ""):  # a reading head on `served` as it now reads
            return adapt_head(served, x, words, acfg, lambda f, m: say(lo + (hi - lo) * f, what + m),
                              negatives=negatives)

        base_head, trained, head, after = served.head, {}, None, None
        if cfg.steps and cfg.trunk_steps and not cfg.trunk_always:  # the head alone first: the reader only if it loses
            head, record = new_head(0.1, 0.25, "head alone: ")
            served.head = head
            say(0.26, f"scoring the head alone on the {len(fonts.x)} held-out renders")
            alone = scores(served)
            if worse_on_fonts(before, alone):
                say(0.3, "the head alone loses on the held-out fonts: adapting the reader")
                served.head, head, lost = base_head, None, alone
            else:
                trained, after = {"adapt": asdict(acfg), "adapt_record": record}, alone
        if after is None:
            at = 0.1 if lost is None else 0.3
            if cfg.trunk_steps:
                tcfg = TrunkConfig(steps=cfg.trunk_steps, seed=cfg.seed)
                weights, trecord = adapt_trunk(served, x, words, tcfg, cfg.threads,
                                               lambda f, m: say(at + (0.75 - at) * f, m))
                served.reader, served.head = Reader(threads=cfg.threads, weights=weights), None  # the head is folded in
                served.set_lexicon(lexicon)
                trained.update({"trunk": asdict(tcfg), "trunk_record": trecord})
                at = 0.75
            if cfg.steps:
                head, record = new_head(at, 0.9)
                trained.update({"adapt": asdict(acfg), "adapt_record": record})
            served.head = head
            say(0.92, f"scoring the adapted model on the same {len(fonts.x)} renders")
            after = scores(served)
        fast = None
        if served.reader.weights:  # adapted now, or by an earlier fine-tune
            save_trunk(served.reader.weights, final)
        if (Path(base_dir) / ONNX_FILE).exists():  # the encoder is unchanged: its graph too
            shutil.copyfile(Path(base_dir) / ONNX_FILE, final / ONNX_FILE)
    else:
        say(0.04, f"scoring the current model on {len(fonts.x)} held-out renders"
                  + (f" and {len(held.x)} held-out queue samples" if held is not None else ""))
        before = scores(base, check_cache)
        tuned, tcfg = _tune_encoder(base, base_cfg, base_dir, lexicon, train_csv, out, cfg, say)
        say(0.92, f"scoring the fine-tuned model on the same {len(fonts.x)} renders")
        after = scores(tuned)
        say(0.97, "exporting the ONNX graph")
        fast = add_onnx_fp32(tuned, final, fonts.x[:64])  # the engine's fast path for the new model too
        trained, head = {"train": asdict(tcfg)}, None
    result = {"before": before, "after": after, "n_train": len(train_rows), "n_heldout": len(held_rows),
              "n_negatives": len(negatives[0]) if reads else 0,
              **({"self_training": self_trained} if cfg.self_train else {}),
              "config": asdict(cfg), "trained": _trained(trained) if reads else "visual encoder",
              "minutes": round((time.time() - t_start) / 60, 2),
              **({"head_alone": lost} if lost is not None else {})}
    keep = {k: base_cfg[k] for k in ("reading", "reader", "train", "visual_params") if k in base_cfg}
    save_model_dir(base if reads else tuned, lexicon, final,
                   metrics={"finetune": result, **({"fast_path": fast} if fast else {})},
                   extra={**keep, **trained, "base_model": str(base_dir)})
    if head is not None:
        head.save(final / HEAD_FILE)
    result["model_dir"] = str(final)
    (out / "result.json").write_text(json.dumps(result, indent=2))
    say(1.0, "done")
    return result


def font_check_cache(base_dir: Path | str, lexicon: Lexicon, x: np.ndarray) -> Path:
    """Where a base model's score on the held-out fonts' check is kept: by the model's content, the
    lexicon and the renders themselves, so a second job from the same model does not score it again."""
    h = hashlib.sha256(json.dumps([model_id(base_dir), lexicon.hash()]).encode() + np.ascontiguousarray(x).tobytes())
    return cache_dir() / "finetune" / f"check2-{h.hexdigest()[:16]}.json"  # 2: with each render's top-1


def _read_inputs(paths: list[str]) -> tuple[np.ndarray, list[int]]:
    """Model inputs (N, 1, H, W) at READING_PREPROCESS of the image files that can be read, and which of
    `paths` they are; unreadable or missing files are skipped."""
    xs, ok = [], []
    for n, path in enumerate(paths):
        try:
            xs.append(preprocess(path, READING_PREPROCESS))
            ok.append(n)
        except (ValueError, FileNotFoundError):
            continue
    return (np.stack(xs) if xs else np.zeros((0, 1, 1, 1), np.float32)), ok


def _negatives(store: Store, lexicon: Lexicon) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Hits marked wrong in Search (users.negatives) as model inputs and the word each does not say
    (its concept's word in the item's script); unreadable or unknown ones are skipped."""
    from xmr_core.store.users import negatives

    rows = [n for n in negatives(store) if n["concept_id"] in lexicon and n["lang"] is not None]
    x, ok = _read_inputs([str(store.root / n["path"]) for n in rows])
    return x, [(lexicon.get(rows[n]["concept_id"]).word(rows[n]["lang"]), rows[n]["lang"]) for n in ok]


def _self_training(model, store: Store, pool: list, queue: list[dict], cfg: FinetuneConfig, out: Path,
                   say) -> tuple[np.ndarray, list[tuple[str, str]], dict]:
    """The collection's unlabelled items (not in the queue; a random `self_train_max` of more) read by
    the model, the surest `self_train_keep` of them as inputs with the (word, lang) each was read as,
    and a record; the labels are written to `out`/self_training.csv for the user to inspect."""
    from xmr_core.train.self_training import pseudo_labels

    queued = {a["sha256"] for a in queue}
    items = [it for it in pool if it.sha256 not in queued]
    if len(items) > cfg.self_train_max:
        rng = np.random.default_rng(cfg.seed)
        items = [items[int(i)] for i in sorted(rng.choice(len(items), cfg.self_train_max, replace=False))]
    say(0.05, f"self-training: reading {len(items)} unlabelled items of {cfg.self_train!r}")
    x, ok = _read_inputs([str(it.path) for it in items])
    read = [items[n] for n in ok]
    labels = pseudo_labels(model, x, cfg.self_train_keep) if len(x) else []
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "self_training.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["item_id", "source", "path", "text", "lang", "concept_id", "margin"])
        for p in labels:
            it = read[p.index]
            w.writerow([it.id, it.source, os.path.relpath(it.path, out), model.lexicon.get(p.concept_id).word(p.lang),
                        p.lang, p.concept_id, f"{p.margin:.3f}"])
    words = [(model.lexicon.get(p.concept_id).word(p.lang), p.lang) for p in labels]
    record = {"collection": cfg.self_train, "read": len(read), "kept": len(labels),
              "min_margin": round(labels[-1].margin, 3) if labels else None}
    return (x[[p.index for p in labels]] if labels else x[:0]), words, record


def _tune_encoder(base, base_cfg: dict, base_dir, lexicon: Lexicon, train_csv: Path, out: Path,
                  cfg: FinetuneConfig, say) -> tuple:
    """An edge model's visual encoder trained on the queue with replay (train.py); the model and its config."""
    say(0.08, "preparing training: the queue samples with replay renders of the lexicon")
    tcfg = TrainConfig.from_dict({**base_cfg.get("train", {}), "steps": cfg.steps, "lr": cfg.lr or 5e-4,
                                  "warmup": max(1, cfg.steps // 10), "manifest": str(train_csv),
                                  "replay": cfg.replay, "concepts_per_batch": cfg.concepts_per_batch,
                                  "seed": cfg.seed, "threads": cfg.threads, "workers": 0, "eval_concepts": 0,
                                  "ckpt_every": max(10, cfg.steps // 5)})
    t0 = time.time()

    def on_step(rec: dict) -> None:
        done = rec["step"] / cfg.steps
        eta = (time.time() - t0) / max(done, 1e-6) * (1 - done)
        say(0.1 + 0.8 * done, f"step {rec['step']}/{cfg.steps}, loss {rec['total']:.3f}, ETA {eta:.0f} s")

    model_dir = train(base.cfg, tcfg, out / "run", lexicon, progress=on_step, init=base_dir)
    tuned, _, _ = load_model_dir(model_dir)
    return tuned, tcfg


def _trained(trained: dict) -> str:
    return " + ".join(["reader trunk"] * ("trunk" in trained) + ["reading head"] * ("adapt" in trained))


def _summary(res: dict) -> dict:
    return {"within_acc@1": res["within_acc@1"], "cross_acc@1": res["cross_acc@1"], "n_images": res["n_images"],
            **({"within_top1": res["within_top1"]} if "within_top1" in res else {})}


def add_onnx_fp32(model: DualEncoder, model_dir: Path | str, x: np.ndarray) -> dict:
    """Export the FP32 graph beside a model (a fine-tuned one) and say whether the engine should run it:
    the `fast_path` entry of metrics.json (same vectors as torch, and faster on one thread)."""
    enc = OnnxVisual(export_onnx(model, Path(model_dir) / ONNX_FILE))
    ref = torch_embedder(model)
    cos = float((ref(x) * enc(x)).sum(1).min())
    images, pre = list(x[:, 0]), model.cfg.preprocess
    ms = {"torch": measure_latency(ref, images, pre),
          "onnx-fp32": measure_latency(enc, images, pre)}
    use = "onnx-fp32" if cos > 0.9999 and ms["onnx-fp32"] < ms["torch"] else None
    return {"use": use, "onnx-fp32": {"min_cosine": cos}, "latency_ms_p50": ms}
