"""Structural operations returning new graphs: trim, union, concat, closure, projections,
epsilon removal. (Composition lives in :mod:`gtn.compose`.)"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .graph import EPSILON, Graph, SymbolTable
from .semiring import LOG, MaxSemiring, Semiring


def _reach(num_states: int, src: Tensor, dst: Tensor, init: Tensor,
           shallow: bool = False) -> Tensor:
    """(S,) bool: states reachable from ``init`` (S,) bool along arcs src -> dst.
    Small or ``shallow`` (few BFS steps) graphs sweep all arcs per step (no sort); others
    expand a CSR frontier."""
    if src.device.type == "cpu" and (shallow or src.shape[0] <= 50_000):
        return torch.from_numpy(_sweep_reach(num_states, src.numpy(), dst.numpy(),
                                             init.numpy()))
    if shallow or src.shape[0] <= 50_000:
        seen, frontier_mask = init.clone(), init
        while True:
            mark = torch.zeros(num_states, dtype=torch.bool)
            mark[dst[frontier_mask[src]]] = True
            mark &= ~seen
            if not bool(mark.any()):
                return seen
            seen |= mark
            frontier_mask = mark
    order = torch.argsort(src, stable=True)
    rowptr = torch.zeros(num_states + 1, dtype=torch.long)
    rowptr[1:] = torch.cumsum(torch.bincount(src, minlength=num_states), 0)
    sorted_dst = dst[order]
    seen = init.clone()
    frontier = init.nonzero().flatten()
    while frontier.numel():
        counts = rowptr[frontier + 1] - rowptr[frontier]
        owner = torch.repeat_interleave(torch.arange(frontier.shape[0]), counts)
        first = torch.cumsum(counts, 0) - counts
        pos = rowptr[frontier][owner] + torch.arange(owner.shape[0]) - first[owner]
        mark = torch.zeros(num_states, dtype=torch.bool)
        mark[sorted_dst[pos]] = True
        mark &= ~seen
        seen |= mark
        frontier = mark.nonzero().flatten()
    return seen


def _sweep_reach(num_states: int, src: np.ndarray, dst: np.ndarray, init: np.ndarray
                 ) -> np.ndarray:
    """The small-graph sweep of :func:`_reach` in numpy: a sweep is a handful of tiny
    operations, each several times cheaper than torch's dispatch."""
    seen: np.ndarray = init.copy()
    frontier = init
    while True:
        mark = np.zeros(num_states, dtype=bool)
        mark[dst[frontier[src]]] = True
        mark &= ~seen
        if not mark.any():
            return seen
        seen |= mark
        frontier = mark


def keep_states(g: Graph, keep: Tensor, keep_arcs: Tensor | None = None) -> Graph:
    """Subgraph on states ``keep`` (S,) bool and arcs ``keep_arcs`` (A,) bool between them."""
    new_id = torch.cumsum(keep.long(), 0) - 1
    arcs = keep[g.src] & keep[g.dst]
    if keep_arcs is not None:
        arcs &= keep_arcs
    n = int(keep.sum())
    start, accept = g.start[keep], g.accept[keep]
    if n == 0:  # nothing survives: one non-accepting start state
        n, start, accept = 1, torch.tensor([True]), torch.tensor([False])
    return Graph(n, start, accept, new_id[g.src[arcs]], new_id[g.dst[arcs]], g.ilabel[arcs],
                 g.olabel[arcs], g.weight[arcs],
                 None if g.payload is None else g.payload[arcs], g.isymbols, g.osymbols,
                 checked=False)


def trim(g: Graph) -> Graph:
    """Keep only states reachable from a start state and co-reachable to an accept state
    (dead-end pruning). A graph that accepts nothing becomes one non-accepting state."""
    fwd = _reach(g.num_states, g.src, g.dst, g.start)
    bwd = _reach(g.num_states, g.dst, g.src, g.accept)
    keep = fwd & bwd
    if bool(keep.all()):
        return g
    return keep_states(g, keep)


def _same_tables(graphs: Sequence[Graph], what: str) -> tuple[SymbolTable | None,
                                                             SymbolTable | None]:
    for attr in ("isymbols", "osymbols"):
        tables = {getattr(g, attr) for g in graphs} - {None}
        if len(tables) > 1:
            raise ValueError(f"{what}: the graphs' {attr} tables disagree")
    it = next((g.isymbols for g in graphs if g.isymbols is not None), None)
    ot = next((g.osymbols for g in graphs if g.osymbols is not None), None)
    return it, ot


@dataclass(frozen=True)
class _Stacked:
    """The arcs of several graphs side by side, states renumbered (A,); ``offsets`` (B,) the
    first state of each graph."""

    src: Tensor
    dst: Tensor
    ilabel: Tensor
    olabel: Tensor
    weight: Tensor
    offsets: Tensor
    payload: Tensor | None


