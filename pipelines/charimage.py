"""Size normalisation of one candidate character into LeNet-5's 32x32 input.

Two modes, one function (`to_lenet_input`), used by training for every class and by the reader:

- paper mode (`line_height=None`): the 1998 paper's (and MNIST's) normalisation. The ink is scaled
  so that its larger side is 20 px (aspect kept), placed so that its centre of mass sits at the
  centre of the 28x28 field, padded to 32x32. On an MNIST digit this is the identity up to
  whole-pixel re-centring (MNIST digits already have a 20-px larger side).
- line mode (`line_height` given): the scale comes from the writing line, not from the patch:
  a factor 20/line_height maps the line's digit band to rows 6..26 (`BAND_TOP`..`BAND_BOTTOM`) and
  the patch keeps its height and vertical position relative to that band, so that '.', ',' and
  '-' stay small and low/mid-height and are not blown up into '0', '1' or '/'. Horizontally the
  centre of mass goes to the centre. A patch that would still be wider than 28 px or taller
  than 30 px is shrunk further about its own centre until it fits.

A candidate's surroundings (`to_context_ink`) are the field's ink mapped exactly as line mode
maps the candidate, so that the two images overlay: the second channel of the reader's inputs,
read by `lenet.ContextCNN`.

Values: background -0.1, full ink 1.175, linear in between (mean about 0, variance about 1).
Images are placed at whole-pixel offsets (resampling happens once, in the resize).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:  # this module loads without torch: the reader's image-analysis helpers use it
    import torch

SIZE = 32
BACKGROUND, FOREGROUND = -0.1, 1.175
BOX = 20  # the paper's size-normalisation box (px)
BAND_TOP, BAND_BOTTOM = 6, 26  # the line's digit band in the 32x32 image (line mode)
MAX_WIDTH, MAX_HEIGHT = 28, 30  # line mode shrinks larger patches to fit
CENTRE = 16.0  # centre of mass target (index coordinates); MNIST's is 14.0 in its 28x28 field
_INK_EPS = 1e-3


def _as_ink(patch: np.ndarray) -> np.ndarray:
    """(H, W) uint8 0..255 or float 0..1, ink high -> float32 0..1."""
    a = np.asarray(patch)
    if a.ndim != 2:
        raise ValueError(f"patch must be a 2-D (H, W) array, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"patch is empty (shape {a.shape})")
    if a.dtype == np.float32:  # the reader's own patches: the common case, checked first
        # np.clip's argument handling costs more than these two passes over a small patch
        return np.minimum(np.maximum(a, 0.0), 1.0, out=np.empty_like(a))
    if np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_:
        ink = a.astype(np.float32) / (1.0 if a.dtype == np.bool_ else 255.0)
    elif np.issubdtype(a.dtype, np.floating):
        ink = a.astype(np.float32)
    else:
        raise TypeError(f"patch dtype {a.dtype} is neither integer (0..255) nor float (0..1)")
    return np.clip(ink, 0.0, 1.0)


def _resize(ink: np.ndarray, scale_y: float, scale_x: float) -> np.ndarray:
    h, w = ink.shape
    nh, nw = max(1, round(h * scale_y)), max(1, round(w * scale_x))
    if (nh, nw) == (h, w):
        return ink
    shrink = nh < h or nw < w
    out = cv2.resize(ink, (nw, nh), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return out.reshape(nh, nw)


def _paste(canvas: np.ndarray, img: np.ndarray, top: int, left: int) -> None:
    """Copy `img` into `canvas` at (top, left), clipping whatever falls outside."""
    h, w = img.shape
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + h, canvas.shape[0]), min(left + w, canvas.shape[1])
    if y1 > y0 and x1 > x0:
        canvas[y0:y1, x0:x1] = img[y0 - top : y1 - top, x0 - left : x1 - left]


_RAMP = np.arange(256, dtype=np.float32)


def _centre_col(ink: np.ndarray) -> float:
    cols = ink.sum(0)
    n = len(cols)
    ramp = _RAMP[:n] if n <= len(_RAMP) and cols.dtype == _RAMP.dtype else \
        np.arange(n, dtype=cols.dtype)
    return float(cols @ ramp) / float(cols.sum())


def _centre_of_mass(ink: np.ndarray) -> tuple[float, float]:
    rows = ink.sum(1)
    return float(rows @ np.arange(len(rows), dtype=rows.dtype)) / float(rows.sum()), \
        _centre_col(ink)


def _cropped_ink(patch: np.ndarray) -> tuple[np.ndarray, int, int] | None:
    """The patch's ink (`_as_ink`) cut to the rows and columns holding some, with the first
    row and column kept; None for a blank patch."""
    ink = _as_ink(patch)
    has = ink > _INK_EPS
    rows = has.any(1)
    if not rows.any():
        return None
    cols = has.any(0)
    r0, r1 = int(rows.argmax()), len(rows) - int(rows[::-1].argmax())
    c0, c1 = int(cols.argmax()), len(cols) - int(cols[::-1].argmax())
    return ink[r0:r1, c0:c1], r0, c0


def to_lenet_ink(
    patch: np.ndarray, line_height: float | None = None, top_offset: float | None = None
) -> np.ndarray:
    """Like `to_lenet_input` but returns ink (32, 32) float32 in 0..1 (background 0)."""
    canvas = np.zeros((SIZE, SIZE), np.float32)
    cropped = _cropped_ink(patch)
    if cropped is None:
        return canvas
    ink, r0, _ = cropped
    h, w = ink.shape
    if line_height is None:
        scale = BOX / max(h, w)
        small = _resize(ink, scale, scale)
        cy, cx = _centre_of_mass(small)
        _paste(canvas, small, round(CENTRE - cy), round(CENTRE - cx))
        return canvas
    small, scale, top, left = _line_placement(ink, line_height, top_offset, r0)
    _paste(canvas, small, top, left)
    return canvas


def _line_placement(ink: np.ndarray, line_height: float, top_offset: float | None, r0: int
                    ) -> tuple[np.ndarray, float, int, int]:
    """Line mode's placement of cropped ink (its first row `r0` rows into the patch): the
    resized ink, the scale, and the canvas row and column of its top-left corner."""
    if not line_height > 0:
        raise ValueError(f"line_height must be positive or None, got {line_height}")
    h, w = ink.shape
    offset = (0.0 if top_offset is None else float(top_offset)) + r0  # the crop moved the top
    scale = BOX / float(line_height)
    top = BAND_TOP + offset * scale
    fit = min(1.0, MAX_WIDTH / (w * scale), MAX_HEIGHT / (h * scale))
    if fit < 1.0:  # shrink about the patch's own vertical centre
        middle = top + h * scale / 2
        scale *= fit
        top = middle - h * scale / 2
    small = _resize(ink, scale, scale)
    return small, scale, round(top), round(CENTRE - _centre_col(small))


def to_context_ink(patch: np.ndarray, line_height: float, top_offset: float | None,
                   surround: np.ndarray, at: tuple[int, int]) -> np.ndarray:
    """What lies around a candidate character: `surround` (ink 0..1, the whole field), whose
    pixel `at` = (row, column) is the patch's top-left, mapped exactly as line mode maps the
    patch (`to_lenet_ink`), so that the two images overlay. (32, 32) float32 ink 0..1: the
    candidate with the neighbours it was cut from, what tells a fragment or two merged digits
    from a whole character."""
    canvas = np.zeros((SIZE, SIZE), np.float32)
    cropped = _cropped_ink(patch)
    if cropped is None:
        return canvas
    ink, r0, c0 = cropped
    _, scale, top, left = _line_placement(ink, line_height, top_offset, r0)
    # The candidate's first inked pixel lands on canvas pixel (top, left); a window starting a
    # whole number of canvas pixels before it, resized by the same scale, lands on the same grid.
    (y, up), (x, back) = (_window_start(at[0] + r0, top, scale),
                          _window_start(at[1] + c0, left, scale))
    window = _crop(surround, y, x, int(np.ceil((up + SIZE) / scale)) + 2,
                   int(np.ceil((back + SIZE) / scale)) + 2)
    _paste(canvas, _resize(window, scale, scale), top - up, left - back)
    return canvas


def _window_start(anchor: int, before: int, scale: float) -> tuple[int, int]:
    """(source pixel, canvas pixels before the anchor) of a window that starts at least
    `before` canvas pixels before source pixel `anchor` and a whole number of them, to within
    a tenth of a pixel (a step of about 1 / scale source pixels always finds one)."""
    first = max(int(np.ceil(before / scale)), 0)
    n = min(range(first, first + int(np.ceil(1.0 / scale)) + 1),
            key=lambda k: abs(k * scale - round(k * scale)))
    return anchor - n, round(n * scale)


def _crop(image: np.ndarray, top: int, left: int, height: int, width: int) -> np.ndarray:
    """image[top : top + height, left : left + width] as float32, zero where it lies outside."""
    out = np.zeros((height, width), np.float32)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + height, image.shape[0]), min(left + width, image.shape[1])
    if y1 > y0 and x1 > x0:
        out[y0 - top : y1 - top, x0 - left : x1 - left] = image[y0:y1, x0:x1]
    return out


def to_lenet_input(
    patch: np.ndarray, line_height: float | None = None, top_offset: float | None = None
) -> np.ndarray:
    """One candidate character -> LeNet-5 input, float32 (32, 32): -0.1 background, 1.175 ink.

    `patch` (H, W) is a crop of the character, ink high (uint8 0..255 or float 0..1); blank
    margins are cropped away (and `top_offset` adjusted). `line_height` is the writing line's
    digit height in patch pixels and `top_offset` the patch's top row minus the line's top row;
    with `line_height=None` the paper's normalisation is used (see the module docstring).
    """
    ink = to_lenet_ink(patch, line_height, top_offset)
    return (BACKGROUND + (FOREGROUND - BACKGROUND) * ink).astype(np.float32)


def ink_to_input(ink: torch.Tensor) -> torch.Tensor:
    """Ink 0..1 (any shape) -> LeNet-5 input values (-0.1 .. 1.175)."""
    return BACKGROUND + (FOREGROUND - BACKGROUND) * ink


def to_lenet_batch(
    patches: Sequence[np.ndarray],
    line_heights: Sequence[float | None] | None = None,
    top_offsets: Sequence[float | None] | None = None,
) -> np.ndarray:
    """Many patches -> (N, 1, 32, 32) float32 LeNet inputs; `None` lists mean paper mode /
    offset 0."""
    n = len(patches)
    heights = list(line_heights) if line_heights is not None else [None] * n
    offsets = list(top_offsets) if top_offsets is not None else [None] * n
    if len(heights) != n or len(offsets) != n:
        raise ValueError(
            f"got {n} patches but {len(heights)} line heights and {len(offsets)} top offsets"
        )
    out = np.empty((n, 1, SIZE, SIZE), np.float32)
    for i, (p, lh, off) in enumerate(zip(patches, heights, offsets)):
        out[i, 0] = to_lenet_ink(p, lh, off)
    return BACKGROUND + (FOREGROUND - BACKGROUND) * out  # as to_lenet_input


def to_context_batch(
    patches: Sequence[np.ndarray], line_heights: Sequence[float], top_offsets: Sequence[float],
    surrounds: Sequence[np.ndarray], ats: Sequence[tuple[int, int]],
) -> np.ndarray:
    """Many candidates' surroundings (`to_context_ink`) -> (N, 1, 32, 32) float32 inputs, the
    second channel of a context recognizer's input (`lenet.ContextCNN`)."""
    n = len(patches)
    if not len(line_heights) == len(top_offsets) == len(surrounds) == len(ats) == n:
        raise ValueError(f"got {n} patches but {len(line_heights)} line heights, "
                         f"{len(top_offsets)} top offsets, {len(surrounds)} surroundings and "
                         f"{len(ats)} positions")
    out = np.empty((n, 1, SIZE, SIZE), np.float32)
    for i, (p, lh, off, sur, at) in enumerate(zip(patches, line_heights, top_offsets,
                                                  surrounds, ats)):
        out[i, 0] = to_context_ink(p, lh, off, sur, at)
    return BACKGROUND + (FOREGROUND - BACKGROUND) * out
