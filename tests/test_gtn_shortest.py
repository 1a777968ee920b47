import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from test_gtn_helpers import graphs, logsumexp, paths

import gtn


def close(a: float, b: float, tol: float = 1e-6) -> bool:
    return (a == b) or abs(a - b) <= tol * max(1.0, abs(b))


@given(graphs())
def test_forward_and_viterbi_match_enumeration(g):
    scores = [sc for _, sc in paths(g)]
    assert close(float(gtn.forward_score(g)), logsumexp(scores))
    assert close(float(gtn.viterbi_score(g)), max(scores, default=-math.inf))
    # the level-by-level DP (used for wide graphs) agrees with the banded fast path
    assert close(float(gtn.shortest_distance(g, gtn.LOG)[0]), logsumexp(scores))
    assert close(float(gtn.shortest_distance(g, gtn.MAX)[0]), max(scores, default=-math.inf))


@given(graphs())
def test_counting_and_kbest_semirings_match_enumeration(g):
    scores = sorted((sc for _, sc in paths(g)), reverse=True)
    count, _ = gtn.shortest_distance(g, gtn.COUNT)
    assert int(count) == len(scores)
    top, _ = gtn.shortest_distance(g, gtn.kbest(3))
    want = (scores + [-math.inf] * 3)[:3]
    assert all(close(float(a), b) for a, b in zip(top, want))


@given(st.lists(graphs(), min_size=1, max_size=4))
def test_batch_equals_one_by_one(gs):
    batch = gtn.forward_score(gs)
    assert batch.shape == (len(gs),)
    for g, b in zip(gs, batch):
        assert close(float(b), float(gtn.forward_score(g)))
    vb = gtn.viterbi_score(gs)
    for g, b in zip(gs, vb):
        assert close(float(b), float(gtn.viterbi_score(g)))


@given(graphs())
def test_posteriors_sum_to_expected_path_length(g):
    ps = paths(g)
    post = gtn.arc_posteriors(g)
    if not ps:
        assert float(post.abs().sum()) == 0.0
        return
    z = logsumexp([sc for _, sc in ps])
    expected = sum(math.exp(sc - z) * len(arcs) for arcs, sc in ps)
    assert close(float(post.sum()), expected, 1e-6)
    for i in range(g.num_arcs):  # and each arc: probability mass of the paths through it
        want = sum(math.exp(sc - z) * arcs.count(i) for arcs, sc in ps)
        assert close(float(post[i]), want, 1e-6)


@given(graphs())
def test_viterbi_gradient_is_best_path_indicator(g):
    ps = paths(g)
    w = g.weight.detach().clone().requires_grad_(True)
    score = gtn.viterbi_score(g.replace(weight=w))
    if not ps:
        assert math.isinf(float(score.detach()))
        return
    score.backward()
    assert set(w.grad.unique().tolist()) <= {0.0, 1.0}
    path_g, idx = gtn.viterbi_path(g)
    assert w.grad.nonzero().flatten().tolist() == sorted(idx)
    assert close(sum(g.weight[idx].tolist()), max(sc for _, sc in ps))
    assert any(arcs == idx for arcs, _ in ps)
    assert close(float(gtn.forward_score(path_g).detach()), float(score.detach()))


def test_gradcheck_forward_score_float64():
    g = gtn.Graph.from_str("""0
    3
    0 1 0 0 0.5
    0 1 1 1 -0.2
    1 2 0 0 0.3
    1 3 2 2 0.1
    2 3 -1 -1 0.7
    0 2 1 1 1.1
    """, dtype=torch.float64)
    w = g.weight.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: gtn.forward_score(g.replace(weight=x)), (w,))
    assert torch.autograd.gradcheck(lambda x: gtn.forward_score([g.replace(weight=x), g]), (w,))


def test_no_path_gives_minus_inf_and_zero_grad():
    g = gtn.Graph.from_arcs(3, [0], [2], [(0, 1, 0, 0, 1.0)])
    w = g.weight.clone().requires_grad_(True)
    s = gtn.forward_score(g.replace(weight=w))
    assert s.item() == -math.inf
    s.backward()
    assert torch.equal(w.grad, torch.zeros(1))


