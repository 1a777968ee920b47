"""A fast path for graphs whose topological order has a small bandwidth (lattices).

With states numbered in topological order, if every arc spans at most K positions, all arcs
from position t-1-k to position t first reduce to one edge value ``E[b, t, k]`` (one dense
reduction over the whole batch). Then:

- the log semiring on the CPU (band up to 16) runs the recursion position by position in
  numpy, each step a K-wide reduction for the whole batch, and computes the gradient directly
  as the arc posteriors ``exp(alpha[src] + w + beta[dst] - Z)`` from one backward recursion
  (no autograd graph of the steps): faster than the tree below at every length measured
  (20 to 6,000 positions), forward and backward;
- other semirings (band up to 6) multiply T small (K+2)x(K+2) semiring matrices (state window,
  accumulated final score, constant one) in log2(T) vectorised rounds of a tree reduction,
  with autograd.

Same semirings, same results.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import jit
from .graph import Graph
from .semiring import LOG, NEG_INF, Semiring, exp_floor

MAX_BAND = 6          # widest band for the tree reduction ((K+2)^3 work per position)
MAX_SCAN_BAND = 16    # widest band for the position-by-position scan (2K-1 steps each)


@dataclass
class Band:
    pos: Tensor        # (S,) topological position of each state
    span: int          # max position difference over arcs (>= 1)
    arc_dst: np.ndarray   # (A,) int32 position of each arc's destination
    arc_span: np.ndarray  # (A,) int32 position difference of each arc (>= 1)
    arc_slot: np.ndarray  # (A,) int32 rank of the arc among those with its (destination, span)
    arc_edge: np.ndarray  # (A,) int32 destination * span + its span - 1: its edge at this span
    width: int         # most arcs sharing one (destination, span)
    start_pos: list[int]  # positions of the start states
    final_pos: list[int]  # positions of the accept states


def positions(g: Graph) -> tuple[Tensor, int]:
    """(S,) topological position of each state (states in level order) and the bandwidth:
    the largest position difference along an arc (at least 1). Cached."""
    if "positions" not in g._cache:  # in numpy: a graph's few calls cost less than torch's
        if g._cache.get("level_sorted"):
            pos = np.arange(g.num_states)
        else:
            pos = np.empty(g.num_states, dtype=np.int64)
            pos[np.argsort(g.state_levels().numpy(), kind="stable")] = np.arange(g.num_states)
        spans = pos[g.dst.numpy()] - pos[g.src.numpy()]
        g._cache["positions"] = (torch.from_numpy(pos),
                                 max(int(spans.max()) if g.num_arcs else 1, 1))
    out: tuple[Tensor, int] = g._cache["positions"]
    return out


def band(g: Graph) -> Band:
    """Topological positions, bandwidth and edge layout of an acyclic graph (cached; numpy
    arrays, which a batch's :func:`layout` concatenates)."""
    if "band" not in g._cache:
        pos, span = positions(g)
        p = pos.numpy()
        dst = p[g.dst.numpy()]
        spans = dst - p[g.src.numpy()]
        edge = dst * span + spans - 1
        order = np.argsort(edge, kind="stable")
        counts = np.bincount(edge, minlength=g.num_states * span)
        first = np.cumsum(counts) - counts
        slot = np.empty_like(order)
        slot[order] = np.arange(g.num_arcs) - first[edge[order]]
        i32 = np.int32
        g._cache["band"] = Band(pos, span, dst.astype(i32), spans.astype(i32), slot.astype(i32),
                                edge.astype(i32), int(counts.max()) if g.num_arcs else 1,
                                p[g.start.numpy()].tolist(), p[g.accept.numpy()].tolist())
    b: Band = g._cache["band"]
    return b


def banded_ok(graphs: list[Graph]) -> bool:
    """Whether the tree reduction applies."""
    return all(positions(g)[1] <= MAX_BAND for g in graphs)


def scan_ok(graphs: list[Graph]) -> bool:
    """Whether the scanned log-semiring score applies (CPU tensors, narrow band)."""
    return (graphs[0].weight.device.type == "cpu"
            and all(positions(g)[1] <= MAX_SCAN_BAND for g in graphs))


def banded_score(graphs: list[Graph], weight: Tensor, semiring: Semiring) -> Tensor:
    """(B,) semiring totals of ``graphs``; ``weight`` (A,) are their arc weights, concatenated."""
    M, _, K = banded_matrices(graphs, weight, semiring)
    B, n = M.shape[0], M.shape[2]
    eye = torch.full((n, n), semiring.zero, dtype=weight.dtype)
    eye.fill_diagonal_(semiring.one)
    while M.shape[1] > 1:
        if M.shape[1] % 2:
            M = torch.cat([M, eye.expand(B, 1, n, n)], 1)
        a, b = M[:, 0::2], M[:, 1::2]
        M = semiring.plus(semiring.times(a[..., :, :, None], b[..., None, :, :]), -2)
    return M[:, 0, K + 1, K]


def banded_matrices(graphs: list[Graph], weight: Tensor, semiring: Semiring,
                    with_arcs: bool = False) -> tuple[Tensor, Tensor | None, int]:
    """The per-position matrices (B, T, K+2, K+2) and the band K; with ``with_arcs`` (max
    semiring) also (B*T*K,) the index into ``weight`` of the best arc from position
    ``t-1-i`` to ``t`` at ``(b*T + t)*K + i`` (-1 if none)."""
    bands = [band(g) for g in graphs]
    B, K = len(graphs), max(b.span for b in bands)
    T = max(g.num_states for g in graphs)
    n = K + 2
    # each arc's edge (b * T + destination) * K + span - 1, from the bands' cached arrays
    best_arc = None
    if with_arcs:
        best_arc = torch.from_numpy(best_arcs(graphs, weight.detach().cpu().numpy()))
        padded = torch.cat([weight.detach().cpu(), weight.new_full((1,), semiring.zero).cpu()])
        w = padded[best_arc].reshape(B, T, K).to(weight.device)
    else:
        edge = np.concatenate([b.arc_dst.astype(np.int64) * K + b.arc_span - 1 for b in bands])
        edge += np.repeat(np.arange(0, B * T * K, T * K), [g.num_arcs for g in graphs])
        idx = torch.from_numpy(edge).to(weight.device)
        w = semiring.scatter_plus(semiring.arc_value(weight), idx, B * T * K).reshape(B, T, K)
    zero, one = semiring.zero, semiring.one
    np_dtype = torch.empty(0, dtype=weight.dtype).numpy().dtype
    init = torch.from_numpy(_ends([b.start_pos for b in bands], T, zero, one, np_dtype)[0])
    fin = torch.from_numpy(_ends([b.final_pos for b in bands], T, zero, one, np_dtype)[0])
    M = torch.full((B, T, n, n), zero, dtype=weight.dtype)
    M[..., :K, 0] = w
    M[..., K + 1, 0] = init
    for j in range(1, K):
        M[..., j - 1, j] = one
    M[..., :K, K] = semiring.times(w, fin[..., None])
    M[..., K, K] = one
    M[..., K + 1, K] = semiring.times(init, fin)
    M[..., K + 1, K + 1] = one
    return M, best_arc, K


@dataclass
class Layout:
    """Where a batch's arcs fall in the (width, B * T * K) grid of edge slots and which
    positions start and accept (structure only, numpy)."""

    B: int
    T: int
    K: int
    width: int
    arc_cell: np.ndarray  # (A,) slot * B*T*K + (b * T + destination) * K + k of each arc
    start: np.ndarray     # (B, T) one at start positions, zero elsewhere (semiring values)
    final: np.ndarray     # (B, T) one at accept positions
    start_at: list[int]   # positions where some graph starts
    final_at: list[int]   # positions where some graph accepts


# The layouts of the last few batches, by the identities of their graphs' bands (each entry
# holds those bands, so that no identity is reused while it is cached): scoring the same batch
# again (a fixed set of graphs whose weights are trained) skips rebuilding it.
_LAYOUTS: OrderedDict[tuple[Any, ...], tuple[list[Band], Layout]] = OrderedDict()
LAYOUTS_CACHED = 8


def layout(graphs: list[Graph], zero: float = float("-inf"), one: float = 0.0,
           dtype: torch.dtype = torch.float64) -> Layout:
    """The :class:`Layout` of a batch, from each graph's cached :class:`Band` (cached too)."""
    bands = [band(g) for g in graphs]
    key = (zero, one, dtype, *map(id, bands))
    hit = _LAYOUTS.get(key)
    if hit is not None:
        _LAYOUTS.move_to_end(key)
        return hit[1]
    lay = _new_layout(bands, zero, one, dtype)
    _LAYOUTS[key] = (bands, lay)
    if len(_LAYOUTS) > LAYOUTS_CACHED:
        _LAYOUTS.popitem(last=False)
    return lay


def _new_layout(bands: list[Band], zero: float, one: float, dtype: torch.dtype) -> Layout:
    B, T = len(bands), max(len(b.pos) for b in bands)
    K, width = max(b.span for b in bands), max(b.width for b in bands)
    np_dtype = torch.empty(0, dtype=dtype).numpy().dtype
    start, start_at = _ends([b.start_pos for b in bands], T, zero, one, np_dtype)
    final, final_at = _ends([b.final_pos for b in bands], T, zero, one, np_dtype)
    # int32 arithmetic is twice as fast as int64's; numpy indexes fastest with int64
    n_edges = B * T * K
    cell = np.concatenate([b.arc_slot for b in bands])
    if width * n_edges >= 2**31:
        cell = cell.astype(np.int64)
    cell *= n_edges
    if all(b.span == K for b in bands):
        cell += np.concatenate([b.arc_edge for b in bands])
    else:
        cell += np.concatenate([b.arc_dst * K + b.arc_span - 1 for b in bands])
    cell += np.repeat(np.arange(0, n_edges, T * K, dtype=cell.dtype),
                      [len(b.arc_edge) for b in bands])
    cell = cell.astype(np.int64)
    return Layout(B, T, K, width, cell, start, final, start_at, final_at)


def best_arcs(graphs: list[Graph], weight: np.ndarray) -> np.ndarray:
    """(B*T*K,) index into ``weight`` (the graphs' arc weights, concatenated) of the best arc
    of each edge of the batch's :func:`layout` (the first of equals), -1 where no arc is.
    Each arc has its own cell of a (width, B*T*K) grid, so one dense argmax finds them."""
    lay = layout(graphs)
    n_edges = lay.B * lay.T * lay.K
    grid = np.full(lay.width * n_edges, -np.inf, dtype=weight.dtype)
    grid[lay.arc_cell] = weight
    grid2 = grid.reshape(lay.width, n_edges)
    # the first slot holding the maximum (slots hold an edge's arcs in order); min over a
    # where() is faster than numpy's argmax across rows
    slot = np.where(grid2 == grid2.max(0), np.arange(lay.width)[:, None], lay.width).min(0)
    arc_of = np.full(lay.width * n_edges, -1, dtype=np.int64)
    arc_of[lay.arc_cell] = np.arange(len(weight))
    out: np.ndarray = arc_of[slot * n_edges + np.arange(n_edges)]
    return out


def _ends(of: list[list[int]], T: int, zero: float, one: float,
          dtype: np.dtype[Any]) -> tuple[np.ndarray, list[int]]:
    """(B, T) grid of ``one`` at the positions ``of[b]`` (``zero`` elsewhere); those
    positions, sorted."""
    grid = np.full((len(of), T), zero, dtype=dtype)
    grid.ravel()[[b * T + p for b, ps in enumerate(of) for p in ps]] = one
    return grid, sorted({p for ps in of for p in ps})


def log_edge_values(weight: np.ndarray, lay: Layout) -> tuple[np.ndarray, np.ndarray,
                                                               np.ndarray]:
    """(B, T, K) logsumexp of the arcs from position t-1-k to t, with what the arc shares need:
    (width, B*T*K) ``exp(w - m)`` of each slot's arc (padding slots near zero) and (B*T*K,)
    their sums ``s``, so that an arc's share of its edge is ``exp(w - m) / s``. Arcs below
    the edge's largest by more than :func:`exp_floor` are floored there (exp is slow on
    inputs that underflow), adding a negligible amount far below rounding."""
    n_edges = lay.B * lay.T * lay.K
    x = np.full((lay.width, n_edges), NEG_INF, dtype=weight.dtype)
    x.ravel()[lay.arc_cell] = weight
    m = x.max(0)
    empty = m == NEG_INF
    m[empty] = 0.0
    np.subtract(x, m, out=x)
    xt = torch.from_numpy(x)
    np.maximum(x, exp_floor(xt.dtype), out=x)
    xt.exp_()  # in place; torch's exp is faster than numpy's
    s = x.sum(0)
    edges = np.log(s)
    edges += m
    edges[empty] = NEG_INF
    return edges.reshape(lay.B, lay.T, lay.K), x, s


def scan(edges: np.ndarray, lay: Layout, semiring: Semiring,
         directions: tuple[str, ...] = ("forward",)) -> np.ndarray:
    """(T + K, n * B) values of every position, n = len(directions), ``edges`` (B, T, K)
    edge values: columns ``d * B + b`` hold graph b's in direction ``directions[d]``, row
    ``K + i`` its forward value (from the start positions) at position i, or its backward
    value (to the accept positions) at position T-1-i; rows 0..K-1 are zero.

    Runs in numpy, one step a position for all directions at once (a backward run is a forward
    run over the reversed positions): each step is K additions and a reduction over K of
    (n * B)-vectors, where numpy's per-call cost is a third of torch's."""
    B, T, K = edges.shape
    zero = semiring.zero
    e = edges.transpose(1, 2, 0)  # (T, K, B)
    intos, enters, at = [], [], set()
    for d in directions:
        if d == "forward":  # into[i, j] = E[i, K-1-j] meets the value at row i + j
            intos.append(e[:, ::-1])
            enters.append(lay.start.T)
            at |= set(lay.start_at)
        elif d == "backward":  # position t = T-1-i, into[i, j] = E[t+1+k, k] for k = K-1-j
            pad = np.concatenate([e, np.full((K, K, B), zero, dtype=e.dtype)], 0)
            intos.append(np.stack([pad[1 + k : 1 + k + T, k] for k in range(K)], 1)[::-1, ::-1])
            enters.append(lay.final.T[::-1])
            at |= {T - 1 - p for p in lay.final_at}
        else:
            raise ValueError(f"direction must be 'forward' or 'backward', got {d!r}")
    into, enter = np.concatenate(intos, 2), np.concatenate(enters, 1)
    buf = np.full((T + K, len(directions) * B), zero, dtype=e.dtype)
    plus = _np_plus(semiring)  # also refuses semirings other than log and max
    if jit.use(T):
        jit.scan(into, enter, at, semiring.name == "log", buf)
        return buf
    for i in range(T):
        terms = buf[i : i + K] + into[i]
        if K > 3:  # one reduce call (the same pairwise sums, in order) beats K - 1 calls
            v = plus.reduce(terms, axis=0)
        else:
            v = terms[0]
            for k in range(1, K):
                v = plus(v, terms[k])
        if i in at:
            v = plus(v, enter[i])
        buf[i + K] = v
    return buf


def _np_plus(semiring: Semiring) -> np.ufunc:
    """The semiring's plus of two numpy arrays (log and max semirings)."""
    if semiring.name == "max":
        return np.maximum
    if semiring.name == "log":
        return np.logaddexp
    raise ValueError(f"no numpy plus for the {semiring.name} semiring")


def scanned_log_score(graphs: list[Graph], weight: Tensor) -> Tensor:
    """(B,) log-semiring totals of :func:`scan_ok` graphs; ``weight`` (A,) their arc weights,
    concatenated. Differentiable: the gradient is the arc posteriors."""
    # float64 inside whatever the weights: over hundreds of positions float32 would lose ~1e-4
    # of the arc posteriors (alpha + beta - Z cancels large numbers)
    lay = layout(graphs, dtype=torch.float64)
    grad = torch.is_grad_enabled() and weight.requires_grad
    # torch.autograd.Function.apply is untyped
    out: Tensor = _ScannedLogScore.apply(weight, lay, grad)  # type: ignore[no-untyped-call]
    return out


def _logsumexp(values: np.ndarray) -> np.ndarray:
    """(B,) logsumexp of (B, T) values over T (-inf where all are)."""
    m = values.max(1)
    m[~np.isfinite(m)] = 0.0
    with np.errstate(divide="ignore"):
        out: np.ndarray = np.log(np.exp(values - m[:, None]).sum(1)) + m
    return out


class _ScannedLogScore(torch.autograd.Function):
    """(B,) log-semiring totals by :func:`scan`; the backward pass is the arc posteriors:
    each edge's posterior ``exp(alpha[t-1-k] + E[t, k] + beta[t] - Z)`` shared among its arcs
    by ``exp(w - E[t, k]) = exp(w - m) / s`` (:func:`log_edge_values`). In numpy, but for exp.
    With ``grad``, the forward pass runs the backward scan alongside the forward one."""

    @staticmethod
    def forward(ctx: Any, weight: Tensor, lay: Layout, grad: bool) -> Tensor:
        w = weight.detach().numpy().astype(np.float64, copy=False)
        edges, shares, sums = log_edge_values(w, lay)
        values = scan(edges, lay, LOG, ("forward", "backward") if grad else ("forward",))
        total = _logsumexp(values[lay.K :, : lay.B].T + lay.final)
        ctx.lay, ctx.edges, ctx.values, ctx.total = lay, edges, values, total
        ctx.shares, ctx.sums, ctx.dtype = shares, sums, weight.dtype
        return torch.from_numpy(total).to(weight.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        lay: Layout = ctx.lay
        B, T, K = lay.B, lay.T, lay.K
        values, total = ctx.values, ctx.total
        # (T, K, B): alpha[t-1-k] + E[t, k] + beta[t] - Z, with alpha[t-1-k] at row t + K-1-k
        log_post = np.stack([values[K - 1 - k : K - 1 - k + T, :B] for k in range(K)], 1)
        log_post += ctx.edges.transpose(1, 2, 0)
        # A graph that accepts nothing has no posterior (its total is -inf): weigh it by 0.
        ok = np.isfinite(total)
        log_post += (values[K:, B:][::-1] - np.where(ok, total, 0.0))[:, None]
        edge_grad = torch.from_numpy(log_post).exp_().numpy()
        edge_grad *= np.where(ok, grad.numpy(), 0.0).astype(total.dtype)
        edge_grad = edge_grad.transpose(2, 0, 1).ravel() / ctx.sums
        # An edge of -inf arcs only has no posterior: 0 times its (tiny) shares.
        arc_grad = (ctx.shares * edge_grad).take(lay.arc_cell)
        return torch.from_numpy(arc_grad).to(ctx.dtype), None, None
