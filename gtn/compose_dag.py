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
dynamic programs of :mod:`gtn.shortest` need no topological sort. Where the compiled kernels are
in use (:func:`gtn.jit.use`), all of it runs as one compiled pass with the same result.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from . import jit
from .graph import EPSILON, Graph


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
    a_eps = a.has_epsilon("out")
    b_eps = b.has_epsilon("in")
    if a_eps and b_eps:
        return False
    return (a.src.device.type == "cpu" and a.is_acyclic
            and (not b_eps or input_epsilon_levels(b) is not None))


def _argsort(key: np.ndarray, bound: int) -> np.ndarray:
    """Stable argsort of ``key`` (n,) int with values in ``0..bound - 1`` (radix for < 2**16)."""
    return np.argsort(key.astype(np.uint16) if bound <= 1 << 16 else key, kind="stable")


def _join(ka: np.ndarray, kb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inner join on equal keys: (n (len(ka),) matches of each ``ka`` entry, ib (M,) the
    matching ``kb`` entries, ascending for one ``ka`` entry). The ``ka`` side of match ``m``
    is implicit, ``np.repeat(arange, n)``, so ``ka``-side columns are spread with ``np.repeat``
    (a copy) rather than gathered."""
    if not (ka.size and kb.size):
        return np.zeros(ka.size, dtype=np.int64), np.zeros(0, dtype=np.int64)
    lo_key = min(int(ka.min()), int(kb.min()))
    span = max(int(ka.max()), int(kb.max())) - lo_key + 1
    if span <= DENSE_JOIN_KEYS:  # labels: count and look up instead of binary search
        kb0 = kb - lo_key
        ob = _argsort(kb0, span)
        counts = np.bincount(kb0, minlength=span)
        firsts = np.cumsum(counts) - counts
        n, lo = counts[ka - lo_key], firsts[ka - lo_key]
    else:
        ob = np.argsort(kb, kind="stable")
        lo = np.searchsorted(kb[ob], ka, side="left")
        n = np.searchsorted(kb[ob], ka, side="right") - lo
    m = int(n.sum())
    return n, ob[np.repeat(lo - (np.cumsum(n) - n), n) + np.arange(m)]


DENSE_JOIN_KEYS = 1 << 16


def _side(g: Graph, key: np.ndarray, loop_keys: list[int], group: np.ndarray | None,
          n_groups: int, shift: int) -> tuple[np.ndarray, ...]:
    """(key, src, dst, arc id, loop number) of ``g``'s arcs (loop number -1) followed by one
    epsilon self-loop per state for each of ``loop_keys`` (arc id ``g.num_arcs``: a padding
    arc that adds nothing). With ``group`` (S,), the key also holds the source state's group,
    so that only arcs of the same group match."""
    S, A, L = g.num_states, g.num_arcs, len(loop_keys)
    loop = np.tile(np.arange(S), L)
    src = np.concatenate([g.src.numpy(), loop])
    dst = np.concatenate([g.dst.numpy(), loop])
    key = np.concatenate([key, np.repeat(np.array(loop_keys, dtype=np.int64), S)])
    arc = np.concatenate([np.arange(A), np.full(S * L, A)])
    sub = np.concatenate([np.full(A, -1), np.repeat(np.arange(L), S)])
    if group is not None:
        key = (key + shift) * n_groups + group[src]
    return key, src, dst, arc, sub


def _level_groups(src: np.ndarray, dst: np.ndarray, bounds: list[int]
                  ) -> list[tuple[np.ndarray, np.ndarray]]:
    """The non-empty arc groups ``bounds[i]:bounds[i + 1]`` as (src, dst) views, cut once
    for both sweeps (a slice costs about a third of a sweep step)."""
    return [(src[lo:hi], dst[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:]) if lo != hi]


def _level_reach(groups: list[tuple[np.ndarray, np.ndarray]], init: np.ndarray,
                 reverse: bool) -> np.ndarray:
    """Reachability from ``init`` (forward) or co-reachability to it (``reverse``) along arc
    groups in processing order (:func:`_level_groups`)."""
    seen: np.ndarray = init.copy()
    if reverse:
        for s, d in reversed(groups):
            seen[s[seen[d]]] = True
    else:
        for s, d in groups:
            seen[d[seen[s]]] = True
    return seen


def compose_dag(a: Graph, b: Graph, groups: tuple[Tensor, Tensor] | None = None,
                owner: Tensor | None = None) -> tuple[Graph, Tensor]:
    """Trimmed composition for :func:`dag_compose_ok` operands, with levels cached.
    Returns the graph and (S,) the state of ``a`` in each of its states.

    ``groups`` ((Sa,), (Sb,) long) pairs only states of the same group: given disjoint unions
    of graphs, it composes the i-th graph of ``a`` with the i-th of ``b``, all in one pass.
    ``owner`` (Sa,) long, nondecreasing: the member of a disjoint union ``a`` each state
    belongs to; the result's states then come ordered by (owner, level) and its arcs grouped
    by owner, so that it can be cut into one graph per member without reordering.

    Product arcs come out of the join already grouped in an order that is safe for the
    reachability sweeps, so no product-sized sort is needed: ``a``'s side is sorted by
    ``level_a(src) * K + sub`` where ``sub`` is ``K - 1`` for ``a``'s arcs (they all advance
    ``a``) and ``e`` for the self-loop that stays on ``a`` while ``b`` takes an input epsilon
    from a state of epsilon level ``e``: those loops join only with such arcs of ``b``, whose
    key carries ``e``. Within one level of ``a`` the epsilon moves then run level by level
    before the arcs that leave it (and after them, backwards)."""
    a_eps = a.has_epsilon("out")
    lev_a = a.state_levels().numpy()
    lev_e_t = input_epsilon_levels(b)
    assert lev_e_t is not None
    lev_e = lev_e_t.numpy()
    K = int(lev_e.max()) + 1 if b.num_states else 1
    Sa, Sb = a.num_states, b.num_states
    ga, gb = (groups[0].numpy(), groups[1].numpy()) if groups is not None else (None, None)
    own = None if owner is None else owner.numpy()
    if jit.use((int(lev_a.max()) + 1) * K if Sa else 1):
        out = jit.compose(a, b, lev_e, ga, gb, own, a_eps, MAX_IDS)
        if out is not None:
            arcs, ends, levels, p_of = out
            return _graph(a, b, ends, arcs, levels, owner is None), torch.from_numpy(p_of)
    n_groups = int(max(int(ga.max()), int(gb.max()))) + 1 if ga is not None and gb is not None \
        else 1
    b_key = b.ilabel.numpy()
    if K > 1:  # b's input epsilons carry the epsilon level of their source
        b_key = np.where(b_key == EPSILON, EPSILON - lev_e[b.src.numpy()], b_key)
    a_loops = [EPSILON - e for e in range(K - 1)]
    ka, sa, da, ida, sub = _side(a, a.olabel.numpy(), a_loops, ga, n_groups, K)
    kb, sb, db, idb, _ = _side(b, b_key, [EPSILON] if a_eps else [], gb, n_groups, K)
    gk = lev_a[sa] * K + np.where(sub < 0, K - 1, sub)
    n_lev = (int(lev_a.max()) + 1) * K if Sa else 1
    order = _argsort(gk, n_lev)
    ka, sa, da, ida, gk = (t[order] for t in (ka, sa, da, ida, gk))
    n, jb = _join(ka, kb)
    # Product state id p * W + q, with q local to its group when grouped: only pairs within
    # a group exist, so the id space is Sa x (largest group of b), not Sa x Sb.
    if gb is not None:
        b_size = np.bincount(gb, minlength=n_groups)
        b_first = np.cumsum(b_size) - b_size
        W, q_first = int(b_size.max()), b_first[gb]
    else:
        W, q_first = Sb, np.zeros(Sb, dtype=np.int64)
    src = np.repeat(sa * W, n) + (sb - q_first[sb])[jb]
    dst = np.repeat(da * W, n) + (db - q_first[db])[jb]
    ends = np.concatenate([[0], np.cumsum(n)])
    bounds = ends[np.concatenate([[0], np.cumsum(np.bincount(gk, minlength=n_lev))])].tolist()
    sa0, sb0 = np.flatnonzero(a.start.numpy()), np.flatnonzero(b.start.numpy())
    starts = (sa0[:, None] * W + (sb0 - q_first[sb0])[None, :])
    if ga is not None and gb is not None:
        starts = starts[ga[sa0][:, None] == gb[sb0][None, :]]
    starts = starts.reshape(-1)
    if _dense_ids(Sa * W, src.shape[0]):
        keys, s_id, d_id, st_id = None, src, dst, starts
    else:
        keys, inv = np.unique(np.concatenate([starts, src, dst]), return_inverse=True)
        n0, m = starts.shape[0], src.shape[0]
        st_id, s_id, d_id = inv[:n0], inv[n0:n0 + m], inv[n0 + m:]
    N = Sa * W if keys is None else int(keys.shape[0])
    p_all, q_all = _product_states(np.arange(N) if keys is None else keys, W, ga, gb)
    init = np.zeros(N, dtype=bool)
    init[st_id] = True
    final = a.accept.numpy()[p_all] & b.accept.numpy()[np.maximum(q_all, 0)] & (q_all >= 0)
    sweep = _level_groups(s_id, d_id, bounds)
    fwd, bwd = _level_reach(sweep, init, False), _level_reach(sweep, final, True)
    kept = np.flatnonzero(fwd[s_id] & bwd[d_id])
    if own is not None:  # arcs grouped by member, each member's in sweep order
        n_own = int(own[-1]) + 1 if own.size else 1
        kept = kept[_argsort(np.repeat(own[sa], n)[kept], n_own)]
    ia = np.repeat(ida, n)[kept]
    return _assemble(a, b, fwd & bwd, init, (p_all, q_all, lev_a, lev_e, K, own),
                     (s_id[kept], d_id[kept], ia, idb[jb[kept]]))


# The compiled route's largest tables (product ids: states of a times the largest group of b;
# join keys: labels times groups): it keeps arrays over the whole range.
MAX_IDS = 1 << 22


def _dense_ids(n_ids: int, n_arcs: int) -> bool:
    """Whether product states keep their ids ``p * W + q`` (arrays over the whole id space)
    rather than being renumbered by ``np.unique`` (a sort of all arc ends)."""
    return n_ids <= 4 * n_arcs + 100_000


def _product_states(ids: np.ndarray, W: int, ga: np.ndarray | None, gb: np.ndarray | None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(p, q) of product ids ``p * W + local q``; q = -1 where grouped local ids run past
    the group's size (no such state)."""
    p, q = ids // W, ids % W
    if ga is not None and gb is not None:
        b_size = np.bincount(gb, minlength=int(ga.max()) + 1)
        g_of = ga[p]
        q = np.where(q < b_size[g_of], q + (np.cumsum(b_size) - b_size)[g_of], -1)
    return p, q


