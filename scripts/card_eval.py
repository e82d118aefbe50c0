"""Re-run a reading model's card evaluation (the `val` fonts at two seeds, whole lexicon) after the renders
changed, and write it into the model directory's metrics.json and README.md; nothing else is touched.

    python scripts/card_eval.py [--model assets/models/reader]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from build_reading_model import EVAL_SECTION, evaluate_on_val, with_evaluation  # noqa: E402

from xmr_core.data.paths import ASSETS  # noqa: E402
from xmr_core.model.checkpoint import atomic_write_text, load_engine_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=ASSETS / "models" / "reader")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model, lex, config = load_engine_model(args.model)
    if "reading" not in config:
        raise SystemExit(f"{args.model}: not a reading model (its card comes from scripts/build_edge_model.py)")
    card = (args.model / "README.md").read_text()
    if EVAL_SECTION not in card:
        raise SystemExit(f"{args.model}/README.md has no section {EVAL_SECTION.strip()!r}")
    metrics, evals = evaluate_on_val(model, lex)
    old = json.loads((args.model / "metrics.json").read_text())
    atomic_write_text(args.model / "metrics.json", json.dumps({**old, **metrics}, indent=1))
    atomic_write_text(args.model / "README.md", with_evaluation(card, evals))


if __name__ == "__main__":
    main()
