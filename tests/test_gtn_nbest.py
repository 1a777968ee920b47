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


def test_nbest_on_a_cheque_sized_composition_is_fast_and_exact():
    import time

    from gtn.bench import cheque_grammar, cheque_lattice
    full = gtn.compose(cheque_lattice(0), cheque_grammar())   # ~4000 arcs, many output eps
    assert full.num_arcs > 1000 and bool((full.olabel == gtn.EPSILON).any())
    t0 = time.perf_counter()
    got = gtn.nbest(full, 3)
    assert time.perf_counter() - t0 < 1.0
    assert len(got) == 3 and len({s for s, _ in got}) == 3
    assert abs(got[0][1] - float(gtn.viterbi_score(full))) < 1e-9
    assert [sc for _, sc in got] == sorted((sc for _, sc in got), reverse=True)
    for s, sc in got:  # each score is the best score of a path carrying that output string
        only = gtn.compose(gtn.project_output(full), gtn.linear_graph(list(s)))
        assert abs(float(gtn.viterbi_score(only)) - sc) < 1e-9
