"""Security backgrounds of cheques: paper tone, guilloche waves, tints and light gradients.

Guilloche patterns are costly to draw per cheque, so a small bank of them is made once per
process (each from a fixed seed, vectorised with numpy) and every cheque takes a random crop,
flip, strength and tint of one: the output is a pure function of the rng's state.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

BANK_SIZE = 6
BANK_SHAPE = (960, 2000)  # larger than any cheque


@lru_cache(maxsize=BANK_SIZE)
def guilloche(index: int) -> np.ndarray:
    """Pattern `index` of the bank: (960, 2000) uint8, 255 = full line strength."""
    rng = np.random.default_rng(10_000 + index)
    h, w = BANK_SHAPE
    y = np.arange(h, dtype=np.float32)[:, None]
    x = np.arange(w, dtype=np.float32)[None, :]
    total = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(2, 4))):
        # Families of wavy lines: level sets of y + a sin(fx x + b sin(fy y)) spaced `period`.
        period = rng.uniform(7, 16)
        a, b = rng.uniform(8, 40), rng.uniform(0.5, 3)
        fx, fy = rng.uniform(0.004, 0.02), rng.uniform(0.003, 0.015)
        phase = rng.uniform(0, 2 * np.pi)
        if rng.random() < 0.5:
            u = y + a * np.sin(fx * x + b * np.sin(fy * y + phase))
        else:
            u = x * rng.uniform(0.2, 0.6) + y + a * np.sin(fy * x + phase) * np.cos(fx * y)
        frac = np.abs(((u / period) % 1.0) - 0.5) * 2  # 1 on the line, 0 between lines
        width = rng.uniform(0.1, 0.25)
        total = np.maximum(total, np.clip((frac - (1 - width)) / width, 0, 1))
    return (total * 255).astype(np.uint8)


def make_background(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A paper background (h, w) uint8: tone, optional guilloche, gradient, tinted bands."""
    tone = float(rng.uniform(205, 250))
    gx = np.linspace(0, float(rng.uniform(-25, 25)), w, dtype=np.float32)  # a light gradient
    gy = np.linspace(0, float(rng.uniform(-12, 12)), h, dtype=np.float32)
    if rng.random() < 0.4:  # a tinted band or panel
        x0 = int(rng.integers(0, w // 2))
        gx[x0: x0 + int(rng.integers(w // 6, w // 2))] -= float(rng.uniform(5, 20))
    row = np.clip(tone + gx, 0, 255).astype(np.uint8)
    col = np.clip(gy - gy.min(), 0, 255).astype(np.uint8)
    bg = cv2.subtract(np.broadcast_to(row, (h, w)).copy(),
                      np.broadcast_to(col[:, None], (h, w)).copy())
    if rng.random() < 0.8:
        pat = guilloche(int(rng.integers(BANK_SIZE)))
        y0 = int(rng.integers(0, BANK_SHAPE[0] - h + 1))
        x0 = int(rng.integers(0, BANK_SHAPE[1] - w + 1))
        crop = pat[y0: y0 + h, x0: x0 + w]
        if rng.random() < 0.5:
            crop = cv2.flip(crop, 1)
        strength = float(rng.uniform(8, 45)) / 255
        bg = cv2.subtract(bg, cv2.convertScaleAbs(crop, alpha=strength))
    if rng.random() < 0.3:  # a faint emblem (a ring of the bank's logo)
        c = (int(rng.integers(w // 4, 3 * w // 4)), int(rng.integers(h // 4, 3 * h // 4)))
        r = int(rng.integers(h // 6, h // 3))
        cv2.circle(bg, c, r, int(tone * rng.uniform(0.93, 0.98)), int(rng.integers(8, 30)),
                   cv2.LINE_AA)
    return bg
