"""Render throughput on one core: images/s for each style kind (prints numbers, asserts nothing)."""

from __future__ import annotations

import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402

from xmr_core.data.lexicon import load_lexicon  # noqa: E402
from xmr_core.data.preprocess import preprocess  # noqa: E402
from xmr_core.data.render import SyntheticWords  # noqa: E402


def main(n: int = 1500) -> None:
    cv2.setNumThreads(1)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    lex = load_lexicon()
    for kind in ("font", "pen", "canvas"):
        ds = SyntheticWords(lex, "train", kinds={kind: 1.0}, seed=11)
        for i in range(n):  # warm the glyph caches, as a training run does
            ds[i]
        t = time.perf_counter()
        for i in range(n, 2 * n):
            ds[i]
        dt = time.perf_counter() - t
        imgs = [ds[i].image for i in range(200)]
        t = time.perf_counter()
        for im in imgs:
            preprocess(im)
        pp = (time.perf_counter() - t) / len(imgs) * 1000
        print(f"{kind:7s} {n / dt:7.0f} images/s on one core (warm caches); preprocess {pp:.2f} ms/image")


if __name__ == "__main__":
    main()
