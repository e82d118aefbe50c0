"""INT8 inference path: the visual encoder exported to ONNX and statically quantised with onnxruntime,
calibrated on rendered images. Written beside the model as `visual.onnx` / `visual.int8.onnx`."""

from __future__ import annotations

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
