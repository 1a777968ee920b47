import itertools
import math

import torch
from hypothesis import given
from hypothesis import strategies as st
from test_gtn_helpers import graphs, logsumexp, paths, relation, strings

import gtn

ALPHABET = (0, 1, 2)


def language(g, max_len=6):
    return {s for s, _ in strings(g, paths(g, max_len + 6)) if len(s) <= max_len}


def accepts(g, word):
    return bool(gtn.compose(gtn.linear_graph(list(word)), gtn.project_input(g)).accept.any())


@given(st.lists(graphs(), min_size=1, max_size=3))
def test_union_accepts_the_union(gs):
    u = gtn.union(gs)
    assert language(u) == set().union(*(language(g) for g in gs))
    want = logsumexp([sc for g in gs for _, sc in paths(g)])
    got = float(gtn.forward_score(u))
    assert got == want or abs(got - want) < 1e-9


@given(st.lists(graphs(max_states=4, max_arcs=5), min_size=1, max_size=3))
def test_concat_accepts_the_concatenation(gs):
    want = {()}
    for g in gs:
        want = {a + b for a in want for b in language(g, 4)}
    got = language(gtn.concat(gs), 12)
    assert got == want


@given(graphs(labels=(0, 1)))
def test_closure_accepts_the_star(g):
    lang = language(g, 4)
    star = gtn.closure(g)
    for n in range(4):
        for word in itertools.product((0, 1), repeat=n):
            w = tuple(word)
            # w in L* iff w splits into pieces of L (the empty word always)
            ok = [True] + [False] * n
            for j in range(1, n + 1):
                ok[j] = any(ok[i] and w[i:j] in lang for i in range(j))
            assert accepts(star, w) == ok[n], w


@given(graphs(transducer=True))
def test_projections(g):
    rel = relation(g)
    assert {k[0] for k in rel} == {k[0] for k in relation(gtn.project_input(g))}
    assert {k[1] for k in rel} == {k[1] for k in relation(gtn.project_output(g))}
    assert gtn.project_input(g).is_acceptor and gtn.project_output(g).is_acceptor


@given(graphs(transducer=True))
def test_invert_swaps_every_pair_of_the_relation(g):
    rel = relation(g)
    inverse = relation(gtn.invert(g))
    assert inverse == {(o, i): ws for (i, o), ws in rel.items()}
    assert gtn.invert(gtn.invert(g)).to_str() == g.to_str()


@given(graphs(transducer=True))
def test_remove_epsilon_keeps_scores_per_string(g):
    for semiring, combine in ((gtn.LOG, logsumexp), (gtn.MAX, max)):
        h = gtn.remove_epsilon(g, semiring)
        assert not bool(((h.ilabel == -1) & (h.olabel == -1) & ~h.accept[h.dst]).any())
        r1 = {k: combine(v) for k, v in relation(g).items()}
        r2 = {k: combine(v) for k, v in relation(h).items()}
        assert r1.keys() == r2.keys()
        assert all(abs(r1[k] - r2[k]) < 1e-9 for k in r1)


@given(graphs(), st.floats(0, 3))
def test_prune_keeps_exactly_the_arcs_on_good_paths(g, beam):
    g = g.replace(payload=torch.arange(g.num_arcs))
    ps = paths(g)
    p = gtn.prune(g, beam)
    if not ps:
        assert p.num_arcs == 0
        return
    best = max(sc for _, sc in ps)
    through = {}
    for arcs, sc in ps:
        for i in arcs:
            through[i] = max(through.get(i, -math.inf), sc)
    if any(abs(v - (best - beam)) < 1e-9 for v in through.values()):
        return  # on the boundary; float rounding decides
    want = sorted(i for i, v in through.items() if v >= best - beam)
    assert sorted(p.payload.tolist()) == want
    assert math.isclose(float(gtn.viterbi_score(p)), best, abs_tol=1e-9)


def test_prune_example():
    g = gtn.Graph.from_str("0\n2\n0 1 0 0 0\n0 1 1 1 -5\n1 2 0 0 0\n0 2 2 2 -1\n")
    assert sorted(gtn.prune(g, 2.0).ilabel.tolist()) == [0, 0, 2]
    assert sorted(gtn.prune(g, 0.5).ilabel.tolist()) == [0, 0]
    assert torch.equal(gtn.trim(g).weight, g.weight)
