"""Heuristic over-segmentation of an amount field into a segmentation graph [paper V-A, X-A].

The field is binarised and deskewed, printed rules are removed, and the ink is split into
pieces: connected components, and inside components too wide for one character, the regions
between cut paths. Cut paths start at minima of the vertical projection and of the distance
between the upper and lower contours, and then run from the top to the bottom of the component
along the path of least ink (a dynamic-programming form of the paper's "hit and deflect": the
path slides along the stroke it meets and crosses it where it is thinnest). More cuts are made
than needed; the recognizer and the grammar choose among them.

Nodes of the graph are the boundaries between consecutive pieces (left to right); an arc from
node i to node j is the candidate character made of pieces i..j-1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import cv2
import numpy as np

from pipelines.numeric import median, median_u8, percentile

MAX_PIECES_PER_ARC = 4
MAX_ARC_WIDTH = 1.6  # in line heights: wider is never one character
MAX_GAP_INSIDE_ARC = 0.6  # in line heights: wider gaps separate characters
WIDE_COMPONENT = 0.7  # in line heights: wider components get cut candidates
# A straight stroke at either end of a component at least STROKE_COMPONENT line heights wide
# (a '1' touching or overlapping its neighbour, which no top-to-bottom cut separates) becomes a
# piece of its own: its left (right) contour must lie within STROKE_TOLERANCE line heights of a
# line on STROKE_STRAIGHT of its rows, slanting at most STROKE_SLANT px a row, the stroke be at
# most STROKE_PEN line heights thick and STROKE_HEIGHT tall, and the rest of the component
# keep STROKE_REST of its ink and reach STROKE_BEYOND line heights past it. On 2,400
# validation cheques this gave 11 more a right path through their graphs, lost none, and made
# about 2% more candidate characters. (A tolerance of 0.06 gave 14 and 4%, and as many more
# cheques read right, but split the side off a blurred '8' or '0' more often.)
STROKE_COMPONENT = 0.35
STROKE_TOLERANCE = 0.04
STROKE_STRAIGHT = 0.85
STROKE_SLANT = 0.6
STROKE_PEN = 0.25
STROKE_HEIGHT = 0.6
STROKE_REST = 0.3
STROKE_BEYOND = 0.15
NUM_FEATURES = 9
# A candidate character may be a raised digit (cents written raised: "125⁰⁰") when its foot is
# at least RAISED_FOOT above the line's foot and it is at most RAISED_HEIGHT tall, in line
# heights of a line taken from its tallest pieces only (those at least RAISED_LINE_TALL of the
# 90th percentile's height, not 0.6 as for the writing line: in a short amount such as "6⁴⁹"
# the raised digits would make half the line). Plain digits measure 0 +- 0.1 and 1 +- 0.15.
# In 150 training-split fields written with raised cents, 282 of their 300 raised digits and
# 13 of 400 plain ones are candidates (RAISED_LINE_TALL 0.75: 266 and 8).
RAISED_FOOT = -0.15
RAISED_HEIGHT = 0.85
RAISED_LINE_TALL = 0.9
# A field's grain: the median of how far (0..255) its pixels lie below the lightest pixel
# around them (9 x 9). The amount fields of 856 clean training-split cheques measure at most
# 31, of rough scans up to 65 (`scan_effects.rough_scan`); a grainier field is smoothed
# before it is binarised.
GRAINY_FIELD = 34
# `remove_rules` takes a horizontal run of ink for a rule when it is at least RULE_LENGTH times
# the field's height long (and a third of its width, and 25 px): in the narrow field of a short
# amount, shorter runs are the flat strokes of '2', '3', '5', '7' or the filled loop of a heavy
# '9'. Chosen on 800 validation cheques (amount accuracy): 0 (the old rule) 88.4%,
# 0.45 89.0%, 0.6 89.4%, 0.8 89.5%, 1.0 89.6%, 1.3 89.1%, 2.0 88.2%; the next 800: 0 88.3%,
# 0.8 89.9%, 1.0 90.0% (0.8 leaves a margin before the loss at 1.3).
RULE_LENGTH = 0.8
# Print under an amount box ("NOT VALID OVER $5,000.00") falls inside the field: a row of at
# least PRINT_BELOW_COUNT small components (under PRINT_HEIGHT line heights tall) lying wholly
# below the writing line, by PRINT_GAP line heights, is dropped. A low comma, a speck or the
# stacked "100" of a fraction are fewer. On 2 x 800 validation cheques 89.6 -> 90.6% and
# 90.1 -> 91.0% (19 gained, 4 lost; a count of 3 read as well), 400 rough ones 74.0 -> 76.5%.
PRINT_BELOW_COUNT = 5
PRINT_HEIGHT = 0.45
PRINT_GAP = 0.1
# A field's dark printed rules (a box's black border) pull Otsu's threshold up between the paper
# and their ink, and a faint pen falls under it: where the threshold taken without the rules'
# pixels is FAINT_PEN_GAP (0..255) or more lower, the field is binarised again at that one.
# On 3 x 800 clean validation cheques 7 gained, 2 lost; 2 x 600 rough ones 2 gained, none lost
# (with no gap required, 20 gained and 21 lost: grain and guilloche came in too).
FAINT_PEN_GAP = 30
# Raised cents are often underlined ("125⁰⁰" with a stroke under the ⁰⁰), and the stroke joins
# them into one piece. A thin, straight run of ink at least UNDERLINE_LENGTH line heights long,
# its middle between UNDERLINE_ZONE line heights below the line's top, with ink over at least
# UNDERLINE_ABOVE of its columns but free at one end, no stroke of its own going on down from
# it in more than UNDERLINE_BELOW of them (a '4''s stem; a '-' has nothing over it),
# carrying two marks or more, none taller than UNDERLINE_ABOVE_HEIGHT line heights
# (`cents_above`: the foot of a small '2' carries one, the bottom of a '0' the whole digit;
# two raised digits that touch make one mark 1.3 times as wide as tall or more), and with no
# digit-sized ink beyond its end (the cents end the amount), is taken out of the ink mask
# (`cents_underlines`). On 400 validation cheques written with underlined raised cents
# 14.25 -> 62.25% (a second 400: 13.75 -> 55.00%); 3 x 800 plain ones 1 lost, none gained;
# 800 with raised cents not underlined and 600 rough ones read the same. Without the test of
# what lies beyond: 60.75% and 52.75% without touching pairs (plain 2 lost), and with them
# 6 of 1,600 plain cheques lost.
UNDERLINE_LENGTH = 0.5
UNDERLINE_ZONE = (0.25, 0.95)
UNDERLINE_ABOVE = 0.5
UNDERLINE_BELOW = 0.1
UNDERLINE_ABOVE_HEIGHT = 0.75
INK_FLOOR = 60  # (0..255) no threshold of a field's ink darkness is lower: clean images' paper
_PAPER_WINDOW = np.ones((9, 9), np.uint8)


@dataclass(frozen=True)
class Line:
    """The writing line in field pixels: digits' ink spans rows top..top+height."""

    top: float
    height: float


