"""The isolated-character training set: 17 classes, every example through `to_lenet_input`.

- Digits: MNIST TRAIN images (the test split is only for evaluation). The writing line is the
  digit's own bounding box, perturbed: line height = box height x U(0.9, 1.2), the extra height
  put above or below at random, plus a vertical jitter of N(0, 3%) of the line height.
- Punctuation `. , - / $ *`: `glyphs.render_symbol`, whose 28-px frame has the line at rows
  4..24; the same line perturbation. A '/' narrower than 0.55 x its height is redrawn: it would
  be a slanted '1' (the reader's grammar, not the recognizer, must settle those).
- Rubbish (what a segmenter gets wrong), synthesised from MNIST TRAIN digits in the same 28-px
  frame (line at rows 4..24) with the same perturbation; kinds, drawn uniformly:
  `half` (the left, right or top 30-55% of a digit), `pair` (two digits side by side, touching or
  overlapping by up to 3 px), `fragment` (a random window of 25-60% of a digit's box), `neighbour`
  (a whole digit plus a 5-12 px strip of the next digit touching it), `blobs` (3-9 random ink
  specks and smudges), `lines` (a long underline at or below the baseline, a box corner or a
  box edge with a bit of digit).
- A fraction (`paper_fraction`, 20%) of examples is normalised the paper's way
  (`line_height=None`) so that both modes work, except what only size and position tell apart
  ('.', ',', '-', and rubbish other than pairs and digit-plus-neighbour), which is
  always normalised with its line. Rubbish pieces smaller than 7x7 px are redrawn (they would look
  like '.', ',', '1' or '-').

Images are stored as ink, uint8 (N, 32, 32) (0 = background); `charimage.ink_to_input` maps them to
the network's -0.1..1.175.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from pipelines.charimage import SIZE, to_lenet_ink
from pipelines.charset import CLASS_INDEX, RUBBISH, SYMBOLS
from pipelines.glyphs import CELL_BASELINE, CELL_HEIGHT, CELL_TOP, render_symbol

LINE_TOP, LINE_HEIGHT = CELL_TOP, CELL_BASELINE - CELL_TOP  # the 28-px frame's writing line
HEIGHT_FACTOR = (0.9, 1.2)
OFFSET_JITTER = 0.03
POSITION_ONLY = (".", ",", "-")  # symbols told apart by size and position alone
MIN_SLASH_SLOPE = 0.55  # ink width / height of a '/'; steeper ones are redrawn


@dataclass(frozen=True)
class CharData:
    """`images` uint8 (N, 32, 32) ink, `labels` int64 (N,) class indices of `charset.CLASSES`."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


def _bbox(img: np.ndarray) -> tuple[int, int, int, int] | None:
    rows, cols = np.flatnonzero(img.max(1) > 0), np.flatnonzero(img.max(0) > 0)
    if rows.size == 0:
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def normalise(img: np.ndarray, line_top: float, line_height: float, rng: np.random.Generator,
              paper: bool) -> np.ndarray:
    """One image with its true writing line -> uint8 (32, 32) ink, the line perturbed."""
    if paper:
        ink = to_lenet_ink(img)
    else:
        lh = line_height * rng.uniform(*HEIGHT_FACTOR)
        top = line_top - (lh - line_height) * rng.uniform() + rng.normal(0, OFFSET_JITTER * lh)
        ink = to_lenet_ink(img, lh, -top)  # the patch's top row (0) minus the line's top
    return np.round(ink * 255).astype(np.uint8)


def digit_images(images: np.ndarray, rng: np.random.Generator, paper_fraction: float) -> np.ndarray:
    """MNIST digits (N, 28, 28) -> (N, 32, 32) uint8 ink, the line from each digit's box."""
    out = np.empty((len(images), SIZE, SIZE), np.uint8)
    for i, img in enumerate(images):
        r0, r1, _, _ = _bbox(img) or (LINE_TOP, LINE_TOP + LINE_HEIGHT, 0, 0)
        out[i] = normalise(img, r0, r1 - r0, rng, rng.random() < paper_fraction)
    return out


