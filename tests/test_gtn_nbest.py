from hypothesis import given
from hypothesis import strategies as st
from test_gtn_helpers import graphs, paths, strings

import gtn


@given(graphs(transducer=True), st.integers(1, 5))
def test_nbest_agrees_with_enumeration(g, k):
    best = {}
    for s, sc in strings(g, paths(g)):
        best[s] = max(best.get(s, -float("inf")), sc)
    got = gtn.nbest(g, k)
    assert len(got) == min(k, len(best))
    assert len({s for s, _ in got}) == len(got)
    for s, sc in got:
        assert abs(best[s] - sc) < 1e-9
    want = sorted(best.values(), reverse=True)[: len(got)]
    assert all(abs(a - b) < 1e-9 for a, b in zip([sc for _, sc in got], want))


def test_nbest_distinct_strings():
    g = gtn.Graph.from_str("0\n2\n0 1 0 0 1\n0 1 0 0 0.5\n1 2 1 1 0\n0 2 -1 -1 -3\n")
    assert gtn.nbest(g, 3) == [((0, 1), 1.0), ((), -3.0)]