@dataclass(frozen=True)
class Segmentation:
    """A field's segmentation graph.

    pieces: (H, W) int32 map, 0 = background, k + 1 = piece k (pieces ordered left to right).
    ink: (H, W) float32 ink darkness 0..1 of the (deskewed) field.
    arc_start, arc_end: (A,) node indices (0..P); arc i covers pieces arc_start[i]..arc_end[i]-1.
    boxes: (A, 4) x, y, w, h of each arc's ink in field pixels (deskewed frame).
    features: (A, NUM_FEATURES) geometry in line heights (see `arc_features`).
    cut_x: (P + 1,) x position of each node (for pictures).
    angle: the deskew rotation applied, in degrees.
    raised_geometry: (A, 2) each arc's foot and height, in line heights of the line of the
    field's tallest pieces (`raised_geometry`): what tells a raised digit.
    """

    pieces: np.ndarray
    ink: np.ndarray
    line: Line
    arc_start: np.ndarray
    arc_end: np.ndarray
    boxes: np.ndarray
    features: np.ndarray
    cut_x: np.ndarray
    angle: float
    raised_geometry: np.ndarray

    @property
    def raised(self) -> np.ndarray:
        """(A,) bool: which arcs may be raised digits (see RAISED_FOOT)."""
        foot, height = self.raised_geometry[:, 0], self.raised_geometry[:, 1]
        return (foot <= RAISED_FOOT) & (height <= RAISED_HEIGHT)

    @property
    def num_pieces(self) -> int:
        return len(self.cut_x) - 1

    @property
    def num_arcs(self) -> int:
        return len(self.arc_start)

    def without_images(self) -> Segmentation:
        """The same graph without its pictures: `pieces` and `ink` become zero-stride
        placeholders of the same shape (what training keeps for thousands of fields)."""
        return replace(self, pieces=np.broadcast_to(np.int32(0), self.pieces.shape),
                       ink=np.broadcast_to(np.float32(0), self.ink.shape))

    def __reduce__(self) -> tuple:
        # A placeholder picture would be pickled at full size: send its shape and dtype only
        # (what the reader's worker processes hand back when no picture is asked for).
        state = {f.name: getattr(self, f.name) for f in fields(self)}
        blanks = {}
        for name in ("pieces", "ink"):
            a = state[name]
            if a.size > 1 and not any(a.strides):
                blanks[name] = (a.shape, a.dtype.str, a.flat[0].item())
                state[name] = None
        return (_rebuild_segmentation, (state, blanks))

    def field_boxes(self) -> np.ndarray:
        """(A, 4) arc boxes x, y, w, h mapped back from the deskewed frame to the field's."""
        if self.angle == 0.0:
            return self.boxes
        h, w = self.ink.shape
        m = cv2.getRotationMatrix2D((w / 2, h / 2), self.angle, 1.0)
        x, y, bw, bh = (self.boxes[:, i].astype(np.float64) for i in range(4))
        corners = np.stack([np.stack([x, y], 1), np.stack([x + bw, y], 1),
                            np.stack([x, y + bh], 1), np.stack([x + bw, y + bh], 1)], 1)
        moved = corners @ m[:, :2].T + m[:, 2]
        lo, hi = np.floor(moved.min(1)), np.ceil(moved.max(1))
        return np.concatenate([lo, hi - lo], 1).astype(np.int64)

    def arc_patches(self) -> tuple[list[np.ndarray], np.ndarray]:
        """Each arc's ink crop (float 0..1, other pieces blanked) and its top offset from the
        line. Grey edge pixels just outside the binary ink go to the piece they touch."""
        grown = cv2.dilate(self.pieces.astype(np.uint16), np.ones((3, 3), np.uint8))
        owner = np.where(self.pieces > 0, self.pieces, grown).astype(np.int32)
        patches = []
        zero = np.float32(0)
        # Python ints: comparing int32 ids with numpy int64 scalars would widen every id
        for (x, y, w, h), first, end in zip(self.boxes.tolist(), self.arc_start.tolist(),
                                            self.arc_end.tolist()):
            ids = owner[y : y + h, x : x + w]
            keep = (ids > first) & (ids <= end)
            patches.append(np.where(keep, self.ink[y : y + h, x : x + w], zero)
                           .astype(np.float32, copy=False))
        tops = self.boxes[:, 1].astype(np.float32) - self.line.top
        return patches, tops

    def piece_ink(self) -> np.ndarray:
        """(H, W) float32 ink of the field's pieces (what `arc_patches` crops from), nothing
        else: the surroundings of every candidate character."""
        grown = cv2.dilate((self.pieces > 0).astype(np.uint8), np.ones((3, 3), np.uint8))
        return np.where(grown > 0, self.ink, np.float32(0)).astype(np.float32, copy=False)


