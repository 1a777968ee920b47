"""Handwritten-looking punctuation and symbols (`. , - / $ *`) drawn from random pen strokes.

There is no handwritten punctuation data set here, so each symbol is a few strokes (polylines
through jittered control points) drawn with a random pen width, slant, size and position jitter,
rendered at 4x resolution and area-downsampled so that edges are grey like MNIST's.

Images are drawn in MNIST's frame so that symbols and digits share one geometry: a cell
`CELL_HEIGHT` (28) pixels high where a digit's ink spans rows `CELL_TOP` (4) to `CELL_BASELINE`
(24). A '.' sits on the baseline, ',' hangs below it, '-' sits mid-height, '/' and '$' span the
full height (the '$' bar sticks out above and below). The width follows the strokes.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipelines.charset import SYMBOLS

CELL_HEIGHT = 28
CELL_TOP = 4
CELL_BASELINE = 24
_UP = 4  # supersampling factor


def _stroke_dollar(rng: np.random.Generator) -> list[np.ndarray]:
    top, bottom = CELL_TOP + rng.uniform(0, 2), CELL_BASELINE - rng.uniform(0, 2)
    mid = (top + bottom) / 2 + rng.normal(0, 0.8)
    w = rng.uniform(3.5, 6.0)
    r1, r2 = (mid - top) / 2, (bottom - mid) / 2
    # An S from two bowls (y grows downwards): the upper one from its right side over the top
    # to the middle, the lower one from the middle round the bottom to its left side.
    a = np.radians(np.linspace(rng.uniform(0, 40), 270, 14))
    b = np.radians(np.linspace(90, rng.uniform(-215, -180), 14))
    upper = np.stack([w * np.cos(a), top + r1 - r1 * np.sin(a)], 1)
    lower = np.stack([w * np.cos(b), mid + r2 - r2 * np.sin(b)], 1)
    strokes = [np.concatenate([upper, lower])]
    for k in range(1 if rng.random() < 0.7 else 2):
        x = rng.normal(0, 0.6) + (k - 0.5 * k) * 2.5
        strokes.append(np.array([[x, top - rng.uniform(1, 3)], [x, bottom + rng.uniform(1, 3)]]))
    return strokes


def _stroke_star(rng: np.random.Generator) -> list[np.ndarray]:
    r = rng.uniform(4.0, 7.5)
    cy = CELL_TOP + rng.uniform(6, 12)
    n = rng.choice([3, 3, 4])
    phase = rng.uniform(0, np.pi)
    strokes = []
    for k in range(n):
        a = phase + np.pi * k / n + rng.normal(0, 0.12)
        d = np.array([np.cos(a), np.sin(a)]) * r * rng.uniform(0.8, 1.1)
        strokes.append(np.array([[-d[0], cy - d[1]], [d[0], cy + d[1]]]))
    return strokes


def _strokes(char: str, rng: np.random.Generator) -> list[np.ndarray]:
    """Control points (x, y) in cell coordinates, x centred on 0."""
    if char == ".":
        r = rng.uniform(0.4, 1.6)
        y = CELL_BASELINE - rng.uniform(0.5, 2.5)
        a = np.linspace(0, 2 * np.pi, 9)
        return [np.stack([r * np.cos(a), y + r * np.sin(a)], 1)]
    if char == ",":
        y0 = CELL_BASELINE - rng.uniform(1.5, 4.0)
        length = rng.uniform(3.5, 7.0)
        bend = rng.uniform(0.5, 2.0)
        t = np.linspace(0, 1, 8)[:, None]
        pts = np.concatenate([bend * (1 - t) * t * 4 - 1.5 * t * rng.uniform(0.5, 1.5),
                              y0 + length * t], 1)
        if rng.random() < 0.5:  # a dot-like head
            pts = np.concatenate([np.array([[0.6, y0 - 0.5], [0.0, y0]]), pts])
        return [pts]
    if char == "-":
        y = (CELL_TOP + CELL_BASELINE) / 2 + rng.normal(1, 2.0)
        half = rng.uniform(3, 7)
        tilt = rng.normal(0, 0.8)
        return [np.array([[-half, y + tilt], [0, y + rng.normal(0, 0.4)], [half, y - tilt]])]
    if char == "/":
        lean = rng.uniform(3, 7)
        top, bottom = CELL_TOP + rng.uniform(-1, 2), CELL_BASELINE + rng.uniform(-2, 1)
        return [np.array([[lean, top], [rng.normal(0, 0.5), (top + bottom) / 2], [-lean, bottom]])]
    if char == "$":
        return _stroke_dollar(rng)
    if char == "*":
        return _stroke_star(rng)
    raise ValueError(f"no stroke model for {char!r}; symbols are {SYMBOLS!r}")


def render_symbol(char: str, rng: np.random.Generator, pen: float | None = None) -> np.ndarray:
    """A handwritten-looking `char` in MNIST's frame: uint8 (28, W), ink high (255 = ink).

    `pen` is the pen width in cell pixels (default: random 1.6..3.2, MNIST-like).
    """
    strokes = _strokes(char, rng)
    pen = float(rng.uniform(1.6, 3.2)) if pen is None else float(pen)
    if char in "*$":  # many crossing strokes: a broad pen fills them in
        pen = min(pen, 2.2)
    slant = rng.normal(0.15, 0.15)  # x += slant * (baseline - y): a forward lean
    scale = rng.uniform(0.85, 1.15)
    centre_y = (CELL_TOP + CELL_BASELINE) / 2
    warped = []
    for pts in strokes:
        pts = pts + rng.normal(0, 0.35, pts.shape)  # hand tremor
        x = pts[:, 0] * scale + slant * (CELL_BASELINE - pts[:, 1])
        y = centre_y + (pts[:, 1] - centre_y) * scale
        warped.append(np.stack([x, y], 1))
    allpts = np.concatenate(warped)
    margin = pen + 2
    x0 = allpts[:, 0].min() - margin
    width = int(np.ceil(allpts[:, 0].max() + margin - x0))
    canvas = np.zeros((CELL_HEIGHT * _UP, width * _UP), np.uint8)
    thickness = max(1, int(round(pen * _UP)))
    for pts in warped:
        p = np.round((pts - [x0, 0]) * _UP).astype(np.int32)
        if len(p) == 1 or np.ptp(p, 0).max() < thickness / 2:
            cv2.circle(canvas, tuple(int(v) for v in p.mean(0)), thickness // 2 + _UP, 255, -1,
                       cv2.LINE_AA)
        cv2.polylines(canvas, [p], False, 255, thickness, cv2.LINE_AA)
    small = cv2.resize(canvas, (width, CELL_HEIGHT), interpolation=cv2.INTER_AREA)
    return small
