"""Segmentation graph: touching digits get the right cut; the graph covers the ink exactly."""

import numpy as np
import pytest

from pipelines.mnist import load_mnist
from pipelines.segmentation import segment_field


@pytest.fixture(scope="module")
def digits():
    return load_mnist("test")


def touching_pair(digits, i, j, overlap):
    """Two MNIST digits pushed together by `overlap` px (ink max), 2x enlarged, with the
    ink mask of each digit in the field."""
    import cv2

    a, b = (digits.images[k][:, digits.images[k].any(0)] for k in (i, j))
    width = a.shape[1] + b.shape[1] - overlap + 20
    left = np.zeros((28, width), np.uint8)
    right = np.zeros((28, width), np.uint8)
    left[:, 10 : 10 + a.shape[1]] = a
    right[:, 10 + a.shape[1] - overlap : 10 + a.shape[1] - overlap + b.shape[1]] = b
    both = np.maximum(left, right)
    up = lambda x: cv2.resize(x, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR)  # noqa: E731
    field = np.pad(255 - up(both), 12, constant_values=255)
    pad = lambda x: np.pad(up(x), 12) > 128  # noqa: E731
    return field, pad(left) & ~pad(right), pad(right) & ~pad(left)


@pytest.mark.parametrize("pair", [(3, 2), (10, 13), (25, 28), (0, 11), (4, 7), (1, 2), (8, 9)])
def test_touching_digits_have_the_right_cut(digits, pair):
    field, only_a, only_b = touching_pair(digits, *pair, overlap=1)
    seg = segment_field(field, deskew=False)
    ids = seg.pieces
    # Some node splits the pieces so that each digit's own ink is (almost all) on its side.
    best = 0.0
    for node in range(1, seg.num_pieces):
        left_ok = ((ids > 0) & (ids <= node) & only_a).sum() / only_a.sum()
        right_ok = ((ids > node) & only_b).sum() / only_b.sum()
        best = max(best, min(left_ok, right_ok))
    assert best > 0.9, f"no cut separates the digits (best {best:.2f})"


def test_every_piece_is_covered_by_single_arcs_and_ink_is_kept(digits):
    field, only_a, only_b = touching_pair(digits, 5, 6, overlap=2)
    seg = segment_field(field, deskew=False)
    singles = {(int(s), int(e)) for s, e in zip(seg.arc_start, seg.arc_end) if e - s == 1}
    assert singles == {(k, k + 1) for k in range(seg.num_pieces)}
    assert (seg.arc_end > seg.arc_start).all()
    ink = field < 128
    assert (seg.pieces[ink] > 0).mean() > 0.97  # cuts and rule removal lose almost no ink
    assert seg.features.shape == (seg.num_arcs, 9)


def one_over_digit(digits, k, overlap, after):
    """A straight slanted '1' stroke drawn over MNIST digit k, reaching `overlap` px (at 28 px
    per digit height) into its columns, on its left (or right when `after`), 2x enlarged;
    with each one's own ink."""
    import cv2

    digit = digits.images[k][:, digits.images[k].any(0)]
    body = np.zeros((28, digit.shape[1] + 30), np.uint8)
    body[:, 12 : 12 + digit.shape[1]] = digit
    one = np.zeros_like(body)
    x = 12 + overlap - 3 if not after else 12 + digit.shape[1] - overlap + 3  # stroke's foot
    cv2.line(one, (x + 2, 1), (x - 1, 26), 255, 3)
    both = np.maximum(body, one)
    up = lambda a: cv2.resize(a, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR)  # noqa: E731
    field = np.pad(255 - up(both), 12, constant_values=255)
    pad = lambda a: np.pad(up(a), 12) > 128  # noqa: E731
    return field, pad(one) & ~pad(body), pad(body) & ~pad(one)


def best_split(seg, first, second):
    """How much of each of two ink masks the best node keeps on its own side (the worse)."""
    ids, best = seg.pieces, 0.0
    for node in range(1, seg.num_pieces):
        a = ((ids > 0) & (ids <= node) & first).sum() / first.sum()
        b = ((ids > node) & second).sum() / second.sum()
        best = max(best, min(a, b))
    return best


