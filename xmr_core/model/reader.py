"""The reader: PP-OCRv6's recognition network (`PP-OCRv6_rec_small.onnx`, Apache-2.0), the visual
tower's frozen pretrained trunk. It ships inside the installed `rapidocr` wheel: found there, checked by
sha256, never copied into the repository or downloaded; run by onnxruntime.

Input (N, 3, 48, W) RGB in [-1, 1], dark ink on light paper; output a softmax over 18,710 symbols per
step of 8 columns (CTC: blank at 0, the characters of the ONNX metadata key `character`, a space last).
`reader_input` turns the ink crop of the one `preprocess` into that input; `ctc.py` scores given words
under the posteriors (constrained recognition).
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

READER_PACKAGE = "rapidocr"
READER_FILE = "models/PP-OCRv6_rec_small.onnx"
READER_SHA256 = "6f327246b50388f3c176ae304bd95767ea6dc0c9ae92153ef8cbe210b3c14884"
HEIGHT = 48  # the network's input height
STRIDE = 8  # input columns per output step
PAD = 4  # paper kept above and below the ink
MAX_WIDTH = 320  # wider crops are squeezed to this width (about 40 characters)
WEIGHTS_FILE = "reader_weights.safetensors"  # a model directory's adapted reader tensors (train/trunk.py)
FEATURES = "p2o.pd_op.transpose.8.0"  # (N, W / 8, 120): the sequence features its CTC layer reads


def reader_path() -> Path:
    """The ONNX file inside the installed rapidocr package; RuntimeError saying what to install if absent."""
    spec = importlib.util.find_spec(READER_PACKAGE)
    path = Path(spec.origin).parent / READER_FILE if spec and spec.origin else None
    if path is None or not path.exists():
        raise RuntimeError(f"the reader {READER_FILE} was not found: install the `{READER_PACKAGE}` package "
                           "pinned in requirements.txt (`make setup`)")
    return path


def reader_input(inks: list[np.ndarray]) -> tuple[np.ndarray, list[int]]:
    """Ink crops (float H x W, 1 = ink, as `preprocess.word_ink` gives) -> the reader's batch
    (N, 3, 48, W_max) and each crop's own number of output steps (its width / 8)."""
    rows, widths = [], []
    for ink in inks:
        h, w = ink.shape
        f = (HEIGHT - 2 * PAD) / h
        nw = int(np.clip(round(w * f), 1, MAX_WIDTH - 2 * PAD))
        body = cv2.resize(ink.astype(np.float32), (nw, HEIGHT - 2 * PAD),
                          interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
        width = int(np.ceil((nw + 2 * PAD) / STRIDE) * STRIDE)
        canvas = np.zeros((HEIGHT, width), np.float32)
        canvas[PAD:PAD + body.shape[0], PAD:PAD + nw] = body
        rows.append(canvas)
        widths.append(width)
    batch = np.zeros((len(rows), 3, HEIGHT, max(widths, default=STRIDE)), np.float32)
    batch[:] = 1.0  # paper
    for n, canvas in enumerate(rows):
        batch[n, :, :, :canvas.shape[1]] = 1.0 - 2.0 * np.clip(canvas, 0, 1)  # ink -> -1, paper -> +1
    return batch, [w // STRIDE for w in widths]


@dataclass(frozen=True)
class Reading:
    text: str
    confidence: list[float]  # per character: the posterior of the symbol read


class Reader:
    """The recognition network, one onnxruntime session (thread-safe for `run`)."""

    def __init__(self, threads: int = 1, path: Path | str | None = None, sha256: str = READER_SHA256,
                 weights: dict[str, np.ndarray] | None = None) -> None:
        """`weights`: graph initializers (by name) that replace the file's own, an adapted trunk
        (train/trunk.py); `key` then names the file and those weights together."""
        import onnxruntime as ort

        self.path = Path(path) if path else reader_path()
        data = self.path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256:
            raise RuntimeError(f"the reader {self.path} is not the file XMR was built with (sha256 {digest[:16]}..., "
                               f"expected {sha256[:16]}...): reinstall the `{READER_PACKAGE}` version pinned in "
                               "requirements.txt")
        self.sha256, self.key, self.weights = digest, digest, dict(weights or {})
        if weights:
            data = with_weights(data, weights)
            self.key = f"{digest}+{hashlib.sha256(data).hexdigest()}"
        self.graph = data  # the ONNX graph run (the file's, or with `weights` in it)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        self.session = ort.InferenceSession(_with_features(data), opts, providers=["CPUExecutionProvider"])
        chars = self.session.get_modelmeta().custom_metadata_map["character"].split("\n")
        self.symbols = ["<blank>"] + chars + [" "]
        self.index = {c: i for i, c in enumerate(self.symbols) if i}
        self._lock = threading.Lock()

    def ctc_layer(self) -> tuple[np.ndarray, np.ndarray]:
        """The network's last layer, (120, 18,710) weights and (18,710,) bias: posteriors = softmax(f W + b)."""
        import onnx
        from onnx import numpy_helper

        model = onnx.load_from_string(self.graph)
        init = {t.name: t for t in model.graph.initializer}
        w, b = ctc_initializers(model)
        return numpy_helper.to_array(init[w]).astype(np.float32), numpy_helper.to_array(init[b]).astype(np.float32)

    def posteriors(self, inks: list[np.ndarray]) -> list[np.ndarray]:
        """Per crop, the (steps, 18,710) softmax over symbols at each step of its own width."""
        return [p for p, _ in self.outputs(inks)]

    def features(self, inks: list[np.ndarray]) -> list[np.ndarray]:
        """Per crop, the (steps, 120) sequence features the network's CTC layer turns into posteriors."""
        return [f for _, f in self.outputs(inks)]

    def outputs(self, inks: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per crop, its (posteriors, sequence features) at its own width.

        Crops are batched only with crops of the same width: the network mixes information along the
        whole line, so paper padded on to a short word changes its reading (300 `val` renders: the right
        lexicon word 92.0% of the time in batches padded to the widest crop, 95.3% each at its own width)."""
        if not inks:
            return []
        x, steps = reader_input(inks)
        out: list = [None] * len(inks)
        for t in sorted(set(steps)):
            rows = [n for n, s in enumerate(steps) if s == t]
            posts, feats = self.run(x[rows, :, :, :t * STRIDE], features=True)
            for n, p, f in zip(rows, posts, feats):
                out[n] = (p, f)
        return out

    def run(self, x: np.ndarray, features: bool = False):
        """The network on a ready batch (N, 3, 48, W): (N, W / 8, 18,710) posteriors (and, with
        `features`, the (N, W / 8, 120) sequence features)."""
        posts, feats = self.session.run(None, {self.session.get_inputs()[0].name: np.ascontiguousarray(x, np.float32)})
        return (posts, feats) if features else posts

    def decode(self, posteriors: np.ndarray) -> Reading:
        """Greedy CTC reading of one crop: the best symbol per step, repeats merged, blanks dropped."""
        best, conf = posteriors.argmax(1), posteriors.max(1)
        text, cs, prev = [], [], 0
        for s, c in zip(best, conf):
            if s != prev and s != 0:
                text.append(self.symbols[s])
                cs.append(float(c))
            prev = s
        return Reading("".join(text), cs)

    def read(self, inks: list[np.ndarray]) -> list[Reading]:
        """Greedy CTC readings of ink crops."""
        return [self.decode(p) for p in self.posteriors(inks)]


def ctc_initializers(model) -> tuple[str, str]:
    """The names of the CTC layer's weight (120, 18,710) and bias initializers in a reader graph."""
    init = {t.name for t in model.graph.initializer}
    mm = next(n for n in model.graph.node if n.op_type == "MatMul" and FEATURES in n.input)
    add = next(n for n in model.graph.node if n.op_type == "Add" and mm.output[0] in n.input)
    return (next(i for i in mm.input if i in init), next(i for i in add.input if i in init))


def with_weights(data: bytes, weights: dict[str, np.ndarray]) -> bytes:
    """An ONNX graph with some initializers replaced (same names, shapes and dtypes); ValueError otherwise."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(data)
    init = {t.name: t for t in model.graph.initializer}
    for name, value in weights.items():
        old = init.get(name)
        if old is None or tuple(old.dims) != tuple(value.shape):
            raise ValueError(f"adapted reader weight {name} {tuple(value.shape)} does not fit the reader's graph "
                             f"({'no such tensor' if old is None else tuple(old.dims)})")
        old.CopyFrom(numpy_helper.from_array(np.asarray(value, numpy_helper.to_array(old).dtype), name))
    return model.SerializeToString()


def _with_features(data: bytes) -> bytes:
    """The ONNX graph with the sequence features before its CTC layer as a second output."""
    import onnx

    model = onnx.load_from_string(data)
    if not any(FEATURES in n.output for n in model.graph.node):
        raise RuntimeError(f"the reader has no tensor {FEATURES}: not the PP-OCRv6 graph XMR was built with")
    model.graph.output.append(onnx.helper.make_tensor_value_info(FEATURES, onnx.TensorProto.FLOAT, None))
    return model.SerializeToString()
