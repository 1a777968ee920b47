"""Putting a cheque together: background, print, the written amount, distractors, scan.

Handwriting is composited as ink over paper (out = paper * (1 - a) + pen * a, with `a` the ink
coverage), never pasted as rectangles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pipelines.amount_text import AmountText
from pipelines.cheque_background import make_background
from pipelines.cheque_layout import Layout, draw_print, sample_layout
from pipelines.cheque_scribble import cursive_line, signature
from pipelines.handwriting import WrittenLine, render_line, resize_line, sample_style
from pipelines.mnist import Mnist
from pipelines.scan_effects import photometric, rotate, sample_scan, transform_box

Box = tuple[int, int, int, int]
FIELD_PAD = 4  # px of margin of the field box around the written amount's ink


@dataclass(frozen=True)
class Composed:
    image: np.ndarray
    text: str
    field_box: Box
    chars: list[tuple[str, Box]]
    mnist_indices: list[int]


def put_ink(img: np.ndarray, ink: np.ndarray, x: int, y: int, pen: float,
            opacity: float) -> None:
    """Darken `img` in place with `ink` (255 = ink) at (x, y), clipped to the image."""
    h, w = ink.shape
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, img.shape[1]), min(y + h, img.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    a = ink[y0 - y: y1 - y, x0 - x: x1 - x].astype(np.float32) * (opacity / 255)
    region = img[y0:y1, x0:x1].astype(np.float32)
    out = np.minimum(region, region * (1 - a) + pen * a)
    img[y0:y1, x0:x1] = out.astype(np.uint8)


def _place_amount(img: np.ndarray, layout: Layout, line: WrittenLine,
                  rng: np.random.Generator) -> tuple[WrittenLine, int, int]:
    bx, by, bw, bh = layout.amount_box
    avail = bw - 16
    if line.ink.shape[1] - 8 > avail:  # write smaller to fit the box
        line = resize_line(line, max(0.5, avail / (line.ink.shape[1] - 8)))
    ink_w = line.ink.shape[1]
    slack = max(0, bw - ink_w)
    x = bx + int(rng.uniform(0.0, 0.6) * slack) - 2
    if layout.box_style == "box":
        base = by + bh - int(rng.uniform(0.12, 0.3) * bh)
    else:
        base = by + bh - int(rng.uniform(-0.02, 0.12) * bh)
    y = base - line.baseline
    y = min(max(y, 0), img.shape[0] - line.ink.shape[0])
    x = min(max(x, 0), img.shape[1] - ink_w)
    return line, x, y


def _date_text(rng: np.random.Generator) -> str:
    m, d, yr = int(rng.integers(1, 13)), int(rng.integers(1, 29)), int(rng.integers(0, 30))
    sep = str(rng.choice(["/", "/", "-", "."]))
    year = f"{yr:02d}" if rng.random() < 0.6 else f"20{yr:02d}"
    return f"{m}{sep}{d}{sep}{year}"


def _distractors(img: np.ndarray, layout: Layout, digits: Mnist, rng: np.random.Generator,
                 pen: float) -> list[int]:
    """Date (MNIST digits of the same split), payee, legal amount, memo, signature."""
    x0, x1, y = layout.date_line
    date = render_line(_date_text(rng), digits, rng, sample_style(rng, (24, 40)))
    put_ink(img, date.ink, x0 + int(rng.integers(0, 40)),
            y - date.baseline - int(rng.integers(2, 10)), pen, rng.uniform(0.85, 1))
    height = float(rng.uniform(14, 24))
    for (x0, x1, y), frac in ((layout.payee_line, (0.3, 0.8)), (layout.legal_line, (0.4, 0.9))):
        word = cursive_line(rng, int((x1 - x0) * rng.uniform(*frac)), height)
        put_ink(img, word, x0 + int(rng.integers(0, 60)),
                y - word.shape[0] + int(rng.integers(-4, 6)), pen, rng.uniform(0.85, 1))
    if rng.random() < 0.5:
        x0, x1, y = layout.memo_line
        word = cursive_line(rng, int((x1 - x0) * rng.uniform(0.3, 0.8)), height)
        put_ink(img, word, x0 + 10, y - word.shape[0], pen, 0.9)
    x0, x1, y = layout.signature_line
    sig = signature(rng, int((x1 - x0) * rng.uniform(0.5, 0.9)), float(rng.uniform(30, 60)))
    put_ink(img, sig, x0 + int(rng.integers(0, 40)), y - sig.shape[0] + int(rng.integers(0, 20)),
            pen, rng.uniform(0.85, 1))
    return date.mnist_indices


def _union(boxes: list[Box], pad: int, shape: tuple[int, ...]) -> Box:
    x0 = max(0, min(b[0] for b in boxes) - pad)
    y0 = max(0, min(b[1] for b in boxes) - pad)
    x1 = min(shape[1], max(b[0] + b[2] for b in boxes) + pad)
    y1 = min(shape[0], max(b[1] + b[3] for b in boxes) + pad)
    return (x0, y0, x1 - x0, y1 - y0)


def compose_cheque(rng: np.random.Generator, digits: Mnist,
                   amount_fn: Callable[[bool], AmountText], bitonal: bool,
                   fields_only: bool, underline_raised: bool = False) -> Composed:
    layout = sample_layout(rng)
    img = make_background(layout.height, layout.width, rng)
    draw_print(img, layout, rng)
    written = amount_fn(not layout.printed_dollar)
    pen = float(rng.choice([rng.uniform(5, 40), rng.uniform(40, 95)]))  # black / blue-black
    line = render_line(written.text, digits, rng, sample_style(rng), underline_raised)
    line, x, y = _place_amount(img, layout, line, rng)
    put_ink(img, line.ink, x, y, pen, float(rng.uniform(0.85, 1.0)))
    date_indices = _distractors(img, layout, digits, rng, pen)
    chars = [(c, (bx + x, by + y, bw, bh)) for c, (bx, by, bw, bh) in line.chars]
    field = _union([b for _, b in chars], FIELD_PAD, img.shape)
    mx, my = int(rng.integers(20, 70)), int(rng.integers(12, 40))
    if fields_only:
        fx, fy, fw, fh = field
        cx0, cy0 = max(0, fx - mx), max(0, fy - my)
        cx1, cy1 = min(img.shape[1], fx + fw + mx), min(img.shape[0], fy + fh + my)
        img = img[cy0:cy1, cx0:cx1].copy()
        chars = [(c, (bx - cx0, by - cy0, bw, bh)) for c, (bx, by, bw, bh) in chars]
        field = (fx - cx0, fy - cy0, fw, fh)
    scan = sample_scan(rng, bitonal)
    img, m = rotate(img, scan.angle)
    chars = [(c, transform_box(b, m, img.shape)) for c, b in chars]
    field = transform_box(field, m, img.shape)
    img = photometric(img, scan, rng)
    return Composed(img, written.text, field, chars, line.mnist_indices + date_indices)