@pytest.mark.parametrize("after", [False, True])
@pytest.mark.parametrize("k", [0, 3, 9])  # test digits 7, 0, 9
def test_a_one_overlapping_its_neighbour_is_a_piece_of_its_own(digits, monkeypatch, k, after):
    from pipelines import segmentation

    field, one, body = one_over_digit(digits, k, overlap=3, after=after)
    first, second = (body, one) if after else (one, body)
    assert best_split(segment_field(field, deskew=False), first, second) > 0.88
    # No top-to-bottom cut separates them: without the stroke split, no node does.
    monkeypatch.setattr(segmentation, "end_stroke", lambda *args: None)
    assert best_split(segment_field(field, deskew=False), first, second) < 0.88


def test_end_stroke_takes_the_stroke_and_leaves_the_rest() -> None:
    import cv2

    from pipelines.segmentation import end_stroke

    bar = np.zeros((50, 60), np.uint8)
    cv2.line(bar, (12, 3), (6, 46), 1, 5)
    blob = np.zeros_like(bar)
    cv2.circle(blob, (26, 30), 13, 1, -1)
    cols = (bar | blob).any(0)
    bar, blob = bar[:, cols].astype(bool), blob[:, cols].astype(bool)
    blob &= ~bar
    comp = bar | blob
    stroke = end_stroke(comp, 50.0, from_right=False)
    assert stroke is not None and not (stroke & ~comp).any()
    assert (stroke & bar).sum() >= 0.95 * bar.sum()
    assert (stroke & blob).sum() <= 0.05 * blob.sum()
    assert end_stroke(comp, 50.0, from_right=True) is None  # the round end is no stroke
    mirrored = end_stroke(comp[:, ::-1], 50.0, from_right=True)
    assert mirrored is not None and np.array_equal(mirrored[:, ::-1], stroke)
    # A stroke with nothing beside it, or a component too narrow to hold two characters.
    assert end_stroke(np.ones((50, 30), bool), 50.0, from_right=False) is None
    assert end_stroke(comp[:, :15], 50.0, from_right=False) is None


def test_line_fit_is_numpys_least_squares_line() -> None:
    from pipelines.segmentation import line_fit

    rng = np.random.default_rng(3)
    for n in (2, 5, 40):
        x = rng.integers(0, 60, n).astype(float)
        x[0], x[1] = 0.0, 1.0  # not all equal
        y = rng.normal(size=n) * 5 + 0.4 * x
        assert np.allclose(line_fit(x, y), np.polyfit(x, y, 1))


def test_blank_field_is_refused():
    with pytest.raises(ValueError, match="no ink"):
        segment_field(np.full((60, 200), 255, np.uint8))


def test_wrong_type_is_refused():
    with pytest.raises(TypeError, match="uint8"):
        segment_field(np.zeros((60, 200), np.float32))


def test_cut_paths_of_many_components_are_those_of_each_alone() -> None:
    """Components of different heights share one row-by-row pass: the paths must be exactly
    those each component gets on its own."""
    from pipelines.segmentation import cut_paths

    rng = np.random.default_rng(0)
    comps = [rng.random((h, w)) < 0.35 for h, w in ((30, 40), (12, 25), (45, 18), (30, 9))]
    xs = [[5, 20, 33], [3, 12], [9], [2, 4, 6]]
    together = cut_paths(comps, xs, 4)
    for comp, x, paths in zip(comps, xs, together):
        alone = cut_paths([comp], [x], 4)[0]
        assert paths.shape == (len(x), comp.shape[0])
        assert np.array_equal(paths, alone)


def test_a_printed_box_side_is_dropped_and_handwritten_ones_are_kept(digits):
    """A box's vertical side, too short for rule removal, must not become a piece (the reader
    read it as '1'); every MNIST '1' of the field, upright or slanted, must stay."""
    ones = [k for k in range(len(digits.labels)) if digits.labels[k] == 1][:12]
    field, _, _ = touching_pair(digits, ones[0], 3, overlap=-14)  # apart: '1' then '3'
    # Digits' ink spans rows 20..60 (line height 40); the side spans 1.3 line heights, far
    # less than the 0.6 field heights that rule removal needs.
    field = np.pad(field, ((40, 40), (30, 0)), constant_values=255)
    field[54:106, 12:14] = 0  # the side of a printed box: 2 px wide, taller than the digits
    seg = segment_field(field, deskew=False)
    assert not (seg.pieces[54:106, 12:14] > 0).any()
    for k in ones:
        field, only_one, _ = touching_pair(digits, k, 3, overlap=-14)
        seg = segment_field(field, deskew=False)
        assert ((seg.pieces > 0) & only_one).sum() > 0.9 * only_one.sum(), k


