"""INT8 inference path: the visual encoder exported to ONNX and statically quantised with onnxruntime,
calibrated on rendered images, written into the model directory as `visual.int8.onnx`.

The engine uses it for queries and indexing only where the model's metrics.json says it qualified
(`fast_path.use`: faster than FP32 and within 0.5 points of its Acc@1 on the `val` fonts).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from .model.dual import DualEncoder


class _Visual(torch.nn.Module):
    def __init__(self, model: DualEncoder) -> None:
        super().__init__()
        self.visual = model.visual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.visual(x, normalize=True)


def export_onnx(model: DualEncoder, path: Path | str) -> Path:
    """Export the visual encoder (input: float32 (N, 1, H, W) ink map; output: normalised embeddings)."""
    path = Path(path)
    cfg = model.cfg.preprocess
    wrapper = _Visual(model).eval()  # export restores the wrapper's mode on every submodule: keep it eval
    torch.onnx.export(wrapper, torch.zeros(1, 1, cfg.height, cfg.width), str(path), input_names=["x"],
                      output_names=["embedding"], dynamic_axes={"x": {0: "n"}, "embedding": {0: "n"}},
                      opset_version=17, dynamo=False)
    return path


def quantize_int8(fp32_path: Path | str, out_path: Path | str, calibration: np.ndarray) -> Path:
    """Static INT8 quantisation (QDQ, per-channel weights) calibrated on preprocessed inputs."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(calibration[i:i + 1] for i in range(len(calibration)))

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"x": x.astype(np.float32)}

    pre = Path(str(out_path) + ".pre.onnx")
    quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
    quantize_static(str(pre), str(out_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
    pre.unlink(missing_ok=True)
    return Path(out_path)


class OnnxVisual:
    """Runs an exported visual encoder with onnxruntime (one session, `threads` intra-op threads)."""

    def __init__(self, path: Path | str, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"x": np.ascontiguousarray(x, np.float32)})[0]


INT8_FILE = "visual.int8.onnx"
MAX_DROP = 0.005  # INT8 may lose at most 0.5 points of within- and cross-lingual Acc@1


def build_int8(model: DualEncoder, model_dir: Path | str, calibration: np.ndarray) -> Path:
    """Export and quantise the visual encoder into `model_dir` / visual.int8.onnx."""
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(model, Path(tmp) / "visual.onnx")
        return quantize_int8(fp32, Path(model_dir) / INT8_FILE, calibration)


def qualifies(fp32: dict, int8: dict) -> bool:
    """The rule of issue 6: faster, and Acc@1 within MAX_DROP of FP32 (both eval results on `val`)."""
    return (int8["latency_ms_p50"] < fp32["latency_ms_p50"]
            and all(int8[k] >= fp32[k] - MAX_DROP for k in ("within_acc@1", "cross_acc@1")))


def load_fast_path(model_dir: Path | str, threads: int = 1) -> OnnxVisual | None:
    """The INT8 encoder of a model directory, or None when it has none or it did not qualify."""
    model_dir = Path(model_dir)
    metrics = model_dir / "metrics.json"
    if not (model_dir / INT8_FILE).exists() or not metrics.exists():
        return None
    if not json.loads(metrics.read_text()).get("fast_path", {}).get("use"):
        return None
    return OnnxVisual(model_dir / INT8_FILE, threads)
