"""The ONNX FP32 and INT8 paths agree with the torch model."""

import json

import numpy as np
import torch
from helpers import png

from xmr_core.data.lexicon import Lexicon
from xmr_core.data.preprocess import PreprocessConfig, preprocess
from xmr_core.data.render import SyntheticWords
from xmr_core.model.checkpoint import save_model_dir
from xmr_core.model.dual import DualEncoder
from xmr_core.model.fastpath import OnnxVisual, build_fast_paths, choose, export_onnx, qualifies, quantize_int8
from xmr_core.search.engine import Engine


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


def test_qualifies_and_choose():
    fp32 = {"latency_ms_p50": 8.0, "within_acc@1": 0.50, "cross_acc@1": 0.45}
    onnx = {"latency_ms_p50": 2.0, "within_acc@1": 0.50, "cross_acc@1": 0.45}
    good = {"latency_ms_p50": 1.5, "within_acc@1": 0.496, "cross_acc@1": 0.46}
    lossy = {"latency_ms_p50": 1.5, "within_acc@1": 0.494, "cross_acc@1": 0.46}  # -0.6 pt
    assert qualifies(fp32, good) and not qualifies(fp32, lossy)
    assert not qualifies(fp32, {**good, "latency_ms_p50": 9.0})  # slower
    assert choose(fp32, onnx, good) == "int8" and choose(fp32, onnx, lossy) == "onnx-fp32"
    assert choose(fp32, {**onnx, "latency_ms_p50": 9.0}, lossy) is None


def test_engine_uses_int8_where_the_model_qualified_it(lexicon, fonts_ready, tmp_path):
    torch.manual_seed(0)
    lex = Lexicon(lexicon.concepts[:40])
    model = DualEncoder({"vision": {"backbone": "mobilenetv3_small_050"},
                         "preprocess": {"height": 48, "width": 192, "pad": 3}}).eval()
    pre = PreprocessConfig(48, 192, 3)
    ds = SyntheticWords(lex, "train", seed=2)
    samples = [ds[i] for i in range(40)]
    calib = np.stack([preprocess(s.image, pre) for s in samples[:32]])
    d = save_model_dir(model, lex, tmp_path / "m", metrics={"fast_path": {"use": None}})
    build_fast_paths(model, d, calib)
    assert Engine(tmp_path / "a", model_dir=d).fast is None  # none qualified: torch
    (d / "metrics.json").write_text(json.dumps({"fast_path": {"use": "onnx-fp32"}}))
    onnx = Engine(tmp_path / "o", model_dir=d)
    assert onnx.fast_path == "onnx-fp32" and not onnx.model_id.endswith("-int8")
    (d / "metrics.json").write_text(json.dumps({"fast_path": {"use": "int8"}}))
    fast, slow = Engine(tmp_path / "b", model_dir=d), Engine(tmp_path / "c", model_dir=d, fast_path=False)
    assert fast.fast_path == "int8" and fast.model_id.endswith("-int8") and slow.fast is None
    imgs = [(f"s{i}", png(s.image)) for i, s in enumerate(samples)]
    for eng in (fast, slow):
        eng.add("c", imgs)
    a, b = fast.store.embeddings(fast.model_id)[1], slow.store.embeddings(slow.model_id)[1]
    assert (a * b).sum(1).min() > 0.99
    for s in samples[:10]:  # the same top hit either way (an untrained model: near-ties elsewhere)
        q = png(s.image)
        assert fast.search(image=q, k=1)[0][0].path.name == slow.search(image=q, k=1)[0][0].path.name
