"""Adapting the reader's trunk to a hand (issue 28, a measurement, not yet in the fine-tune job): the
PP-OCRv6 recognition network converted to torch (onnx2torch) and trained with the CTC loss on the hand's 20
labelled samples (half of each batch) and fresh renders of the `train` fonts (the other half, replay): the
last third of its layers (the last backbone stages, the SVTR neck, the CTC layer) and every weight kept as a
graph constant (the MatMul weights and the biases added after the convolutions, all through the network);
batch-norm statistics stay the reader's. Reported: lexicon recognition Acc@1 of the reader alone (no
reading head; `WordTable` over the lexicon's words) on the hand's other words and on the other `val` fonts,
before and after, and the training seconds.

    python benchmarks/trunk_adapt.py [--hands MissFajardose_400Regular.ttf ...] [--steps 200] [--lr 1e-4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from adapt import HANDS, Hand  # noqa: E402
from onnx2torch import convert  # noqa: E402

from xmr_core.data.lexicon import LANGS, load_lexicon  # noqa: E402
from xmr_core.data.preprocess import word_ink  # noqa: E402
from xmr_core.data.render import MissingGlyph, SyntheticWords  # noqa: E402
from xmr_core.model.ctc import WordTable  # noqa: E402
from xmr_core.model.reader import STRIDE, Reader, reader_input, reader_path  # noqa: E402


def reader_graph() -> onnx.ModelProto:
    """The reader's graph as onnx2torch takes it: it lacks auto_pad SAME_UPPER, so the three 2x2 stride-1
    layers that use it get explicit pads."""
    m = onnx.load(str(reader_path()))
    for n in m.graph.node:
        for a in list(n.attribute):
            if a.name == "auto_pad" and a.s == b"SAME_UPPER":
                n.attribute.remove(a)
                n.attribute.append(onnx.helper.make_attribute("pads", [0, 0, 1, 1]))
    return m


def posteriors(net, inks: list[np.ndarray]) -> list[np.ndarray]:
    """Per ink crop, the network's posteriors at the crop's own width (as Reader.outputs batches)."""
    x, steps = reader_input(inks)
    out: list = [None] * len(inks)
    with torch.no_grad():
        for t in sorted(set(steps)):
            rows = [n for n, s in enumerate(steps) if s == t]
            for n, p in zip(rows, net(torch.from_numpy(np.ascontiguousarray(x[rows, :, :, :t * STRIDE]))).numpy()):
                out[n] = p
    return out


def trainable(net, fraction: float) -> list[torch.Tensor]:
    """The parameters of the last `fraction` of the layers, and the graph constants over 64 values."""
    layers = [mod for _, mod in net.named_modules() if list(mod.parameters(recurse=False))]
    params = [p for mod in layers[int(len(layers) * (1 - fraction)):] for p in mod.parameters(recurse=False)]
    consts = [b for n, b in net.named_buffers() if n.startswith("initializers.") and b.dtype == torch.float32
              and b.numel() > 64]
    for b in consts:
        b.requires_grad_(True)
    return params + consts


def accuracy(net, items, table, lex) -> float:
    posts = posteriors(net, [it[0] for it in items])
    return 100 * float(np.mean([int(table.by_concept(table.score(p)).max(0).argmax()) == lex.index(it[1])
                                for p, it in zip(posts, items)]))


def renders(ds: SyntheticWords, lex, n: int, rng: np.random.Generator, langs=LANGS) -> list[tuple]:
    out = []
    while len(out) < n:
        c, lg = lex.concepts[int(rng.integers(len(lex)))], langs[len(out) % len(langs)]
        try:
            s = ds.sample(c.concept_id, lg, rng)
        except MissingGlyph:
            continue
        out.append((word_ink(s.image), c.concept_id, s.text, s.style.source))
    return out


def hand_words(hand: Hand, lex, concepts, seed: int, one_lang: bool) -> list[tuple]:
    """(ink, concept, text written) of concepts in the hand, drawn by benchmarks/adapt.py's `Hand.words`
    (its renders are lower case: the text written is the lexicon's word)."""
    return [(word_ink(img), cid, lex.get(cid).word(lg)) for cid, lg, img in hand.words(concepts, seed, one_lang)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hands", nargs="+", default=HANDS)
    ap.add_argument("--fraction", type=float, default=1 / 3, help="the share of the layers trained, from the top")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch", type=int, default=32, help="half the hand's samples, half replay")
    ap.add_argument("--labelled", type=int, default=20)
    ap.add_argument("--words", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(2)
    lex = load_lexicon()
    reader = Reader()
    table = WordTable.build(lex, reader.index)
    graph = reader_graph()
    replay = SyntheticWords(lex, "train", seed=3, kinds={"font": 1.0}, cases={"lower": 0.6, "title": 0.25, "upper": 0.15})
    held = renders(SyntheticWords(lex, "val", seed=31, kinds={"font": 1.0}), lex, 300, np.random.default_rng(5))
    print(f"the top {args.fraction:.2f} of the layers and the graph's constant weights; {args.steps} steps, lr {args.lr}, "
          f"batch {args.batch}\n")
    print("| hand | test images | hand Acc@1 before | after | held-out fonts before | after | train s |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for name in args.hands:
        hand = Hand(name, lex)
        order = [lex.concepts[int(i)] for i in np.random.default_rng(args.seed).permutation(len(lex))]
        labelled = hand_words(hand, lex, order[:args.labelled], 11, one_lang=True)
        test = hand_words(hand, lex, order[args.labelled:args.labelled + args.words], 12, one_lang=False)
        fonts = [h for h in held if h[3] != name]
        net = convert(graph).eval()
        before = (accuracy(net, test, table, lex), accuracy(net, fonts, table, lex))
        t0 = time.time()
        opt = torch.optim.Adam(trainable(net, args.fraction), lr=args.lr)
        net.train()
        for mod in net.modules():  # normalisation statistics stay the reader's
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                mod.eval()
        rng = np.random.default_rng(7)
        half = args.batch // 2
        for _ in range(args.steps):
            batch = [labelled[int(i)][::2] for i in rng.choice(len(labelled), half)]  # (ink, text)
            while len(batch) < args.batch:
                c, lg = lex.concepts[int(rng.integers(len(lex)))], LANGS[int(rng.integers(3))]
                try:
                    s = replay.sample(c.concept_id, lg, rng)
                except MissingGlyph:
                    continue
                batch.append((word_ink(s.image), s.text))
            x, steps = reader_input([b[0] for b in batch])
            targets = [[reader.index[ch] for ch in text if ch in reader.index] for _, text in batch]
            logp = torch.log(net(torch.from_numpy(x)).clamp_min(1e-12)).permute(1, 0, 2)
            loss = F.ctc_loss(logp, torch.tensor(sum(targets, [])), torch.tensor(steps),
                              torch.tensor([len(t) for t in targets]), blank=0, zero_infinity=True)
            opt.zero_grad()
            loss.backward()
            opt.step()
        seconds = time.time() - t0
        net.eval()
        after = (accuracy(net, test, table, lex), accuracy(net, fonts, table, lex))
        rows.append((before, after))
        print(f"| {name} | {len(test)} | {before[0]:.1f} | {after[0]:.1f} | {before[1]:.1f} | {after[1]:.1f} | "
              f"{seconds:.0f} |", flush=True)
    print(f"\nmedian over {len(rows)} hands: hand {statistics.median(a[0] - b[0] for b, a in rows):+.1f} points, "
          f"held-out fonts {statistics.median(a[1] - b[1] for b, a in rows):+.1f}")


if __name__ == "__main__":
    main()
