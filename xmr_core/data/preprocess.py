"""The one function that turns any image into the model's input.

Canvas drawings (RGBA on a transparent background), phone photos with uneven light, scans, inverted
(light-on-dark) images, 16-bit, palette, EXIF-rotated, tiny and huge images all end up the same way:
a float32 (1, H, W) array of ink intensity (0 = paper, 1 = ink), cropped to the ink, aspect kept,
centred and padded. Training, indexing and querying all call `preprocess`.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Union

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from xmr_core.data.configs import check_fields, strict_from_dict

ImageInput = Union[str, Path, bytes, Image.Image, np.ndarray]

try:  # HEIC/HEIF photos (phones) open like any other format
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover - the package is in requirements.txt
    pass

MAX_PIXELS = 120_000_000  # refuse larger images outright (decompression bombs)
WORK_SIDE = 1600  # images are reduced to at most this side before any pixel work
MIN_SIDE = 48  # and enlarged to at least this side


@dataclass(frozen=True)
class PreprocessConfig:
    height: int = 64  # model input height in pixels
    width: int = 256  # model input width in pixels
    pad: int = 4  # blank border kept around the ink

    def __post_init__(self) -> None:
        check_fields(self, "preprocess")
        if self.height < 16 or self.width < 16 or not 0 <= self.pad < min(self.height, self.width) // 4:
            raise ValueError(f"bad preprocess size {self.height}x{self.width} pad {self.pad}")

    @classmethod
    def from_dict(cls, d: dict | PreprocessConfig | None) -> PreprocessConfig:
        if d is None or isinstance(d, cls):
            return d or cls()
        return strict_from_dict(cls, d, "preprocess")

    def to_dict(self) -> dict:
        return asdict(self)


def open_image(src: ImageInput, max_side: int = WORK_SIDE) -> Image.Image:
    """Open a path, bytes, PIL image or array, honouring EXIF rotation, reduced to at most `max_side`
    pixels on its longer side; clear ValueError otherwise."""
    if isinstance(src, Image.Image):
        img = src
    elif isinstance(src, np.ndarray):
        if src.ndim not in (2, 3) or src.size == 0 or (src.ndim == 3 and src.shape[2] not in (1, 3, 4)):
            raise ValueError(f"an array of shape {src.shape} is not an image (H x W, or H x W x 1, 3 or 4 channels)")
        if src.dtype.kind not in "biuf":
            raise ValueError(f"an array of {src.dtype} is not an image (numbers expected)")
        arr = src[..., 0] if src.ndim == 3 and src.shape[2] == 1 else src
        if arr.dtype != np.uint8:
            arr = _to_uint8(np.nan_to_num(arr.astype(np.float64)))
        img = Image.fromarray(arr)
    elif isinstance(src, (bytes, bytearray, memoryview, str, Path)):
        try:
            img = Image.open(io.BytesIO(bytes(src)) if isinstance(src, (bytes, bytearray, memoryview)) else src)
        except FileNotFoundError:
            raise
        except Image.DecompressionBombError as exc:  # the header claims far more pixels than the limit
            raise ValueError(f"image is too large to open ({exc}); the limit is {MAX_PIXELS / 1e6:.0f} MP") from exc
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise ValueError("not a readable image file (PNG, JPEG, WebP, BMP, TIFF, GIF, HEIC)") from exc
    else:
        raise ValueError(f"an image is a path, bytes, a PIL image or an array, not {type(src).__name__}")
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise ValueError(f"image is {w}x{h} ({w * h / 1e6:.0f} MP); the limit is {MAX_PIXELS / 1e6:.0f} MP")
    if w < 2 or h < 2:
        raise ValueError(f"image is {w}x{h} pixels: too small to hold a word")
    try:
        if getattr(img, "format", None) == "JPEG" and max(w, h) > max_side:
            img.draft("RGB", (max_side, max_side))  # decode at reduced scale: no 50 MP buffer
        img = ImageOps.exif_transpose(img)
        img.load()
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValueError(f"image could not be decoded: {exc}") from exc
    if max(img.size) > max_side:
        f = int(np.ceil(max(img.size) / max_side))
        img = img.reduce(f) if img.mode not in ("P", "1", "I;16", "I;16B", "I;16L") else img
    return img


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        return np.zeros(arr.shape, np.uint8)
    return ((arr - lo) / (hi - lo) * 255).astype(np.uint8)


def to_gray(img: Image.Image) -> np.ndarray:
    """Grayscale float32 in [0, 1]; transparency composited onto white (onto black if that shows
    nothing, for light strokes on a transparent background)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        g = _to_uint8(arr).astype(np.float32) / 255.0
        return _shrink(g)
    if img.mode == "P" or img.mode == "1":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
        lum = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
        a = rgba[..., 3]
        if a.min() < 0.99:  # real transparency
            on_white = lum * a + (1 - a)
            if np.ptp(on_white) > 0.1:
                return _shrink(on_white)
            return _shrink(lum * a)  # light strokes: on black they show, and polarity is fixed later
        return _shrink(lum)
    return _shrink(np.asarray(img.convert("L"), dtype=np.float32) / 255.0)


def _shrink(g: np.ndarray) -> np.ndarray:
    """Bring the working image to a size where stroke and background scales are measurable."""
    if min(g.shape) < MIN_SIDE:  # tiny images: upsample so strokes span several pixels
        f = MIN_SIDE / min(g.shape)
        g = cv2.resize(g, (int(round(g.shape[1] * f)), int(round(g.shape[0] * f))), interpolation=cv2.INTER_CUBIC)
    if max(g.shape) > WORK_SIDE:
        f = WORK_SIDE / max(g.shape)
        g = cv2.resize(g, (max(1, int(g.shape[1] * f)), max(1, int(g.shape[0] * f))), interpolation=cv2.INTER_AREA)
    return g


