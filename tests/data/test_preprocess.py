import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from xmr_core.data.preprocess import PreprocessConfig, preprocess, to_preview
from xmr_core.data.render import Style, SyntheticWords, render_word


def corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.fixture(scope="module")
def word(lexicon, fonts_ready) -> Image.Image:
    """A clean dark-on-white word (grayscale)."""
    ds = SyntheticWords(lexicon, "train", seed=0)
    key = next(k for k in ds.usable_sources("gato", "es", "font") if "Caveat" in k)
    return render_word("gato", Style(kind="font", source=key, size=64, paper=1.0, ink=0.0), np.random.default_rng(0))


@pytest.fixture(scope="module")
def ref(word) -> np.ndarray:
    return preprocess(word)


def test_output_shape_range_and_fit(ref):
    assert ref.shape == (1, 64, 256) and ref.dtype == np.float32
    assert 0 <= ref.min() and ref.max() <= 1 and ref.max() > 0.9
    ys, xs = np.nonzero(ref[0] > 0.3)
    # cropped to the ink and scaled until it touches the padded box on one axis
    assert ys.min() <= 6 or xs.min() <= 6
    assert ref[0, :, :3].max() == 0 and ref[0, :3].max() == 0  # padding is paper


def test_canvas_rgba_transparent(lexicon, fonts_ready):
    st = Style(kind="canvas", source="hershey/EMSAllure.svg", pen_width=0.1, transparent=True)
    rgba = render_word("gato", st, np.random.default_rng(0))
    white = render_word("gato", Style(**{**st.to_dict(), "transparent": False}), np.random.default_rng(0))
    assert rgba.mode == "RGBA"
    assert corr(preprocess(rgba), preprocess(white)) > 0.98
    # white strokes on a transparent background (a dark-themed canvas) work too
    arr = np.asarray(rgba).copy()
    arr[..., :3] = 255
    assert corr(preprocess(Image.fromarray(arr, "RGBA")), preprocess(white)) > 0.95


def test_photo_with_uneven_light_and_colour(word, ref):
    g = np.asarray(word, np.float32)
    h, w = g.shape
    light = np.linspace(0.35, 1.0, w)[None, :] * np.linspace(0.8, 1.0, h)[:, None]
    rgb = np.stack([g * light * 0.95, g * light * 0.9, g * light * 0.75], -1)
    photo = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
    assert corr(preprocess(photo), ref) > 0.85


def test_light_on_dark(word, ref):
    inv = Image.fromarray(255 - np.asarray(word), "L")
    assert corr(preprocess(inv), ref) > 0.95


def test_sixteen_bit_and_palette(word, ref):
    a16 = (np.asarray(word, np.uint16) * 257).astype(np.uint16)
    img16 = Image.fromarray(a16)
    assert img16.mode.startswith("I;16")
    buf = io.BytesIO()
    img16.save(buf, "PNG")
    assert corr(preprocess(buf.getvalue()), ref) > 0.95
    pal = word.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    assert corr(preprocess(pal), ref) > 0.9


def test_exif_rotation(word, ref):
    rotated = word.convert("RGB").rotate(90, expand=True)  # stored sideways
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    buf = io.BytesIO()
    rotated.save(buf, "JPEG", exif=exif.tobytes(), quality=95)
    assert corr(preprocess(buf.getvalue()), ref) > 0.9


def test_tiny_image(word, ref):
    tiny = word.resize((30, 20), Image.LANCZOS)
    out = preprocess(tiny)
    assert out.shape == (1, 64, 256) and corr(out, ref) > 0.6


def test_fifty_megapixel_image(word, ref, tmp_path):
    big = Image.new("L", (8200, 6100), 255)
    w = word.resize((word.width * 20, word.height * 20), Image.BILINEAR)
    big.paste(w, (1500, 2000))
    path = tmp_path / "big.jpg"
    big.save(path, "JPEG", quality=90)
    out = preprocess(str(path))
    assert corr(out, ref) > 0.85


@pytest.mark.parametrize("data, msg", [
    (b"this is not an image", "not a readable image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "not a readable image"),
])
def test_unreadable_bytes(data, msg):
    with pytest.raises(ValueError, match=msg):
        preprocess(data)


def test_truncated_file(word):
    buf = io.BytesIO()
    word.convert("RGB").save(buf, "PNG")
    with pytest.raises(ValueError):
        preprocess(buf.getvalue()[: len(buf.getvalue()) // 2])


def test_blank_images():
    for img in (Image.new("L", (300, 100), 255), Image.new("RGBA", (300, 100), (0, 0, 0, 0)),
                Image.new("RGB", (300, 100), (30, 30, 30))):
        with pytest.raises(ValueError, match="blank"):
            preprocess(img)


def _png_header(w: int, h: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))


def test_decompression_bomb_refused():
    with pytest.raises(ValueError, match="MP"):
        preprocess(_png_header(30000, 30000))


def test_config_and_preview(word):
    cfg = PreprocessConfig(height=32, width=128, pad=2)
    out = preprocess(word, cfg.to_dict())
    assert out.shape == (1, 32, 128)
    assert to_preview(out).size == (128, 32)
    with pytest.raises(ValueError):
        PreprocessConfig(height=8)


def test_heic_photo(word, ref):
    buf = io.BytesIO()
    word.convert("RGB").save(buf, format="HEIF", quality=95)
    assert corr(preprocess(buf.getvalue()), ref) > 0.9
