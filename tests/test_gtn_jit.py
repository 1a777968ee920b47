"""The compiled best-path kernel (gtn.jit, numba) against path enumeration and the array
routes."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from test_gtn_helpers import graphs, paths

import gtn
from gtn import jit

pytest.importorskip("numba")


@given(st.lists(graphs(), min_size=1, max_size=4),
       st.sampled_from([torch.float64, torch.float32]))
def test_kernel_paths_are_best_accepting_paths(gs, dtype):
    gs = [g.replace(weight=g.weight.to(dtype)) for g in gs]
    for g, idx in zip(gs, jit.best_paths(gs)):
        ps = paths(g)
        if not ps:
            assert idx == []
            continue
        assert any(arcs == idx for arcs, _ in ps)
        best = max(sc for _, sc in ps)
        assert math.isclose(sum(g.weight[idx].tolist()), best, rel_tol=1e-5, abs_tol=1e-5)


def test_deep_graphs_take_the_kernel_and_score_as_the_array_routes(monkeypatch):
    from gtn.bench import grammar, random_lattice
    from gtn.viterbi import _banded_paths, _level_paths

    lattice = random_lattice(2000, seed=2000)
    composed = gtn.compose(random_lattice(300, seed=5), grammar())  # not banded
    for g, array_route in ((lattice, _banded_paths), (composed, _level_paths)):
        assert jit.use_for([g]) and int(g.state_levels().max()) + 1 >= jit.MIN_LEVELS
        calls = []
        monkeypatch.setattr(jit, "best_paths", lambda gs, f=jit.best_paths: calls.append(1)
                            or f(gs))
        (idx,) = gtn.viterbi_paths([g])
        monkeypatch.undo()
        assert calls == [1]
        (ref,) = array_route([g])
        best = float(gtn.viterbi_score(g))
        assert math.isclose(float(g.weight[idx].sum()), best, rel_tol=1e-12)
        assert math.isclose(float(g.weight[ref].sum()), best, rel_tol=1e-12)
        assert int(g.src[idx[0]]) in g.start.nonzero().flatten().tolist()
        assert bool(g.accept[g.dst[idx[-1]]])
        assert all(int(g.dst[a]) == int(g.src[b]) for a, b in zip(idx, idx[1:]))


def test_shallow_graphs_keep_the_array_routes_until_the_process_is_warm(monkeypatch):
    from gtn.bench import random_lattice

    g = random_lattice(30, seed=1)
    monkeypatch.setattr(jit, "WARM_CALLS", 3)
    monkeypatch.setattr(jit, "_asked", 0)
    asked = [jit.use_for([g] * 1000) for _ in range(5)]  # many arcs, few levels
    assert asked == [False, False, False, True, True] and jit.warm()
    big = random_lattice(2000, seed=2000)
    monkeypatch.setattr(jit, "_asked", 0)
    assert jit.use_for([big]) and not jit.warm()  # deep: from the first call
    jit.warm_up()
    assert jit.use_for([g]) and jit.warm()
    monkeypatch.setenv("GTN_JIT", "0")
    monkeypatch.setattr(jit, "_asked", 10)
    assert not jit.available() and not jit.use_for([big]) and not jit.use_for([g])


def test_scores_of_large_batches_scored_again_take_the_banded_scan(monkeypatch):
    """The compiled score takes a batch scored for the first time, and one scored again only
    while it has at most MAX_SCORE_ARCS arcs (the banded scan's layout then pays)."""
    from gtn.bench import random_lattice

    monkeypatch.setattr(jit, "WARM_CALLS", 0)
    gs = [random_lattice(30, seed=i) for i in range(3)]
    weight = torch.cat([g.weight for g in gs])
    monkeypatch.setattr(jit, "MAX_SCORE_ARCS", weight.shape[0] - 1)
    assert jit.use_for_scores(gs, weight)
    gtn.forward_score(gs)
    assert not jit.use_for_scores(gs, weight)
    monkeypatch.setattr(jit, "MAX_SCORE_ARCS", weight.shape[0])
    assert jit.use_for_scores(gs, weight)


def test_a_cyclic_graph_is_refused():
    g = gtn.Graph.from_arcs(2, [0], [1], [(0, 1, 0, 0, 1.0), (1, 0, 0, 0, 1.0)])
    with pytest.raises(ValueError, match="cycl"):
        jit.best_paths([g])


def _same_graph(a: gtn.Graph, b: gtn.Graph) -> bool:
    return (a.num_states == b.num_states and torch.equal(a.start, b.start)
            and torch.equal(a.accept, b.accept) and torch.equal(a.src, b.src)
            and torch.equal(a.dst, b.dst) and torch.equal(a.ilabel, b.ilabel)
            and torch.equal(a.olabel, b.olabel) and torch.equal(a.weight, b.weight)
            and (a.payload is None) == (b.payload is None)
            and (a.payload is None or torch.equal(a.payload, b.payload))
            and torch.equal(a.state_levels(), b.state_levels()))


def test_deep_compositions_trim_as_the_array_sweeps(monkeypatch):
    """The compiled reachability sweeps of `compose_dag` keep exactly the states and arcs the
    numpy sweeps keep, on a deep lattice with the epsilon grammar and on one whose middle
    state accepts and whose second half cannot be reached."""
    from gtn.bench import grammar, random_lattice

    deep = random_lattice(400, seed=4)
    cut = deep.replace(start=torch.arange(400) == 0, accept=torch.arange(400) == 150)
    for a in (deep, cut):
        assert jit.deep(2 * a.num_states)
        got = gtn.compose(a, grammar())
        monkeypatch.setattr(jit, "MIN_LEVELS", 10**9)
        want = gtn.compose(a, grammar())
        monkeypatch.undo()
        assert _same_graph(got, want) and got.num_arcs > 0


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_deep_scans_give_the_array_scans_values_and_gradients(dtype, monkeypatch):
    from gtn.bench import random_lattice
    from gtn.levels import level_score

    gs = [random_lattice(n, seed=n, dtype=dtype) for n in (300, 700)]
    results = []
    for min_levels in (jit.MIN_LEVELS, 10**9):
        monkeypatch.setattr(jit, "MIN_LEVELS", min_levels)
        w = torch.cat([g.weight for g in gs]).detach().clone().requires_grad_(True)
        graphs = [g.replace(weight=part) for g, part in zip(gs, w.split([g.num_arcs
                                                                         for g in gs]))]
        total = gtn.forward_score(graphs)
        (total * torch.tensor([1.0, 2.0], dtype=dtype)).sum().backward()
        results.append((total.detach(), w.grad))
    (t_jit, g_jit), (t_np, g_np) = results
    tol = 1e-9 if dtype == torch.float64 else 1e-4
    assert torch.allclose(t_jit, t_np, rtol=tol, atol=tol)
    assert torch.allclose(g_jit, g_np, rtol=tol, atol=tol)
    ref = level_score(gs, torch.cat([g.weight for g in gs]), gtn.LOG)
    assert torch.allclose(t_jit, ref, rtol=tol, atol=tol)


@given(st.lists(graphs(max_states=6, max_arcs=10), min_size=1, max_size=3))
def test_every_kernel_on_small_graphs_matches_the_array_routes(gs):
    """With MIN_LEVELS 0 every dynamic program runs compiled: compositions (one graph, a list
    with one graph, pairs), log totals and their gradients, and best-path scores equal the
    array routes'."""
    from gtn.bench import grammar

    gram = grammar()
    gs = [g.replace(payload=torch.arange(g.num_arcs) + 10 * i) if i % 2 else g
          for i, g in enumerate(gs) if g.is_acyclic]
    saved = jit.MIN_LEVELS
    try:
        outs = []
        for min_levels in (0, 10**9):
            jit.MIN_LEVELS = min_levels
            composed = [gtn.compose(g, gram) for g in gs]
            composed += gtn.compose_many(gs, gram) + gtn.compose_pairs(gs, gs[::-1])
            w = [g.weight.detach().clone().requires_grad_(True) for g in gs]
            totals = gtn.forward_score([g.replace(weight=x) for g, x in zip(gs, w)]) \
                if gs else torch.zeros(0)
            finite = torch.where(torch.isinf(totals), 0.0, totals)
            (finite * torch.arange(1.0, len(gs) + 1, dtype=totals.dtype)).sum().backward()
            grads = [x.grad if x.grad is not None else torch.zeros_like(x) for x in w]
            best = [path_score(g, idx) for g, idx in zip(gs, gtn.viterbi_paths(gs))]
            outs.append((composed, totals.detach(), grads, best))
    finally:
        jit.MIN_LEVELS = saved
    (c1, t1, d1, b1), (c2, t2, d2, b2) = outs
    assert all(_same_graph(x, y) for x, y in zip(c1, c2))
    assert torch.allclose(t1, t2, rtol=1e-9, atol=1e-9)
    assert all(torch.allclose(x, y, rtol=1e-9, atol=1e-9) for x, y in zip(d1, d2))
    for x, y, v in zip(b1, b2, (gtn.viterbi_score(gs).tolist() if gs else [])):
        assert x == y == v == -math.inf or (math.isclose(x, v, rel_tol=1e-9, abs_tol=1e-9)
                                            and math.isclose(y, v, rel_tol=1e-9, abs_tol=1e-9))


@given(graphs(max_states=6, max_arcs=10), st.sampled_from([torch.float64, torch.float32]))
def test_compiled_log_score_is_the_logsumexp_of_paths_and_its_gradient_the_posteriors(g, dtype):
    g = g.replace(weight=g.weight.to(dtype))
    if not g.is_acyclic:
        return
    w = g.weight.detach().clone().requires_grad_(True)
    total = jit.log_score([g], w)[0]
    ps = paths(g)
    if not ps:
        assert total.item() == -math.inf
        return
    scores = torch.tensor([sc for _, sc in ps], dtype=torch.float64)
    z = torch.logsumexp(scores, 0)
    tol = 1e-9 if dtype == torch.float64 else 1e-5
    assert math.isclose(total.item(), z.item(), rel_tol=tol, abs_tol=tol)
    total.backward()
    posterior = torch.zeros(g.num_arcs, dtype=torch.float64)
    for (arcs, _), p in zip(ps, torch.exp(scores - z)):
        for a in arcs:
            posterior[a] += p
    assert w.grad is not None and w.grad.dtype == dtype
    assert torch.allclose(w.grad.double(), posterior, rtol=tol, atol=tol)


def path_score(g: gtn.Graph, idx: list[int]) -> float:
    """The score of a returned best path; [] is the empty path where a start state accepts,
    else no path (-inf)."""
    if idx:
        return float(g.weight[idx].sum())
    return 0.0 if bool((g.start & g.accept).any()) else -math.inf


def test_half_precision_weights_are_scored_in_float64():
    from gtn.bench import random_lattice

    g = random_lattice(300, seed=1)
    half = g.replace(weight=g.weight.to(torch.float16))
    (idx,) = jit.best_paths([half])
    (ref,) = jit.best_paths([half.replace(weight=half.weight.to(torch.float64))])
    assert idx == ref and len(idx) > 0


@given(st.lists(graphs(max_states=6, max_arcs=10), min_size=1, max_size=3))
def test_compiled_viterbi_scores_are_the_best_paths_and_their_gradient_its_indicator(gs):
    gs = [g for g in gs if g.is_acyclic]
    if not gs:
        return
    w = torch.cat([g.weight for g in gs]).detach().clone().requires_grad_(True)
    totals = jit.max_score(gs, w)
    totals[torch.isfinite(totals)].sum().backward()
    grads = w.grad.split([g.num_arcs for g in gs]) if w.grad is not None else \
        [torch.zeros(g.num_arcs, dtype=w.dtype) for g in gs]
    for g, total, grad in zip(gs, totals.tolist(), grads):
        ps = paths(g)
        if not ps:
            assert total == -math.inf and not grad.any()
            continue
        best = max(sc for _, sc in ps)
        assert math.isclose(total, best, rel_tol=1e-9, abs_tol=1e-9)
        on = grad.nonzero().flatten().tolist()
        assert set(grad.unique().tolist()) <= {0.0, 1.0}
        assert any(sorted(arcs) == on and math.isclose(sc, best, rel_tol=1e-9, abs_tol=1e-9)
                   for arcs, sc in ps)
