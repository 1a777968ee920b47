"""Field extraction: candidate courtesy-amount fields of a cheque scan, and their ranking.

Classical image analysis proposes zones [paper X]. The scan is scaled to a fixed working width
(so every size below is relative to the cheque's width, whatever the resolution). Ink is what is
clearly darker than the local paper (tints and security patterns drop out); long printed rules
are found on a slightly thickened mask (so a rotation of a few degrees keeps them long) and
removed, which also cuts handwriting loose from box borders it touches. The remaining connected
components are linked into text lines (vertical overlap, gaps relative to the ink height), each
line is cut into pieces at wide gaps and at printed vertical rules, and every run of up to
`MAX_RUN` consecutive pieces is a candidate, as is the ink inside each printed box. Each
candidate carries layout features (position, size, aspect, ink density, printed box / rule
context, gaps to its neighbours), which a small learnable scorer turns into a log-score; the
reader keeps the best few and lets the recognizer and the grammar decide.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipelines.numeric import median, median_u8, segmented_median

Box = tuple[int, int, int, int]
NUM_FIELD_FEATURES = 20
WORK_WIDTH = 800  # proposals are made on the scan scaled to this width
MAX_RUN = 6  # most pieces of one line in one candidate
MAX_CANDIDATES = 120
FEATURE_CELLS = 4_000_000  # candidate-component pairs compared at once (memory bound)
INK_MIN, INK_FRAC = 38, 5  # ink is darker than the paper by max(INK_MIN, paper / INK_FRAC)
PIECE_GAP = 0.45  # a gap wider than this times the line height starts a new piece
MARGIN = (0.3, 0.3, 0.3, 0.5)  # left, top, right, bottom margins in ink heights
PUNCT_GAP = 1.2  # punctuation joins a line across this many line heights
LINE_GAP = 2.2  # components further apart than this times their height are not one line
LINK_BLOCK = 512  # components compared with all others at a time when linking lines


@dataclass(frozen=True)
class FieldCandidate:
    """A candidate field: box (x, y, w, h) in image pixels, with margin; features (F,)
    float32; `turns`: the quarter turns (`np.rot90`) of the scan that the box is in."""

    box: Box
    features: np.ndarray
    turns: int = 0


@dataclass(frozen=True)
class PageInk:
    """The working-scale analysis of a page shared by all its candidates."""

    shape: tuple[int, int]  # (h, w) of the working image
    integral: np.ndarray  # (h + 1, w + 1) integral image of the ink without rules
    boxes: np.ndarray  # (N, 4) int x0, y0, x1, y1 of ink components (exclusive ends)
    rules_h: np.ndarray  # (R, 3) x0, x1, y of horizontal rule segments
    rules_v: np.ndarray  # (S, 3) y0, y1, x of vertical rule segments
    printed: np.ndarray  # (P, 4) x0, y0, x1, y1 of the insides of printed rectangles
    ref_h: float  # median height of the text components
    ink: np.ndarray  # (h, w) uint8 ink mask, rules included (for the page's skew)


def whole_image_field(gray: np.ndarray) -> FieldCandidate:
    h, w = gray.shape
    return FieldCandidate((0, 0, w, h), np.zeros(NUM_FIELD_FEATURES, np.float32))


def turn_box(box: Box, turns: int, shape: tuple[int, int]) -> Box:
    """Where box (x, y, w, h) of an (H, W) image lies in `np.rot90(image, turns)` (use
    `4 - turns` and the turned image's shape to come back)."""
    x, y, w, h = box
    height, width = shape
    for _ in range(turns % 4):  # one counter-clockwise quarter turn: (r, c) -> (W-1-c, r)
        x, y, w, h = y, width - x - w, h, w
        height, width = width, height
    return x, y, w, h


def unturn_box(box: Box, turns: int, shape: tuple[int, int]) -> Box:
    """Where box (x, y, w, h) of `np.rot90(image, turns)` lies in the (H, W) `image`."""
    turned_shape = shape if turns % 2 == 0 else (shape[1], shape[0])
    return turn_box(box, -turns % 4, turned_shape)


def to_working(gray: np.ndarray) -> np.ndarray:
    """The scan scaled to WORK_WIDTH: an integer area reduction, then linear interpolation."""
    H, W = gray.shape
    k = W // WORK_WIDTH
    if k >= 2:
        gray = cv2.resize(gray[: H // k * k, : W // k * k], (W // k, H // k),
                          interpolation=cv2.INTER_AREA)
    h = max(1, int(round(H * WORK_WIDTH / W)))
    return cv2.resize(gray, (WORK_WIDTH, h), interpolation=cv2.INTER_LINEAR)


_PAPER_WINDOW = np.ones((15, 15), np.uint8)
# A page's grain: the median of how far (0..255) its pixels lie below their local paper
# maximum. 856 clean training-split cheques measure at most 21; the rough scans
# (`scan_effects.rough_scan`) whose amount field was lost to noise or dust, 31-39.
GRAINY_PAGE = 24
# Over NOISY_PAGE, a page's paper level comes from a median-smoothed copy and the masks lose
# their specks (`ink_masks`). 300 clean training-split pages measure at most 18, a quarter of
# the rough ones more. On 1,000 rough validation scans (three sets of 200-400; the last,
# 400, looked at only once it was built) amounts read right 75.6 -> 76.3% (13 gained, 6
# lost; the last set 5 and 4), fields located 94.3 -> 94.9%; 800 clean scans read the same.
NOISY_PAGE = 18
# A page's texture: the median of how far its max-filter paper level lies above that level
# eroded again (a grey closing, which follows a mottled or pictorial background between the
# strokes). From TEXTURED_PAGE on, the closing is the paper level. Clean training-split pages
# measure 0-3, rough scans mostly 0-9 (median 3); pages laid on a mottled picture (shade
# varying 5-15% over a few strokes' widths) 8-12. On 300 validation cheques on two such
# backgrounds 78.0 -> 86.0% and 72.3 -> 80.3% read right; 2 x 800 clean validation cheques read
# exactly as before, 3 x 600 rough ones 1 gained and 1 lost (at 6: 5 gained, 6 lost).
TEXTURED_PAGE = 8
# How much darker than the paper level (0..255) ink and faint ink are, as lookup tables.
_INK_ABOVE = np.maximum(INK_MIN, np.arange(256) // INK_FRAC).astype(np.uint8)
_FAINT_ABOVE = np.maximum(INK_MIN * 3 // 4, np.arange(256) // (INK_FRAC + 2)).astype(np.uint8)


# A faint pen's ink (`faint_pen_ink`, the field search of the reader's second look at a scan it
# read with little confidence) is darker than the smoothed paper by max(FAINT_PEN_MIN,
# paper / FAINT_PEN_FRAC): about half what `ink_masks` asks, after a blur that takes the grain
# out (a grey pen under heavy noise and blur was left out of the ink, and the field with it).
FAINT_PEN_MIN, FAINT_PEN_FRAC = 20, 10
_FAINT_PEN_ABOVE = np.maximum(FAINT_PEN_MIN, np.arange(256) // FAINT_PEN_FRAC).astype(np.uint8)


def faint_pen_ink(gray: np.ndarray) -> np.ndarray:
    """A uint8 0/1 mask of pixels somewhat darker than the paper around them, found on the
    page blurred (sigma 1) and median-smoothed, without specks: a pale or grey pen under grain
    and blur, at the cost of more of the noise's own blots."""
    gray = cv2.GaussianBlur(gray, (0, 0), 1.0)
    paper = cv2.dilate(cv2.medianBlur(gray, 3), _PAPER_WINDOW)
    diff = cv2.subtract(paper, gray)
    return without_specks((diff > cv2.LUT(paper, _FAINT_PEN_ABOVE)).view(np.uint8))


def ink_masks(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ink, faint ink) uint8 masks: pixels clearly (or somewhat) darker than the paper around
    them, the paper level coming from a max filter. Rules are looked for in the faint mask.
    On a noisy page (grain over NOISY_PAGE) the max filter finds the noise's peaks, not the
    paper, and white dust raises it over a whole window, so that much of the paper would
    read as ink: the paper level is then taken after a 3 x 3 median, and both masks lose
    their specks. A grainy page (over GRAINY_PAGE) is also smoothed first. On a mottled page
    (texture at least TEXTURED_PAGE) the max filter sits on the mottling's light peaks and its
    dark spots read as ink: the paper level is then the max filter eroded again (a closing)."""
    paper = cv2.dilate(gray, _PAPER_WINDOW)
    diff = cv2.subtract(paper, gray)  # never below 0: the paper level is a maximum
    grain = median_u8(diff[::2, ::2])
    noisy = grain > NOISY_PAGE
    if noisy:
        if grain > GRAINY_PAGE:
            gray = cv2.GaussianBlur(gray, (0, 0), 1.0)
        paper = cv2.dilate(cv2.medianBlur(gray, 3), _PAPER_WINDOW)
        diff = cv2.subtract(paper, gray)
    closed = cv2.erode(paper, _PAPER_WINDOW)
    if median_u8(cv2.subtract(paper, closed)[::2, ::2]) >= TEXTURED_PAGE:
        paper = closed
        diff = cv2.subtract(paper, gray)
    ink = (diff > cv2.LUT(paper, _INK_ABOVE)).view(np.uint8)
    faint = (diff > cv2.LUT(paper, _FAINT_ABOVE)).view(np.uint8)
    return (without_specks(ink), without_specks(faint)) if noisy else (ink, faint)


def without_specks(mask: np.ndarray) -> np.ndarray:
    """A uint8 0/1 mask without its specks: set pixels with at most two set pixels in their
    5 x 5 neighbourhood (themselves included) are cleared; a stroke one pixel wide has 5."""
    near = cv2.boxFilter(mask, -1, (5, 5), normalize=False, borderType=cv2.BORDER_CONSTANT)
    return mask & (near > 2).view(np.uint8)


# How wide (working-scale pixels) a mask is thickened across vertical rules before long runs
# are looked for: 7 keeps a box's side one run while it leans up to ~13 degrees, as in a photo
# taken at an angle (3: ~4 degrees); `on_its_line` then keeps only the side's own pixels, and
# a side standing upright the pixels that 3 find (UPRIGHT_SLOPE). On 100 training-split
# cheques under a perspective that moves each corner up to 5% / 10% of the cheque's size,
# 88 -> 89 and 77 -> 81 read right (leaning sides of the amount box had been read, confidently,
# as a '1' or a '3'); 2 x 800 clean validation cheques 0 and 1 lost, none gained; 400 rough
# ones 1 gained, 1 lost. Without the upright rule 3 of the 500 benchmark cheques were lost
# (a side's pixels moved the field's crop by a pixel or two); with it they read as before.
# Thickening by 9 and 11 without the line fit read 82 and 86 under the stronger perspective but
# lost 2 and 4 clean cheques (a digit's stem beside the '$' joined into a box side).
SIDE_THICKENING = 7
UPRIGHT_SLOPE = 0.05  # x per y: a side leaning less keeps the pixels 3 px of thickening find


def find_rules(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(horizontal, vertical) uint8 masks of long thin printed lines, found on a mask thickened
    across the rule so that a slightly rotated rule stays one long run."""
    w = mask.shape[1]
    long_h, long_v = max(12, w // 18), max(10, w // 30)
    horiz = cv2.morphologyEx(cv2.dilate(mask, np.ones((3, 1), np.uint8)), cv2.MORPH_OPEN,
                             np.ones((1, long_h), np.uint8)) & mask
    vert, upright = (cv2.morphologyEx(cv2.dilate(mask, np.ones((1, k), np.uint8)),
                                      cv2.MORPH_OPEN, np.ones((long_v, 1), np.uint8)) & mask
                     for k in (SIDE_THICKENING, 3))
    return horiz, box_sides(vert, horiz, 3 * long_v, upright)


def box_sides(vert: np.ndarray, horiz: np.ndarray, tall: int,
              upright: np.ndarray | None = None) -> np.ndarray:
    """The vertical rules (uint8 mask) that are sides of printed boxes: runs that meet a
    horizontal rule in their top quarter and in their bottom quarter (a stroke crossing the
    corner may lengthen them), or that are `tall` or taller. A long straight handwritten '1'
    is as long as a box's side, but it stands free, or at most on the underline. Of each, the
    pixels on its straight line (`on_its_line`), or where it stands upright those of the
    `upright` mask (the runs found with less thickening, as before leaning sides were)."""
    sides = np.zeros_like(vert)
    for x0, y0, x1, y1 in _rects(vert).tolist():  # a few runs a page
        q = max((y1 - y0) // 4, 1)
        a, b = max(x0 - 3, 0), x1 + 3
        if (y1 - y0 >= tall or (horiz[max(y0 - 3, 0) : y0 + q, a:b].any()
                                and horiz[y1 - q : y1 + 3, a:b].any())):
            sides[y0:y1, x0:x1] |= on_its_line(
                vert[y0:y1, x0:x1], upright=None if upright is None else upright[y0:y1, x0:x1])
    return sides


def on_its_line(run: np.ndarray, tolerance: float = 2.5, upright: np.ndarray | None = None
                ) -> np.ndarray:
    """The pixels of a vertical run (uint8 mask) within `tolerance` pixels of its straight
    line (x fitted as a linear function of y, a second time without the pixels twice as far
    off the first fit): the thickening that keeps a leaning side one run also takes in the
    ink of a '$' or a digit written against it, which is not the side's. A run leaning less
    than ~3 degrees gives `upright` instead, where given. (A tolerance from the run's width
    read 2 more rough scans of 400 right but took a '$' written against the box into the
    side again.)"""
    ys, xs = np.nonzero(run)
    if len(ys) < 3 or np.ptp(ys) == 0:
        return run if upright is None else upright
    keep = np.ones(len(ys), bool)
    for tol in (2 * tolerance, tolerance):
        slope, offset = np.polyfit(ys[keep], xs[keep], 1)
        keep = np.abs(xs - (slope * ys + offset)) <= tol
        if keep.sum() < 3:
            return run if upright is None else upright
    if upright is not None and abs(slope) <= UPRIGHT_SLOPE:
        return upright
    out = np.zeros_like(run)
    out[ys[keep], xs[keep]] = 1
    return out


def _rects(mask: np.ndarray) -> np.ndarray:
    """(N, 4) x0, y0, x1, y1 of the outer contours of a uint8 mask, in findContours' order."""
    contours, hier = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hier is None:
        return np.zeros((0, 4), np.int32)
    # All the points in one array and one reduceat per bound: no Python call per contour.
    points = np.concatenate(contours)[:, 0]
    sizes = np.fromiter(map(len, contours), np.intp, len(contours))
    at = (np.cumsum(sizes) - sizes)[hier[0][:, 3] < 0]
    return np.concatenate([np.minimum.reduceat(points, at), np.maximum.reduceat(points, at) + 1],
                          1)


def printed_boxes(rules: np.ndarray) -> np.ndarray:
    """(P, 4) x0, y0, x1, y1 of the insides of rectangles drawn by rules (e.g. the amount box)."""
    width = rules.shape[1]
    closed = cv2.dilate(rules, np.ones((5, 5), np.uint8))
    contours, hierarchy = cv2.findContours(closed, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    boxes = []
    for c, hier in zip(contours, hierarchy[0] if hierarchy is not None else []):
        if hier[3] < 0:  # an outer contour; the insides are holes
            continue
        x, y, w, h = cv2.boundingRect(c)
        if 0.04 * width <= w <= 0.6 * width and 0.012 * width <= h <= 0.15 * width:
            boxes.append((x, y, x + w, y + h))
    return np.array(boxes, np.float32).reshape(-1, 4)


def analyse_page(small: np.ndarray, faint_pen: bool = False) -> PageInk:
    """Ink, rules, printed boxes and ink components of a working-scale page (h, w) uint8;
    with `faint_pen`, the ink is `faint_pen_ink`'s (the rules are found as always)."""
    ink, faint = ink_masks(small)
    if faint_pen:
        ink = faint_pen_ink(small)
    horiz, vert = find_rules(faint)
    rules = horiz | vert
    # A dilation of a union is the union of the dilations: the rules' margin from the two.
    wide_h, wide_v = (cv2.dilate(r, np.ones((3, 3), np.uint8)) for r in (horiz, vert))
    mask = ink & ~(wide_h | wide_v)
    boxes = _rects(mask)
    hs, ws = boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]
    boxes = boxes[(hs >= 2) | (ws >= 2)]
    tall = boxes[:, 3] - boxes[:, 1]
    tall = tall[tall >= 5]
    rh, rv = _rects(wide_h).astype(np.float32), _rects(wide_v).astype(np.float32)
    return PageInk(
        small.shape, cv2.integral(mask), boxes,
        np.stack([rh[:, 0], rh[:, 2], (rh[:, 1] + rh[:, 3]) / 2], 1),
        np.stack([rv[:, 1], rv[:, 3], (rv[:, 0] + rv[:, 2]) / 2], 1),
        printed_boxes(rules), median(tall) if len(tall) else 10.0, ink)


def _line_order(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The components of the text lines, line after line, each line sorted by x: (N, 4) boxes
    -> (M,) indices and (L,) offsets where the lines start. Lines are in the order of their
    first component's index; lines of specks and dots alone are left out."""
    n = len(boxes)
    if n == 0:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    x0, y0, x1, y1 = (boxes[:, k].astype(np.float32) for k in range(4))
    h, w = y1 - y0, x1 - x0
    small = (h < 5) | (h * w < 16)  # specks, dots
    src, dst = [], []
    for a in range(0, n, LINK_BLOCK):  # pairs a block of rows at a time: bounded memory
        r = slice(a, a + LINK_BLOCK)
        hmin = np.minimum(h[r, None], h[None, :])
        hmax = np.maximum(h[r, None], h[None, :])
        vov = np.minimum(y1[r, None], y1[None, :]) - np.maximum(y0[r, None], y0[None, :])
        gap = np.maximum(x0[r, None], x0[None, :]) - np.minimum(x1[r, None], x1[None, :])
        similar = (hmax <= 3.5 * hmin) & (vov >= 0.4 * hmin) & (gap <= LINE_GAP * hmin)
        # Punctuation (dots, commas, dashes) and specks within the band of a taller neighbour.
        band = (vov >= 0.6 * hmin) & (gap <= PUNCT_GAP * hmax)
        i, j = np.nonzero(similar | (band & ~(small[r, None] & small[None, :])))
        src.append(i + a)
        dst.append(j)
    i, j = np.concatenate(src), np.concatenate(dst)
    roots = np.arange(n)
    while True:  # min-label propagation along the links, with pointer jumping: the groups
        nxt = roots.copy()
        np.minimum.at(nxt, i, roots[j])
        nxt = nxt[nxt]
        if np.array_equal(nxt, roots):
            break
        roots = nxt
    order = np.lexsort((x0, roots))
    starts = np.flatnonzero(np.diff(roots[order], prepend=-1))
    sizes = np.diff(starts, append=n)
    text = ~np.logical_and.reduceat(small[order], starts)
    return order[np.repeat(text, sizes)], np.cumsum(sizes[text]) - sizes[text]


def text_lines(boxes: np.ndarray) -> list[np.ndarray]:
    """Indices of the components of each text line, sorted by x: (N, 4) boxes -> [(n,)]."""
    order, starts = _line_order(boxes)
    return np.split(order, starts[1:]) if len(order) else []


def _piece_starts(b: np.ndarray, starts: np.ndarray, page: PageInk) -> np.ndarray:
    """Where the pieces of text lines start: (M, 4) boxes of the lines' components (each line
    sorted by x) and (L,) offsets of the lines -> offsets of the pieces, cut at wide gaps and
    at printed vertical rules (the lines' starts among them)."""
    line = np.repeat(np.arange(len(starts)), np.diff(starts, append=len(b)))
    h = b[:, 3] - b[:, 1]
    tall = h >= 5
    line_h = segmented_median(h[tall], line[tall], len(starts))
    line_h = np.where(np.isnan(line_h), np.maximum.reduceat(h, starts), line_h)
    y0, y1 = np.minimum.reduceat(b[:, 1], starts), np.maximum.reduceat(b[:, 3], starts)
    v = page.rules_v
    crosses = (np.minimum(v[:, 1], y1[:, None]) - np.maximum(v[:, 0], y0[:, None])
               > (0.5 * (y1 - y0))[:, None])  # (L, S) rules across most of a line's height
    # The ink's right end before each component: a running maximum that restarts at each line
    # (each line is lifted above all the lines before it).
    lift = line.astype(np.int64) * (int(b[:, 2].max()) + 1)
    right = np.maximum.accumulate(b[:, 2] + lift) - lift
    gap = np.ones(len(b), bool)
    gap[starts] = False
    g = np.flatnonzero(gap)  # components with a neighbour on their left in the line
    right, left, gl = right[g - 1], b[g, 0], line[g]
    cut = left - right > PIECE_GAP * line_h[gl]
    cut |= (crosses[gl] & (right[:, None] - 2 <= v[:, 2]) & (v[:, 2] <= left[:, None] + 2)).any(1)
    gap[g] = cut
    gap[starts] = True
    return np.flatnonzero(gap)


def _spread(n: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
    """Height spread of candidates: (K,) component counts, sums of heights and of squared
    heights -> (K,) standard deviation / (mean + 1). The square root is Python's ``** 0.5``
    (libm pow), bit for bit what the field scorer was trained on."""
    mean = s1 / n
    var = np.maximum(s2 / n - mean * mean, 0.0)
    return np.array([v**0.5 for v in var.tolist()], np.float64).reshape(-1) / (mean + 1)


def _first_rows(rows: np.ndarray) -> np.ndarray:
    """Increasing indices of the first occurrence of each distinct row of (K, C) rows."""
    order = np.lexsort(rows.T[::-1])  # stable: equal rows stay in index order
    new = np.ones(len(order), bool)
    new[1:] = (np.diff(rows[order], axis=0) != 0).any(1)
    return np.sort(order[new])


def _printed_groups(page: PageInk) -> np.ndarray:
    """(P', 8) [x0, y0, x1, y1, pieces, components, sum of heights, of squared heights] of the
    ink inside each printed box that holds some."""
    b = page.boxes
    hs = (b[:, 3] - b[:, 1]).astype(np.float64)
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    big = hs * (b[:, 2] - b[:, 0]) >= 16
    out = []
    for x0, y0, x1, y1 in page.printed.tolist():
        idx = np.flatnonzero((cx >= x0) & (cx <= x1) & (cy >= y0) & (cy <= y1) & big)
        if len(idx):
            sub = b[idx]
            out.append((sub[:, 0].min(), sub[:, 1].min(), sub[:, 2].max(), sub[:, 3].max(), 1,
                        len(idx), hs[idx].sum(), (hs[idx] ** 2).sum()))
    return np.array(out, np.float64).reshape(-1, 8)


def _line_groups(page: PageInk, max_run: int) -> np.ndarray:
    """(K, 8) [x0, y0, x1, y1, pieces, components, sum of heights, of squared heights] of every
    run of 1..max_run consecutive pieces of each text line, by first piece then length."""
    order, starts = _line_order(page.boxes)
    if not len(order):
        return np.zeros((0, 8))
    b = page.boxes[order]
    at = _piece_starts(b, starts, page)
    hs = (b[:, 3] - b[:, 1]).astype(np.float64)
    line = np.repeat(np.arange(len(starts)), np.diff(starts, append=len(b)))[at]
    x0, y0 = np.minimum.reduceat(b[:, 0], at), np.minimum.reduceat(b[:, 1], at)
    x1, y1 = np.maximum.reduceat(b[:, 2], at), np.maximum.reduceat(b[:, 3], at)
    n = np.diff(at, append=len(b)).astype(np.float64)
    s1, s2 = np.add.reduceat(hs, at), np.add.reduceat(hs * hs, at)
    p = len(at)
    runs = np.zeros((p, max_run, 8))
    ok = np.zeros((p, max_run), bool)
    acc = np.stack([x0, y0, x1, y1, np.ones(p), n, s1, s2], 1).astype(np.float64)
    runs[:, 0], ok[:, 0] = acc, True
    for k in range(1, max_run):  # grow every run by its next piece, in the original order
        nxt = np.arange(k, p + k).clip(max=p - 1)
        ok[:, k] = ok[:, k - 1] & (np.arange(p) + k < p) & (line[nxt] == line)
        acc[:, 1] = np.minimum(acc[:, 1], y0[nxt])
        acc[:, 2], acc[:, 3] = np.maximum(acc[:, 2], x1[nxt]), np.maximum(acc[:, 3], y1[nxt])
        acc[:, 4] += 1
        acc[:, 5] += n[nxt]
        acc[:, 6] += s1[nxt]
        acc[:, 7] += s2[nxt]
        runs[:, k] = acc
    return runs[ok]


def candidate_groups(page: PageInk, max_run: int = MAX_RUN) -> tuple[np.ndarray, np.ndarray]:
    """Candidates as (K, 4) x0, y0, x1, y1 ink boxes and (K, 4) [pieces, components, printed-box
    content, height spread] descriptors: the printed boxes' ink first, then the runs of pieces
    of each line, each box once (its first time)."""
    boxed = _printed_groups(page)
    g = np.concatenate([boxed, _line_groups(page, max_run)])
    first = _first_rows(g[:, :4])
    g, is_box = g[first], first < len(boxed)
    info = np.stack([g[:, 4], g[:, 5], is_box, _spread(g[:, 5], g[:, 6], g[:, 7])], 1)
    return g[:, :4].astype(np.float32), info.astype(np.float32)


def _features(rects: np.ndarray, info: np.ndarray, page: PageInk) -> np.ndarray:
    """(K, F) features of candidate ink boxes (K, 4) x0, y0, x1, y1, all scale-free; computed
    FEATURE_CELLS candidate-component pairs at a time, so that a page of noise (tens of
    thousands of candidates and components) does not need gigabytes."""
    n = max(len(page.boxes), len(page.printed), len(page.rules_h), 1)
    step = max(1, FEATURE_CELLS // n)
    if len(rects) <= step:
        return _features_of(rects, info, page)
    return np.concatenate([_features_of(rects[i : i + step], info[i : i + step], page)
                           for i in range(0, len(rects), step)])


def _features_of(rects: np.ndarray, info: np.ndarray, page: PageInk) -> np.ndarray:
    """`_features` of one chunk of candidates."""
    H, W = page.shape
    x0, y0, x1, y1 = rects.T
    w, h = np.maximum(x1 - x0, 1), np.maximum(y1 - y0, 1)
    ii = page.integral
    xa, ya, xb, yb = (v.astype(np.int64) for v in (x0, y0, x1, y1))
    ink = (ii[yb, xb] - ii[ya, xb] - ii[yb, xa] + ii[ya, xa]) / (w * h)
    p = page.printed
    ov = (np.clip(np.minimum(x1[:, None], p[:, 2]) - np.maximum(x0[:, None], p[:, 0]), 0, None)
          * np.clip(np.minimum(y1[:, None], p[:, 3]) - np.maximum(y0[:, None], p[:, 1]), 0, None))
    if p.shape[0]:
        best = ov.argmax(1)
        in_printed = ov.max(1) / (w * h)
        cover = np.minimum(w / (p[best, 2] - p[best, 0]), 2.0) * (in_printed > 0)
    else:
        in_printed = cover = np.zeros(len(rects), np.float32)
    r = page.rules_h
    span_ov = np.minimum(x1[:, None], r[:, 1]) - np.maximum(x0[:, None], r[:, 0])
    under = ((span_ov > 0.5 * w[:, None]) & (r[:, 2] >= y0[:, None] + 0.5 * h[:, None])
             & (r[:, 2] <= y1[:, None] + 0.6 * h[:, None]))
    rule_below = under.any(1).astype(np.float32)
    fill = np.where(under, w[:, None] / (r[:, 1] - r[:, 0] + 1), 0)
    rule_span = np.minimum(fill.max(1, initial=0), 2.0)
    b = page.boxes
    rows = (np.minimum(b[:, 3], y1[:, None]) - np.maximum(b[:, 1], y0[:, None])) > 0.3 * h[:, None]
    big = 10 * h[:, None]
    gl = np.where(rows & (b[:, 2] <= x0[:, None]), x0[:, None] - b[:, 2], big).min(1, initial=1e9)
    gr = np.where(rows & (b[:, 0] >= x1[:, None]), b[:, 0] - x1[:, None], big).min(1, initial=1e9)
    n_pieces, n_comps, is_box, spread = info.T
    return np.stack([
        (x0 + x1) / (2 * W), (y0 + y1) / (2 * H), w / W * 4, h / H * 4, np.log(w / h),
        np.log(h / page.ref_h), ink * 4, in_printed, cover, is_box, rule_below, rule_span,
        np.log(n_pieces), np.log(n_comps), np.log1p(gl / h), np.log1p(gr / h), spread,
        x1 / W, y0 / H, np.ones_like(w)], 1).astype(np.float32)


def _prior(f: np.ndarray) -> np.ndarray:
    """A hand-set order for when no scorer is given: boxed or ruled ink on the right."""
    return (2 * f[:, 7] + f[:, 9] + f[:, 10] + f[:, 0] + np.minimum(f[:, 14], 1.5)
            + np.minimum(f[:, 15], 1.5))


def propose_fields(gray: np.ndarray, limit: int = MAX_CANDIDATES, page: PageInk | None = None
                   ) -> list[FieldCandidate]:
    """Candidate amount fields of a cheque scan (H, W) uint8, boxes in image pixels (with a
    margin), best first by a hand-set prior; [] for a blank or tiny image. `page`: the
    `analyse_page` of `to_working(gray)`, when the caller has it already."""
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise TypeError(f"expected a 2-D uint8 greyscale image, got {gray.dtype} {gray.shape}")
    H, W = gray.shape
    scale = WORK_WIDTH / W if W else 0.0
    if W < 16 or H * scale < 16:
        return []
    if page is None:
        page = analyse_page(to_working(gray))
    rects, info = candidate_groups(page)
    w, h = rects[:, 2] - rects[:, 0], rects[:, 3] - rects[:, 1]
    keep = (h >= 4) & (w >= 3) & (w <= 0.6 * page.shape[1]) & (h <= 0.4 * page.shape[0])
    rects, info = rects[keep], info[keep]
    if not len(rects):
        return []
    feats = _features(rects, info, page)
    order = np.argsort(-_prior(feats), kind="stable")[:limit]
    m = (rects[:, 3:4] - rects[:, 1:2]) * np.array(MARGIN, np.float32) + 2  # (K, 4)
    lo = np.floor((rects[:, :2] - m[:, :2]) / scale).astype(np.int64)
    hi = np.ceil((rects[:, 2:] + m[:, 2:]) / scale).astype(np.int64)
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, [W, H])
    boxes = np.concatenate([lo, hi - lo], 1)[order].tolist()  # Python ints
    return [FieldCandidate(tuple(b), f) for b, f in zip(boxes, feats[order])]


@dataclass(frozen=True)
class FieldRanker:
    """A trained field scorer's tanh network in numpy (`FieldScorer.ranker()`): it picks which
    candidate fields are read, in processes that never load torch (they start 2 s sooner)."""

    weights: tuple[np.ndarray, ...]  # (out, in) float32 per layer
    biases: tuple[np.ndarray, ...]  # (out,) float32 per layer

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """(K, F) features -> (K,) log-scores."""
        x = np.asarray(features, np.float32)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = x @ w.T + b
            if i < len(self.weights) - 1:
                x = np.tanh(x)
        return x[:, 0]