def test_cycle_raises():
    g = gtn.Graph.from_str("0\n1\n0 1 0\n1 0 1\n")
    with pytest.raises(ValueError, match="cycle"):
        gtn.forward_score(g)
    e = gtn.Graph.from_str("0\n2\n0 1 -1\n1 0 -1\n1 2 0\n")
    with pytest.raises(ValueError, match="epsilon cycle"):
        gtn.viterbi_score(e)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_learnable_weights_train_with_an_optimiser(dtype):
    p = torch.nn.Parameter(torch.zeros(4, dtype=dtype))
    opt = torch.optim.SGD([p], lr=0.5)
    losses = []
    for _ in range(5):
        g = gtn.Graph.from_tensors(3, torch.tensor([0]), torch.tensor([2]),
                                   torch.tensor([0, 0, 1, 1]), torch.tensor([1, 1, 2, 2]),
                                   torch.tensor([0, 1, 0, 1]), None, p)
        constrained = gtn.compose(g, gtn.linear_graph([1, 1]).replace(
            weight=torch.zeros(2, dtype=dtype)))
        loss = gtn.forward_loss(constrained, g)
        assert loss.dtype == dtype and float(loss.detach()) >= -1e-6
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]


@given(st.lists(graphs(), min_size=1, max_size=4))
def test_viterbi_paths_batched_both_routes_match_enumeration(gs):
    from gtn.viterbi import _banded_paths, _level_paths
    for got in (gtn.viterbi_paths(gs), _level_paths(gs), _banded_paths(gs)):
        assert len(got) == len(gs)
        for g, idx in zip(gs, got):
            ps = paths(g)
            if not ps:
                assert idx == []
                continue
            assert any(arcs == idx for arcs, _ in ps)
            assert close(sum(g.weight[idx].tolist()), max(sc for _, sc in ps))


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
def test_viterbi_path_without_autograd(mode):
    from gtn.bench import random_lattice
    g = random_lattice(40, seed=3)
    wide = gtn.compose(g, gtn.bench.grammar())          # not banded: the level DP route
    with mode():
        for h in (g, wide):
            path_g, idx = gtn.viterbi_path(h)
            assert close(float(h.weight[idx].sum()), float(gtn.viterbi_score(h)))
            assert gtn.viterbi_paths([h, h]) == [idx, idx]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_log_score_routes_agree_in_value_and_gradient(dtype):
    # The scan (custom backward), the tree reduction and the level DP (both autograd) and the
    # numpy level DP (posteriors from a reverse run) are four independent computations of
    # the same totals and arc posteriors.
    from gtn.banded import banded_score, scan_ok, scanned_log_score
    from gtn.bench import random_lattice
    from gtn.levels import level_score
    from gtn.shortest import make_plan, run_plan

    # up to 400 positions: the scan runs whatever the length (it beats the tree everywhere)
    gs = [random_lattice(n, seed=n, dtype=dtype) for n in (2, 7, 19, 30, 400)]
    dead = random_lattice(5, seed=1, dtype=dtype)
    gs.append(dead.replace(accept=torch.zeros(5, dtype=torch.bool)))  # accepts nothing
    assert scan_ok(gs)
    grads, totals = [], []
    for route in ("scan", "tree", "level", "numpy levels"):
        w = torch.cat([g.weight for g in gs]).detach().clone().requires_grad_(True)
        if route == "scan":
            t = scanned_log_score(gs, w)
        elif route == "tree":
            t = banded_score(gs, w, gtn.LOG)
        elif route == "level":
            t = run_plan(make_plan(gs), w, gtn.LOG)[0]
        else:
            t = level_score(gs, w, gtn.LOG)
        (t * torch.arange(1, len(gs) + 1, dtype=dtype)).sum().backward()
        totals.append(t.detach())
        grads.append(w.grad)
    tol = 1e-9 if dtype == torch.float64 else 1e-4
    assert totals[0][-1] == -math.inf and float(grads[0][-dead.num_arcs:].abs().sum()) == 0.0
    for t, g in zip(totals[1:], grads[1:]):
        assert torch.allclose(totals[0], t, rtol=tol, atol=tol)
        assert torch.allclose(grads[0], g, rtol=tol, atol=tol)


@given(st.lists(graphs(max_states=6, max_arcs=12), min_size=1, max_size=4),
       st.sampled_from([torch.float64, torch.float32]))
