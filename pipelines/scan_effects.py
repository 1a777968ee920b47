"""What a scanner does to a cheque: small rotation, blur, contrast, noise, JPEG, bitonal.

The geometric part (a rotation of up to `max_angle` degrees about the image centre) also maps
boxes: a box becomes the axis-aligned box of its four transformed corners, clipped to the image.
Since rotation is affine, a box inside another stays inside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class ScanParams:
    angle: float  # degrees, counter-clockwise
    blur: float  # Gaussian sigma in px, 0 = none
    contrast: float
    brightness: float
    noise: float  # grey levels of additive noise
    jpeg: int  # JPEG quality, 0 = none
    bitonal: str  # "", "otsu" or "adaptive"


def sample_scan(rng: np.random.Generator, bitonal: bool = False,
                max_angle: float = 1.5) -> ScanParams:
    return ScanParams(
        angle=float(rng.uniform(-max_angle, max_angle)),
        blur=float(rng.choice([0.0, rng.uniform(0.4, 1.2)], p=[0.3, 0.7])),
        contrast=float(rng.uniform(0.8, 1.15)),
        brightness=float(rng.uniform(-15, 15)),
        noise=float(rng.uniform(0, 2.5) if rng.random() < 0.75 else rng.uniform(2.5, 8)),
        jpeg=int(rng.integers(40, 95)) if rng.random() < 0.6 else 0,
        bitonal=str(rng.choice(["otsu", "adaptive"])) if bitonal else "",
    )


def rotation_matrix(shape: tuple[int, int], angle: float) -> np.ndarray:
    h, w = shape
    return cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)


def transform_box(box: Box, m: np.ndarray, shape: tuple[int, int]) -> Box:
    """The axis-aligned box of `box`'s corners mapped by the 2x3 matrix `m`, clipped to shape."""
    x, y, w, h = box
    corners = np.array([[x, y, 1], [x + w, y, 1], [x, y + h, 1], [x + w, y + h, 1]], float)
    pts = corners @ m.T
    x0 = int(np.clip(np.floor(pts[:, 0].min()), 0, shape[1] - 1))
    y0 = int(np.clip(np.floor(pts[:, 1].min()), 0, shape[0] - 1))
    x1 = int(np.clip(np.ceil(pts[:, 0].max()), x0 + 1, shape[1]))
    y1 = int(np.clip(np.ceil(pts[:, 1].max()), y0 + 1, shape[0]))
    return (x0, y0, x1 - x0, y1 - y0)


@lru_cache(maxsize=2)
def _noise_bank(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian noise of sigma 16 split into its positive and negative parts (uint8 each):
    cropping these is much cheaper than fresh noise per cheque."""
    rng = np.random.default_rng(seed)
    noise = np.clip(rng.normal(0, 16, (1100, 2300)), -255, 255)
    return (np.maximum(noise, 0).astype(np.uint8), np.maximum(-noise, 0).astype(np.uint8))


def rotate(img: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate about the centre, filling with the paper's border colour; returns (image, m)."""
    m = rotation_matrix(img.shape, angle)
    border = int(np.median(img[:4, :: max(1, img.shape[1] // 64)]))
    out = cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=border)
    return out, m


def photometric(img: np.ndarray, p: ScanParams, rng: np.random.Generator) -> np.ndarray:
    """Blur, contrast/brightness, noise, then JPEG or bitonal thresholding."""
    h, w = img.shape
    if p.blur > 0:
        img = cv2.GaussianBlur(img, (0, 0), p.blur)
    img = cv2.convertScaleAbs(img, alpha=p.contrast,
                              beta=p.brightness + 128 * (1 - p.contrast))
    pos, neg = _noise_bank(0)
    y0 = int(rng.integers(0, pos.shape[0] - h + 1))
    x0 = int(rng.integers(0, pos.shape[1] - w + 1))
    if p.noise > 0:
        k = p.noise / 16
        img = cv2.add(img, cv2.convertScaleAbs(pos[y0: y0 + h, x0: x0 + w], alpha=k))
        img = cv2.subtract(img, cv2.convertScaleAbs(neg[y0: y0 + h, x0: x0 + w], alpha=k))
    if p.bitonal == "otsu":
        _, img = cv2.threshold(img, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    elif p.bitonal == "adaptive":
        block = 2 * (max(h, w) // 40) + 1
        img = cv2.adaptiveThreshold(img, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY,
                                    block, 18)
    elif p.jpeg:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, p.jpeg])
        assert ok
        img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    return img
