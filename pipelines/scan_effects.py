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
        img = jpeg_round_trip(img, p.jpeg)
    return img


def jpeg_round_trip(img: np.ndarray, quality: int) -> np.ndarray:
    """The greyscale image after JPEG compression at `quality` (1-100) and decoding."""
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)


def rough_scan(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A worse scan than `sample_scan` makes, for training a reader that copes: two to four of
    a heavy pen or toner (ink spread by 1-2 px), faint ink, blur (sigma 1.2-2.2), strong noise
    (sigma 8-16), dust specks, uneven light (a phone photo's shading down to 40-80%) and coarse
    JPEG (quality 15-40, always last). Greyscale uint8 in and out, the same size, so every
    labelled box still holds its character."""
    effects = rng.permutation(6)[: int(rng.integers(2, 5))]
    jpeg = 5 in effects
    for effect in sorted(effects):
        if effect == 0:  # ink spreads: a grey erosion widens every dark stroke
            size = int(rng.integers(2, 4))
            img = cv2.erode(img, np.ones((size, size), np.uint8))
        elif effect == 1:  # faint ink: dark levels lifted towards the paper
            k = rng.uniform(0.4, 0.7)
            img = cv2.convertScaleAbs(img, alpha=k, beta=255 * (1 - k))
        elif effect == 2:
            img = cv2.GaussianBlur(img, (0, 0), rng.uniform(1.2, 2.2))
        elif effect == 3:
            noise = rng.normal(0, rng.uniform(8, 16), img.shape)
            img = np.clip(img + noise, 0, 255).astype(np.uint8)
        elif effect == 4:
            img = _specks_and_shade(img, rng)
    if jpeg:
        img = jpeg_round_trip(img, int(rng.integers(15, 41)))
    return img


def _specks_and_shade(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Dust (0.1-1% of the pixels black or white) and light falling off linearly across the
    page in a random direction, to 40-80% at the far side."""
    h, w = img.shape
    out = img.astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.ogrid[0:h, 0:w]
    t = np.clip(np.cos(angle) * (xs / w - 0.5) + np.sin(angle) * (ys / h - 0.5) + 0.5, 0, 1)
    out *= 1 - (1 - rng.uniform(0.4, 0.8)) * t
    dust = rng.random((h, w)) < rng.uniform(0.001, 0.01)
    out[dust] = np.where(rng.random(int(dust.sum())) < 0.5, 0, 255)
    return np.clip(out, 0, 255).astype(np.uint8)


def mottled(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The cheque printed over a pictorial or mottled background: the page's shade (print and
    writing with it) varies in blobs a few strokes wide (sigma 6-14 px) by 5-10% (one standard
    deviation), over a broad darkening of up to 30% (sigma 30 px). Greyscale uint8 in and out,
    the same size."""
    h, w = img.shape
    broad = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 30)
    broad = (broad - broad.min()) / max(float(np.ptp(broad)), 1e-6)
    blobs = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0),
                             rng.uniform(6, 14))
    blobs /= max(float(blobs.std()), 1e-6)
    shade = 1 - rng.uniform(0, 0.3) * (1 - broad) + rng.uniform(0.05, 0.1) * blobs
    return np.clip(img * np.clip(shade, 0.4, 1.0), 0, 255).astype(np.uint8)
