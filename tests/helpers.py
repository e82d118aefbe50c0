"""Small shared pieces of the tests: a small real model configuration and PNG encoding."""

import io

from PIL import Image

# a small, fast, untrained (but real) model: MobileNetV3-Small 0.5 at 32x128, frozen USE top
SMALL = {"embed_dim": 64, "vision": {"backbone": "mobilenetv3_small_050", "dropout": 0.0},
         "text": {"trainable_top": False}, "preprocess": {"height": 32, "width": 128, "pad": 2}}


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()