def _stack(graphs: Sequence[Graph], extra_states: int = 0) -> _Stacked:
    sizes = torch.tensor([g.num_states for g in graphs])
    offs = torch.cumsum(sizes, 0) - sizes + extra_states
    arc_offs = torch.repeat_interleave(offs, torch.tensor([g.num_arcs for g in graphs]))
    payload = None
    if any(g.payload is not None for g in graphs):
        payload = torch.cat([g.payload_or_none() for g in graphs])
    dtype = torch.promote_types(graphs[0].weight.dtype, graphs[-1].weight.dtype)
    return _Stacked(src=torch.cat([g.src for g in graphs]) + arc_offs,
                    dst=torch.cat([g.dst for g in graphs]) + arc_offs,
                    ilabel=torch.cat([g.ilabel for g in graphs]),
                    olabel=torch.cat([g.olabel for g in graphs]),
                    weight=torch.cat([g.weight.to(dtype) for g in graphs]),
                    offsets=offs, payload=payload)


def _with_eps_arcs(parts: _Stacked, src: Tensor, dst: Tensor) -> dict[str, Tensor]:
    n = int(src.shape[0])
    eps = torch.full((n,), EPSILON, dtype=torch.long)
    out: dict[str, Tensor] = {}
    for k, t, extra in (("src", parts.src, src), ("dst", parts.dst, dst),
                        ("ilabel", parts.ilabel, eps), ("olabel", parts.olabel, eps)):
        out[k] = torch.cat([t, extra])
    w = parts.weight
    out["weight"] = torch.cat([w, w.new_zeros(n)])
    p = parts.payload
    if p is not None:
        out["payload"] = torch.cat([p, torch.full((n,), -1, dtype=torch.long)])
    return out


def union(graphs: Sequence[Graph]) -> Graph:
    """Disjoint union: accepts what any graph accepts, with the same path scores."""
    if not graphs:
        raise ValueError("union of an empty list")
    it, ot = _same_tables(graphs, "union")
    p = _stack(graphs)
    return Graph(sum(g.num_states for g in graphs), torch.cat([g.start for g in graphs]),
                 torch.cat([g.accept for g in graphs]), p.src, p.dst, p.ilabel, p.olabel,
                 p.weight, p.payload, it, ot, checked=False)


def concat(graphs: Sequence[Graph]) -> Graph:
    """Concatenation g0 g1 ...: epsilon arcs (weight 0) join each graph's accept states to the
    next graph's start states."""
    if not graphs:
        raise ValueError("concat of an empty list")
    it, ot = _same_tables(graphs, "concat")
    p = _stack(graphs)
    offs = p.offsets
    src: list[Tensor] = []
    dst: list[Tensor] = []
    for i in range(len(graphs) - 1):
        a = graphs[i].accept.nonzero().flatten() + offs[i]
        s = graphs[i + 1].start.nonzero().flatten() + offs[i + 1]
        src.append(a.repeat_interleave(s.shape[0]))
        dst.append(s.repeat(a.shape[0]))
    e = torch.zeros(0, dtype=torch.long)
    arcs = _with_eps_arcs(p, torch.cat(src) if src else e, torch.cat(dst) if dst else e)
    S = sum(g.num_states for g in graphs)
    start = torch.zeros(S, dtype=torch.bool)
    start[: graphs[0].num_states] = graphs[0].start
    accept = torch.zeros(S, dtype=torch.bool)
    accept[S - graphs[-1].num_states:] = graphs[-1].accept
    return Graph(S, start, accept, arcs["src"], arcs["dst"], arcs["ilabel"], arcs["olabel"],
                 arcs["weight"], arcs.get("payload"), it, ot)


def closure(g: Graph) -> Graph:
    """Kleene star: a new start state 0 that also accepts, an epsilon arc from it to each old
    start state, and an epsilon arc from each old accept state back to it. Cyclic."""
    p = _stack([g], extra_states=1)
    starts = g.start.nonzero().flatten() + 1
    accepts = g.accept.nonzero().flatten() + 1
    src = torch.cat([torch.zeros_like(starts), accepts])
    dst = torch.cat([starts, torch.zeros_like(accepts)])
    arcs = _with_eps_arcs(p, src, dst)
    start = torch.zeros(g.num_states + 1, dtype=torch.bool)
    start[0] = True
    return Graph(g.num_states + 1, start, start.clone(), arcs["src"], arcs["dst"],
                 arcs["ilabel"], arcs["olabel"], arcs["weight"], arcs.get("payload"),
                 g.isymbols, g.osymbols)


def project_input(g: Graph) -> Graph:
    """The acceptor of input labels (olabel := ilabel)."""
    return g.replace(olabel=g.ilabel, osymbols=g.isymbols)


