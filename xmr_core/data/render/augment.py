"""Pure image degradations on float ink masks (H x W, 0 = no ink, 1 = full ink)."""

from __future__ import annotations

import cv2
import numpy as np


def pad_mask(mask: np.ndarray, margin: int) -> np.ndarray:
    return np.pad(mask, margin)


THINNING_KEEPS = 0.3  # thinning that leaves less ink than this share of it erases the word: not done


def change_stroke(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Thicken (pixels > 0) or thin (pixels < 0) the strokes. Strokes already as thin as the thinning
    are left as they are: eroding a hairline hand leaves faint specks, not a thinner pen (session 38: Miss
    Fajardose's thinned renders kept about a quarter of their ink, and most of them no word a person can
    read; docs/reader.md)."""
    if pixels == 0:
        return mask
    k = np.ones((abs(pixels) + 1, abs(pixels) + 1), np.uint8)
    if pixels > 0:
        return cv2.dilate(mask, k)
    thin = cv2.erode(mask, k)
    return thin if thin.sum() >= THINNING_KEEPS * mask.sum() else mask


def slant(mask: np.ndarray, shear: float) -> np.ndarray:
    """Horizontal shear about the vertical centre; the canvas widens to keep all ink."""
    if abs(shear) < 1e-3:
        return mask
    h, w = mask.shape
    extra = int(abs(shear) * h) + 1
    m = np.float32([[1, -shear, extra / 2 + shear * h / 2], [0, 1, 0]])
    return cv2.warpAffine(mask, m, (w + extra, h), flags=cv2.INTER_LINEAR)


def wave(mask: np.ndarray, amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """Baseline wave: each column shifted vertically along a random sine."""
    if amplitude < 0.3:
        return mask
    h, w = mask.shape
    period = rng.uniform(0.6, 2.0) * h * 3
    phase = rng.uniform(0, 2 * np.pi)
    shift = amplitude * np.sin(2 * np.pi * np.arange(w) / period + phase)
    map_x = np.tile(np.arange(w, dtype=np.float32), (h, 1))
    map_y = (np.arange(h, dtype=np.float32)[:, None] - shift[None, :]).astype(np.float32)
    return cv2.remap(mask, map_x, map_y, cv2.INTER_LINEAR, borderValue=0)


def elastic(mask: np.ndarray, strength: float, rng: np.random.Generator, grid: int = 8) -> np.ndarray:
    """Smooth random displacement field (coarse noise upsampled), `strength` pixels at most."""
    if strength < 0.2:
        return mask
    h, w = mask.shape
    gh, gw = max(2, h // grid), max(2, w // grid)
    dx = cv2.resize(rng.uniform(-1, 1, (gh, gw)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(rng.uniform(-1, 1, (gh, gw)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    map_x = np.arange(w, dtype=np.float32)[None, :] + strength * dx
    map_y = np.arange(h, dtype=np.float32)[:, None] + strength * dy
    return cv2.remap(mask, map_x, map_y, cv2.INTER_LINEAR, borderValue=0)


def blur(mask: np.ndarray, sigma: float) -> np.ndarray:
    if sigma < 0.3:
        return mask
    return cv2.GaussianBlur(mask, (0, 0), sigma)


def compose_on_paper(mask: np.ndarray, paper: float, ink: float, texture: float, noise: float,
                     rng: np.random.Generator) -> np.ndarray:
    """Ink mask -> uint8 grayscale page: paper tone with low-frequency texture, ink, sensor noise."""
    h, w = mask.shape
    bg = np.full((h, w), paper, np.float32)
    if texture > 0:
        coarse = rng.normal(0, 1, (max(2, h // 16), max(2, w // 16))).astype(np.float32)
        bg += texture * cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    m = np.clip(mask, 0, 1)
    img = bg * (1 - m) + ink * m
    if noise > 0:
        img += rng.normal(0, noise, (h, w)).astype(np.float32)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)
