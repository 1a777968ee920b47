"""A fast path for graphs whose topological order has a small bandwidth (lattices).

With states numbered in topological order, if every arc spans at most K positions the forward
recursion is a product of T small (K+2)x(K+2) semiring matrices (state window, accumulated
final score, constant one). A tree reduction multiplies them in log2(T) vectorised rounds
instead of T sequential levels. Same semirings, same results, gradients from autograd.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .graph import Graph
from .semiring import Semiring

MAX_BAND = 6


@dataclass
class Band:
    pos: Tensor   # (S,) topological position of each state
    span: int     # max position difference over arcs (>= 1)


def band(g: Graph) -> Band:
    """Topological positions and bandwidth of an acyclic graph (cached)."""
    if "band" not in g._cache:
        levels = g.state_levels()
        pos = torch.empty(g.num_states, dtype=torch.long)
        pos[torch.argsort(levels, stable=True)] = torch.arange(g.num_states)
        span = int((pos[g.dst] - pos[g.src]).max()) if g.num_arcs else 1
        g._cache["band"] = Band(pos, max(span, 1))
    b: Band = g._cache["band"]
    return b


def banded_ok(graphs: list[Graph]) -> bool:
    return max(band(g).span for g in graphs) <= MAX_BAND


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
    nstates = torch.tensor([g.num_states for g in graphs])
    gid_s = torch.repeat_interleave(torch.arange(B), nstates)
    pos = torch.cat([b.pos for b in bands])
    soffs = torch.cumsum(nstates, 0) - nstates
    aoffs = torch.repeat_interleave(soffs, torch.tensor([g.num_arcs for g in graphs]))
    src = pos[torch.cat([g.src for g in graphs]) + aoffs]
    dst = pos[torch.cat([g.dst for g in graphs]) + aoffs]
    gid_a = gid_s[torch.cat([g.dst for g in graphs]) + aoffs]
    idx = (gid_a * T + dst) * K + (dst - src - 1)
    best_arc = None
    if with_arcs:
        best_arc = semiring.scatter_argmax(weight, idx, B * T * K)  # type: ignore[attr-defined]
        padded = torch.cat([weight, weight.new_full((1,), semiring.zero)])
        w = padded[best_arc].reshape(B, T, K)
    else:
        w = semiring.scatter_plus(semiring.arc_value(weight), idx, B * T * K).reshape(B, T, K)
    zero, one = semiring.zero, semiring.one
    cell = gid_s * T + pos
    init = torch.full((B * T,), zero, dtype=weight.dtype)
    init[cell[torch.cat([g.start for g in graphs])]] = one
    fin = torch.full((B * T,), zero, dtype=weight.dtype)
    fin[cell[torch.cat([g.accept for g in graphs])]] = one
    init, fin = init.reshape(B, T), fin.reshape(B, T)
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
