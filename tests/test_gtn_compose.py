from collections import defaultdict

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from test_gtn_helpers import graphs, relation

import gtn


def composed_relation(a, b):
    """Brute-force relation composition: multiset of path-pair scores per (input, output)."""
    ra, rb = relation(a), relation(b)
    out = defaultdict(list)
    for (ia, oa), sa in ra.items():
        for (ib, ob), sb in rb.items():
            if oa == ib:
                out[(ia, ob)] += [x + y for x in sa for y in sb]
    return {k: sorted(v) for k, v in out.items()}


def same(r1, r2):
    assert r1.keys() == r2.keys()
    for k in r1:
        assert len(r1[k]) == len(r2[k]), k  # the epsilon filter: no duplicate paths
        assert all(abs(x - y) < 1e-9 for x, y in zip(r1[k], r2[k])), k


@given(graphs(transducer=True), graphs(transducer=True))
def test_compose_equals_relation_composition(a, b):
    same(relation(gtn.compose(a, b), 30), composed_relation(a, b))


@given(graphs(), graphs())
def test_intersect_of_acceptors(a, b):
    same(relation(gtn.intersect(a, b), 30), composed_relation(a, b))


@given(graphs(transducer=True), graphs(transducer=True))
def test_compose_is_trimmed_and_keeps_payload(a, b):
    a = a.replace(payload=torch.arange(a.num_arcs))
    c = gtn.compose(a, b)
    assert c.payload is not None
    assert c == c if c.num_arcs == 0 else bool(gtn.trim(c) is c)
    assert set(c.payload.tolist()) <= set(range(a.num_arcs)) | {-1}


def test_gradcheck_through_compose():
    a = gtn.Graph.from_str("0\n2\n0 1 0 1 0.1\n0 1 1 -1 0.3\n1 2 2 2 -0.4\n0 2 0 2 0.2\n",
                           torch.float64)
    b = gtn.Graph.from_str("0\n2\n0 1 1 1 0.5\n1 2 2 0 0.2\n0 1 -1 3 -0.1\n1 2 -1 -1 0.4\n"
                           "0 2 2 0 0.3\n", torch.float64)
    wa = a.weight.clone().requires_grad_(True)
    wb = b.weight.clone().requires_grad_(True)

    def f(x, y):
        return gtn.forward_score(gtn.compose(a.replace(weight=x), b.replace(weight=y)))

    assert torch.isfinite(f(wa, wb))
    assert torch.autograd.gradcheck(f, (wa, wb))


def test_lattice_with_cyclic_grammar_gives_acyclic_result():
    # lattice: 3 segments x 3 classes; grammar: digit loop with an epsilon exit
    lattice = gtn.Graph.from_arcs(4, [0], [3], [(s, s + 1, c, c, -float(c)) for s in range(3)
                                                for c in range(3)] + [(0, 2, 1, 1, -1.0)])
    grammar = gtn.Graph.from_arcs(3, [0], [2], [(0, 1, 0, 0, 0.0), (0, 1, 1, 1, 0.0),
                                                (1, 1, 0, 0, 0.0), (1, 1, 2, 2, 0.0),
                                                (1, 2, -1, -1, 0.0)])
    c = gtn.compose(lattice, grammar)
    assert c.is_acyclic
    assert torch.isfinite(gtn.forward_score(c))


def test_symbol_tables_must_agree():
    t1, t2 = gtn.SymbolTable(["a", "b"]), gtn.SymbolTable(["x", "y"])
    a = gtn.Graph.from_arcs(2, [0], [1], [(0, 1, 0, 1, 0.0)], isymbols=t1, osymbols=t1)
    b = gtn.Graph.from_arcs(2, [0], [1], [(0, 1, 0, 1, 0.0)], isymbols=t2, osymbols=t2)
    with pytest.raises(ValueError, match="symbol table"):
        gtn.compose(a, b)
    assert gtn.compose(a, a).osymbols == t1


@given(st.lists(graphs(transducer=True), min_size=1, max_size=4), graphs(transducer=True))
def test_compose_many_equals_one_by_one(gs, b):
    for g, c in zip(gs, gtn.compose_many(gs, b)):
        same(relation(c, 30), relation(gtn.compose(g, b), 30))
        assert c.is_acyclic and torch.isfinite(gtn.forward_score(c)) == torch.isfinite(
            gtn.forward_score(gtn.compose(g, b)))


@given(st.lists(st.tuples(graphs(transducer=True), graphs(transducer=True)),
                min_size=2, max_size=4))
def test_compose_pairs_equals_one_by_one(pairs):
    # some pairs need the epsilon filter (then all go one by one), most share one pass
    for mixed in (pairs, [_no_filter_pair(a, b) for a, b in pairs]):
        firsts, seconds = [a for a, _ in mixed], [b for _, b in mixed]
        for a, b, c in zip(firsts, seconds, gtn.compose_pairs(firsts, seconds)):
            one = gtn.compose(a, b)
            same(relation(c, 30), relation(one, 30))
            assert c.is_acyclic
            assert torch.allclose(gtn.forward_score(c), gtn.forward_score(one))