def _render(char: str, rng: np.random.Generator) -> np.ndarray:
    """`render_symbol`, redrawing a '/' steeper than `MIN_SLASH_SLOPE` (that is a slanted '1')."""
    while True:
        img = render_symbol(char, rng)
        box = _bbox(img)
        if char != "/" or box is None or (box[3] - box[2]) >= MIN_SLASH_SLOPE * (box[1] - box[0]):
            return img


def symbol_images(char: str, n: int, rng: np.random.Generator, paper_fraction: float) -> np.ndarray:
    """`n` rendered `char`s -> (n, 32, 32) uint8 ink."""
    frac = 0.0 if char in POSITION_ONLY else paper_fraction
    return np.stack([
        normalise(_render(char, rng), LINE_TOP, LINE_HEIGHT, rng, rng.random() < frac)
        for _ in range(n)
    ])  # fmt: skip


# ---- rubbish --------------------------------------------------------------------------------


def _pick(digits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return digits[rng.integers(len(digits))]


def _big_enough(img: np.ndarray) -> bool:
    """Reject pieces so small or thin that they look like '.', ',', '1' or '-'."""
    box = _bbox(img)
    if box is None:
        return False
    r0, r1, c0, c1 = box
    return r1 - r0 >= 7 and c1 - c0 >= 7 and img.sum() > 255 * 15


def _rub_half(digits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    for _ in range(20):
        d = _pick(digits, rng).copy()
        r0, r1, c0, c1 = _bbox(d)  # type: ignore[misc]
        frac = rng.uniform(0.3, 0.55)
        side = rng.integers(3)
        if side < 2 and c1 - c0 < 10:  # a thin '1' cut lengthwise is still a '1'
            continue
        if side == 0:
            d[:, c0 + max(1, round((c1 - c0) * frac)) :] = 0
        elif side == 1:
            d[:, : c1 - max(1, round((c1 - c0) * frac))] = 0
        else:
            d[r0 + max(1, round((r1 - r0) * frac)) :] = 0
        if _big_enough(d):
            return d
    return d


def _side_by_side(a: np.ndarray, b: np.ndarray, gap: int) -> np.ndarray:
    """Place b to the right of a's ink with `gap` px between them (negative gap = overlap)."""
    _, _, _, a1 = _bbox(a) or (0, 0, 0, 14)
    _, _, b0, b1 = _bbox(b) or (0, 0, 14, 14)
    left = a1 + gap - b0
    width = max(a.shape[1], left + b1) + 1
    canvas = np.zeros((CELL_HEIGHT, width), np.uint8)
    canvas[:, : a.shape[1]] = a
    piece = b[:, b0:b1]
    dst = canvas[:, left + b0 : left + b1]
    np.maximum(dst, piece, out=dst)
    return canvas


def _rub_pair(digits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _side_by_side(_pick(digits, rng), _pick(digits, rng), int(rng.integers(-3, 2)))


def _rub_neighbour(digits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    a, b = _pick(digits, rng), _pick(digits, rng).copy()
    _, _, b0, b1 = _bbox(b) or (0, 0, 0, 28)
    strip = int(rng.integers(5, 13))
    b[:, b0 + strip :] = 0
    pair = _side_by_side(a, b, int(rng.integers(-2, 1)))
    return pair if rng.random() < 0.5 else pair[:, ::-1].copy()  # the strip on either side


def _rub_fragment(digits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    for _ in range(20):
        d = _pick(digits, rng)
        r0, r1, c0, c1 = _bbox(d)  # type: ignore[misc]
        h = max(3, round((r1 - r0) * rng.uniform(0.25, 0.6)))
        w = max(3, round((c1 - c0) * rng.uniform(0.25, 0.6)))
        y = int(rng.integers(r0, max(r0 + 1, r1 - h + 1)))
        x = int(rng.integers(c0, max(c0 + 1, c1 - w + 1)))
        out = np.zeros_like(d)
        out[y : y + h, x : x + w] = d[y : y + h, x : x + w]
        if _big_enough(out):
            return out
    return out


def _rub_blobs(_: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    width = int(rng.integers(12, 40))
    canvas = np.zeros((CELL_HEIGHT, width), np.uint8)
    for _ in range(int(rng.integers(4, 10))):
        centre = (int(rng.integers(0, width)), int(rng.integers(2, CELL_HEIGHT - 2)))
        axes = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        cv2.ellipse(canvas, centre, axes, float(rng.uniform(0, 180)), 0, 360,
                    int(rng.integers(120, 256)), -1, cv2.LINE_AA)
    return canvas


def _rub_lines(digits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    kind = rng.integers(3)
    pen = int(rng.integers(1, 4))
    if kind == 0:  # underline, long, at or below the baseline
        width = int(rng.integers(40, 90))
        canvas = np.zeros((CELL_HEIGHT + 4, width), np.uint8)
        y0 = CELL_BASELINE + int(rng.integers(0, 5))
        y1 = y0 + int(rng.integers(-2, 3))
        cv2.line(canvas, (1, y0), (width - 2, y1), 255, pen, cv2.LINE_AA)
        return canvas
    if kind == 1:  # a box corner with long arms
        canvas = np.zeros((CELL_HEIGHT, 40), np.uint8)
        x, y = int(rng.integers(4, 12)), int(rng.integers(2, 8))
        cv2.line(canvas, (x, y), (39, y + int(rng.integers(-1, 2))), 255, pen, cv2.LINE_AA)
        cv2.line(canvas, (x, y), (x + int(rng.integers(-1, 2)), 27), 255, pen, cv2.LINE_AA)
        return canvas if rng.random() < 0.5 else canvas[::-1].copy()
    d = _pick(digits, rng).copy()  # a box edge running into a digit
    y = int(rng.choice([int(rng.integers(0, 4)), int(rng.integers(24, 28))]))
    cv2.line(d, (0, y), (27, y + int(rng.integers(-1, 2))), 255, pen, cv2.LINE_AA)
    return d


RUBBISH_KINDS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "half": _rub_half,
    "pair": _rub_pair,
    "fragment": _rub_fragment,
    "neighbour": _rub_neighbour,
    "blobs": _rub_blobs,
    "lines": _rub_lines,
}


def rubbish_images(digits: np.ndarray, n: int, rng: np.random.Generator,
                   paper_fraction: float) -> np.ndarray:
    """`n` rubbish examples made from MNIST TRAIN `digits` (M, 28, 28) -> (n, 32, 32) uint8."""
    kinds = list(RUBBISH_KINDS.values())
    out = np.empty((n, SIZE, SIZE), np.uint8)
    for i in range(n):
        k = int(rng.integers(len(kinds)))
        img = kinds[k](digits, rng)
        whole = kinds[k] in (_rub_pair, _rub_neighbour)
        paper = whole and rng.random() < paper_fraction
        out[i] = normalise(img, LINE_TOP, LINE_HEIGHT, rng, paper)
    return out


def build_chars(digits: np.ndarray, labels: np.ndarray, n_per_symbol: int, n_rubbish: int,
                seed: int, paper_fraction: float = 0.2) -> CharData:
    """Digits (N, 28, 28) with `labels` (N,), plus rendered symbols and rubbish made from them."""
    rng = np.random.default_rng(seed)
    parts = [digit_images(digits, rng, paper_fraction)]
    classes = [labels.astype(np.int64)]
    for ch in SYMBOLS:
        parts.append(symbol_images(ch, n_per_symbol, rng, paper_fraction))
        classes.append(np.full(n_per_symbol, CLASS_INDEX[ch], np.int64))
    parts.append(rubbish_images(digits, n_rubbish, rng, paper_fraction))
    classes.append(np.full(n_rubbish, RUBBISH, np.int64))
    return CharData(torch.from_numpy(np.concatenate(parts)),
                    torch.from_numpy(np.concatenate(classes)))


def mnist_inputs(images: np.ndarray) -> torch.Tensor:
    """MNIST images (N, 28, 28) -> (N, 32, 32) uint8 ink, paper normalisation (for evaluation)."""
    out = np.empty((len(images), SIZE, SIZE), np.uint8)
    for i, img in enumerate(images):
        out[i] = np.round(to_lenet_ink(img) * 255).astype(np.uint8)
    return torch.from_numpy(out)
