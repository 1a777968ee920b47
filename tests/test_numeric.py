"""The order statistics of pipelines/numeric.py against numpy's own."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.numeric import median, median_u8, percentile, segmented_median

values = st.lists(st.integers(-50, 400), min_size=1, max_size=40)


@given(values, st.sampled_from([0, 37.5, 50, 90, 100]))
def test_percentile_is_numpys(ints: list[int], q: float) -> None:
    for a in (np.array(ints, np.int32), np.array(ints, np.float64) / 7):
        assert percentile(a, q) == float(np.percentile(a, q))


@given(values)
def test_median_is_numpys(ints: list[int]) -> None:
    for a in (np.array(ints, np.int64), np.array(ints, np.int32), np.array(ints) * 0.1):
        assert median(a) == float(np.median(a))


@pytest.mark.parametrize("seed", range(4))
def test_segmented_median_is_the_median_of_each_group(seed):
    rng = np.random.default_rng(seed)
    group = np.sort(rng.integers(0, 9, 40))
    values = rng.integers(0, 30, 40).astype(np.int32)
    got = segmented_median(values, group, 11)  # groups 9 and 10 (and maybe others) are empty
    for k in range(11):
        if (group == k).any():
            assert got[k] == median(values[group == k])
        else:
            assert np.isnan(got[k])
    assert np.isnan(segmented_median(values[:0], group[:0], 2)).all()


@given(st.lists(st.integers(0, 255), min_size=1, max_size=60), st.sampled_from([1, 2, 3]))
def test_median_u8_is_the_lower_middle_value(ints: list[int], rows: int) -> None:
    a = np.array(ints * rows, np.uint8).reshape(rows, -1)  # any shape
    assert median_u8(a) == int(np.sort(a.ravel())[(a.size - 1) // 2])
