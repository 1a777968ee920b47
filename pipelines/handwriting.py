"""Writing a line of text (an amount, a date) with real MNIST digits and synthesised punctuation.

Every glyph lives in MNIST's 28-px frame (ink rows CELL_TOP=4 .. CELL_BASELINE=24), so one scale
`height / 20` maps every glyph's rows 4..24 onto the line's top..baseline: digits and symbols
share one baseline. Each glyph is scaled, sheared (slant), thickened or thinned, jittered
vertically and placed with a spacing that is sometimes zero or negative, so that neighbours touch
or overlap and segmentation needs cuts, not only connected components. A raised digit
(`⁰`..`⁹`, cents written small and raised: "125⁰⁰") is its digit at 0.4-0.6 of the line's
size, the top of its ink level with the line's top or a little above (one size and height
for the line's raised digits), drawn with the same pen. Raised cents may be underlined, as many
writers do: a stroke of the same pen under them, just below their ink or touching it.

The result is an ink image (uint8, 255 = ink) with the tight box of each character's own ink.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipelines.charset import DIGITS, RAISED_DIGITS, TO_PLAIN_DIGITS
from pipelines.glyphs import CELL_BASELINE, CELL_HEIGHT, CELL_TOP, render_symbol
from pipelines.mnist import Mnist

INK_THRESHOLD = 48  # ink image values above this count as ink for boxes
MNIST_STROKE = 2.5  # px: an MNIST digit's stroke width in its 28-px cell
Box = tuple[int, int, int, int]  # x, y, w, h


@dataclass(frozen=True)
class HandStyle:
    """One writer: x-height of digits in px, slant (x shift per px up), pen change in px."""

    height: float
    slant: float
    thickness: int
    touch_prob: float
    gap: float  # mean gap between separate digits, as a fraction of the height
    jitter: float  # baseline jitter, as a fraction of the height
    pen: float  # pen width of synthesised symbols, in cell pixels


@dataclass(frozen=True)
class WrittenLine:
    """`ink` (H, W) uint8 (255 = ink); `chars` (char, box) in ink coordinates; `baseline` row."""

    ink: np.ndarray
    chars: list[tuple[str, Box]]
    mnist_indices: list[int]
    baseline: int


def sample_style(rng: np.random.Generator, height: tuple[float, float] = (30, 60)) -> HandStyle:
    h = float(rng.uniform(*height))
    return HandStyle(
        height=h,
        slant=float(np.clip(rng.normal(0.12, 0.15), -0.25, 0.5)),
        thickness=int(rng.choice([-2, -1, 0, 0, 1], p=[0.1, 0.35, 0.3, 0.15, 0.1]))
        if h > 40 else int(rng.choice([-1, 0, 1], p=[0.3, 0.5, 0.2])),
        touch_prob=float(rng.uniform(0.3, 0.7)),
        gap=float(rng.uniform(0.08, 0.3)),
        jitter=float(rng.uniform(0.0, 0.05)),
        pen=float(rng.uniform(1.8, 3.0)),
    )


_POOLS: dict[int, tuple[np.ndarray, list[np.ndarray]]] = {}


def digit_pools(digits: Mnist) -> list[np.ndarray]:
    """The indices of each digit class 0..9 in `digits` (cached per data set)."""
    key = id(digits.labels)
    cached = _POOLS.get(key)
    if cached is None or cached[0] is not digits.labels:
        pools = [np.flatnonzero(digits.labels == d) for d in range(10)]
        cached = (digits.labels, pools)
        _POOLS[key] = cached
    return cached[1]


def _warp(cell: np.ndarray, scale: float, slant: float) -> tuple[np.ndarray, float]:
    """Scale a 28-row cell and shear it about its baseline; returns (image, x of cell x=0)."""
    h, w = cell.shape
    pad = 2.0
    shifts = (slant * scale * (CELL_BASELINE - 0), slant * scale * (CELL_BASELINE - h))
    lo, hi = min(shifts), max(shifts)
    tx = pad - lo
    out_w = int(np.ceil(w * scale + hi - lo + 2 * pad))
    out_h = int(np.ceil(h * scale))
    m = np.float32([[scale, -slant * scale, slant * scale * CELL_BASELINE + tx], [0, scale, 0]])
    return cv2.warpAffine(cell, m, (out_w, out_h), flags=cv2.INTER_LINEAR), tx


_KERNELS = {k: cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)) for k in (2, 3, 4, 5)}


def _pen(img: np.ndarray, thickness: int) -> np.ndarray:
    if thickness > 0:
        return cv2.dilate(img, _KERNELS[thickness + 1])
    if thickness < 0:
        thin = cv2.erode(img, _KERNELS[-thickness + 1])
        return thin if int(thin.max()) > 160 else img
    return img


def _glyph(char: str, digits: Mnist, rng: np.random.Generator, style: HandStyle,
           used: list[int], size: float = 1.0) -> np.ndarray:
    if char in DIGITS:
        pool = digit_pools(digits)[int(char)]
        idx = int(pool[rng.integers(len(pool))])
        used.append(idx)
        cell = digits.images[idx]
    else:
        cell = render_symbol(char, rng, pen=style.pen)
    scale = size * style.height / (CELL_BASELINE - CELL_TOP) * float(rng.uniform(0.92, 1.08))
    slant = style.slant + float(rng.normal(0, 0.05))
    img, _ = _warp(cell, scale, slant)
    if size < 1.0:  # drawn smaller with the same pen: put back the stroke width the scale took
        grow = int(np.clip(round(1 + (1.0 - size) * MNIST_STROKE * scale / size), 2, 5))
        img = cv2.dilate(img, _KERNELS[grow])
    img = _pen(img, style.thickness)
    # Re-express rows so that the baseline is row round(CELL_BASELINE * height / 20).
    return img


def _gap(prev: str, char: str, rng: np.random.Generator, style: HandStyle) -> int:
    h = style.height
    if char == " " or prev == " ":
        return 0
    if char in RAISED_DIGITS:  # raised cents stand a little apart from the dollars, and close
        return int(round(h * (rng.uniform(-0.02, 0.1) if prev in RAISED_DIGITS  # together
                              else rng.uniform(0.03, 0.2))))
    if prev in DIGITS and char in DIGITS:
        if rng.random() < style.touch_prob:
            return int(rng.integers(-max(3, int(h * 0.16)), 1))  # touch or overlap a few px
        return int(round(h * max(0.02, rng.normal(style.gap, 0.06))))
    if "/" in (prev, char):
        return int(round(h * rng.uniform(-0.05, 0.12)))
    return int(round(h * rng.uniform(0.02, 0.22)))


def render_line(text: str, digits: Mnist, rng: np.random.Generator,
                style: HandStyle | None = None, underline_raised: bool = False) -> WrittenLine:
    """Write `text` (digits, `. , - / $ *`, raised digits and spaces) in one hand; see the
    module docstring. `underline_raised`: draw a stroke under the raised digits, if any."""
    style = sample_style(rng) if style is None else style
    if not text.strip():
        raise ValueError("cannot write an empty text")
    used: list[int] = []
    scale = style.height / (CELL_BASELINE - CELL_TOP)
    top_margin = int(np.ceil(style.height * 0.25)) + 2
    baseline = top_margin + int(round(CELL_BASELINE * scale))
    canvas_h = baseline + int(np.ceil((CELL_HEIGHT - CELL_BASELINE) * scale * 1.2)) + \
        int(np.ceil(style.height * 0.25)) + 4
    placed: list[tuple[str, np.ndarray, int, int]] = []  # char, glyph, x, y
    x = 4
    prev = " "
    raised_size = raised_top = 0.0  # one size and height for a line's raised digits
    for char in text:
        if char == " ":
            x += int(round(style.height * rng.uniform(0.3, 0.7)))
            prev = " "
            continue
        raised = char in RAISED_DIGITS
        if raised and not raised_size:
            raised_size, raised_top = float(rng.uniform(0.4, 0.6)), float(rng.uniform(-0.05, 0.15))
        size = raised_size if raised else 1.0
        g = _glyph(char.translate(TO_PLAIN_DIGITS), digits, rng, style, used, size)
        cols = np.flatnonzero(g.max(0) > INK_THRESHOLD)
        if len(cols) == 0:  # nothing visible: keep a narrow blank
            cols = np.array([0, max(1, g.shape[1] // 4)])
        g = g[:, cols[0]: cols[-1] + 1]
        x += _gap(prev, char, rng, style) if placed else 0
        x = max(x, 2)
        g_scale = g.shape[0] / CELL_HEIGHT
        y = baseline - int(round(CELL_BASELINE * g_scale))
        if raised:  # the top of its ink level with the line's top, give or take
            ink_top = int(np.flatnonzero(g.max(1) > INK_THRESHOLD)[:1].sum())
            y = int(round(baseline - style.height * (1.0 + raised_top))) - ink_top
        y += int(round(rng.normal(0, style.jitter * style.height)))
        y = min(max(y, 0), canvas_h - g.shape[0])
        placed.append((char, g, x, y))
        x += g.shape[1]
        prev = char
    underline = underline_raised and any(c in RAISED_DIGITS for c, *_ in placed)
    width = x + 6 + (int(np.ceil(0.2 * style.height)) if underline else 0)  # room for its end
    ink = np.zeros((canvas_h, width), np.uint8)
    chars: list[tuple[str, Box]] = []
    for char, g, gx, gy in placed:
        region = ink[gy: gy + g.shape[0], gx: gx + g.shape[1]]
        np.maximum(region, g, out=region)
        rows = np.flatnonzero(g.max(1) > INK_THRESHOLD)
        cols = np.flatnonzero(g.max(0) > INK_THRESHOLD)
        if len(rows) == 0:
            rows = cols = np.array([0, 0])
        chars.append((char, (gx + int(cols[0]), gy + int(rows[0]),
                             int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1))))
    if underline:
        _underline(ink, [b for c, b in chars if c in RAISED_DIGITS], style, rng)
    return WrittenLine(ink, chars, used, baseline)


def _underline(ink: np.ndarray, boxes: list[Box], style: HandStyle,
               rng: np.random.Generator) -> None:
    """Draw, in place, a slightly wavy stroke under the ink `boxes` (the raised cents): from
    a little before the first to a little past the last, its middle 2-20% of the line's height
    below their lowest ink (so it may touch them), about as wide as the digits' strokes."""
    h = style.height
    x0 = min(b[0] for b in boxes) - h * rng.uniform(0.0, 0.12)
    x1 = max(b[0] + b[2] for b in boxes) + h * rng.uniform(0.0, 0.2)
    y0 = max(b[1] + b[3] for b in boxes) + h * rng.uniform(0.02, 0.2)
    rise = (x1 - x0) * rng.uniform(-0.08, 0.04)  # most writers' strokes climb a little
    xs = np.linspace(x0, x1, 5)
    ys = y0 + np.linspace(0.0, rise, 5) + rng.normal(0.0, 0.015 * h, 5)
    width = MNIST_STROKE * h / (CELL_BASELINE - CELL_TOP) * rng.uniform(0.7, 1.0) + style.thickness
    points = np.round(np.stack([xs, ys], 1) * 4).astype(np.int32)  # 2 fractional bits
    cv2.polylines(ink, [points], False, 255, max(1, int(round(width))), cv2.LINE_AA, shift=2)


def resize_line(line: WrittenLine, factor: float) -> WrittenLine:
    """The line scaled by `factor` (boxes grow outwards to whole pixels)."""
    if factor == 1.0:
        return line
    h, w = line.ink.shape
    nh, nw = max(1, int(round(h * factor))), max(1, int(round(w * factor)))
    ink = cv2.resize(line.ink, (nw, nh), interpolation=cv2.INTER_AREA)
    fx, fy = nw / w, nh / h
    chars = []
    for char, (x, y, bw, bh) in line.chars:
        x0, y0 = int(np.floor(x * fx)), int(np.floor(y * fy))
        x1 = min(nw, int(np.ceil((x + bw) * fx)))
        y1 = min(nh, int(np.ceil((y + bh) * fy)))
        chars.append((char, (x0, y0, max(1, x1 - x0), max(1, y1 - y0))))
    return WrittenLine(ink, chars, line.mnist_indices, int(round(line.baseline * fy)))
