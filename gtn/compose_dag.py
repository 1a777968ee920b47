"""Composition with an acyclic first operand, trimmed level by level.

When ``a`` is acyclic and no epsilon filter is needed (``a`` has no output epsilons or ``b`` has
no input epsilons), every arc of the product either advances ``a`` (a matching move, or an
output epsilon of ``a`` while ``b`` stays) or stays on ``a``'s state while ``b`` takes an input
epsilon. So the product state ``(p, q)`` has the topological level ``level_a(p) * K +
level_eps(q)``, where ``level_eps`` orders ``b``'s input-epsilon arcs (``K = 1`` without them).

All product arcs come from one join on the label (the staying side joins as an epsilon self-loop
on every state). With the arcs grouped by source level, reachability from the start states and
co-reachability to the accept states are one scatter per level each, run in numpy on the index
arrays. The result's states are numbered in level order and its levels are cached, so the
dynamic programs of :mod:`gtn.shortest` need no topological sort.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .graph import EPSILON, Graph, argsort_stable


def input_epsilon_levels(b: Graph) -> Tensor | None:
    """(S,) levels of ``b``'s states in the subgraph of its input-epsilon arcs (all zero if it
    has none); None if that subgraph has a cycle. Cached."""
    if "ieps_levels" not in b._cache:
        eps = b.ilabel == EPSILON
        levels: Tensor | None = torch.zeros(b.num_states, dtype=torch.long)
        if bool(eps.any()):
            sub = Graph(b.num_states, torch.ones_like(b.start), b.accept, b.src[eps],
                        b.dst[eps], b.ilabel[eps], b.olabel[eps], b.weight[eps])
            levels = sub.state_levels() if sub.is_acyclic else None
        b._cache["ieps_levels"] = levels
    out: Tensor | None = b._cache["ieps_levels"]
    return out


def dag_compose_ok(a: Graph, b: Graph) -> bool:
    """Whether :func:`compose_dag` applies: ``a`` acyclic, no filter needed, and ``b``'s
    input-epsilon arcs acyclic."""
    a_eps = bool((a.olabel == EPSILON).any())
    b_eps = bool((b.ilabel == EPSILON).any())
    if a_eps and b_eps:
        return False
    return (a.src.device.type == "cpu" and a.is_acyclic
            and (not b_eps or input_epsilon_levels(b) is not None))


def _side(g: Graph, key: Tensor, stays: bool, group: Tensor | None, n_groups: int
          ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(key, src, dst, arc id) of ``g``'s arcs, plus an epsilon self-loop (arc id -1) on every
    state when ``stays``. With ``group`` (S,), the key also holds the source state's group, so
    that only arcs of the same group match."""
    arc = torch.arange(g.num_arcs)
    src, dst = g.src, g.dst
    if stays:
        loop = torch.arange(g.num_states)
        key = torch.cat([key, torch.full_like(loop, EPSILON)])
        src, dst = torch.cat([src, loop]), torch.cat([dst, loop])
        arc = torch.cat([arc, torch.full_like(loop, -1)])
    if group is not None:
        key = (key - EPSILON) * n_groups + group.index_select(0, src)
    return key, src, dst, arc


def _level_reach(src: np.ndarray, dst: np.ndarray, bounds: list[int], init: np.ndarray,
                 reverse: bool) -> np.ndarray:
    """Reachability from ``init`` (forward) or co-reachability to it (``reverse``) along arcs
    grouped by source level: group ``i`` is ``bounds[i]:bounds[i + 1]``."""
    seen = init.copy()
    groups = range(len(bounds) - 1)
    for i in reversed(groups) if reverse else groups:
        lo, hi = bounds[i], bounds[i + 1]
        if lo == hi:
            continue
        s, d = src[lo:hi], dst[lo:hi]
        if reverse:
            seen[s[seen[d]]] = True
        else:
            seen[d[seen[s]]] = True
    return seen


