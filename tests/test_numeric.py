"""The order statistics of pipelines/numeric.py against numpy's own."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from pipelines.numeric import median, percentile

values = st.lists(st.integers(-50, 400), min_size=1, max_size=40)


@given(values, st.sampled_from([0, 37.5, 50, 90, 100]))
def test_percentile_is_numpys(ints: list[int], q: float) -> None:
    for a in (np.array(ints, np.int32), np.array(ints, np.float64) / 7):
        assert percentile(a, q) == float(np.percentile(a, q))


@given(values)
def test_median_is_numpys(ints: list[int]) -> None:
    for a in (np.array(ints, np.int64), np.array(ints, np.int32), np.array(ints) * 0.1):
        assert median(a) == float(np.median(a))
