import numpy as np
import pytest

from pipelines.handwriting import render_line, sample_style
from pipelines.mnist import load_mnist


@pytest.fixture(scope="module")
def digits():
    return load_mnist("test")


def test_boxes_and_indices(digits):
    rng = np.random.default_rng(1)
    line = render_line("$1,234.56", digits, rng)
    assert [c for c, _ in line.chars] == list("$1,234.56")
    assert [int(digits.labels[i]) for i in line.mnist_indices] == [1, 2, 3, 4, 5, 6]
    h, w = line.ink.shape
    for _, (x, y, bw, bh) in line.chars:
        assert 0 <= x and 0 <= y and x + bw <= w and y + bh <= h and bw > 0 and bh > 0
        assert line.ink[y: y + bh, x: x + bw].max() > 48


def test_digits_share_a_baseline(digits):
    rng = np.random.default_rng(2)
    style = sample_style(rng)
    line = render_line("1234567890", digits, rng, style)
    bottoms = np.array([y + h for _, (x, y, w, h) in line.chars])
    assert np.all(np.abs(bottoms - line.baseline) < 0.35 * style.height)


def test_neighbours_often_touch(digits):
    """A good fraction of adjacent digit pairs touch or overlap (segmentation needs cuts)."""
    rng = np.random.default_rng(3)
    touching = pairs = 0
    for _ in range(40):
        line = render_line("".join(map(str, rng.integers(0, 10, 5))), digits, rng)
        boxes = [b for _, b in line.chars]
        for a, b in zip(boxes, boxes[1:]):
            pairs += 1
            touching += b[0] <= a[0] + a[2]
    assert 0.15 < touching / pairs < 0.8


def test_raised_cents_are_small_and_high(digits):
    """Raised digits are drawn from the digit's pool, at 0.5-0.7 of the line's height, their
    feet well above the baseline, after the dollars."""
    rng = np.random.default_rng(4)
    for _ in range(20):
        style = sample_style(rng)
        line = render_line("125⁷⁵", digits, rng, style)
        assert [c for c, _ in line.chars] == list("125⁷⁵")
        assert [int(digits.labels[i]) for i in line.mnist_indices] == [1, 2, 5, 7, 5]
        (_, five), (_, seven), (_, last) = line.chars[2:]
        for _, (_, y, _, h) in line.chars[3:]:
            assert line.baseline - (y + h) > 0.2 * style.height
            assert h < 0.8 * style.height
        assert seven[0] > five[0] and last[0] > seven[0]


def test_underlined_cents_are_a_stroke_under_the_raised_digits(digits):
    """The underline changes nothing else: the same glyphs in the same places, and the new
    ink lies under the raised digits (a little to either side), below their feet or just
    touching them; a line without raised digits is the same with or without the flag."""
    for seed in range(12):
        style = sample_style(np.random.default_rng(seed))
        plain = render_line("45⁶⁷", digits, np.random.default_rng(seed), style)
        under = render_line("45⁶⁷", digits, np.random.default_rng(seed), style, True)
        assert under.chars == plain.chars and under.mnist_indices == plain.mnist_indices
        h, w = plain.ink.shape
        assert under.ink.shape[0] == h and under.ink.shape[1] >= w
        before = np.pad(plain.ink, ((0, 0), (0, under.ink.shape[1] - w)))
        ys, xs = np.nonzero(under.ink.astype(int) - before > 48)
        assert len(xs) > 0
        raised = [b for c, b in plain.chars if c in "⁶⁷"]
        left = min(b[0] for b in raised)
        right = max(b[0] + b[2] for b in raised)
        feet = max(b[1] + b[3] for b in raised)
        pen = 0.1 * style.height  # the stroke's round ends
        assert xs.min() >= left - 0.12 * style.height - pen
        assert xs.max() <= right + 0.2 * style.height + pen
        assert ys.min() >= feet - 0.15 * style.height  # under them, perhaps touching
        assert ys.max() < plain.baseline  # and above the dollars' baseline
        again = render_line("4567", digits, np.random.default_rng(seed), style, True)
        same = render_line("4567", digits, np.random.default_rng(seed), style)
        assert np.array_equal(again.ink, same.ink) and again.chars == same.chars
