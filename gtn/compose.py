"""Composition of transducers with a 3-state epsilon filter, vectorised over arcs.

The result is built breadth-first over reachable (state of a, state of b, filter) triples; each
step joins all out-arcs of the frontier's ``a`` states with those of its ``b`` states on the label
with one sort and two ``searchsorted`` calls. The result is trimmed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .compose_dag import compose_dag, dag_compose_ok
from .graph import EPSILON, Graph, argsort_stable
from .ops import _reach, trim


def _csr(g: Graph) -> tuple[Tensor, Tensor]:
    """(order (A,) arcs sorted by src, rowptr (S+1,))."""
    order = torch.argsort(g.src, stable=True)
    counts = torch.bincount(g.src, minlength=g.num_states)
    rowptr = torch.zeros(g.num_states + 1, dtype=torch.long)
    rowptr[1:] = torch.cumsum(counts, 0)
    return order, rowptr


def _out_arcs(order: Tensor, rowptr: Tensor, states: Tensor) -> tuple[Tensor, Tensor]:
    """All out-arcs of ``states`` (F,): (owner index into states (M,), arc id (M,))."""
    counts = rowptr[states + 1] - rowptr[states]
    owner = torch.repeat_interleave(torch.arange(states.shape[0]), counts)
    first = torch.cumsum(counts, 0) - counts
    pos = rowptr[states][owner] + torch.arange(owner.shape[0]) - first[owner]
    return owner, order[pos]


DENSE_JOIN_KEYS = 1 << 16


def _join(ka: Tensor, kb: Tensor) -> tuple[Tensor, Tensor]:
    """Inner join on equal keys: index pairs (ia, ib) into ka, kb (ia ascending, and for one
    ia, ib ascending)."""
    lo_key = min(int(ka.min()), int(kb.min())) if ka.numel() and kb.numel() else 0
    span = max(int(ka.max()), int(kb.max())) - lo_key + 1 if ka.numel() and kb.numel() else 0
    if 0 < span <= DENSE_JOIN_KEYS:  # labels: count and look up instead of binary search
        kb0 = kb - lo_key
        ob = argsort_stable(kb0, span)
        counts = torch.bincount(kb0, minlength=span)
        ka0 = ka - lo_key
        n = counts.index_select(0, ka0)
        lo = (torch.cumsum(counts, 0) - counts).index_select(0, ka0)
    else:
        sb, ob = torch.sort(kb, stable=True)
        lo = torch.searchsorted(sb, ka, side="left")
        n = torch.searchsorted(sb, ka, side="right") - lo
    ia = torch.repeat_interleave(torch.arange(ka.shape[0]), n)
    first = torch.cumsum(n, 0) - n
    ib = ob.index_select(0, (lo - first).index_select(0, ia) + torch.arange(ia.shape[0]))
    return ia, ib


def check_symbols(a: Graph, b: Graph) -> None:
    if a.osymbols is not None and b.isymbols is not None and a.osymbols != b.isymbols:
        raise ValueError("compose: the output symbol table of the first graph differs from the "
                         "input symbol table of the second")


def compose(a: Graph, b: Graph) -> Graph:
    """Compose transducers: paths pair where ``a.olabel`` equals ``b.ilabel``; epsilons on
    either side are handled by a filter so each pair of paths gives exactly one path.
    Output arc weight = ``a.weight[ia] + b.weight[ib]`` (only the moving side's weight for an
    epsilon move), so gradients reach both operands. Payload comes from ``a``. Trimmed."""
    check_symbols(a, b)
    if not (a.has_epsilon("out") and b.has_epsilon("in")):
        return (compose_dag(a, b) if dag_compose_ok(a, b) else _compose_unfiltered(a, b))[0]
    return _compose_filtered(a, b)


def _compose_filtered(a: Graph, b: Graph) -> Graph:
    """The general composition: breadth-first over (state of a, state of b, filter)."""
    Sb = b.num_states
    oa, ra = _csr(a)
    ob, rb = _csr(b)
    L = int(max(int(a.olabel.max()) if a.num_arcs else 0,
                int(b.ilabel.max()) if b.num_arcs else 0)) + 2
    sa0 = a.start.nonzero().flatten()
    sb0 = b.start.nonzero().flatten()
    frontier = ((sa0[:, None] * Sb + sb0[None, :]) * 3).flatten()
    visited = torch.sort(frontier).values
    arcs_src: list[Tensor] = []
    arcs_dst: list[Tensor] = []
    arcs_ia: list[Tensor] = []
    arcs_ib: list[Tensor] = []
    while frontier.numel():
        p, q, f = frontier // 3 // Sb, frontier // 3 % Sb, frontier % 3
        own_a, arc_a = _out_arcs(oa, ra, p)
        own_b, arc_b = _out_arcs(ob, rb, q)
        la, lb = a.olabel[arc_a], b.ilabel[arc_b]
        # matching moves (epsilon:epsilon only from filter state 0)
        ia, ib = _join(own_a * L + la + 1, own_b * L + lb + 1)
        own = own_a[ia]
        keep = (la[ia] != EPSILON) | (f[own] == 0)
        ia, ib, own = ia[keep], ib[keep], own[keep]
        srcs = [frontier[own]]
        dsts = [(a.dst[arc_a[ia]] * Sb + b.dst[arc_b[ib]]) * 3]
        ias, ibs = [arc_a[ia]], [arc_b[ib]]
        # a moves on an output epsilon, b stays (filter states 0, 1 -> 1)
        ea = (la == EPSILON) & (f[own_a] != 2)
        srcs.append(frontier[own_a[ea]])
        dsts.append((a.dst[arc_a[ea]] * Sb + q[own_a[ea]]) * 3 + 1)
        ias.append(arc_a[ea])
        ibs.append(torch.full_like(arc_a[ea], -1))
        # b moves on an input epsilon, a stays (filter states 0, 2 -> 2)
        eb = (lb == EPSILON) & (f[own_b] != 1)
        srcs.append(frontier[own_b[eb]])
        dsts.append((p[own_b[eb]] * Sb + b.dst[arc_b[eb]]) * 3 + 2)
        ias.append(torch.full_like(arc_b[eb], -1))
        ibs.append(arc_b[eb])
        new_dst = torch.cat(dsts)
        arcs_src += srcs
        arcs_dst.append(new_dst)
        arcs_ia += ias
        arcs_ib += ibs
        cand = torch.unique(new_dst)
        frontier = cand[~torch.isin(cand, visited)]
        visited = torch.sort(torch.cat([visited, frontier])).values
    return _build(a, b, visited, torch.cat(arcs_src) if arcs_src else visited[:0],
                  torch.cat(arcs_dst) if arcs_dst else visited[:0],
                  torch.cat(arcs_ia) if arcs_ia else visited[:0],
                  torch.cat(arcs_ib) if arcs_ib else visited[:0])


def compose_many(graphs: list[Graph], b: Graph) -> list[Graph]:
    """``[compose(g, b) for g in graphs]`` in one vectorised pass over their disjoint union
    (when no epsilon filter is needed; else one by one)."""
    if len(graphs) <= 1:  # the union and the split would only add overhead
        return [compose(g, b) for g in graphs]
    for g in graphs:
        check_symbols(g, b)
    u = _union_with_levels(graphs)  # one epsilon check on it instead of one per graph
    if b.has_epsilon("in") and u.has_epsilon("out"):
        return [compose(g, b) for g in graphs]
    if dag_compose_ok(u, b):
        c, p = compose_dag(u, b, owner=_member_of_state(graphs))
        return _split_by_owner(c, p, graphs, lambda i: compose(graphs[i], b), grouped=True)
    c, p = _compose_unfiltered(u, b)
    return _split_by_owner(c, p, graphs, lambda i: compose(graphs[i], b))


def compose_pairs(first: list[Graph], second: list[Graph]) -> list[Graph]:
    """``[compose(a, b) for a, b in zip(first, second)]``; when every ``a`` is acyclic and no
    pair needs the epsilon filter, in one vectorised pass over the disjoint unions (each
    state's graph index is part of the join key, so only the i-th graphs pair up)."""
    if len(first) != len(second):
        raise ValueError(f"compose_pairs: {len(first)} first graphs but {len(second)} second")
    for a, b in zip(first, second):
        check_symbols(a, b)
    from .ops import union
    pairs_ok = len(first) > 1 and all(a.is_acyclic for a in first) and not any(
        a.has_epsilon("out") and b.has_epsilon("in")
        for a, b in zip(first, second))
    ua = _union_with_levels(first) if pairs_ok else None
    ub = union(second) if pairs_ok else None
    if ua is None or ub is None or not dag_compose_ok(ua, ub):
        return [compose(a, b) for a, b in zip(first, second)]
    groups = (_member_of_state(first), _member_of_state(second))
    c, p = compose_dag(ua, ub, groups, owner=groups[0])
    return _split_by_owner(c, p, first, lambda i: compose(first[i], second[i]), grouped=True)


def _member_of_state(graphs: list[Graph]) -> Tensor:
    """(S,) the index of the graph each state of their disjoint union comes from."""
    return torch.repeat_interleave(torch.arange(len(graphs)),
                                   torch.tensor([g.num_states for g in graphs]))


def _union_with_levels(graphs: list[Graph]) -> Graph:
    """The disjoint union, with the graphs' cached levels when they are all acyclic."""
    from .ops import union
    u = union(graphs)
    if all(g.is_acyclic for g in graphs):
        u._cache["levels"] = torch.cat([g.state_levels() for g in graphs])
    return u


def _split_by_owner(c: Graph, p: Tensor, graphs: list[Graph], alone: Callable[[int], Graph],
                    grouped: bool = False) -> list[Graph]:
    """Cut the composition ``c`` of the union of ``graphs`` (``p``: the union state behind
    each of its states) into one graph per member; a member with no state left is composed
    ``alone`` (which gives its correct empty result). ``grouped``: ``c``'s states and arcs
    already come grouped by member, each member's states in level order."""
    sizes = torch.tensor([g.num_states for g in graphs])
    owner = torch.bucketize(p, torch.cumsum(sizes, 0), right=True)       # graph of each state
    # grouping keeps the level order within each graph
    level_sorted = grouped or c._cache.get("level_sorted", False)
    if not grouped and owner.shape[0] == c.num_states:
        c = _group_states(c, owner)
        owner = torch.sort(owner).values
    counts = torch.bincount(owner, minlength=len(graphs))
    firsts = torch.cumsum(counts, 0) - counts
    arc_owner = owner.index_select(0, c.src)
    order = None if grouped else argsort_stable(arc_owner, len(graphs))
    arc_counts = torch.bincount(arc_owner, minlength=len(graphs)).tolist()
    local = firsts.index_select(0, arc_owner)   # member state ids, all at once
    cols = (c.src - local, c.dst - local, c.ilabel, c.olabel, c.weight)
    parts = [torch.split(t if order is None else t.index_select(0, order), arc_counts)
             for t in cols]
    pay = None if c.payload is None else torch.split(
        c.payload if order is None else c.payload.index_select(0, order), arc_counts)
    out: list[Graph] = []
    for i, (n, f) in enumerate(zip(counts.tolist(), firsts.tolist())):
        if n == 0:
            out.append(alone(i))
            continue
        g = Graph(n, c.start[f:f + n], c.accept[f:f + n], parts[0][i], parts[1][i],
                  parts[2][i], parts[3][i], parts[4][i], None if pay is None else pay[i],
                  c.isymbols, c.osymbols, checked=False)
        for key in ("levels", "rlevels"):
            if key in c._cache:
                g._cache[key] = c._cache[key][f:f + n]
        if level_sorted:
            g._cache["level_sorted"] = True
        out.append(g)
    return out


def _group_states(c: Graph, owner: Tensor) -> Graph:
    """``c`` with its states stably reordered by ``owner`` (S,) (cached levels kept)."""
    perm = argsort_stable(owner, int(owner.max()) + 1 if owner.numel() else 1)
    rank = torch.empty_like(perm)
    rank[perm] = torch.arange(perm.shape[0])
    g = Graph(c.num_states, c.start[perm], c.accept[perm], rank.index_select(0, c.src),
              rank.index_select(0, c.dst), c.ilabel, c.olabel, c.weight, c.payload, c.isymbols,
              c.osymbols, checked=False)
    for key in ("levels", "rlevels"):
        if key in c._cache:
            g._cache[key] = c._cache[key][perm]
    return g


def _compose_unfiltered(a: Graph, b: Graph) -> tuple[Graph, Tensor]:
    """Composition when only one side has epsilons (no filter needed): the matching arcs of
    the full product in one join, the epsilon moves of one side paired with every state of the
    other, then trimmed. Every arc advances ``a`` unless ``b`` has input epsilons, in which case
    ``a``'s topological levels are also levels of the result and are cached on it.
    Returns the graph and (S,) the state of ``a`` in each of its states."""
    Sa, Sb = a.num_states, b.num_states
    ea = (a.olabel == EPSILON).nonzero().flatten()
    eb = (b.ilabel == EPSILON).nonzero().flatten()
    ra = (a.olabel != EPSILON).nonzero().flatten()
    rb = (b.ilabel != EPSILON).nonzero().flatten()
    ja, jb = _join(a.olabel[ra], b.ilabel[rb])
    ia, ib = ra[ja], rb[jb]
    qa = torch.arange(Sb).repeat(ea.shape[0])
    pb = torch.arange(Sa).repeat(eb.shape[0])
    ea_r = ea.repeat_interleave(Sb)
    eb_r = eb.repeat_interleave(Sa)
    src = torch.cat([a.src[ia] * Sb + b.src[ib], a.src[ea_r] * Sb + qa, pb * Sb + b.src[eb_r]])
    dst = torch.cat([a.dst[ia] * Sb + b.dst[ib], a.dst[ea_r] * Sb + qa, pb * Sb + b.dst[eb_r]])
    arc_a = torch.cat([ia, ea_r, torch.full_like(eb_r, -1)])
    arc_b = torch.cat([ib, torch.full_like(ea_r, -1), eb_r])
    starts = (a.start.nonzero() * Sb + b.start.nonzero().flatten()[None, :]).flatten()
    if Sa * Sb <= 4 * src.shape[0] + 100_000:   # dense product state ids
        keys, inv = torch.arange(Sa * Sb), torch.cat([starts, src, dst])
    else:
        keys, inv = torch.unique(torch.cat([starts, src, dst]), return_inverse=True)
    n0, m = starts.shape[0], src.shape[0]
    p, q = keys // Sb, keys % Sb
    start = torch.zeros(keys.shape[0], dtype=torch.bool)
    start[inv[:n0]] = True
    accept = a.accept[p] & b.accept[q]
    s_id, d_id = inv[n0:n0 + m], inv[n0 + m:]
    shallow = eb.numel() == 0 and a.is_acyclic and int(a.state_levels().max()) < 64
    keep = _reach(keys.shape[0], s_id, d_id, start, shallow) & \
        _reach(keys.shape[0], d_id, s_id, accept, shallow)
    arcs = keep[s_id] & keep[d_id]
    g = _assemble(a, b, keep, start[keep], accept[keep], s_id[arcs], d_id[arcs], arc_a[arcs],
                  arc_b[arcs])
    if eb.numel() == 0 and a.is_acyclic:
        g._cache["levels"] = a.state_levels()[p[keep]] if g.num_states == int(keep.sum()) \
            else torch.zeros(g.num_states, dtype=torch.long)
        g._cache["rlevels"] = a.state_levels(reverse=True)[p[keep]] \
            if g.num_states == int(keep.sum()) else torch.zeros(g.num_states, dtype=torch.long)
    return g, p[keep]


def _product_arcs(a: Graph, b: Graph, ia: Tensor, ib: Tensor
                  ) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """Labels, weight and payload of composed arcs made of ``a``'s arcs ``ia`` and ``b``'s
    arcs ``ib`` (-1: that side stays put on an epsilon and adds nothing)."""
    has_a, has_b = ia >= 0, ib >= 0
    ia0, ib0 = ia.clamp(min=0), ib.clamp(min=0)
    zero = a.weight.new_zeros(())
    wa = torch.where(has_a, a.weight[ia0], zero) if a.num_arcs else zero.expand(ia.shape)
    wb = torch.where(has_b, b.weight[ib0], zero) if b.num_arcs else zero.expand(ib.shape)
    ilab = torch.where(has_a, a.ilabel[ia0] if a.num_arcs else ia, EPSILON)
    olab = torch.where(has_b, b.olabel[ib0] if b.num_arcs else ib, EPSILON)
    payload = None
    if a.payload is not None:
        payload = torch.where(has_a, a.payload[ia0] if a.num_arcs else ia, -1)
    return ilab, olab, wa + wb.to(wa.dtype), payload


def _assemble(a: Graph, b: Graph, keep: Tensor, start: Tensor, accept: Tensor, src: Tensor,
              dst: Tensor, ia: Tensor, ib: Tensor) -> Graph:
    """The composed graph on states ``keep`` (n,) bool with arcs from ``a``'s arcs ``ia`` and
    ``b``'s arcs ``ib`` (-1: that side stays on an epsilon); ``src``/``dst`` index all n."""
    new_id = torch.cumsum(keep.long(), 0) - 1
    n = int(keep.sum())
    if n == 0:
        start, accept = torch.tensor([True]), torch.tensor([False])
    ilab, olab, weight, payload = _product_arcs(a, b, ia, ib)
    return Graph(max(n, 1), start, accept, new_id[src], new_id[dst], ilab, olab, weight,
                 payload, a.isymbols, b.osymbols, checked=False)


def _build(a: Graph, b: Graph, keys: Tensor, src: Tensor, dst: Tensor, ia: Tensor,
           ib: Tensor) -> Graph:
    Sb = b.num_states
    p, q = keys // 3 // Sb, keys // 3 % Sb
    start = a.start[p] & b.start[q] & (keys % 3 == 0)
    accept = a.accept[p] & b.accept[q]
    ilab, olab, weight, payload = _product_arcs(a, b, ia, ib)
    g = Graph(int(keys.shape[0]), start, accept, torch.searchsorted(keys, src),
              torch.searchsorted(keys, dst), ilab, olab, weight, payload,
              a.isymbols, b.osymbols, checked=False)
    return trim(g)


def intersect(a: Graph, b: Graph) -> Graph:
    """Intersection of two acceptors (matched on ``ilabel``); transducers are first projected
    to their input side."""
    from .ops import project_input
    if a.isymbols is not None and b.isymbols is not None and a.isymbols != b.isymbols:
        raise ValueError("intersect: the graphs' input symbol tables differ")
    return compose(project_input(a), project_input(b))