def test_numpy_level_dp_matches_the_torch_level_dp_in_value_and_gradient(gs, dtype):
    """Log and max totals of a batch and their gradients (arc posteriors; the best path's
    indicator, ties to the lowest arc) by the numpy levels against torch autograd, and the
    totals against path enumeration."""
    from gtn.levels import level_score
    from gtn.shortest import make_plan, run_plan

    gs = [g.replace(weight=g.weight.to(dtype)) for g in gs]
    tol = 1e-9 if dtype == torch.float64 else 1e-4
    for semiring in (gtn.LOG, gtn.MAX):
        got = []
        for numpy_route in (False, True):
            w = torch.cat([g.weight for g in gs]).detach().clone().requires_grad_(True)
            t = level_score(gs, w, semiring) if numpy_route else run_plan(
                make_plan(gs), w, semiring)[0]
            weights = torch.arange(1, len(gs) + 1, dtype=dtype)
            torch.where(torch.isfinite(t), t * weights, 0.0).sum().backward()
            got.append((t.detach(), w.grad))
        (ta, ga), (tb, gb) = got
        for g, total in zip(gs, tb.tolist()):  # and against enumeration
            scores = [sc for _, sc in paths(g)]
            want = (logsumexp(scores) if semiring is gtn.LOG else max(scores)) if scores \
                else -math.inf
            assert total == want == -math.inf or close(total, want, 1e-3 if tol > 1e-6 else 1e-9)
        assert torch.equal(torch.isinf(ta), torch.isinf(tb))
        assert torch.allclose(ta[torch.isfinite(ta)], tb[torch.isfinite(tb)], rtol=tol, atol=tol)
        assert torch.allclose(ga, gb, rtol=tol, atol=tol), semiring.name


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_scan_with_impossible_arcs_matches_the_level_dp(dtype):
    # -inf arcs (one edge of them only: lattice2's single edge 0 -> 1) and a far-below arc, in
    # value and gradient; without autograd the scan runs forward only, to the same totals.
    from gtn.banded import scan_ok, scanned_log_score
    from gtn.bench import random_lattice
    from gtn.shortest import make_plan, run_plan

    gs = [random_lattice(n, seed=n, dtype=dtype) for n in (2, 9, 30)]
    w0 = gs[0].weight.clone()
    w0[:] = -math.inf
    w1 = gs[1].weight.clone()
    w1[::3] = -math.inf
    w1[1] = -2000.0
    gs = [gs[0].replace(weight=w0), gs[1].replace(weight=w1), gs[2]]
    assert scan_ok(gs)
    got = []
    for scan in (True, False):
        w = torch.cat([g.weight for g in gs]).detach().clone().requires_grad_(True)
        t = scanned_log_score(gs, w) if scan else run_plan(make_plan(gs), w, gtn.LOG)[0]
        torch.where(torch.isfinite(t), t, 0.0).sum().backward()
        got.append((t.detach(), w.grad))
    (ts, gs_), (tl, gl) = got
    tol = 1e-9 if dtype == torch.float64 else 1e-4
    assert ts[0] == -math.inf and torch.allclose(ts[1:], tl[1:], rtol=tol, atol=tol)
    assert not gs_.isnan().any() and torch.allclose(gs_, torch.nan_to_num(gl), rtol=tol, atol=tol)
    with torch.no_grad():
        assert torch.equal(scanned_log_score(gs, w.detach()), ts)


def test_a_batch_scored_again_reuses_its_layout_and_the_new_weights():
    """The scan caches a batch's layout by its graphs' bands: scoring the same graphs with
    other weights gives what a fresh layout gives (and the level DP), and another batch of
    the same graphs (reordered, one left out) is not taken for it."""
    from gtn import banded
    from gtn.bench import random_lattice
    from gtn.levels import level_score

    gs = [random_lattice(n, seed=n) for n in (3, 8, 12)]
    first = gtn.forward_score(gs)
    key = [k for k in banded._LAYOUTS if k[3:] == tuple(id(banded.band(g)) for g in gs)]
    assert len(key) == 1
    lay = banded._LAYOUTS[key[0]][1]
    assert banded.layout(gs) is lay
    gen = torch.Generator().manual_seed(0)
    again = [g.replace(weight=torch.randn(g.num_arcs, generator=gen, dtype=torch.float64))
             for g in gs]
    for g, h in zip(gs, again):  # the same topology: the bands (and so the layout) are shared
        h._cache.update(g._cache)
    assert banded.layout(again) is lay
    w = torch.cat([h.weight for h in again])
    got = gtn.forward_score(again)
    assert torch.allclose(got, level_score(again, w, gtn.LOG), rtol=1e-12, atol=1e-12)
    assert not torch.allclose(got, first)
    assert banded.layout(gs[::-1]) is not lay
    assert torch.allclose(gtn.forward_score(gs[::-1]), first.flip(0), rtol=1e-12, atol=1e-12)
    assert torch.allclose(gtn.forward_score(gs[1:]), first[1:], rtol=1e-12, atol=1e-12)
