"""`--explain`: a picture of how the reader read one image.

Top: the chosen field, enlarged, with every candidate cut (thin grey lines), the chosen path's
segments (green boxes) with their class and recognizer penalty. Bottom: the whole image with the
candidate fields (grey) and the chosen one (blue), and the reading with its top alternatives.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from pipelines.charset import RAISED_DIGITS, TO_PLAIN_DIGITS
from pipelines.fields import turn_box
from pipelines.preparation import Prepared
from pipelines.reader import Reading

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _field_panel(gray: np.ndarray, prep: Prepared, reading: Reading, k: int) -> np.ndarray:
    fx, fy, fw, fh = prep.fields[k].box
    seg = prep.segmentations[k]
    crop = cv2.cvtColor(gray[fy : fy + fh, fx : fx + fw], cv2.COLOR_GRAY2BGR)
    zoom = max(1.0, min(4.0, 900 / max(fw, 1)))
    crop = cv2.resize(crop, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
    panel = np.full((crop.shape[0] + 40, crop.shape[1], 3), 255, np.uint8)
    panel[: crop.shape[0]] = crop
    for x in seg.cut_x:
        xx = int(round(x * zoom))
        cv2.line(panel, (xx, 0), (xx, crop.shape[0] - 1), (170, 170, 170), 1)
    top = seg.line.top * zoom
    cv2.line(panel, (0, int(top)), (panel.shape[1], int(top)), (230, 200, 120), 1)
    bottom = int((seg.line.top + seg.line.height) * zoom)
    cv2.line(panel, (0, bottom), (panel.shape[1], bottom), (230, 200, 120), 1)
    for s in reading.segments:
        x, y, w, h = s.box
        p0 = (int((x - fx) * zoom), int((y - fy) * zoom))
        p1 = (int((x - fx + w) * zoom), int((y - fy + h) * zoom))
        cv2.rectangle(panel, p0, p1, (40, 170, 40), 2)
        label = drawable(s.char) if s.char != "<rubbish>" else "?"
        pen = "" if np.isnan(s.penalty) else f"{s.penalty:.1f}"
        cv2.putText(panel, label, (p0[0], crop.shape[0] + 16), _FONT, 0.55, (0, 120, 0), 1)
        cv2.putText(panel, pen, (p0[0], crop.shape[0] + 34), _FONT, 0.4, (90, 90, 90), 1)
    return panel


def drawable(text: str) -> str:
    """`text` in the characters OpenCV's fonts draw: a raised digit '⁵' as '^5'."""
    return "".join("^" + c.translate(TO_PLAIN_DIGITS) if c in RAISED_DIGITS else c
                   for c in text)


def _page_panel(gray: np.ndarray, prep: Prepared, k: int, width: int) -> np.ndarray:
    page = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    for j, f in enumerate(prep.fields):
        if f.turns != prep.fields[k].turns:
            continue  # found in the scan turned another way
        x, y, w, h = f.box
        colour, thick = ((200, 80, 0), 4) if j == k else ((150, 150, 150), 2)
        cv2.rectangle(page, (x, y), (x + w, y + h), colour, thick)
    scale = width / page.shape[1]
    return cv2.resize(page, (width, max(1, int(page.shape[0] * scale))),
                      interpolation=cv2.INTER_AREA)


def _text_panel(reading: Reading, width: int) -> np.ndarray:
    lines = [f"amount {reading.amount}  text {reading.text!r}  confidence "
             f"{reading.confidence:.3f}{'  REJECTED' if reading.rejected else ''}"]
    lines += [f"n-best {i + 1}: {a}  (best path score {s:.2f})"
              for i, (a, s) in enumerate(reading.alternatives)]
    panel = np.full((24 * len(lines) + 10, width, 3), 255, np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(panel, drawable(line), (8, 22 + 24 * i), _FONT, 0.55, (0, 0, 0), 1)
    return panel


def draw_explanation(gray: np.ndarray, prep: Prepared, reading: Reading, out: Path) -> None:
    """Write the explanation picture of one reading to `out` (PNG)."""
    k = reading.field_index or 0
    if prep.to_scan is not None:  # read enlarged or straightened: drawn so
        from pipelines.page import box_to_scan, reading_canvas

        gray, _ = reading_canvas(gray, prep.crop, prep.scale, prep.skew)
        to_canvas = cv2.invertAffineTransform(prep.to_scan)
        segments = [replace(s, box=box_to_scan(s.box, to_canvas, gray.shape))
                    for s in reading.segments]
        reading = replace(reading, segments=segments)
    turns = prep.fields[k].turns
    if turns:  # drawn as it was read: the scan turned the way the chosen field was found
        segments = [replace(s, box=turn_box(s.box, turns, gray.shape)) for s in reading.segments]
        gray = np.ascontiguousarray(np.rot90(gray, turns))
        reading = replace(reading, segments=segments)
    field = _field_panel(gray, prep, reading, k)
    width = max(field.shape[1], 900)
    parts = [field, _page_panel(gray, prep, k, width), _text_panel(reading, width)]
    parts = [np.pad(p, ((0, 6), (0, width - p.shape[1]), (0, 0)), constant_values=255)
             for p in parts]
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), np.concatenate(parts)):
        raise ValueError(f"could not write the explanation picture {out}")