def compose_dag(a: Graph, b: Graph, groups: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Graph, Tensor]:
    """Trimmed composition for :func:`dag_compose_ok` operands, with levels cached.
    Returns the graph and (S,) the state of ``a`` in each of its states.

    ``groups`` ((Sa,), (Sb,) long) pairs only states of the same group: given disjoint unions
    of graphs, it composes the i-th graph of ``a`` with the i-th of ``b``, all in one pass."""
    a_eps = bool((a.olabel == EPSILON).any())
    lev_a = a.state_levels()
    lev_e = input_epsilon_levels(b)
    assert lev_e is not None
    K = int(lev_e.max()) + 1 if b.num_states else 1
    Sa, Sb = a.num_states, b.num_states
    ga, gb = groups if groups is not None else (None, None)
    n_groups = int(max(int(ga.max()), int(gb.max()))) + 1 if groups is not None else 1
    ka, sa, da, ida = _side(a, a.olabel, K > 1, ga, n_groups)
    kb, sb, db, idb = _side(b, b.ilabel, a_eps, gb, n_groups)
    if K == 1:   # group a's arcs by source level; the join keeps that order
        order = argsort_stable(lev_a[sa], Sa)
        ka, sa, da, ida = (t.index_select(0, order) for t in (ka, sa, da, ida))
    from .compose import _join
    ja, jb = _join(ka, kb)
    ps, qs = sa.index_select(0, ja), sb.index_select(0, jb)
    pd, qd = da.index_select(0, ja), db.index_select(0, jb)
    lev_src = lev_a[ps] * K + lev_e[qs]
    if K > 1:
        order = argsort_stable(lev_src, Sa * K)
        ja, jb, ps, qs, pd, qd, lev_src = (t.index_select(0, order)
                                           for t in (ja, jb, ps, qs, pd, qd, lev_src))
    # Product state id p * W + q, with q local to its group when grouped: only pairs within
    # a group exist, so the id space is Sa x (largest group of b), not Sa x Sb.
    if groups is not None:
        b_size = torch.bincount(gb, minlength=n_groups)
        b_first = torch.cumsum(b_size, 0) - b_size
        W, q_first = int(b_size.max()), b_first.index_select(0, gb)  # q_first: (Sb,)
    else:
        W, q_first = Sb, None

    def local(q: Tensor) -> Tensor:
        return q if q_first is None else q - q_first.index_select(0, q)

    src, dst = ps * W + local(qs), pd * W + local(qd)
    sa0, sb0 = a.start.nonzero(), b.start.nonzero().flatten()[None, :]
    starts = sa0 * W + local(sb0.flatten())[None, :]
    if groups is not None:
        starts = starts[ga[sa0] == gb[sb0]]
    starts = starts.flatten()
    n_lev = int(lev_a.max()) * K + K if Sa else 1
    bounds = [0] + torch.cumsum(torch.bincount(lev_src, minlength=n_lev), 0).tolist()
    if Sa * W <= 4 * src.shape[0] + 100_000:   # dense product state ids
        keys, s_id, d_id, st_id = None, src, dst, starts
    else:
        keys, inv = torch.unique(torch.cat([starts, src, dst]), return_inverse=True)
        n0, m = starts.shape[0], src.shape[0]
        st_id, s_id, d_id = inv[:n0], inv[n0:n0 + m], inv[n0 + m:]
    N = Sa * W if keys is None else int(keys.shape[0])
    ids = torch.arange(N) if keys is None else keys
    p_all, q_all = ids // W, ids % W
    exists = torch.ones(N, dtype=torch.bool)
    if groups is not None:  # back to b's state ids; local ids past a group's size are no state
        g_of = ga.index_select(0, p_all)
        exists = q_all < b_size.index_select(0, g_of)
        q_all = torch.where(exists, q_all + b_first.index_select(0, g_of), 0)
    s_np, d_np = s_id.numpy(), d_id.numpy()
    init = np.zeros(N, dtype=bool)
    init[st_id.numpy()] = True
    fwd = _level_reach(s_np, d_np, bounds, init, False)
    final = a.accept.index_select(0, p_all) & b.accept.index_select(0, q_all) & exists
    bwd = _level_reach(s_np, d_np, bounds, final.numpy(), True)
    return _assemble(a, b, torch.from_numpy(fwd & bwd), torch.from_numpy(fwd[s_np] & bwd[d_np]),
                     (p_all, q_all, lev_a[p_all] * K + lev_e[q_all]),
                     (s_id, d_id, ja, jb), (ida, idb), torch.from_numpy(init))


def _assemble(a: Graph, b: Graph, keep: Tensor, arcs: Tensor, states: tuple[Tensor, ...],
              moves: tuple[Tensor, ...], arc_ids: tuple[Tensor, Tensor], start: Tensor
              ) -> tuple[Graph, Tensor]:
    """The graph on product states ``keep`` (N,) bool, numbered in level order, with the arcs
    ``arcs`` (M,) bool of ``moves`` (src, dst, index into ``arc_ids`` of a and of b, whose
    entries are arcs of a and of b; -1 = stays)."""
    p, q, level = (t[keep] for t in states)
    order = argsort_stable(level, int(level.max()) + 1 if level.numel() else 1)
    n = int(order.shape[0])
    new_id = torch.full((keep.shape[0],), -1, dtype=torch.long)
    new_id[keep.nonzero().flatten()[order]] = torch.arange(n)
    kept = arcs.nonzero().flatten()
    src, dst, ja, jb = (t.index_select(0, kept) for t in moves)
    ia, ib = arc_ids[0].index_select(0, ja), arc_ids[1].index_select(0, jb)
    level = level[order]
    if n == 0:
        start_m, accept_m = torch.tensor([True]), torch.tensor([False])
        levels = torch.zeros(1, dtype=torch.long)
    else:
        start_m = start[keep][order]
        accept_m = (a.accept[p] & b.accept[q])[order]
        levels = torch.cumsum(torch.cat([level.new_zeros(1), (level[1:] != level[:-1]).long()]), 0)
    has_a, has_b = ia >= 0, ib >= 0
    ia0, ib0 = ia.clamp(min=0), ib.clamp(min=0)
    zero = a.weight.new_zeros(())
    def pick(t: Tensor, i0: Tensor, has: Tensor, other: float | int | Tensor) -> Tensor:
        return torch.where(has, t.index_select(0, i0), other)

    wa = pick(a.weight, ia0, has_a, zero) if a.num_arcs else zero.expand(ia.shape)
    wb = pick(b.weight, ib0, has_b, zero) if b.num_arcs else zero.expand(ib.shape)
    ilab = pick(a.ilabel, ia0, has_a, EPSILON) if a.num_arcs else ia
    olab = pick(b.olabel, ib0, has_b, EPSILON) if b.num_arcs else ib
    payload = None
    if a.payload is not None:
        payload = pick(a.payload, ia0, has_a, -1) if a.num_arcs else ia
    g = Graph(max(n, 1), start_m, accept_m, new_id.index_select(0, src),
              new_id.index_select(0, dst), ilab, olab,
              wa + wb.to(wa.dtype), payload, a.isymbols, b.osymbols,
              checked=False)
    g._cache["levels"] = levels
    g._cache["rlevels"] = levels.max() - levels
    g._cache["level_sorted"] = True
    return g, p[order]
