"""Reading scans safely: every failure is a one-line ImageError naming the file and the problem.

Formats: whatever Pillow decodes (PNG, JPEG, TIFF including bitonal CCITT G4, BMP, ...); an
8-bit greyscale PNG, the commonest scan, is first offered to the faster `pipelines.png`.
Images above MAX_PIXELS are refused from their header, before any pixel is decoded. Images with
transparency are laid on white paper. A file of several pages (a multi-page TIFF of a batch of
scans) is read page by page (`pages_of`, `Page`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pipelines.png import decode_grey_png, grey_png_size

# Pillow modes of greyscale wider than 8 bits (16-bit PNG and TIFF open as one of these)
WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")
MAX_PIXELS = 40_000_000  # a 200-dpi cheque is ~1.1 Mpx; a 600-dpi A4 page ~35 Mpx


class ImageError(ValueError):
    """An input image that cannot be read; the message names the file and the problem."""


class Page(NamedTuple):
    """Page `index` (0-based) of a file of several pages; named `PATH[n]`, n from 1."""

    path: str
    index: int

    def __str__(self) -> str:
        return f"{self.path}[{self.index + 1}]"


def page_count(path: str | Path) -> int:
    """How many pages (frames) the image file at `path` holds: 1 for a one-page image, and
    for anything Pillow cannot open (reading it then names the problem)."""
    try:
        with warnings.catch_warnings(), Image.open(path) as im:
            warnings.simplefilter("ignore")  # a damaged file is reported when it is read
            return max(1, int(getattr(im, "n_frames", 1)))
    except Exception:  # any failure is reported when the file is read
        return 1


def pages_of(paths: Sequence[str]) -> list[str | Page]:
    """`paths`, each file of several pages replaced by its pages in order: no page of a
    multi-page TIFF is left unread."""
    out: list[str | Page] = []
    for path in paths:
        n = page_count(path) if Path(path).is_file() else 1
        out += [path] if n == 1 else [Page(path, k) for k in range(n)]
    return out


def load_gray(path: str | Path | Page) -> np.ndarray:
    """The image at `path` (or the page `Page` names) as (H, W) uint8 greyscale, paper
    light."""
    page = path.index if isinstance(path, Page) else 0
    name = str(path)
    p = Path(path.path if isinstance(path, Page) else path)
    if p.is_dir():
        raise ImageError(f"{name} is a directory, not an image")
    if not p.exists():
        raise ImageError(f"{name} does not exist")
    if p.stat().st_size == 0:
        raise ImageError(f"{name} is empty")
    gray = None if page else fast_png(p)
    if gray is not None:
        return gray
    try:
        with warnings.catch_warnings(), Image.open(p) as im:
            warnings.simplefilter("ignore")  # Pillow's warnings on damaged files: the error says it
            if page:
                im.seek(page)
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise ImageError(f"{name} is {w}x{h} pixels, over the limit of "
                                 f"{MAX_PIXELS:,} pixels")
            if w < 8 or h < 8:
                raise ImageError(f"{name} is {w}x{h} pixels, too small to hold an amount")
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
        raise ImageError(f"{name} has more pixels than the limit of {MAX_PIXELS:,} "
                         "pixels") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name} is not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageError(f"{name} is corrupt or truncated: {err}") from None
    return np.ascontiguousarray(gray)


def fast_png(path: Path) -> np.ndarray | None:
    """The file as `decode_grey_png` reads it (an 8-bit greyscale PNG within the size limits),
    else None. The header is checked before the rest of the file is read."""
    try:
        with open(path, "rb") as f:
            head = f.read(33)
            size = grey_png_size(head)
            if size is None or size[0] * size[1] > MAX_PIXELS or min(size) < 8:
                return None
            return decode_grey_png(head + f.read(), MAX_PIXELS)
    except OSError:  # the general route names the problem
        return None


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