def test_a_blurred_box_side_as_wide_as_the_fields_rule_is_dropped_and_ones_kept(digits):
    """Blur widens a box's side past the width of a crisp printed line; it widens the field's
    underline as much, and a side no wider than that is still dropped. The MNIST '1's of the
    same field stay."""
    ones = [k for k in range(len(digits.labels)) if digits.labels[k] == 1][:12]

    def ruled(field: np.ndarray) -> np.ndarray:
        field = np.pad(field, ((40, 40), (30, 0)), constant_values=255)
        field[110:117, :] = 0  # the underline, 7 px thick as a blurred scan makes it
        return field

    field, _, _ = touching_pair(digits, ones[0], 3, overlap=-14)
    field = ruled(field)
    field[54:110, 10:15] = 0  # the side: 5 px wide, wider than max(4, 0.09 line heights)
    seg = segment_field(field, deskew=False)
    assert not (seg.pieces[54:106, 10:15] > 0).any()
    for k in ones:
        field, only_one, _ = touching_pair(digits, k, 3, overlap=-14)
        only_one = np.pad(only_one, ((40, 40), (30, 0)))
        seg = segment_field(ruled(field), deskew=False)
        assert ((seg.pieces > 0) & only_one).sum() > 0.9 * only_one.sum(), k


def test_a_faint_pen_inside_a_black_box_keeps_its_ink(digits, monkeypatch):
    """A black printed box pulls the field's binarisation threshold over a faint pen's grey: the
    threshold is taken again without the box's pixels, and the digits keep their ink."""
    import pipelines.segmentation as seg_module

    field, left, right = touching_pair(digits, 3, 2, overlap=-14)
    faint = (255 - (255 - field.astype(np.float64)) * 0.4).astype(np.uint8)  # grey ~155
    pad = 14
    boxed = np.pad(faint, pad, constant_values=255)
    boxed[2:8] = 0  # the box's top and bottom, 6 px of black across the field
    boxed[-8:-2] = 0
    written = np.pad(left | right, pad)

    def kept() -> float:
        seg = segment_field(boxed, deskew=False)
        return ((seg.pieces > 0) & written).sum() / written.sum()

    assert kept() > 0.8
    monkeypatch.setattr(seg_module, "FAINT_PEN_GAP", 256)  # never binarise again
    with pytest.raises(ValueError, match="no ink"):  # the pen all under the threshold
        kept()


@pytest.mark.parametrize("slope_deg", [-2.0, 0.0, 1.5])
def test_skew_is_the_angle_of_the_sharpest_row_projection(slope_deg: float) -> None:
    from pipelines.segmentation import estimate_skew

    rng = np.random.default_rng(3)
    mask = np.zeros((80, 300), bool)
    xs = rng.integers(0, 300, 1500)
    ys = np.clip(40 + rng.integers(-12, 13, 1500) + xs * np.tan(np.radians(slope_deg)), 0, 79)
    mask[ys.astype(int), xs] = True
    y, x = np.nonzero(mask)
    x = x - x.mean()
    scores = {a: (np.bincount((r := np.round(y + x * np.tan(np.radians(a))).astype(int))
                              - r.min()).astype(float) ** 2).sum()
              for a in np.arange(-3.0, 3.0 + 1e-6, 0.5)}
    best = max(scores.values())
    assert estimate_skew(mask) == min(a for a, s in scores.items() if s == best)
    assert abs(estimate_skew(mask) + slope_deg) <= 0.5


def test_rule_removal_takes_rules_and_leaves_flat_strokes_and_blots() -> None:
    """In a small field (an amount of one or two digits), a flat stroke longer than a third of
    the field's width and a filled loop wider than that are writing; the underline is not."""
    from pipelines.segmentation import RULE_LENGTH, remove_rules

    mask = np.zeros((80, 90), bool)
    mask[72:75, :] = True  # the underline, across the whole field
    mask[40:43, 10:50] = True  # a flat stroke, 40 px: longer than 90 // 3, shorter than 0.8 * 80
    mask[5:25, 50:85] = True  # a blot 35 px wide and 20 deep
    assert 35 < RULE_LENGTH * 80 < 90
    kept, width = remove_rules(mask)
    assert width == 3  # the underline's thickness
    assert not kept[72:75].any()
    assert kept[40:43, 10:50].all()
    assert kept[5:25, 50:85].all()


