"""Distractor handwriting that is not digits: cursive-like words and scribbled signatures.

Both are pen trajectories drawn as anti-aliased polylines into an ink image (uint8, 255 = ink):
cursive words are looping cycloids whose loop heights vary letter by letter (ascenders,
descenders); a signature is a smooth random walk with big swings and a flourish.
"""

from __future__ import annotations

import cv2
import numpy as np


def _draw(paths: list[np.ndarray], pen: int) -> np.ndarray:
    allpts = np.concatenate(paths)
    x0, y0 = allpts.min(0) - pen - 2
    x1, y1 = allpts.max(0) + pen + 2
    canvas = np.zeros((int(y1 - y0) + 1, int(x1 - x0) + 1), np.uint8)
    for p in paths:
        q = np.round((p - [x0, y0]) * 4).astype(np.int32)
        cv2.polylines(canvas, [q], False, 255, pen, cv2.LINE_AA, shift=2)
    return canvas


def cursive_line(rng: np.random.Generator, width: int, height: float) -> np.ndarray:
    """Cursive-looking words about `width` px long with an x-height of `height` px."""
    return _draw(_cursive_paths(rng, width, height), int(rng.integers(2, 5)))


def _cursive_paths(rng: np.random.Generator, width: int, height: float) -> list[np.ndarray]:
    paths = []
    x = 0.0
    while x < width - 2 * height:
        letters = int(rng.integers(2, 9))
        n = letters * 16
        t = np.linspace(0, letters * 2 * np.pi, n)
        r = height * 0.5
        amp = np.repeat(rng.choice([1.0, 1.0, 1.0, 2.2, -1.8], letters) *
                        rng.uniform(0.8, 1.2, letters), 16)
        loop = rng.uniform(0.6, 1.1)
        px = x + t * height * 0.55 / (2 * np.pi) * rng.uniform(1.4, 2.0) - loop * r * np.sin(t)
        py = -r * (1 - np.cos(t)) * np.where(amp > 0, amp, 1.0)
        py = np.where((amp < 0) & (np.cos(t) < 0), py - amp * r * (-np.cos(t)) * 1.5, py)
        py += rng.normal(0, height * 0.04, n).cumsum() * 0.3
        slant = rng.uniform(0.1, 0.4)
        paths.append(np.stack([px - slant * py, py], 1))
        x = px.max() + height * rng.uniform(0.6, 1.2)
    if not paths:
        paths.append(np.array([[0.0, 0.0], [width * 0.5, -height * 0.3]]))
    return paths


def signature(rng: np.random.Generator, width: int, height: float) -> np.ndarray:
    """A scribbled signature about `width` x `height` px: capitals, hasty cursive, flourish."""
    paths = []
    x = 0.0
    for _ in range(int(rng.integers(1, 3))):  # one or two names
        cap_h, cap_w = height * rng.uniform(0.6, 1.0), height * rng.uniform(0.3, 0.6)
        t = np.linspace(0, 2 * np.pi * rng.uniform(0.8, 1.6), 30)
        cap = np.stack([x + cap_w * (1 - np.cos(t)) * 0.5 + t * 2,
                        -cap_h * (0.5 + 0.5 * np.sin(t + rng.uniform(0, 3)))], 1)
        cap += rng.normal(0, 1.0, cap.shape).cumsum(0) * 0.3
        word_w = int(width * rng.uniform(0.2, 0.45))
        word = _cursive_paths(rng, word_w, height * rng.uniform(0.25, 0.4))
        slant = rng.uniform(0.2, 0.6)
        for q in word:
            q[:, 0] += x + cap_w
            q[:, 0] -= slant * q[:, 1]
            q[:, 1] += rng.normal(0, 0.03 * height)
        paths += [cap] + word
        x += cap_w + word_w + height * rng.uniform(0.2, 0.6)
    if rng.random() < 0.6:  # an underline flourish
        xs = np.linspace(rng.uniform(0, x * 0.3), x * rng.uniform(0.8, 1.1), 24)
        ys = height * 0.25 + np.sin(np.linspace(0, np.pi, 24)) * height * rng.uniform(-0.3, 0.3)
        paths.append(np.stack([xs, ys + rng.normal(0, 1, 24).cumsum() * 0.5], 1))
    return _draw(paths, int(rng.integers(2, 4)))
