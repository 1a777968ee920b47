"""Composition of transducers with a 3-state epsilon filter, vectorised over arcs.

The result is built breadth-first over reachable (state of a, state of b, filter) triples; each
step joins all out-arcs of the frontier's ``a`` states with those of its ``b`` states on the label
with one sort and two ``searchsorted`` calls. The result is trimmed.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .graph import EPSILON, Graph
from .ops import trim


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


def _join(ka: Tensor, kb: Tensor) -> tuple[Tensor, Tensor]:
    """Inner join on equal keys: index pairs (ia, ib) into ka, kb."""
    sb, ob = torch.sort(kb, stable=True)
    lo = torch.searchsorted(sb, ka, side="left")
    hi = torch.searchsorted(sb, ka, side="right")
    n = hi - lo
    ia = torch.repeat_interleave(torch.arange(ka.shape[0]), n)
    first = torch.cumsum(n, 0) - n
    ib = ob[lo[ia] + torch.arange(ia.shape[0]) - first[ia]]
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


def _build(a: Graph, b: Graph, keys: Tensor, src: Tensor, dst: Tensor, ia: Tensor,
           ib: Tensor) -> Graph:
    Sb = b.num_states
    p, q = keys // 3 // Sb, keys // 3 % Sb
    start = a.start[p] & b.start[q] & (keys % 3 == 0)
    accept = a.accept[p] & b.accept[q]
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
    g = Graph(int(keys.shape[0]), start, accept, torch.searchsorted(keys, src),
              torch.searchsorted(keys, dst), ilab, olab, wa + wb.to(wa.dtype), payload,
              a.isymbols, b.osymbols)
    return trim(g)


def intersect(a: Graph, b: Graph) -> Graph:
    """Intersection of two acceptors (matched on ``ilabel``); transducers are first projected
    to their input side."""
    from .ops import project_input
    if a.isymbols is not None and b.isymbols is not None and a.isymbols != b.isymbols:
        raise ValueError("intersect: the graphs' input symbol tables differ")
    return compose(project_input(a), project_input(b))