def test_flat_remnants_are_stray_only_when_straight() -> None:
    """A flat piece of ink longer than 1.5 line heights is the remnant of a printed rule when
    it runs straight (even tilted), and writing (the cut-off tail of a '3') when it curves."""
    import cv2

    from pipelines.segmentation import Line, runs_straight, stray

    mask = np.zeros((120, 300), np.uint8)
    xs = np.arange(70)
    for x in xs:  # a straight, slightly tilted bar and one period of a flat wave, 2 px thick
        mask[20 + x // 20 : 22 + x // 20, 10 + x] = 1
        y = int(round(63.5 + 3.5 * np.sin(2 * np.pi * x / 70)))
        mask[y : y + 2, 150 + x] = 1
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    stats = stats[1:]
    assert n == 3 and stats[0, 0] == 10 and stats[1, 0] == 150
    line = Line(top=30.0, height=40.0)  # both: wider than 1.5 and flatter than 0.25 heights
    assert stray(stats, line).tolist() == [True, True]
    assert stray(stats, line, labels).tolist() == [True, False]
    assert runs_straight(labels, stats, 0) and not runs_straight(labels, stats, 1)


def test_a_printed_line_under_the_writing_is_dropped_and_a_low_comma_kept(digits):
    """Print under the amount box ("NOT VALID OVER ...") lies inside the field: a row of
    small components wholly below the writing is no part of the amount. A comma or two below
    the line are fewer than PRINT_BELOW_COUNT and stay."""
    from pipelines.segmentation import PRINT_BELOW_COUNT

    field, _, _ = touching_pair(digits, 3, 2, overlap=-20)  # digits' ink on rows 20..59
    field = np.pad(field, ((0, 20), (0, 0)), constant_values=255)
    rows = slice(66, 76)  # 10 px tall, under the line by 6 px: not "far" below it (80)
    letters = [10 + 12 * k for k in range(PRINT_BELOW_COUNT + 2)]
    printed = field.copy()
    for x in letters:
        printed[rows, x : x + 8] = 0
    seg = segment_field(printed, deskew=False)
    assert not (seg.pieces[rows] > 0).any()
    assert seg.num_pieces == segment_field(field, deskew=False).num_pieces
    commas = field.copy()
    for x in letters[:2]:
        commas[rows, x : x + 5] = 0
    seg = segment_field(commas, deskew=False)
    assert (seg.pieces[rows] > 0).sum() == 2 * 10 * 5


def test_raised_cents_and_only_they_may_be_raised_digits():
    """In fields written with raised cents, the arcs that match a raised digit's box are
    raised candidates, even in a short amount ("6⁴⁹") whose raised digits are half its
    pieces; few plain digits are (the raised scorer then tells them apart)."""
    from pipelines.charset import RAISED_DIGITS
    from pipelines.cheques import generate_cheques
    from pipelines.metrics import iou

    found = plain_flagged = raised_total = plain_total = 0
    for s in generate_cheques(40, 11, "test", fields_only=True, raised_cents=1.0):
        seg = segment_field(s.image)
        boxes = seg.field_boxes().tolist()
        for c in s.chars:
            matched = [a for a, b in enumerate(boxes) if iou(b, c.box) > 0.5]
            if c.char in RAISED_DIGITS:
                raised_total += 1
                found += any(seg.raised[a] for a in matched)
            elif c.char in "0123456789":
                plain_total += 1
                plain_flagged += any(seg.raised[a] for a in matched)
    assert found >= 0.9 * raised_total and plain_flagged <= 0.05 * plain_total, (
        found, raised_total, plain_flagged, plain_total)


def cents_field(digits, underline_row, with_cents=True, digit_after=False):
    """'1' and '2' of full height (MNIST x2, ink 40 px tall), then two MNIST digits at half
    that size with their tops level with the line's (raised cents), and a straight 3-px
    stroke under where the cents are (`underline_row`, in rows below the line's top). Returns
    the field and the stroke's pixels. `digit_after`: a full-height '7' after the stroke."""
    import cv2

    def ink(k, scale):
        img = digits.images[k][:, digits.images[k].any(0)]
        img = img[img.any(1)]
        return cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)

    canvas = np.zeros((110, 230), np.uint8)
    top, x = 30, 12
    for k in (2, 1):  # MNIST test 2 is a '1', 1 is a '2'
        g = ink(k, 2.0)
        canvas[top + 40 - g.shape[0] : top + 40, x : x + g.shape[1]] = g[-40:]
        x += g.shape[1] + 6
    start = x + 4
    if with_cents:
        for k in (3, 4):  # a '0' and a '4'
            g = ink(k, 1.0)
            canvas[top : top + g.shape[0], x + 4 : x + 4 + g.shape[1]] |= g
            x += g.shape[1] + 6
    stroke = np.zeros_like(canvas)
    row = top + underline_row
    cv2.line(stroke, (start - 3, row), (max(x, start + 34) + 4, row), 255, 3)
    canvas = np.maximum(canvas, stroke)
    if digit_after:
        g = ink(0, 2.0)[-40:]
        at = max(x, start + 34) + 14
        canvas[top + 40 - g.shape[0] : top + 40, at : at + g.shape[1]] |= g
    return 255 - canvas, stroke > 128


