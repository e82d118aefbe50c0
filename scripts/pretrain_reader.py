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
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from build_reading_model import evaluate_on_val  # noqa: E402

from xmr_core.data.paths import ASSETS  # noqa: E402
from xmr_core.model.checkpoint import atomic_write_text, load_engine_model  # noqa: E402
from xmr_core.model.reader import WEIGHTS_FILE  # noqa: E402
from xmr_core.model.reading_head import HEAD_FILE  # noqa: E402
from xmr_core.train.reader_pretrain import PretrainConfig, open_word_inks, open_words, pretrain_trunk  # noqa: E402
from xmr_core.train.trunk import save_trunk  # noqa: E402

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
  loss per symbol {held_loss_before} -> {held_loss_after}."""
BENCHMARK_WORDS = (ASSETS / "open_vocab.tsv", ASSETS / "unseen_words.tsv")


def benchmark_words() -> set[str]:
    out = set()
    for path in BENCHMARK_WORDS:
        with open(path, encoding="utf-8") as f:
            for row in csv.DictReader(f, delimiter="\t"):
                out.update(row[k] for k in ("zh", "en", "es") if row.get(k))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=ASSETS / "models" / "reader")
    ap.add_argument("--config", type=Path, default=Path(__file__).resolve().parents[1] / "configs" / "reader_pretrain.json")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    cfg = PretrainConfig.from_dict(json.loads(args.config.read_text()))
    if (args.model / WEIGHTS_FILE).exists() or not (args.model / HEAD_FILE).exists():
        raise SystemExit(f"{args.model}: a reading model with a reading head and a reader as installed is pre-trained "
                         "(scripts/build_reading_model.py --head configs/reading_head.json builds one)")
    model, lex, _ = load_engine_model(args.model, threads=args.threads)
    t = time.time()
    words = open_words(model.reader.index, cfg.top_words, benchmark_words())
    print("open words:", {k: len(v) for k, v in words.items()}, flush=True)
    samples = open_word_inks(lex, words, cfg, lambda d, n: print(f"rendered {d}/{n}, {time.time() - t:.0f} s", flush=True))
    render_s = time.time() - t
    weights, record = pretrain_trunk(model, samples, cfg, args.threads, lambda f, m: print(m, flush=True))
    record["render_seconds"] = round(render_s, 1)
    print(f"held-out loss {record['held_loss_before']} -> {record['held_loss_after']}", flush=True)
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
        **record, **c, open_share=1 - c["lexicon_share"]), 1)
    card = card.replace("(`reading_head.safetensors`, the one part trained for this model)",
                        "(trained first; now folded into the reader's CTC layer)")
    card = card.split("## Evaluation on held-out fonts")[0] + (
        "## Evaluation on held-out fonts (`val`, whole lexicon as candidates)\n" + "\n".join(evals))
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