def ink_map(gray: np.ndarray) -> np.ndarray:
    """Ink intensity in [0, 1] from grayscale: polarity fixed, uneven light flattened, paper -> 0."""
    g = gray.astype(np.float32)
    h, w = g.shape
    border = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
    if np.median(border) < 0.5 and np.median(g) < 0.5:  # light ink on a dark ground
        g = 1 - g
    # background: a max filter wider than any stroke, smoothed; ink is the darkening relative to it
    k = max(3, int(round(min(h, w) / 4)) | 1)
    small = max(h, w) > 400
    gs = cv2.resize(g, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA) if small else g
    ks = max(3, (k // 4) | 1) if small else k
    bg = cv2.dilate(gs, np.ones((ks, ks), np.uint8))
    bg = cv2.blur(bg, (ks, ks))
    if small:
        bg = cv2.resize(bg, (w, h), interpolation=cv2.INTER_LINEAR)
    bg = np.maximum(bg, g)
    ink = (bg - g) / np.maximum(bg, 0.15)
    if ink.max() <= 0:
        return np.zeros_like(ink)
    # scale by the strokes' own strength: one dark speck must not make faint writing vanish below the threshold
    ink = np.clip(ink / max(_stroke_strength(ink), 1e-6), 0, 1)
    u8 = (ink * 255).astype(np.uint8)
    t, _ = cv2.threshold(u8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    floor = min(0.5, max(0.2, 0.5 * t / 255.0))
    return np.clip((ink - floor) / (1 - floor), 0, 1)


def _stroke_strength(ink: np.ndarray) -> float:
    """The ink level of the strokes: the darkest pixel, unless it is far darker than the strokes (a speck
    on faint writing), when the 99.5th percentile of the inked pixels is used instead. Images whose
    darkest pixel belongs to the strokes are scaled exactly as the models were trained."""
    top = float(ink.max())
    inked = ink[ink > 0.1 * top]
    if len(inked) < 200:
        return top
    strokes = float(np.percentile(inked, 99.5))
    return top if strokes > 0.5 * top else strokes


def crop_to_ink(ink: np.ndarray, min_ink: float = 0.3) -> np.ndarray:
    """The tight box around the ink; ValueError when there is none (blank image)."""
    strong = ink > min_ink
    n = int(strong.sum())
    if n < 4:
        raise ValueError("the image is blank: no ink or pen strokes were found")
    # ignore specks: rows/cols whose ink is a tiny share of the total
    rows, cols = strong.sum(1), strong.sum(0)
    tol = max(1, n // 2000)
    ys, xs = np.nonzero(rows >= tol)[0], np.nonzero(cols >= tol)[0]
    return ink[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]


def fit(ink: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Scale to fit inside the input box keeping the aspect ratio; centre; pad with paper."""
    h, w = ink.shape
    bh, bw = cfg.height - 2 * cfg.pad, cfg.width - 2 * cfg.pad
    f = min(bh / h, bw / w)
    nh, nw = max(1, int(round(h * f))), max(1, int(round(w * f)))
    interp = cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR
    small = cv2.resize(ink, (nw, nh), interpolation=interp)
    out = np.zeros((cfg.height, cfg.width), np.float32)
    y0, x0 = (cfg.height - nh) // 2, (cfg.width - nw) // 2
    out[y0:y0 + nh, x0:x0 + nw] = small
    return out


def preprocess(src: ImageInput, cfg: PreprocessConfig | dict | None = None) -> np.ndarray:
    """Any image -> float32 array (1, H, W) of ink intensity, ready for the visual encoder.

    Raises ValueError with a message fit for a person when the input is unreadable or blank."""
    cfg = PreprocessConfig.from_dict(cfg)
    return fit(word_ink(src), cfg)[None]


def word_ink(src: ImageInput) -> np.ndarray:
    """The image's ink intensity (float32, H x W) cropped to the ink: what `fit` scales into the input box."""
    return crop_to_ink(ink_map(to_gray(open_image(src))))


def to_preview(x: np.ndarray) -> Image.Image:
    """The model's view of an image as a picture (dark ink on white), for 'what the model sees'."""
    return Image.fromarray(((1 - np.clip(x[0], 0, 1)) * 255).astype(np.uint8), "L")


def storable(data: bytes | Image.Image, max_side: int = WORK_SIDE) -> Image.Image:
    """An input image opened for storage: EXIF orientation applied, size capped, 8-bit modes."""
    img = open_image(data, max_side)
    if img.mode.startswith(("I", "F")):  # 16-bit and float scans: scale to 8 bits, not clip
        img = Image.fromarray((to_gray(img) * 255).astype(np.uint8), "L")
    elif img.mode not in ("L", "LA", "RGB", "RGBA"):
        img = img.convert("RGBA" if "A" in img.mode or img.mode == "P" else "RGB")
    return img


def encode_png(img: Image.Image) -> bytes:
    """PNG bytes of an image as stored."""
    buf = io.BytesIO()
    img.save(buf, "PNG")  # default settings: the sha256 of a stored image must not change
    return buf.getvalue()


def png_bytes(data: bytes | Image.Image, max_side: int = WORK_SIDE) -> bytes:
    """Normalise an input image to PNG bytes for storage (at most `max_side` pixels on its longer side)."""
    return encode_png(storable(data, max_side))