@pytest.mark.parametrize("row", [22, 25, 27])  # under the cents (20 px tall), or touching them
def test_a_stroke_under_raised_cents_is_taken_out(digits, row):
    from pipelines.segmentation import cents_underlines, find_pieces, handwriting_mask, ink_of

    field, stroke = cents_field(digits, row)
    mask, _ = handwriting_mask(ink_of(field))
    pieces, line = find_pieces(mask)
    found = cents_underlines(mask, line)
    assert (found & stroke).sum() >= 0.8 * (stroke & mask).sum()
    assert (found & ~stroke).sum() <= 0.1 * found.sum()  # the rows touching it, at most
    seg = segment_field(field, deskew=False)
    raised = seg.raised & (seg.arc_end - seg.arc_start == 1)
    assert raised.sum() >= 2  # the cents, apart from it and each other
    assert (seg.pieces[stroke & ~found] > 0).mean() < 0.5


def test_a_stroke_under_small_marks_with_a_digit_after_it_is_kept(digits):
    """Raised cents end the amount: the same stroke and marks followed by a full-height
    digit are the foot of a small digit or the like, not an underline."""
    from pipelines.segmentation import cents_underlines, find_pieces, handwriting_mask, ink_of

    field, stroke = cents_field(digits, 25, digit_after=True)
    mask, _ = handwriting_mask(ink_of(field))
    _, line = find_pieces(mask)
    assert not cents_underlines(mask, line).any()
    field, stroke = cents_field(digits, 25)  # and without the '7', it is taken out
    mask, _ = handwriting_mask(ink_of(field))
    _, line = find_pieces(mask)
    assert (cents_underlines(mask, line) & stroke).any()


@pytest.mark.parametrize("row", [20, 25])
def test_a_dash_after_the_dollars_is_kept(digits, row):
    """The same stroke with nothing over it (a '-' for no cents) is writing."""
    from pipelines.segmentation import cents_underlines, find_pieces, handwriting_mask, ink_of

    field, stroke = cents_field(digits, row, with_cents=False)
    mask, _ = handwriting_mask(ink_of(field))
    _, line = find_pieces(mask)
    assert not cents_underlines(mask, line).any()
    assert (segment_field(field, deskew=False).pieces[stroke] > 0).mean() > 0.9


def test_underlined_raised_cents_are_raised_digits_and_plain_fields_lose_no_stroke():
    """Generated fields: with their underline, raised cents are still raised candidates (76 of
    80 without one); fields written without raised cents have no stroke taken out."""
    import pipelines.segmentation as segmentation
    from pipelines.charset import RAISED_DIGITS
    from pipelines.cheques import generate_cheques
    from pipelines.metrics import iou

    found = total = 0
    for s in generate_cheques(40, 11, "test", fields_only=True, raised_cents=1.0,
                              underlined_cents=1.0):
        seg = segment_field(s.image)
        boxes = seg.field_boxes().tolist()
        for c in s.chars:
            if c.char in RAISED_DIGITS:
                total += 1
                found += any(seg.raised[a] for a, b in enumerate(boxes) if iou(b, c.box) > 0.5)
    assert found >= 0.85 * total, (found, total)
    fired = []
    original = segmentation.cents_underlines

    def counted(mask, line):
        out = original(mask, line)
        fired.append(bool(out.any()))
        return out

    segmentation.cents_underlines = counted
    try:
        for s in generate_cheques(60, 12, "test", fields_only=True, fmt="mixed"):
            segment_field(s.image)
    finally:
        segmentation.cents_underlines = original
    assert len(fired) == 60 and sum(fired) <= 1, sum(fired)