def test_compose_pairs_needs_equal_lengths():
    g = gtn.linear_graph([1, 2])
    with pytest.raises(ValueError, match="compose_pairs"):
        gtn.compose_pairs([g, g], [g])


def test_compose_many_on_cheques_matches_compose():
    from gtn.bench import cheque_grammar, cheque_lattice
    gram = cheque_grammar()
    lats = [cheque_lattice(s) for s in range(5)]
    many = gtn.compose_many(lats, gram)
    one = [gtn.compose(g, gram) for g in lats]
    assert torch.allclose(gtn.forward_score(many), gtn.forward_score(one))
    assert gtn.viterbi_paths(many) == gtn.viterbi_paths(one)


def _no_filter_pair(a, b):
    """Drop output epsilons of a or input epsilons of b so no filter is needed."""
    if bool((a.olabel == gtn.EPSILON).any()) and bool((b.ilabel == gtn.EPSILON).any()):
        keep = b.ilabel != gtn.EPSILON
        b = gtn.Graph(b.num_states, b.start, b.accept, b.src[keep], b.dst[keep], b.ilabel[keep],
                      b.olabel[keep], b.weight[keep])
    return a, b


@given(graphs(transducer=True), graphs(transducer=True, acyclic=False, max_arcs=6))
def test_level_compose_equals_filter_path(a, b):
    from gtn.compose import _compose_filtered
    from gtn.compose_dag import compose_dag, dag_compose_ok
    for x, y in (_no_filter_pair(a, b), _no_filter_pair(project_out(a), b),
                 (a.replace(olabel=a.olabel.clamp(min=0)), b)):
        if not dag_compose_ok(x, y):
            continue
        fast, general = compose_dag(x, y)[0], _compose_filtered(x, y)
        same(relation(fast, 30), relation(general, 30))
        assert fast.is_acyclic and bool((fast.state_levels().diff() >= 0).all())
        assert bool((fast.state_levels()[fast.dst] > fast.state_levels()[fast.src]).all())


def project_out(a):
    """a with every odd arc's output replaced by epsilon (exercises a's output epsilons)."""
    o = a.olabel.clone()
    o[1::2] = gtn.EPSILON
    return a.replace(olabel=o)


def test_level_compose_gradients_match_filter_path():
    from gtn.compose import _compose_filtered
    from gtn.compose_dag import compose_dag, dag_compose_ok
    a = gtn.Graph.from_str("0 1\n3\n0 1 0 0 0.1\n0 1 1 -1 0.3\n1 2 2 2 -0.4\n0 2 0 2 0.2\n"
                           "1 3 1 1 0.5\n2 3 -1 -1 0.7\n", torch.float64)
    b = gtn.Graph.from_str("0\n1\n0 0 0 3 0.5\n0 1 2 -1 0.2\n1 1 1 0 -0.1\n1 0 -1 2 0.4\n"
                           "0 1 1 -1 0.3\n0 0 2 2 0.1\n", torch.float64)
    for x, y in (_no_filter_pair(a, b), (a.replace(olabel=a.olabel.clamp(min=0)), b)):
        assert dag_compose_ok(x, y)
        grads = []
        for f in (lambda u, v: compose_dag(u, v)[0], _compose_filtered):
            wa = x.weight.clone().requires_grad_(True)
            wb = y.weight.clone().requires_grad_(True)
            total = gtn.forward_score(f(x.replace(weight=wa), y.replace(weight=wb)))
            grads.append((total, *torch.autograd.grad(total, (wa, wb))))
        for u, v in zip(*grads):
            assert torch.allclose(u, v)
        assert torch.isfinite(grads[0][0])


@given(graphs(transducer=True), graphs(transducer=True, acyclic=False, max_arcs=6))
def test_level_compose_with_renumbered_states(a, b):
    # large sparse products renumber their states with np.unique: force that branch
    from unittest import mock

    from gtn.compose import _compose_filtered
    from gtn.compose_dag import compose_dag, dag_compose_ok
    for x, y in (_no_filter_pair(a, b), _no_filter_pair(project_out(a), b)):
        if not dag_compose_ok(x, y):
            continue
        with mock.patch("gtn.compose_dag._dense_ids", return_value=False):
            fast = compose_dag(x, y)[0]
            pairs = gtn.compose_pairs([x, x], [y, y])
        same(relation(fast, 30), relation(_compose_filtered(x, y), 30))
        same(relation(pairs[1], 30), relation(fast, 30))
        assert bool((fast.state_levels()[fast.dst] > fast.state_levels()[fast.src]).all())
