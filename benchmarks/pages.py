"""Word boxes on synthetic pages (issue 27): recall and precision at IoU 0.5 and pages per minute of the
page reader (xmr_core/search/pages.py: PP-OCRv6's text detector, lines straightened and split at their gaps), on
pages of `val`-font renders laid out in lines: clean scans, photographed (turned up to 6 degrees, uneven
light, paper texture, blur, noise) and photographed two-column pages (render/page.py).

    python benchmarks/pages.py [--pages 10] [--threads 1] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from xmr_core.data.lexicon import load_lexicon  # noqa: E402
from xmr_core.data.render import SyntheticWords  # noqa: E402
from xmr_core.data.render.page import KINDS, synthetic_page  # noqa: E402
from xmr_core.search.pages import PageReader, box_precision, box_recall  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=int, default=10, help="pages of each kind")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0, help="another seed: other pages (the settings were chosen on seed 0)")
    args = ap.parse_args()
    ds = SyntheticWords(load_lexicon(), "val", seed=1)
    reader = PageReader(args.threads)
    print("| pages | words | recall@IoU0.5 | precision | pages / min |\n|---|---|---|---|---|")
    for k, kind in enumerate(KINDS):
        rec, prec, n_words, secs = [], [], 0, 0.0
        for p in range(args.pages):
            page, truth = synthetic_page(kind, ds, np.random.default_rng(100_000 * args.seed + 1000 * k + p))
            t = time.perf_counter()
            pred = [w.box for w in reader.words(page)]
            secs += time.perf_counter() - t
            rec.append(box_recall(pred, truth))
            prec.append(box_precision(pred, truth))
            n_words += len(truth)
        print(f"| {kind} ({args.pages}) | {n_words} | {np.mean(rec):.3f} | {np.mean(prec):.3f} | "
              f"{60 * args.pages / secs:.0f} |", flush=True)


if __name__ == "__main__":
    main()
