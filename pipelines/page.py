"""The page as the reader reads it: cut out of a larger scan, enlarged, straightened.

The field search expects a cheque filling its scan at about the synthetic cheques' resolution,
its printed lines and writing roughly level (within the ~2 degrees a sheet feeder leaves).
`content_box` finds a cheque on a larger scanned page, `ink_skew` the angle that makes the
page's ink rows sharpest; `reading_canvas` cuts, enlarges (`scaled`) and straightens
(`straighten`) a scan, and `box_to_scan` takes boxes on the result back to the scan's pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipelines.fields import Box, ink_masks, to_working
from pipelines.segmentation import sharpest_angle

MAX_PAGE_SKEW = 12.0  # degrees either way that `page_skew` looks at
COARSE_STEP = 3.0  # degrees between the angles of the first look
COARSE_SAMPLE = 4_000  # ink pixels that vote in the first look, at most
FINE_SAMPLE = 20_000  # and in the second, half-degree look around its answer


def page_skew(gray: np.ndarray) -> float:
    """Angle (degrees, `segmentation.estimate_skew`'s convention) that levels the ink of a
    page (H, W) uint8, within MAX_PAGE_SKEW; see `ink_skew`."""
    return ink_skew(ink_masks(to_working(gray))[0])


def ink_skew(ink: np.ndarray) -> float:
    """Angle that levels a (working-scale) ink mask: 0 when a first look, every COARSE_STEP
    degrees, finds the rows sharpest level (the page is within ~1.5 degrees of level, which
    the field search and the segmentation's own deskew handle); else the sharpest angle in
    half degrees around the first look's. Cheap for a level page: one small look."""
    pts = _ink_points(ink[::2, ::2])  # the first look at half scale (angles are the same)
    if len(pts) < 20:
        return 0.0
    coarse = np.arange(-MAX_PAGE_SKEW, MAX_PAGE_SKEW + 1e-6, COARSE_STEP)
    pts = pts[_every_kth(len(pts), COARSE_SAMPLE)]
    first = sharpest_angle(pts[:, 1], pts[:, 0], coarse)
    if first == 0.0:
        return 0.0
    fine = np.arange(first - COARSE_STEP + 0.5, first + COARSE_STEP - 0.25, 0.5)
    pts = _ink_points(ink)
    pts = pts[_every_kth(len(pts), FINE_SAMPLE)]
    return sharpest_angle(pts[:, 1], pts[:, 0], fine)


def _ink_points(mask: np.ndarray) -> np.ndarray:
    """(N, 2) x, y of the nonzero pixels of a uint8 mask (OpenCV finds them ~3x faster)."""
    found = cv2.findNonZero(np.ascontiguousarray(mask))
    return np.zeros((0, 2), np.int32) if found is None else found.reshape(-1, 2)


def _every_kth(n: int, most: int) -> slice:
    """An even subsample of at most `most` of n items (every k-th, in order)."""
    return slice(None) if n <= most else slice(None, None, n // most + 1)


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


CROP_BELOW = 0.6  # a page whose print and writing cover less of it is cropped to them
CROP_MARGIN = 0.03  # around them, in parts of the page's longer side


def content_box(ink: np.ndarray, shape: tuple[int, int]) -> Box | None:
    """The box (x, y, w, h), in pixels of a page of `shape` (H, W), around the print and
    writing of its working-scale 0/1 ink mask (rows and columns with 3 ink pixels or more), with
    a margin: a cheque on a larger scanned page. None when that covers CROP_BELOW of the page
    or more, or the page holds no ink."""
    rows = np.flatnonzero(cv2.reduce(ink, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel() >= 3)
    cols = np.flatnonzero(cv2.reduce(ink, 0, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel() >= 3)
    if not len(rows) or not len(cols):
        return None
    h, w = ink.shape
    if (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1) >= CROP_BELOW * h * w:
        return None
    fy, fx = shape[0] / h, shape[1] / w
    margin = CROP_MARGIN * max(shape)
    x0, y0 = max(0, int(cols[0] * fx - margin)), max(0, int(rows[0] * fy - margin))
    x1 = min(shape[1], int((cols[-1] + 1) * fx + margin))
    y1 = min(shape[0], int((rows[-1] + 1) * fy + margin))
    return x0, y0, x1 - x0, y1 - y0


def cropped(gray: np.ndarray, box: Box | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The page cut to `box` (None: the whole page), and the (2, 3) map from its pixels back
    to the page's (None when it is the page itself)."""
    if box is None:
        return gray, None
    x, y, w, h = box
    return gray[y : y + h, x : x + w], np.array([[1.0, 0.0, x], [0.0, 1.0, y]])


def scaled(gray: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray | None]:
    """The page resized by `scale` (cubic), and the (2, 3) map from its pixels back to the
    scan's (None for a scale of 1: the page itself)."""
    if scale == 1.0:
        return gray, None
    out = cv2.resize(gray, None, fx=scale, fy=scale,
                     interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
    return out, np.array([[1 / scale, 0.0, 0.0], [0.0, 1 / scale, 0.0]])


def then(outer: np.ndarray | None, inner: np.ndarray) -> np.ndarray:
    """The (2, 3) map `inner` followed by `outer` (None: nothing more)."""
    if outer is None:
        return inner
    return outer[:, :2] @ inner + np.array([[0.0, 0.0, outer[0, 2]], [0.0, 0.0, outer[1, 2]]])


def reading_canvas(gray: np.ndarray, crop: Box | None, scale: float, skew: float
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    """The page as the reader reads it, `cropped` to `crop`, `scaled`, then `straighten`ed by
    `skew` (0: not), and the (2, 3) map from its pixels back to the scan's (None when it is
    the scan itself)."""
    page, to_scan = cropped(gray, crop)
    page, back = scaled(page, scale)
    if back is not None:
        to_scan = then(to_scan, back)
    if skew:
        page, back = straighten(page, skew)
        to_scan = then(to_scan, back)
    return page, to_scan


def box_to_scan(box: Box, to_scan: np.ndarray, shape: tuple[int, int]) -> Box:
    """The bounding box, in a scan of `shape` (H, W), of box (x, y, w, h) of a canvas whose
    pixels `to_scan` (2, 3) maps to the scan's; clipped to the scan."""
    x, y, w, h = box
    corners = np.array([[x, y, 1], [x + w, y, 1], [x, y + h, 1], [x + w, y + h, 1]], np.float64)
    pts = corners @ to_scan.T
    x0, y0 = np.clip(np.floor(pts.min(0)), 0, [shape[1], shape[0]]).astype(int)
    x1, y1 = np.clip(np.ceil(pts.max(0)), 0, [shape[1], shape[0]]).astype(int)
    return int(x0), int(y0), int(x1 - x0), int(y1 - y0)
