"""Small shared pieces of the tests: a small real model configuration and PNG encoding."""

import io
import struct
import zlib

import numpy as np
from PIL import Image, ImageDraw

# a small, fast, untrained (but real) model: MobileNetV3-Small 0.5 at 32x128, frozen USE top
SMALL = {"embed_dim": 64, "vision": {"backbone": "mobilenetv3_small_050", "dropout": 0.0},
         "text": {"trainable_top": False}, "preprocess": {"height": 32, "width": 128, "pad": 2}}


def small_reading_model(lexicon, n_concepts: int):
    """A reading model (the real reader) over the small untrained model and the first `n_concepts`."""
    import torch

    from xmr_core.data.lexicon import Lexicon
    from xmr_core.model.dual import DualEncoder
    from xmr_core.model.reading import ReadingModel

    torch.manual_seed(0)
    return ReadingModel(DualEncoder(SMALL).eval(), Lexicon(lexicon.concepts[:n_concepts]))


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def word_png(text: str, seed: int = 0) -> bytes:
    """A distinct word image: dark text on white at a seeded offset."""
    rng = np.random.default_rng(seed)
    img = Image.new("L", (160, 48), 255)
    ImageDraw.Draw(img).text((int(rng.integers(2, 40)), int(rng.integers(2, 20))), text, fill=0,
                             font_size=20)
    return png(img)


def bomb_png(w: int = 60000, h: int = 60000) -> bytes:
    """A tiny PNG whose header claims w x h pixels."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))