def _pick(t: Tensor, idx: np.ndarray, fill: float | int) -> Tensor:
    """``t[idx]`` where ``idx == len(t)`` (a padding arc) gives ``fill``."""
    i = torch.from_numpy(idx)
    if int(idx.max(initial=-1)) >= t.shape[0]:
        t = torch.cat([t, t.new_full((1,), fill)])
    return t.index_select(0, i)


def _assemble(a: Graph, b: Graph, keep: np.ndarray, init: np.ndarray,
              states: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int,
                            np.ndarray | None],
              arcs: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
              ) -> tuple[Graph, Tensor]:
    """The graph on product states ``keep`` (N,) bool, numbered in level order (by owner of
    their state of a first, if given), with the ``arcs`` (src, dst product ids, arc of a, arc
    of b; an arc id one past the end stays)."""
    p_all, q_all, lev_a, lev_e, K, own = states
    kid = np.flatnonzero(keep)
    p, q = p_all[kid], q_all[kid]
    level = lev_a[p] * K + lev_e[q]
    n_lev = int(level.max()) + 1 if level.size else 1
    order = _argsort(level if own is None else own[p] * n_lev + level,
                     n_lev * (1 if own is None else int(own[-1]) + 1))
    n = int(order.shape[0])
    new_id = np.full(keep.shape[0], -1, dtype=np.int64)
    new_id[kid[order]] = np.arange(n)
    src, dst, ia, ib = arcs
    ends = np.stack([init[kid[order]], (a.accept.numpy()[p] & b.accept.numpy()[q])[order]])
    g = _graph(a, b, ends, np.stack([new_id[src], new_id[dst], ia, ib]),
               _dense_rank(level)[order], own is None)
    return g, torch.from_numpy(p[order])