def _rebuild_segmentation(state: dict, blanks: dict) -> Segmentation:
    for name, (shape, dtype, value) in blanks.items():
        state[name] = np.broadcast_to(np.array(value, dtype), shape)
    return Segmentation(**state)


def ink_of(gray: np.ndarray) -> np.ndarray:
    """Ink darkness 0..1 from a greyscale image (paper light), stretched to the paper level."""
    cdf = np.cumsum(np.bincount(gray.ravel(), minlength=256)) / gray.size
    paper = float(np.searchsorted(cdf, 0.9))
    darkest = float(min(np.searchsorted(cdf, 0.005), paper - 40))
    return np.clip((paper - gray.astype(np.float32)) / max(paper - darkest, 1.0), 0.0, 1.0)


def otsu_level(values: np.ndarray) -> float:
    """Otsu's threshold of uint8 values (any shape)."""
    t, _ = cv2.threshold(values.reshape(-1, 1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return float(t)


def handwriting_mask(ink: np.ndarray) -> tuple[np.ndarray, float]:
    """The ink mask of a field without its printed rules, and the rules' thickness
    (`remove_rules`): Otsu's threshold on the ink darkness, never below a floor for clean
    images; taken again without the rules' pixels when they hid a faint pen (FAINT_PEN_GAP)."""
    u8 = (ink * 255).astype(np.uint8)
    level = otsu_level(u8)
    first = u8 > max(level, INK_FLOOR)
    mask, rule_width = remove_rules(first)
    rules = (first & ~mask).view(np.uint8)
    if rules.any():
        beside = cv2.dilate(rules, np.ones((5, 5), np.uint8)) == 0
        pen_level = otsu_level(u8[beside])
        if level - pen_level >= FAINT_PEN_GAP:
            mask, rule_width = remove_rules(u8 > max(pen_level, INK_FLOOR))
    return mask, rule_width


def remove_rules(mask: np.ndarray) -> tuple[np.ndarray, float]:
    """Remove long thin horizontal and vertical printed lines (box borders, underlines):
    horizontal runs of ink `RULE_LENGTH` field heights long, vertical ones 0.6 heights.
    Returns the mask without them and the median thickness (px) of the horizontal ones
    (0 when there are none): the width a box's side has in this scan."""
    h, w = mask.shape
    u8 = mask.astype(np.uint8)
    # Rules may be slightly tilted: thicken across the rule before looking for long runs.
    horiz = cv2.morphologyEx(cv2.dilate(u8, np.ones((3, 1), np.uint8)), cv2.MORPH_OPEN,
                             np.ones((1, max(25, w // 3, int(RULE_LENGTH * h))), np.uint8)) & u8
    vert = cv2.morphologyEx(cv2.dilate(u8, np.ones((1, 3), np.uint8)), cv2.MORPH_OPEN,
                            np.ones((max(25, int(h * 0.6)), 1), np.uint8)) & u8
    rules = cv2.dilate(horiz | vert, np.ones((3, 3), np.uint8))
    thickness = horiz.sum(0, dtype=np.int32)
    width = float(np.median(thickness[thickness > 0])) if thickness.any() else 0.0
    # Keep ink of thick strokes crossing a rule: only drop rule pixels with no ink just above
    # and below the rule band.
    return mask & ~(rules.astype(bool) & ~_crossing_strokes(mask, horiz.astype(bool))), width


def _crossing_strokes(mask: np.ndarray, horiz: np.ndarray) -> np.ndarray:
    above = np.roll(mask & ~horiz, 3, axis=0)
    below = np.roll(mask & ~horiz, -3, axis=0)
    return above & below


def estimate_skew(mask: np.ndarray, max_angle: float = 3.0) -> float:
    """Rotation (degrees) that makes the row projection sharpest (largest variance)."""
    ys, xs = np.nonzero(mask)
    if len(xs) < 20:
        return 0.0
    return sharpest_angle(ys, xs, np.arange(-max_angle, max_angle + 1e-6, 0.5))


def sharpest_angle(ys: np.ndarray, xs: np.ndarray, angles: np.ndarray) -> float:
    """Of `angles` (degrees), the rotation that makes the row projection of ink pixels
    (ys, xs) sharpest (the largest sum of squared row counts); the first of equals."""
    xs = xs - xs.mean()
    rows = np.round(ys + xs * np.tan(np.radians(angles))[:, None]).astype(np.int64)  # (A, N)
    rows -= rows.min(1, keepdims=True)
    span = int(rows.max()) + 1  # every angle's row histogram in one bincount
    counts = np.bincount((rows + span * np.arange(len(angles))[:, None]).ravel(),
                         minlength=span * len(angles)).reshape(len(angles), span)
    scores = (counts.astype(np.float64) ** 2).sum(1)  # sums of integers: exact in any order
    return float(angles[int(np.argmax(scores))])


def rotate(image: np.ndarray, angle: float, interpolation: int) -> np.ndarray:
    h, w = image.shape
    m = cv2.getRotationMatrix2D((w / 2, h / 2), -angle, 1.0)
    return cv2.warpAffine(image, m, (w, h), flags=interpolation, borderValue=0)


def estimate_line(stats: np.ndarray, tall_from: float = 0.6) -> Line:
    """Line top and digit height from component boxes (x, y, w, h, area): the tall ones (at
    least `tall_from` of the 90th percentile's height), leaving out thin rule-like strokes
    (much longer than wide, or wider than long)."""
    w, h, area = (stats[:, i].astype(np.float64) for i in (2, 3, 4))
    plausible = (h < 8 * w) & (w < 8 * h) & (area >= 0.05 * area.max())
    stats = stats[plausible] if plausible.any() else stats
    heights = stats[:, 3].astype(np.float64)
    tall = heights >= tall_from * percentile(heights, 90)
    top = median(stats[tall, 1])
    bottom = median(stats[tall, 1] + stats[tall, 3])
    return Line(top=top, height=max(bottom - top, 8.0))


def cut_candidates(comp: np.ndarray, line_height: float) -> list[int]:
    """Column positions to try cutting a wide component at: minima of the vertical projection
    and of the upper-lower contour distance, away from the component's ends."""
    h, w = comp.shape
    margin = max(2, int(0.2 * line_height))
    if w <= 2 * margin:
        return []
    proj = comp.sum(0).astype(np.float64)
    has = comp.any(0)
    top = np.where(has, comp.argmax(0), h)
    bottom = np.where(has, h - comp[::-1].argmax(0), 0)
    thickness = np.maximum(bottom - top, 0).astype(np.float64)
    kernel = np.ones(3) / 3
    found: list[int] = []
    for signal in (np.convolve(proj, kernel, "same"), np.convolve(thickness, kernel, "same")):
        inner = signal[margin : w - margin]
        left = np.concatenate([[np.inf], inner[:-1]])
        right = np.concatenate([inner[1:], [np.inf]])
        minima = np.nonzero((inner <= left) & (inner < right))[0] + margin
        found.extend(int(x) for x in minima)
    found.sort()
    merged: list[int] = []
    for x in found:  # candidates closer than a fifth of a line height are one
        if not merged or x - merged[-1] > max(2, 0.2 * line_height):
            merged.append(x)
    spacing = 0.3 * line_height  # at most a cut per 0.3 line heights: more is only noise
    return merged[: max(1, int(w / spacing))]


def cut_paths(comps: Sequence[np.ndarray], xs: Sequence[Sequence[int]], window: int
              ) -> list[np.ndarray]:
    """Least-ink top-to-bottom paths through each component, one from near each of its columns
    in xs: a (K_i, H_i) array per component.

    Each row a path moves at most one column, stays within `window` of its start, pays 1 per
    ink pixel crossed and a little per column of drift (so it goes straight where it can).
    The paths of all components run together, one row at a time, bottom-aligned: a shorter
    component's paths start on free rows above it (so they start anywhere, as alone) and are
    cut there.
    """
    height = max(c.shape[0] for c in comps)
    offsets = np.arange(-window, window + 1)[None, :]
    costs, starts, owner = [], [], []
    for i, (comp, x) in enumerate(zip(comps, xs)):
        h, w = comp.shape
        x0 = np.asarray(x)[:, None]
        cols = x0 + offsets  # (K, 2*window+1)
        inside = (cols >= 0) & (cols < w)
        ink = np.where(inside[None], comp[:, np.clip(cols, 0, w - 1)], np.inf)  # (h, K, win)
        cost = np.zeros((height,) + cols.shape)
        cost[height - h :] = ink + 0.02 * np.abs(cols - x0)[None]
        cost[: height - h] = np.where(inside, 0.0, np.inf)[None]
        costs.append(cost)
        starts.append(cols)
        owner += [i] * len(x)
    cost, cols = np.concatenate(costs, 1), np.concatenate(starts, 0)
    k, width = cols.shape
    acc = np.full((k, width + 2), np.inf)
    acc[:, 1:-1] = cost[0]
    left, mid, right = acc[:, :-2], acc[:, 1:-1], acc[:, 2:]  # views: updated in place
    went_left = np.zeros((height, k, width), bool)  # (ties go straight, then left)
    went_right = np.zeros((height, k, width), bool)
    best = np.empty((k, width))
    for r in range(1, height):
        np.less(left, mid, out=went_left[r])
        np.minimum(left, mid, out=best)
        np.less(right, best, out=went_right[r])
        np.minimum(best, right, out=best)
        np.add(best, cost[r], out=mid)
    back = went_right.view(np.int8) - (went_left & ~went_right).view(np.int8)
    pos = acc[:, 1:-1].argmin(1)
    paths = np.empty((k, height), np.int64)
    rows = np.arange(k)
    for r in range(height - 1, -1, -1):
        paths[:, r] = cols[rows, pos]
        pos = pos + back[r, rows, pos]
    owner_arr = np.asarray(owner)
    return [paths[owner_arr == i, height - c.shape[0] :] for i, c in enumerate(comps)]


def valley_paths(comp: np.ndarray, line_height: float) -> list[np.ndarray]:
    """Straight cuts from each valley of the upper contour to the nearest peak of the lower
    contour (the paper's hit-and-deflect cut for touching loops such as "00", which a
    least-ink path would skirt round): (H,) columns each."""
    h, w = comp.shape
    has = comp.any(0)
    top = np.where(has, comp.argmax(0), 0).astype(np.float64)
    bottom = np.where(has, h - comp[::-1].argmax(0), h).astype(np.float64)
    margin = max(2, int(0.2 * line_height))
    reach = max(2, int(0.3 * line_height))
    paths = []
    mid = top[margin : w - margin]
    valley = ((mid > top[margin - 1 : w - margin - 1]) & (mid >= top[margin + 1 : w - margin + 1])
              & (mid > top.min() + 2))
    for xu in (np.flatnonzero(valley) + margin).tolist():
        lo, hi = max(margin, xu - reach), min(w - margin, xu + reach + 1)
        xl = lo + int(np.argmin(bottom[lo:hi]))
        paths.append(np.round(np.linspace(xu, xl, h)).astype(np.int64))
    return paths


def paths_ink(comp: np.ndarray, paths: Sequence[np.ndarray]) -> np.ndarray:
    """(K,) ink pixels each of K top-to-bottom cut paths (H,) crosses."""
    if not len(paths):
        return np.zeros(0, np.int64)
    cols = np.clip(np.stack(paths), 0, comp.shape[1] - 1)
    return comp[np.arange(comp.shape[0]), cols].sum(1)


def least_ink_paths(comps: Sequence[np.ndarray], line_height: float) -> list[list[np.ndarray]]:
    """The least-ink cut paths of each wide component (from `cut_candidates`), found together."""
    xs = [cut_candidates(c, line_height) for c in comps]
    busy = [i for i, x in enumerate(xs) if x]
    out: list[list[np.ndarray]] = [[] for _ in comps]
    if busy:
        found = cut_paths([comps[i] for i in busy], [xs[i] for i in busy],
                          max(2, int(0.25 * line_height)))
        for i, paths in zip(busy, found):
            out[i] = list(paths)
    return out


def split_component(comp: np.ndarray, line_height: float,
                    least_ink: list[np.ndarray]) -> np.ndarray:
    """Region index (0..k) of each ink pixel of a wide component, cut along k paths: valley
    cuts, then its least-ink cuts (from `least_ink_paths`), at most one per 0.4 line heights of
    width, no two cuts closer than 0.15 line heights."""
    regions = np.zeros(comp.shape, np.int32)
    # Valley cuts first (they separate touching loops), then least-ink paths, cheapest first.
    cheapest = np.argsort(paths_ink(comp, least_ink), kind="stable").tolist()
    found = valley_paths(comp, line_height) + [least_ink[i] for i in cheapest]
    budget = max(1, int(comp.shape[1] / (0.4 * line_height)))
    kept: list[np.ndarray] = []
    for p in found:
        if len(kept) == budget:
            break
        if all(np.abs(p - q).mean() > max(1.5, 0.15 * line_height) for q in kept):
            kept.append(p)
    cols = np.arange(comp.shape[1])[None, :]
    for p in kept:
        regions += (cols > p[:, None]).astype(np.int32)
    return regions


def line_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Slope and intercept of the least-squares line y = a x + b (x not all equal)."""
    dx = x - x.mean()
    slope = float(dx @ (y - y.mean()) / (dx @ dx))
    return slope, float(y.mean() - slope * x.mean())


def end_stroke(comp: np.ndarray, line_height: float, from_right: bool) -> np.ndarray | None:
    """The pixels of a straight stroke at the left (right) end of a component that holds more
    ink beside it, such as a '1' touching the next digit, as a mask of `comp`'s shape; None
    when that end is not such a stroke (see STROKE_COMPONENT)."""
    ink = comp[:, ::-1] if from_right else comp
    w = ink.shape[1]
    if w < STROKE_COMPONENT * line_height:
        return None
    rows = np.flatnonzero(ink.any(1))
    if rows[-1] - rows[0] + 1 < STROKE_HEIGHT * line_height:
        return None
    inked = ink[rows]
    first = inked.argmax(1)  # the contour, each row
    slant, offset = line_fit(rows.astype(np.float64), first.astype(np.float64))
    on_line = np.abs(first - (offset + slant * rows)) <= max(1.5, STROKE_TOLERANCE * line_height)
    if abs(slant) > STROKE_SLANT or on_line.mean() < STROKE_STRAIGHT:
        return None  # (most components end here: tested first as the cheapest)
    after = ~inked & (np.arange(w)[None, :] > first[:, None])
    run = np.where(after.any(1), after.argmax(1), w) - first  # each row's first ink run
    pen = float(np.median(run))  # rows where the stroke meets other ink are the few
    if pen > STROKE_PEN * line_height:
        return None
    ys, xs = np.nonzero(ink)
    edge = offset + slant * ys  # the contour line at each ink pixel's row
    in_stroke = xs <= edge + pen + 1  # and all left of it: the rest lies to its right
    beyond = (xs - edge - pen)[~in_stroke]
    if (~in_stroke).sum() < STROKE_REST * len(xs) or beyond.max(initial=0) < max(
            STROKE_BEYOND * line_height, 1.5 * pen):
        return None
    stroke = np.zeros_like(ink)
    stroke[ys[in_stroke], xs[in_stroke]] = True
    return stroke[:, ::-1] if from_right else stroke


def component_regions(comp: np.ndarray, line_height: float,
                      least_ink: list[np.ndarray] | None) -> np.ndarray:
    """Region index (0..k) of each ink pixel of a component: cut along paths where it is wide
    (`split_component`, given its least-ink paths; None for a narrower one), with a straight
    stroke at either end (`end_stroke`) a region of its own."""
    if least_ink is None:
        regions = np.zeros(comp.shape, np.int32)
    else:
        regions = split_component(comp, line_height, least_ink)
    left = end_stroke(comp, line_height, False)
    if left is not None:
        regions = np.where(left, 0, regions + 1)
    right = end_stroke(comp, line_height, True)
    if right is not None:
        regions = np.where(right, int(regions[comp].max()) + 1, regions)
    return regions


def merge_slivers(regions: np.ndarray, comp: np.ndarray, min_area: float) -> np.ndarray:
    """Give regions of fewer than `min_area` ink pixels (slivers between two close cut paths)
    to their left neighbour (the first region to its right neighbour)."""
    areas = np.bincount(regions[comp], minlength=int(regions.max()) + 1)
    target = np.arange(len(areas))
    for r in range(len(areas)):
        if 0 < areas[r] < min_area or (areas[r] == 0 and r > 0):
            target[r] = target[r - 1] if r > 0 else r + 1
    if target[0] != 0:  # region 0 was a sliver: follow the chain to a real region
        target[0] = target[min(1, len(target) - 1)]
    return target[regions]


def stray(stats: np.ndarray, line: Line, labels: np.ndarray | None = None) -> np.ndarray:
    """Components that are no part of the writing: remnants of printed rules (long and thin,
    vertical or horizontal) and ink far above or below the writing line. (C,) bool.

    With the component `labels`, a flat one counts as a rule only when it runs straight: the
    tail of a '3' or the foot of a '2' cut off by binarisation is as flat, but curved."""
    x, y, w, h = (stats[:, i].astype(np.float64) for i in range(4))
    lh = line.height
    vertical_rule = (h > 1.5 * lh) & (w < 0.3 * lh)
    horizontal_rule = (w > 1.5 * lh) & (h < 0.25 * lh)
    if labels is not None:
        for c in np.flatnonzero(horizontal_rule):
            horizontal_rule[c] = runs_straight(labels, stats, c)
    far = (y > line.top + 1.5 * lh) | (y + h < line.top - 0.5 * lh)
    out = vertical_rule | horizontal_rule | far
    return out | printed_below(y, h, line, out)


def printed_below(y: np.ndarray, h: np.ndarray, line: Line, found: np.ndarray) -> np.ndarray:
    """Components of a printed line under the writing (see PRINT_BELOW_COUNT), given their
    tops `y`, heights `h` and those already `found` stray. (C,) bool."""
    lh = line.height
    below = (y > line.top + (1.0 + PRINT_GAP) * lh) & (h < PRINT_HEIGHT * lh) & ~found
    return below if int(below.sum()) >= PRINT_BELOW_COUNT else np.zeros_like(below)


def runs_straight(labels: np.ndarray, stats: np.ndarray, c: int, tolerance: float = 1.5
                  ) -> bool:
    """Whether component c (labelled c + 1) runs straight along x: the middle of its ink in
    at least 80% of its columns lies within `tolerance` pixels of the least-squares line."""
    x, y, w, h = (int(v) for v in stats[c, :4])
    rows, cols = np.nonzero(labels[y : y + h, x : x + w] == c + 1)
    counts = np.bincount(cols, minlength=w)
    has = counts > 0
    middle = np.bincount(cols, rows, minlength=w)[has] / counts[has]
    at = np.flatnonzero(has).astype(np.float64)
    if len(at) < 3:
        return True
    slope, offset = np.polyfit(at, middle, 1)
    return bool(np.mean(np.abs(middle - (slope * at + offset)) <= tolerance) >= 0.8)


# The allowance for blur (a side as wide as the field's rules): on 2 x 600 rough validation
# scans 76.7 -> 77.3% and 77.3 -> 77.3% (5 gained, 1 lost; sides of a blurred box had been read
# as a leading '1'), on 2 x 800 clean ones 1 gained, none lost.
def printed_verticals(labels: np.ndarray, stats: np.ndarray, line: Line,
                      rule_width: float = 0.0) -> np.ndarray:
    """Components that are the remnant of a printed vertical line (a box's side, too short for
    `remove_rules`): taller than the writing, thin, and dead straight; a handwritten '1' is
    slanted or wobbles, and its stroke is wider. A blurred scan widens the sides as it widens
    the field's horizontal rules, so a side may be as wide as those (`rule_width`, px). (C,)
    bool."""
    lh = line.height
    widest = max(4.0, 0.09 * lh, rule_width)
    out = np.zeros(len(stats), bool)
    for c in np.flatnonzero((stats[:, 3] > 1.1 * lh) & (stats[:, 2] < 0.35 * lh)):
        x, y, w, h = (int(v) for v in stats[c, :4])
        rows, cols = np.nonzero(labels[y : y + h, x : x + w] == c + 1)
        width = np.median(np.bincount(rows, minlength=h))
        straight = np.mean(np.abs(cols - np.median(cols)) <= 2.0)
        out[c] = width <= widest and straight >= 0.8
    return out


def cents_underlines(mask: np.ndarray, line: Line) -> np.ndarray:
    """(H, W) bool: the ink of strokes drawn under raised cents (see UNDERLINE_LENGTH), with
    the row of ink touching them above and below, so that the digits come apart from them."""
    lh = line.height
    u8 = mask.astype(np.uint8)
    runs = cv2.morphologyEx(cv2.dilate(u8, np.ones((3, 1), np.uint8)), cv2.MORPH_OPEN,
                            np.ones((1, max(8, int(UNDERLINE_LENGTH * lh))), np.uint8)) & u8
    out = np.zeros(mask.shape, bool)
    if not runs.any():
        return out
    n, labels, stats, _ = cv2.connectedComponentsWithStats(runs, connectivity=8)
    first, last = (line.top + f * lh for f in UNDERLINE_ZONE)
    end = max(2, int(0.06 * lh))
    ink_ids = None  # the mask's own components, found when first needed
    for k in range(1, n):
        x, y, w, h = (int(v) for v in stats[k, :4])
        if not first <= y + h / 2 <= last:
            continue
        above = mask[max(0, int(line.top - 0.3 * lh)) : y, x : x + w].any(0)
        # Something stands on it, and a stroke of its own ends free at one end at least
        # (the bottom of a '0' turns up into the loop at both): the cheap test, first.
        if above.mean() < UNDERLINE_ABOVE or (above[:end].any() and above[-end:].any()):
            continue
        run = labels[y : y + h, x : x + w] == k
        # Thin in most columns (+2: the rows touching it come with it), whatever its slope.
        if np.median(run.sum(0)) > max(4.0, 0.2 * lh) + 2:
            continue
        if not runs_straight(labels, stats[1:], k - 1, max(1.5, 0.05 * lh)):
            continue
        if ink_ids is None:
            _, ink_ids, ink_stats, _ = cv2.connectedComponentsWithStats(u8, connectivity=8)
            ink_h = ink_stats[:, 3]
        # The cents end the amount: no digit-sized ink (taller than the cents, shorter than
        # a box's side) stands beyond the run's end.
        beyond = ink_stats[:, 0] > x + w + 0.1 * lh
        if np.any(beyond & (ink_h > UNDERLINE_ABOVE_HEIGHT * lh) & (ink_h < 1.3 * lh)):
            continue
        own = np.unique(ink_ids[y : y + h, x : x + w][run])
        # No stroke goes on down from it (a '4''s stem) but at its ends, which may dip; a
        # digit of the dollars beneath an end is ink of another component.
        middle = slice(x + w // 5, x + w - w // 5)
        below = np.isin(ink_ids[y + h : max(y + h, int(line.top + 1.1 * lh)), middle], own)
        if below.size and below.any(0).mean() > UNDERLINE_BELOW:
            continue
        if cents_above(mask & (labels != k), (x, y, w), lh):
            out |= labels == k
    return out


def cents_above(mask: np.ndarray, run: tuple[int, int, int], lh: float) -> bool:
    """Whether the ink over a run (x, y, width) of `mask` (without the run) looks like raised
    cents: two marks or more, each at least 0.15 line heights tall, and none, taken whole,
    taller than UNDERLINE_ABOVE_HEIGHT line heights (the foot of a small '2' holds up one
    mark, the bottom of a '0' or '8' the whole digit, and a digit that the run touches on its
    way goes on down past it). A mark 1.3 times as wide as tall or more, at most 0.65 line
    heights tall, counts as two: raised digits that touch each other."""
    x, y, w = run
    left, top = max(0, x - int(lh)), max(0, int(y - 1.5 * lh))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask[top : int(y + 1.5 * lh), left : x + w + int(lh)].astype(np.uint8), connectivity=8)
    # Whole, if they go on down; over its middle (a digit of the dollars may reach its end).
    ids = np.unique(labels[: y - top, x - left + w // 5 : x - left + w - w // 5])
    ids = ids[ids > 0]
    heights, widths = stats[ids, 3] / lh, stats[ids, 2] / lh
    marks = heights >= 0.15
    pair = marks & (widths >= 1.3 * heights) & (heights <= 0.65)
    return bool((heights <= UNDERLINE_ABOVE_HEIGHT).all() and marks.sum() + pair.sum() >= 2)


def _components(mask: np.ndarray) -> tuple[int, np.ndarray, np.ndarray, Line, np.ndarray]:
    """Connected components of an ink mask (their count + 1, labels and stats without the
    background's), the writing line, and which components are not stray (`stray`, first
    pass)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        raise ValueError("the field holds no ink")
    stats = stats[1:]
    line = estimate_line(stats)
    keep = ~stray(stats, line)
    if not keep.any():
        raise ValueError("the field holds no ink")
    return n, labels, stats, estimate_line(stats[keep]), keep


def find_pieces(mask: np.ndarray, rule_width: float = 0.0) -> tuple[np.ndarray, Line]:
    """Piece map (0 = background, 1..P left to right) and the writing line of an ink mask
    whose printed rules (`rule_width` px thick, 0 if none) were removed; strokes drawn under
    raised cents are left out (`cents_underlines`)."""
    n, labels, stats, line, keep = _components(mask)
    underlines = cents_underlines(mask, line)
    if underlines.any():
        n, labels, stats, line, keep = _components(mask & ~underlines)
    keep &= ~stray(stats, line, labels) & ~printed_verticals(labels, stats, line, rule_width)
    min_area = max(4.0, 0.004 * line.height**2)
    pieces = np.zeros(mask.shape, np.int32)
    boxes: list[tuple[float, int]] = []  # (centre x, provisional id)
    next_id = 1
    kept = [c for c in range(n - 1) if stats[c, 4] >= min_area and keep[c]]
    comps = {c: labels[stats[c, 1] : stats[c, 1] + stats[c, 3],
                       stats[c, 0] : stats[c, 0] + stats[c, 2]] == c + 1 for c in kept}
    wide = [c for c in kept if stats[c, 2] > WIDE_COMPONENT * line.height]
    paths = dict(zip(wide, least_ink_paths([comps[c] for c in wide], line.height)))
    for c in kept:
        x, y, w, h = (int(v) for v in stats[c, :4])
        comp = comps[c]
        regions = None
        if w >= STROKE_COMPONENT * line.height:
            regions = component_regions(comp, line.height, paths.get(c))
        if regions is None or not regions.any():
            # one piece; a component's ink reaches every column of its box
            pieces[y : y + h, x : x + w][comp] = next_id
            boxes.append((x + (w - 1) / 2, next_id))
            next_id += 1
            continue
        regions = merge_slivers(regions, comp, min_area / 2)
        for r in np.flatnonzero(np.bincount(regions[comp])):
            part = comp & (regions == r)
            cols = np.nonzero(part.any(0))[0]
            pieces[y : y + h, x : x + w][part] = next_id
            boxes.append((x + cols.mean(), next_id))
            next_id += 1
    if not boxes:
        raise ValueError("the field holds no ink")
    order = np.zeros(next_id, np.int32)
    for rank, (_, pid) in enumerate(sorted(boxes), start=1):
        order[pid] = rank
    return order[pieces], line


def piece_boxes(pieces: np.ndarray, count: int) -> np.ndarray:
    """(P, 4) boxes x0, y0, x1, y1 (exclusive) of pieces 1..P."""
    ys, xs = np.nonzero(pieces)
    ids = pieces[ys, xs] - 1
    boxes = np.zeros((count, 4), np.int64)
    boxes[:, 0] = np.iinfo(np.int64).max
    boxes[:, 1] = np.iinfo(np.int64).max
    np.minimum.at(boxes[:, 0], ids, xs)
    np.minimum.at(boxes[:, 1], ids, ys)
    np.maximum.at(boxes[:, 2], ids, xs + 1)
    np.maximum.at(boxes[:, 3], ids, ys + 1)
    return boxes


def raised_geometry(span: np.ndarray, pieces: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(A, 2) float32: the foot's offset below the line's foot and the height of candidate
    characters spanning x0 y0 x1 y1 (A, 4), in line heights of the line that the tallest of
    the field's pieces (`pieces` map, their `boxes` x0 y0 x1 y1) make (RAISED_LINE_TALL)."""
    areas = np.bincount(pieces.ravel(), minlength=len(boxes) + 1)[1:]
    stats = np.stack([boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0],
                      boxes[:, 3] - boxes[:, 1], areas], 1)
    line = estimate_line(stats, RAISED_LINE_TALL)
    y0, y1 = span[:, 1].astype(np.float64), span[:, 3].astype(np.float64)
    foot = (y1 - line.top - line.height) / line.height
    return np.stack([foot, (y1 - y0) / line.height], 1).astype(np.float32)


def arc_features(span: np.ndarray, gaps_left: np.ndarray, gaps_right: np.ndarray,
                 inner_gap: np.ndarray, count: np.ndarray, line: Line) -> np.ndarray:
    """Geometry of candidate characters in line heights: width, height, top and bottom offsets
    from the line, gaps to the neighbouring pieces, the widest gap inside, piece count, and
    whether the arc is a single piece. (A, NUM_FEATURES)."""
    x0, y0, x1, y1 = span.T.astype(np.float64)
    h = line.height
    return np.stack([
        (x1 - x0) / h, (y1 - y0) / h, (y0 - line.top) / h, (y1 - line.top - h) / h,
        gaps_left / h, gaps_right / h, inner_gap / h, count.astype(np.float64),
        (count == 1).astype(np.float64),
    ], 1).astype(np.float32)


def build_arcs(boxes: np.ndarray, line: Line) -> tuple[np.ndarray, ...]:
    """Arcs (start, end, span box, features) over P pieces with boxes (P, 4) x0 y0 x1 y1."""
    count = len(boxes)
    # Horizontal gap between consecutive pieces (negative when they overlap).
    reach = np.maximum.accumulate(boxes[:, 2])
    gaps = np.concatenate([[np.inf], boxes[1:, 0] - reach[:-1], [np.inf]]).astype(np.float64)
    # Arcs of n pieces for n = 1.. MAX_PIECES_PER_ARC: each n's span and widest inner gap
    # grow from n - 1's by one more piece, all starts at once.
    starts, ends, spans, inners = [], [], [], []
    lo, hi = boxes[:, :2].copy(), boxes[:, 2:].copy()
    inner_n = np.full(count, -np.inf)
    for n in range(1, min(MAX_PIECES_PER_ARC, count) + 1):
        m = count - n + 1
        if n > 1:
            lo = np.minimum(lo[:m], boxes[n - 1 :, :2])
            hi = np.maximum(hi[:m], boxes[n - 1 :, 2:])
            inner_n = np.maximum(inner_n[:m], gaps[n - 1 : n - 1 + m])
        starts.append(np.arange(m))
        ends.append(np.arange(m) + n)
        spans.append(np.concatenate([lo, hi], 1))
        inners.append(inner_n.copy())
    start, end = np.concatenate(starts), np.concatenate(ends)
    span = np.concatenate(spans)
    inner = np.concatenate(inners)
    inner = np.where(np.isfinite(inner), inner, 0.0)
    single = end - start == 1
    ok = single | (((span[:, 2] - span[:, 0]) <= MAX_ARC_WIDTH * line.height)
                   & (inner <= MAX_GAP_INSIDE_ARC * line.height))
    start, end, span, inner = start[ok], end[ok], span[ok], inner[ok]
    clip = 2.0 * line.height  # the gap to a far neighbour says no more than a wide gap
    feats = arc_features(span, np.minimum(gaps[start], clip), np.minimum(gaps[end], clip),
                         inner, end - start, line)
    return start, end, span, feats


def segment_field(gray: np.ndarray, deskew: bool = True) -> Segmentation:
    """Segmentation graph of an amount-field image (H, W) uint8 greyscale, paper light.

    Raises ValueError when the field holds no ink.
    """
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise TypeError(f"expected a 2-D uint8 greyscale field, got {gray.dtype} {gray.shape}")
    if median_u8(cv2.subtract(cv2.dilate(gray, _PAPER_WINDOW), gray)) > GRAINY_FIELD:
        gray = cv2.GaussianBlur(gray, (0, 0), 1.0)  # grain would make specks and ragged pieces
    ink = ink_of(gray)
    mask, rule_width = handwriting_mask(ink)
    angle = estimate_skew(mask) if deskew else 0.0
    if angle != 0.0:
        ink = rotate(ink, angle, cv2.INTER_LINEAR)
        level = rotate(mask.astype(np.uint8), angle, cv2.INTER_NEAREST) > 0
        mask, level_width = remove_rules(level)
        rule_width = max(rule_width, level_width)
    pieces, line = find_pieces(mask, rule_width)
    count = int(pieces.max())
    boxes = piece_boxes(pieces, count)
    start, end, span, feats = build_arcs(boxes, line)
    xywh = np.stack([span[:, 0], span[:, 1], span[:, 2] - span[:, 0], span[:, 3] - span[:, 1]], 1)
    raised = raised_geometry(span, pieces, boxes)
    cut_x = np.concatenate([[boxes[0, 0]], (boxes[:-1, 2] + boxes[1:, 0]) / 2, [boxes[-1, 2]]])
    return Segmentation(pieces=pieces, ink=ink, line=line, arc_start=start, arc_end=end,
                        boxes=xywh.astype(np.int64), features=feats,
                        cut_x=cut_x.astype(np.float32), angle=angle, raised_geometry=raised)
