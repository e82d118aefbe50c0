"""The ONNX FP32 and INT8 paths agree with the torch model."""

import numpy as np
import torch

from xmr_core.fastpath import OnnxVisual, export_onnx, quantize_int8
from xmr_core.lexicon import Lexicon
from xmr_core.model.dual import DualEncoder
from xmr_core.preprocess import PreprocessConfig, preprocess
from xmr_core.render import SyntheticWords


def test_onnx_and_int8_agree_with_torch(lexicon, fonts_ready, tmp_path):
    torch.manual_seed(0)
    model = DualEncoder({"vision": {"backbone": "mobilenetv3_small_050"},
                         "preprocess": {"height": 48, "width": 192, "pad": 3}}).eval()
    pre = PreprocessConfig(48, 192, 3)
    ds = SyntheticWords(Lexicon(lexicon.concepts[:40]), "train", seed=2)
    x = np.stack([preprocess(ds[i].image, pre) for i in range(48)])
    fp32 = export_onnx(model, tmp_path / "visual.onnx")
    assert not model.visual.training  # exporting leaves the model as it was
    int8 = quantize_int8(fp32, tmp_path / "visual.int8.onnx", x[:32])
    with torch.no_grad():
        ref = model.encode_image(torch.from_numpy(x)).numpy()
    a, b = OnnxVisual(fp32)(x), OnnxVisual(int8)(x)
    assert (ref * a).sum(1).min() > 0.9999
    assert (ref * b).sum(1).min() > 0.99
    assert int8.stat().st_size < 0.5 * fp32.stat().st_size