def _graph(a: Graph, b: Graph, ends: np.ndarray, arcs: np.ndarray, levels: np.ndarray,
           level_sorted: bool) -> Graph:
    """The composition with ``ends`` (2, S) start and accept flags, ``arcs`` (4, A) source,
    destination, arc of a and arc of b (one past the end: the side that stays), and
    optionally (7, A) their input label, output label and payload too, states' ``levels``
    (S,) cached; no state at all gives one that neither starts nor accepts."""
    if ends.shape[1] == 0:
        ends, levels = np.array([[True], [False]]), np.zeros(1, dtype=np.int64)
    src, dst, ia, ib = arcs[:4]
    weight = _pick(a.weight, ia, 0.0) + _pick(b.weight, ib, 0.0).to(a.weight.dtype)
    if arcs.shape[0] == 7:
        ilabel, olabel = torch.from_numpy(arcs[4]), torch.from_numpy(arcs[5])
        payload = None if a.payload is None else torch.from_numpy(arcs[6])
    else:
        ilabel, olabel = _pick(a.ilabel, ia, EPSILON), _pick(b.olabel, ib, EPSILON)
        payload = None if a.payload is None else _pick(a.payload, ia, -1)
    g = Graph(ends.shape[1], torch.from_numpy(ends[0]), torch.from_numpy(ends[1]),
              torch.from_numpy(src), torch.from_numpy(dst), ilabel, olabel, weight, payload,
              a.isymbols, b.osymbols, checked=False)
    lev = torch.from_numpy(levels)
    g._cache["levels"] = lev
    g._cache["rlevels"] = lev.max() - lev
    g._cache["level_sorted"] = level_sorted
    return g


def _dense_rank(x: np.ndarray) -> np.ndarray:
    """(n,) the rank of each value of ``x`` among its distinct values (levels with no state
    left are skipped)."""
    present = np.zeros(int(x.max(initial=-1)) + 1, dtype=np.int64)
    present[x] = 1
    rank: np.ndarray = (np.cumsum(present) - 1)[x]
    return rank
