"""A skewed page: how far it is turned, and reading it straightened.

The field search expects printed lines and writing roughly level (within the ~2 degrees a sheet
feeder leaves); a photo or a careless scan may be turned further. `page_skew` finds the angle
that makes the page's ink rows sharpest, `straighten` turns the page by it on a canvas holding
all of it, and `box_to_scan` takes boxes on that canvas back to the scan's own pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipelines.fields import Box, ink_masks, to_working
from pipelines.segmentation import estimate_skew

MAX_PAGE_SKEW = 12.0  # degrees either way that `page_skew` looks at
SKEW_SAMPLE = 40_000  # ink pixels of the working-scale page that vote, at most


def page_skew(gray: np.ndarray) -> float:
    """Angle (degrees, `segmentation.estimate_skew`'s convention) that levels the ink of a
    page (H, W) uint8, within MAX_PAGE_SKEW, in steps of half a degree."""
    ink = ink_masks(to_working(gray))[0].astype(bool)
    ys, xs = np.nonzero(ink)
    if len(ys) > SKEW_SAMPLE:  # an even subsample: every k-th ink pixel in raster order
        keep = np.arange(0, len(ys), len(ys) // SKEW_SAMPLE + 1)
        sparse = np.zeros_like(ink)
        sparse[ys[keep], xs[keep]] = True
        ink = sparse
    return estimate_skew(ink, max_angle=MAX_PAGE_SKEW)


def straighten(gray: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """The page turned by `angle` (as `segmentation.rotate` does) on a canvas that holds all
    of it, the corners paper-coloured; and the (2, 3) affine map from the canvas's pixels back
    to the scan's."""
    h, w = gray.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), -angle, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    cw, ch = int(np.ceil(h * sin + w * cos)), int(np.ceil(h * cos + w * sin))
    m[0, 2] += cw / 2 - w / 2
    m[1, 2] += ch / 2 - h / 2
    paper = int(np.median(gray))
    canvas = cv2.warpAffine(gray, m, (cw, ch), flags=cv2.INTER_LINEAR, borderValue=paper)
    return canvas, cv2.invertAffineTransform(m)


def box_to_scan(box: Box, to_scan: np.ndarray, shape: tuple[int, int]) -> Box:
    """The bounding box, in a scan of `shape` (H, W), of box (x, y, w, h) of a canvas whose
    pixels `to_scan` (2, 3) maps to the scan's; clipped to the scan."""
    x, y, w, h = box
    corners = np.array([[x, y, 1], [x + w, y, 1], [x, y + h, 1], [x + w, y + h, 1]], np.float64)
    pts = corners @ to_scan.T
    x0, y0 = np.clip(np.floor(pts.min(0)), 0, [shape[1], shape[0]]).astype(int)
    x1, y1 = np.clip(np.ceil(pts.max(0)), 0, [shape[1], shape[0]]).astype(int)
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)
