"""The reading model's second build step: pre-train its reader's trunk on open words in the `train` fonts
(train/reader_pretrain.py) and write the model directory that reads with it: --model (built by
scripts/build_reading_model.py) without its reading head, which is folded into the reader's CTC layer, with
the reader's tensors (`reader_weights.safetensors`), the run's record in metrics.json, the model card's
evaluation on `val` redone. --out may be --model (it is replaced whole at the end). The benchmarks' words
(assets/open_vocab.tsv, assets/unseen_words.tsv) are never drawn. Measured: docs/reader.md, session 35.

    python scripts/pretrain_reader.py --out assets/models/reader [--model assets/models/reader]
        [--config configs/reader_pretrain.json]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from build_reading_model import evaluate_on_val, with_evaluation  # noqa: E402

from xmr_core.data.paths import ASSETS, cache_dir  # noqa: E402
from xmr_core.model.checkpoint import atomic_write_text, load_engine_model  # noqa: E402
from xmr_core.model.reader import WEIGHTS_FILE  # noqa: E402
from xmr_core.model.reading_head import HEAD_FILE  # noqa: E402
from xmr_core.store.registry import model_id  # noqa: E402
from xmr_core.train.reader_pretrain import PretrainConfig, open_word_inks, open_words, pretrain_trunk  # noqa: E402
from xmr_core.train.trunk import save_trunk  # noqa: E402

PRETRAIN_VERSION = 1  # bump when train/reader_pretrain.py changes what a run gives

CARD_INTRO = ("The visual tower stands on a frozen pretrained reader; only the reading head on its last layer was "
              "trained for it (below).")
CARD_TRUNK_END = "at most 320 px wide)."
TRUNK_LINE = """
- Trunk pre-training (`reader_weights.safetensors`; `configs/reader_pretrain.json`, scripts/pretrain_reader.py):
  the reading head below folded into the reader's CTC layer, then the top third of the network's layers and the
  constants used there ({trained_values:,} values) trained with the CTC loss on {train_samples:,} renders of the
  `train` fonts and pen strokes: wordfreq's {top_words:,} most frequent words per language ({open_share:.0%}; the
  benchmarks' words left out) and lexicon words ({lexicon_share:.0%}), Latin words in lower, Title and UPPER case;
  {steps} steps of {batch} at lr {lr} (Adam, cosine), {train_seconds:.0f} s on two CPU threads; held-out renders'
  loss per symbol {held_loss_before} -> {held_loss_after}{soup_text}."""
BENCHMARK_WORDS = (ASSETS / "open_vocab.tsv", ASSETS / "unseen_words.tsv")


def benchmark_words() -> set[str]:
    out = set()
    for path in BENCHMARK_WORDS:
        with open(path, encoding="utf-8") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                out.update(row[k] for k in ("zh", "en", "es") if row.get(k))
    return out


def one_run(model, lex, cfg: PretrainConfig, args) -> tuple[dict[str, np.ndarray], dict]:
    """One seed's pre-trained reader tensors and record, kept in the cache by the base model, the config and
    the seed (a later build with more seeds runs only the new ones)."""
    key = hashlib.sha256(json.dumps([model_id(args.model), asdict(cfg), PRETRAIN_VERSION]).encode()).hexdigest()[:16]
    path = cache_dir() / "reader_pretrain" / f"seed{cfg.seed}-{key}"
    if (path / WEIGHTS_FILE).exists():
        print(f"seed {cfg.seed}: the run kept in {path}", flush=True)
        return load_file(str(path / WEIGHTS_FILE)), json.loads((path / "record.json").read_text())
    t = time.time()
    words = open_words(model.reader.index, cfg.top_words, benchmark_words())
    print(f"seed {cfg.seed}: open words", {k: len(v) for k, v in words.items()}, flush=True)
    samples = open_word_inks(lex, words, cfg, lambda d, n: print(f"rendered {d}/{n}, {time.time() - t:.0f} s", flush=True))
    render_s = time.time() - t
    weights, record = pretrain_trunk(model, samples, cfg, args.threads, lambda f, m: print(m, flush=True))
    record["render_seconds"] = round(render_s, 1)
    print(f"seed {cfg.seed}: held-out loss {record['held_loss_before']} -> {record['held_loss_after']}", flush=True)
    path.mkdir(parents=True, exist_ok=True)
    save_trunk(weights, path)
    (path / "record.json").write_text(json.dumps(record))
    return weights, record


def soup_text(record: dict) -> str:
    """The card's words for several seeds' runs averaged (nothing for one run)."""
    runs = record.get("runs", [])
    if len(runs) < 2:
        return ""
    return (f" (seed {runs[0]['config']['seed']}); the model's tensors are the mean of {len(runs)} such runs, seeds "
            + ", ".join(str(r["config"]["seed"]) for r in runs) + " (a soup; held-out losses after: "
            + ", ".join(str(r["held_loss_after"]) for r in runs) + ")")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=ASSETS / "models" / "reader")
    ap.add_argument("--config", type=Path, default=Path(__file__).resolve().parents[1] / "configs" / "reader_pretrain.json")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    settings = json.loads(args.config.read_text())
    seeds = settings.pop("seeds", [PretrainConfig().seed])
    if (args.model / WEIGHTS_FILE).exists() or not (args.model / HEAD_FILE).exists():
        raise SystemExit(f"{args.model}: a reading model with a reading head and a reader as installed is pre-trained "
                         "(scripts/build_reading_model.py --head configs/reading_head.json builds one)")
    model, lex, _ = load_engine_model(args.model, threads=args.threads)
    runs = [one_run(model, lex, PretrainConfig.from_dict({**settings, "seed": seed}), args) for seed in seeds]
    weights = {k: np.mean([w[k] for w, _ in runs], axis=0).astype(np.float32) for k in runs[0][0]}  # a soup
    record = {**runs[0][1], "runs": [r for _, r in runs]} if len(runs) > 1 else runs[0][1]
    tmp = args.out.with_name(args.out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(args.model, tmp)
    (tmp / HEAD_FILE).unlink()  # folded into the reader's CTC layer
    save_trunk(weights, tmp)
    model, lex, _ = load_engine_model(tmp, threads=1)
    metrics, evals = evaluate_on_val(model, lex)
    old = json.loads((tmp / "metrics.json").read_text())
    atomic_write_text(tmp / "metrics.json", json.dumps({**old, **metrics, "reader_pretrain": record}, indent=1))
    c = record["config"]
    card = (tmp / "README.md").read_text()
    card = card.replace(CARD_INTRO, "The visual tower stands on a pretrained reader whose top third was trained on "
                        "for it, with its reading head folded into its last layer (below).")
    card = card.replace(CARD_TRUNK_END, CARD_TRUNK_END + TRUNK_LINE.format(
        **record, **c, open_share=1 - c["lexicon_share"], soup_text=soup_text(record)), 1)
    card = card.replace("(`reading_head.safetensors`, the one part trained for this model)",
                        "(trained first; now folded into the reader's CTC layer)")
    card = with_evaluation(card, evals)
    atomic_write_text(tmp / "README.md", card)
    if args.out.exists():
        old_dir = args.out.with_name(args.out.name + ".old")
        shutil.rmtree(old_dir, ignore_errors=True)
        args.out.rename(old_dir)
        tmp.rename(args.out)
        shutil.rmtree(old_dir)
    else:
        tmp.rename(args.out)
    print(f"wrote {args.out}")
    print(json.dumps({k: (v["within_acc@1"], v["cross_acc@1"]) for k, v in metrics.items()}))


if __name__ == "__main__":
    main()
