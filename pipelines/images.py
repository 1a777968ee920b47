"""Reading scans safely: every failure is a one-line ImageError naming the file and the problem.

Formats: whatever Pillow decodes (PNG, JPEG, TIFF including bitonal CCITT G4, BMP, ...).
Images above MAX_PIXELS are refused from their header, before any pixel is decoded. Images with
transparency are laid on white paper.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Pillow modes of greyscale wider than 8 bits (16-bit PNG and TIFF open as one of these)
WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")
MAX_PIXELS = 40_000_000  # a 200-dpi cheque is ~1.1 Mpx; a 600-dpi A4 page ~35 Mpx


class ImageError(ValueError):
    """An input image that cannot be read; the message names the file and the problem."""


def load_gray(path: str | Path) -> np.ndarray:
    """The image at `path` as (H, W) uint8 greyscale, paper light."""
    p = Path(path)
    if p.is_dir():
        raise ImageError(f"{p} is a directory, not an image")
    if not p.exists():
        raise ImageError(f"{p} does not exist")
    if p.stat().st_size == 0:
        raise ImageError(f"{p} is empty")
    try:
        with Image.open(p) as im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise ImageError(f"{p} is {w}x{h} pixels, over the limit of {MAX_PIXELS:,} pixels")
            if w < 8 or h < 8:
                raise ImageError(f"{p} is {w}x{h} pixels, too small to hold an amount")
            im.load()
            im = ImageOps.exif_transpose(im)  # photos and some scanners store the rotation
            if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
                im = on_white(im)
            if im.mode in WIDE_MODES:  # convert("L") would clip 16-bit values, not scale them
                gray = to_uint8(np.asarray(im))
            else:
                gray = np.asarray(im.convert("L"))
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError(f"{p} has more pixels than the limit of {MAX_PIXELS:,} pixels") from None
    except UnidentifiedImageError:
        raise ImageError(f"{p} is not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"{p} is corrupt or truncated: {err}") from None
    return np.ascontiguousarray(gray)


def on_white(im: Image.Image) -> Image.Image:
    """An image with transparency laid on white paper: transparent pixels are often stored
    black, which would read as a black page."""
    rgba = im.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)


def as_gray(image: np.ndarray) -> np.ndarray:
    """Accept (H, W) or (H, W, 3|4) arrays, uint8 or float 0..1; return (H, W) uint8. A fourth
    channel is alpha: the image is laid on white paper."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected a numpy image array, got {type(image).__name__}")
    a = image
    if a.ndim == 3 and a.shape[2] in (3, 4):
        if a.shape[2] == 4:
            rgb = to_uint8(a[..., :3].reshape(a.shape[0], -1)).reshape(a.shape[:2] + (3,))
            alpha = to_uint8(a[..., 3]).astype(np.float32)[..., None] / 255.0
            a = rgb.astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        a = a[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    if a.ndim != 2:
        raise ValueError(f"expected an (H, W) or (H, W, 3) image, got shape {image.shape}")
    if a.size == 0:
        raise ValueError("the image is empty")
    return to_uint8(a)


def to_uint8(a: np.ndarray) -> np.ndarray:
    """Grey levels as uint8: values above 255 are taken as 16-bit (0..65535), floats up to 1
    as 0..1, booleans as black and white, NaN as black."""
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a)
    if a.dtype == np.bool_:
        return np.where(a, 255, 0).astype(np.uint8)
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise TypeError(f"image values of type {a.dtype} are not grey levels")
    f = np.nan_to_num(a.astype(np.float32), nan=0.0, posinf=65535.0, neginf=0.0)
    top = float(f.max())
    if top > 255.0:  # 16-bit scans (PNG, TIFF)
        f = f * (255.0 / 65535.0)
    elif np.issubdtype(a.dtype, np.floating) and top <= 1.0:
        f = f * 255.0
    return np.clip(f, 0, 255).astype(np.uint8)