def project_output(g: Graph) -> Graph:
    """The acceptor of output labels (ilabel := olabel)."""
    return g.replace(ilabel=g.olabel, isymbols=g.osymbols)


def invert(g: Graph) -> Graph:
    """The inverse transducer: input and output labels (and symbol tables) swapped."""
    return g.replace(ilabel=g.olabel, olabel=g.ilabel, isymbols=g.osymbols, osymbols=g.isymbols)


def _eps_closure(g: Graph, eps: Tensor, semiring: Semiring) -> tuple[Tensor, Tensor]:
    """Dense epsilon distances among the states V touching epsilon arcs.
    Returns (V (n,) state ids, D (n, n) with D[i, j] = plus over eps paths V[i] -> V[j])."""
    V = torch.unique(torch.cat([g.src[eps], g.dst[eps]]))
    local = torch.full((g.num_states,), -1, dtype=torch.long)
    local[V] = torch.arange(V.shape[0])
    n = int(V.shape[0])
    sub = Graph(g.num_states, g.start | True, g.accept, g.src[eps], g.dst[eps], g.ilabel[eps],
                g.olabel[eps], g.weight[eps])
    try:
        depth = int(sub.state_levels().max()) + 1
    except ValueError as err:
        raise ValueError("remove_epsilon: graph has an epsilon cycle") from err
    E = semiring.scatter_plus(g.weight[eps], local[g.src[eps]] * n + local[g.dst[eps]], n * n)
    E = E.reshape(n, n)
    eye = torch.full((n, n), semiring.zero, dtype=g.weight.dtype)
    eye.fill_diagonal_(semiring.one)
    D = eye
    for _ in range(depth):
        D = semiring.plus(torch.stack([eye, semiring.plus(E[:, :, None] + D[None, :, :], 1)]), 0)
    return V, D


def remove_epsilon(g: Graph, semiring: Semiring = LOG) -> Graph:
    """An equivalent graph without epsilon:epsilon arcs (``semiring`` LOG keeps forward scores
    per label string, MAX keeps Viterbi scores). Trailing epsilon paths are folded into arcs to
    one new accept-only state; the empty string, if accepted, is kept as epsilon arcs from one new
    start state (with no other arcs) to that state. Raises ValueError on an epsilon cycle."""
    if not isinstance(semiring, (type(LOG), MaxSemiring)):
        raise TypeError(f"remove_epsilon supports the log and max semirings, not {semiring.name}")
    eps = (g.ilabel == EPSILON) & (g.olabel == EPSILON)
    if not bool(eps.any()):
        return g
    V, Dv = _eps_closure(g, eps, semiring)
    S, zero = g.num_states, semiring.zero
    # pairs (p, q) with a finite epsilon distance, identity pairs included
    vi, vj = (Dv != zero).nonzero(as_tuple=True)
    off_diag = vi != vj
    P = torch.cat([torch.arange(S), V[vi[off_diag]]])
    Q = torch.cat([torch.arange(S), V[vj[off_diag]]])
    DPQ = torch.cat([torch.full((S,), semiring.one, dtype=g.weight.dtype),
                     Dv[vi[off_diag], vj[off_diag]]])
    # Fin[r] = plus over accept states t of D[r, t]
    acc_pairs = g.accept[Q]
    Fin = semiring.scatter_plus(DPQ[acc_pairs], P[acc_pairs], S)
    real = (~eps).nonzero().flatten()
    from .compose import _join
    ip, ia = _join(Q, g.src[real])
    arc = real[ia]
    src, dst = P[ip], g.dst[arc]
    w = DPQ[ip] + g.weight[arc]
    fin = Fin[dst] != zero
    F, Z = S, S + 1  # new accept-only state; new start state for the empty string
    starts = (g.start & (Fin != zero)).nonzero().flatten()
    n_e = int(starts.shape[0])
    e = torch.full((n_e,), EPSILON, dtype=torch.long)
    payload = None
    if g.payload is not None:
        payload = torch.cat([g.payload[arc], g.payload[arc][fin], e])
    start = torch.cat([g.start, torch.tensor([False, n_e > 0])])
    accept = torch.zeros(S + 2, dtype=torch.bool)
    accept[F] = True
    out = Graph(
        S + 2, start, accept,
        torch.cat([src, src[fin], torch.full_like(e, Z)]),
        torch.cat([dst, torch.full_like(dst[fin], F), torch.full_like(e, F)]),
        torch.cat([g.ilabel[arc], g.ilabel[arc][fin], e]),
        torch.cat([g.olabel[arc], g.olabel[arc][fin], e]),
        torch.cat([w, w[fin] + Fin[dst][fin], Fin[starts]]), payload, g.isymbols, g.osymbols)
    return trim(out)
