"""Order statistics of the small arrays of image analysis (a few to a few hundred values), with
numpy's exact results but without its general machinery, which costs ten times more here."""

from __future__ import annotations

import math

import numpy as np


def percentile(values: np.ndarray, q: float) -> float:
    """`np.percentile(values, q)` of a non-empty 1-D array of integers or float64 (linear
    interpolation, the same rounding)."""
    s = np.sort(values.astype(np.float64, copy=False)).tolist()
    at = (len(s) - 1) * (q / 100)
    lo = math.floor(at)
    a, b = s[lo], s[min(lo + 1, len(s) - 1)]
    t = at - lo
    return b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t


def median(values: np.ndarray) -> float:
    """`np.median(values)` of a non-empty 1-D array of integers or float64 (numpy averages
    float32 values in float32)."""
    s = np.sort(values.astype(np.float64, copy=False)).tolist()
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def median_u8(values: np.ndarray) -> int:
    """The lower median of uint8 values (any shape), from their histogram: a few times faster
    than sorting an image's pixels."""
    counts = np.bincount(values.ravel(), minlength=256)
    return int(np.searchsorted(np.cumsum(counts), (values.size + 1) // 2))


def segmented_median(values: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """(G,) float64 medians (as `median`) of the integer values of each group: (M,) values and
    (M,) their group ids in 0..G-1; NaN for an empty group."""
    s = values[np.lexsort((values, group))].astype(np.float64)
    count = np.bincount(group, minlength=n_groups)
    first = np.cumsum(count) - count
    lo = np.minimum(first + (count - 1) // 2, len(s) - 1)
    hi = np.minimum(first + count // 2, len(s) - 1)
    return np.where(count > 0, (s[lo] + s[hi]) / 2 if len(s) else 0.0, np.nan)
