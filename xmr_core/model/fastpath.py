"""Fast inference paths: the visual encoder exported to ONNX (`visual.onnx`, FP32) and statically
quantised to INT8 with onnxruntime, calibrated on rendered images (`visual.int8.onnx`).

The engine uses the path the model's metrics.json names (`fast_path.use`, decided by `choose` when the
model is packaged): INT8 where it is faster than FP32 and within 0.5 points of its Acc@1 on the `val`
fonts; else the ONNX FP32 graph where onnxruntime runs it faster than torch (same numbers); else torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from xmr_core.model.dual import DualEncoder


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
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(calibration[i:i + 1] for i in range(len(calibration)))

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"x": x.astype(np.float32)}

    pre = Path(str(out_path) + ".pre.onnx")
    quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
    # percentile calibration: measured on the default model, it loses 1.6 points of within-language
    # Acc@1 where min-max loses 4.2
    quantize_static(str(pre), str(out_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                    calibrate_method=CalibrationMethod.Percentile)
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


ONNX_FILE = "visual.onnx"
INT8_FILE = "visual.int8.onnx"
FILES = {"int8": INT8_FILE, "onnx-fp32": ONNX_FILE}
MAX_DROP = 0.005  # INT8 may lose at most 0.5 points of within- and cross-lingual Acc@1


def build_fast_paths(model: DualEncoder, model_dir: Path | str, calibration: np.ndarray) -> tuple[Path, Path]:
    """Export the visual encoder to `model_dir`/visual.onnx and quantise it to visual.int8.onnx."""
    fp32 = export_onnx(model, Path(model_dir) / ONNX_FILE)
    return fp32, quantize_int8(fp32, Path(model_dir) / INT8_FILE, calibration)


def qualifies(fp32: dict, int8: dict) -> bool:
    """The rule of issue 6: faster, and Acc@1 within MAX_DROP of FP32 (both eval results on `val`)."""
    return (int8["latency_ms_p50"] < fp32["latency_ms_p50"]
            and all(int8[k] >= fp32[k] - MAX_DROP for k in ("within_acc@1", "cross_acc@1")))


def choose(torch_fp32: dict, onnx_fp32: dict, int8: dict) -> str | None:
    """Which path the engine should use: 'int8', 'onnx-fp32' or None (torch), from eval results on val."""
    if qualifies(torch_fp32, int8):
        return "int8"
    if qualifies(torch_fp32, onnx_fp32):  # the same graph in FP32: only its speed can differ
        return "onnx-fp32"
    return None


def load_fast_path(model_dir: Path | str, threads: int = 1) -> tuple[str, OnnxVisual] | None:
    """(name, encoder) of the path a model directory's metrics chose, or None for torch."""
    model_dir = Path(model_dir)
    metrics = model_dir / "metrics.json"
    if not metrics.exists():
        return None
    use = json.loads(metrics.read_text()).get("fast_path", {}).get("use")
    if use not in FILES or not (model_dir / FILES[use]).exists():
        return None
    return use, OnnxVisual(model_dir / FILES[use], threads)
