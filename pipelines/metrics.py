"""Scoring readings against labels: the definitions every benchmark shares.

- amount accuracy: the normalised amount read equals the label's (rejections count as read:
  this is the accuracy at zero reject).
- character error rate: edit distance between the transcription and the written text (spaces
  ignored), summed over cheques, divided by the written characters.
- field accuracy: the reported field box overlaps the labelled one with IoU > 0.5.
- segmentation accuracy: the chosen path's characters (rubbish skipped) pair one to one, in
  order, with the labelled character boxes, each pair matching (`boxes_match`: IoU > 0.5, or
  a small mark's box inside the labelled one).
- error at reject r: the r least confident readings are rejected; the error is the fraction of
  ALL cheques that are accepted and wrong (as the paper reports correct / error / rejected).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Box = tuple[int, int, int, int]
REJECT_RATES = (0.0, 0.05, 0.1, 0.2)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


def edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def boxes_match(read: Sequence[float], true: Sequence[float]) -> bool:
    """A read character box matches a labelled one: IoU > 0.5, or (for small marks such as
    '.', whose labelled box includes grey edges that binarisation drops) the read box lies
    within the labelled one, grown by 2 px, and covers at least a quarter of it."""
    if iou(read, true) > 0.5:
        return True
    inside = (read[0] >= true[0] - 2 and read[1] >= true[1] - 2
              and read[0] + read[2] <= true[0] + true[2] + 2
              and read[1] + read[3] <= true[1] + true[3] + 2)
    return inside and read[2] * read[3] >= 0.25 * true[2] * true[3]


def segmentation_correct(read_boxes: Sequence[Box], true_boxes: Sequence[Box]) -> bool:
    return len(read_boxes) == len(true_boxes) and all(
        boxes_match(r, t) for r, t in zip(read_boxes, true_boxes))


def error_at_reject(correct: Sequence[bool], confidence: Sequence[float],
                    rates: Sequence[float] = REJECT_RATES) -> dict[str, float]:
    """{rate: error} where the least confident `rate` fraction is rejected."""
    n = len(correct)
    order = np.argsort(np.asarray(confidence, np.float64), kind="stable")  # least confident first
    ok = np.asarray(correct, bool)[order]
    out = {}
    for r in rates:
        k = int(round(r * n))
        out[f"{r:g}"] = float((~ok[k:]).sum() / n) if n else 0.0
    return out


def error_reject_curve(correct: Sequence[bool], confidence: Sequence[float]
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(reject fraction, error fraction) for every threshold."""
    n = len(correct)
    order = np.argsort(np.asarray(confidence, np.float64), kind="stable")
    wrong = ~np.asarray(correct, bool)[order]
    errors_kept = wrong.sum() - np.concatenate([[0], np.cumsum(wrong)])
    return np.arange(n + 1) / max(n, 1), errors_kept / max(n, 1)
