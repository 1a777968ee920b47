"""Benchmark metrics against direct computations."""

import functools

from hypothesis import given
from hypothesis import strategies as st

from pipelines.metrics import (
    boxes_match,
    edit_distance,
    error_at_reject,
    error_reject_curve,
    iou,
    segmentation_correct,
)


def slow_edit_distance(a: str, b: str) -> int:
    @functools.cache
    def d(i: int, j: int) -> int:
        if i == 0 or j == 0:
            return i + j
        return min(d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (a[i - 1] != b[j - 1]))
    return d(len(a), len(b))


@given(st.text("0123.,", max_size=8), st.text("0123.,", max_size=8))
def test_edit_distance_matches_the_recursive_definition(a, b):
    assert edit_distance(a, b) == slow_edit_distance(a, b)


def test_iou_and_box_matching():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == 50 / 150
    assert iou((0, 0, 2, 2), (5, 5, 2, 2)) == 0.0
    assert boxes_match((241, 71, 11, 5), (240, 69, 14, 12))  # a dot's binarised ink
    assert not boxes_match((241, 71, 3, 3), (240, 69, 14, 12))  # a speck of it
    assert not boxes_match((0, 0, 10, 10), (20, 0, 10, 10))
    assert segmentation_correct([(0, 0, 10, 10)], [(1, 0, 10, 10)])
    assert not segmentation_correct([(0, 0, 10, 10)], [(1, 0, 10, 10), (30, 0, 5, 5)])


def test_error_at_reject_rejects_the_least_confident_first():
    correct = [True, False, True, False, True, True, True, True, True, True]
    confidence = [0.9, 0.1, 0.8, 0.2, 0.7, 0.95, 0.99, 0.6, 0.5, 0.85]
    got = error_at_reject(correct, confidence, rates=(0.0, 0.1, 0.2))
    assert got == {"0": 0.2, "0.1": 0.1, "0.2": 0.0}
    reject, error = error_reject_curve(correct, confidence)
    assert reject[0] == 0 and error[0] == 0.2 and error[2] == 0.0 and len(error) == 11
