"""Issue 23's probe, rerunnable: concurrent writers, kills mid-add and bad inputs against the engine
with the bundled model. Prints the figures quoted in docs/integrity.md.

    python scripts/probe_integrity.py [--writers 2 4] [--items 500] [--kills 10]
"""

from __future__ import annotations

import argparse
import io
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import bomb_png  # noqa: E402

from xmr_core.search.engine import Engine  # noqa: E402
from xmr_core.store.database import Store  # noqa: E402
from xmr_core.store.doctor import check  # noqa: E402
from xmr_core.store.index import load_index  # noqa: E402

WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from helpers import word_png
    from xmr_core.search.engine import Engine
    data, who, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    eng = Engine(data)
    for start in range(0, n, 25):
        eng.add("shared", [(f"w{{who}}-{{i}}", word_png(f"w{{who}} {{i}}", seed=who * 100000 + i))
                           for i in range(start, min(n, start + 25))])
""")


def exact(data: Path) -> tuple[int, int, bool]:
    """(items in the store, entries in the saved index file, the two id sets equal)."""
    eng = Engine(data)
    idx, _ = load_index(eng._index_path(), {})
    want = eng.store.embedded_ids(eng.model_id).tolist()
    return len(want), len(idx), idx.ids().tolist() == want


def writers(n_writers: int, items: int, script: Path) -> str:
    data = Path(tempfile.mkdtemp()) / "data"
    Engine(data)
    t = time.time()
    procs = [subprocess.Popen([sys.executable, str(script), str(data), str(w), str(items)]) for w in range(n_writers)]
    for p in procs:
        p.wait()
    n_store, n_index, ok = exact(data)
    return f"| {n_writers} x {items} | {n_store} | {n_index} | {'yes' if ok else 'NO'} | {time.time() - t:.0f} s |"


def kills(n: int, script: Path) -> str:
    survived = 0
    data = Path(tempfile.mkdtemp()) / "data"
    Engine(data)
    rng = random.Random(0)
    for k in range(n):
        p = subprocess.Popen([sys.executable, str(script), str(data), str(100 + k), "2000"])
        time.sleep(rng.uniform(4, 12))  # model load takes a few seconds: kill during the adds
        p.send_signal(signal.SIGKILL)
        p.wait()
        _, _, ok = exact(data)
        check(data, fix=True, grace_s=0)
        rep = check(data)
        survived += ok and rep.healthy and Store(data).integrity() == "ok"
    return f"{survived}/{n} kills survived ({Store(data).count_items()} items at the end; index exact, doctor clean)"


def bad_inputs() -> str:
    rgb = Image.new("RGB", (300, 80), "white")
    ImageDraw.Draw(rgb).text((10, 20), "hola", fill="black", font_size=30)
    buf = io.BytesIO()
    rgb.save(buf, "PNG")
    good = buf.getvalue()
    cases = {
        "PNG claiming 60000 x 60000": bomb_png(),
        "PNG over the 120 MP limit (11000 x 11000)": bomb_png(11000, 11000),
        "truncated PNG": good[: len(good) // 2],
        "zero bytes": b"",
        "text file": b"hello, not an image",
        "SVG": b'<svg xmlns="http://www.w3.org/2000/svg"><text>x</text></svg>',
        "blank white image": _png(Image.new("L", (200, 60), 255)),
        "1 x 1 image": _png(Image.new("L", (1, 1), 0)),
        "5-channel array": np.zeros((40, 40, 5), np.uint8),
        "string array": np.array([["a", "b"], ["c", "d"]]),
        "NaN array": np.full((40, 40), np.nan),
        "None": None,
        "int": 7,
        "float": 3.5,
        "object": object(),
        "path with a NUL": "\0",
    }
    eng = Engine(Path(tempfile.mkdtemp()) / "data")
    clean = []
    for name, data in cases.items():
        ok = True
        rep = eng.add("probe", [("good", good), (name, data)])
        ok &= len(rep.added) == 1 and list(rep.errors) == [name] and "\n" not in rep.errors[name]
        try:
            eng.search(image=data)
            ok = False
        except ValueError:
            pass
        except Exception:  # noqa: BLE001 - anything but ValueError is the defect
            ok = False
        clean.append(ok)
        if not ok:
            print(f"  NOT clean: {name}")
    return f"{sum(clean)}/{len(clean)} kinds of bad input give a one-line error, the good image of the batch added"


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--writers", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--items", type=int, default=500)
    ap.add_argument("--kills", type=int, default=10)
    args = ap.parse_args()
    script = Path(tempfile.mkdtemp()) / "writer.py"
    script.write_text(WRITER.format(tests=str(Path(__file__).resolve().parents[1] / "tests")))
    print(bad_inputs())
    print("| writers x images | items stored | index entries | index = store | time |")
    print("|---|---|---|---|---|")
    for w in args.writers:
        print(writers(w, args.items, script), flush=True)
    print(kills(args.kills, script))


if __name__ == "__main__":
    main()
