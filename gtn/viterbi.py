"""Best paths by backpointers of the max semiring (no autograd pass, so it runs under
``torch.no_grad()`` and ``torch.inference_mode()``).

Deep graphs (many levels) use the compiled kernel of :mod:`gtn.jit` where numba is installed. Else
lattices (small topological bandwidth) use the banded tree reduction, keeping the argmax of
every max-plus matrix product and walking the tree back down; other graphs use the numpy level
DP of :mod:`gtn.levels`, keeping the best incoming arc of each state. Ties go to the lowest
index (the kernel: to the first arc into a state).
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import jit
from .banded import banded_matrices, banded_ok
from .graph import Graph
from .levels import best_paths, level_dp
from .semiring import MAX
from .shortest import _as_list, make_plan


def viterbi_paths(graphs: Graph | list[Graph]) -> list[list[int]]:
    """Arc indices (in path order) of the best accepting path of each graph; ``[]`` when
    nothing accepts. One batched pass over the list."""
    gs, _ = _as_list(graphs)
    with torch.no_grad():
        if jit.use_for(gs):
            return jit.best_paths(gs)
        if banded_ok(gs):
            return _banded_paths(gs)
        return _level_paths(gs)


def viterbi_path(g: Graph) -> tuple[Graph, list[int]]:
    """The best accepting path as a chain graph (arc weights gathered from ``g.weight``, so
    they keep autograd history; payload kept) and as the list of arc indices of ``g`` in path
    order. An empty graph (one non-accepting state) and ``[]`` if nothing accepts."""
    idx = viterbi_paths([g])[0]
    if not idx and not _accepts_empty(g):
        empty = torch.zeros(0, dtype=torch.long)
        return Graph.from_tensors(1, torch.tensor([True]), torch.tensor([False]), empty, empty,
                                  empty, empty, g.weight[:0]), []
    return path_graph(g, torch.tensor(idx, dtype=torch.long)), idx


def _accepts_empty(g: Graph) -> bool:
    return bool((g.start & g.accept).any())


def path_graph(g: Graph, idx: Tensor) -> Graph:
    """The chain graph of arcs ``idx`` (K,) of ``g``, in order."""
    n = int(idx.shape[0])
    start = torch.zeros(n + 1, dtype=torch.bool)
    start[0] = True
    accept = torch.zeros(n + 1, dtype=torch.bool)
    accept[n] = True
    return Graph(n + 1, start, accept, torch.arange(n), torch.arange(1, n + 1), g.ilabel[idx],
                 g.olabel[idx], g.weight[idx], None if g.payload is None else g.payload[idx],
                 g.isymbols, g.osymbols, checked=False)


def _level_paths(gs: list[Graph]) -> list[list[int]]:
    plan = make_plan(gs)
    weight = torch.cat([g.weight.detach() for g in gs]).cpu().numpy()
    alpha, back = level_dp(plan, weight, MAX, with_back=True)
    assert back is not None
    return best_paths(plan, alpha, back, gs)


def _banded_paths(gs: list[Graph]) -> list[list[int]]:
    weight = torch.cat([g.weight.detach() for g in gs])
    M, best_arc, K = banded_matrices(gs, weight, MAX, with_arcs=True)
    assert best_arc is not None
    B, T, n = M.shape[0], M.shape[1], M.shape[2]
    # pad to a power of two with identity matrices once, so that every round halves evenly
    rounds = max(T - 1, 0).bit_length()
    if (1 << rounds) > T:
        eye = M.new_full((n, n), float("-inf"))
        eye.fill_diagonal_(0.0)
        M = torch.cat([M, eye.expand(B, (1 << rounds) - T, n, n)], 1)
    picks: list[Tensor] = []   # per round: argmax over the inner index, (B, length, n * n)
    while M.shape[1] > 1:
        a, b = M[:, 0::2], M[:, 1::2]
        M, k = (a[..., :, :, None] + b[..., None, :, :]).max(-2)
        picks.append(k.flatten(2))
    total = M[:, 0, K + 1, K]
    rows = torch.full((B, 1), K + 1, dtype=torch.long)
    cols = torch.full((B, 1), K, dtype=torch.long)
    for k in reversed(picks):
        mid = k.gather(2, (rows * n + cols)[:, :, None]).squeeze(2)
        rows = torch.stack([rows, mid], 2).flatten(1)
        cols = torch.stack([mid, cols], 2).flatten(1)
    rows, cols = rows[:, :T], cols[:, :T]
    used = (rows < K) & ((cols == 0) | (cols == K))
    arcs = best_arc.reshape(B, T, K).gather(2, rows.clamp(max=K - 1)[..., None]).squeeze(2)
    arcs = torch.where(used, arcs, -1)
    bases = torch.cumsum(torch.tensor([g.num_arcs for g in gs]), 0) - torch.tensor(
        [g.num_arcs for g in gs])
    out: list[list[int]] = []
    for row, ok, base in (zip(arcs.tolist(), torch.isfinite(total).tolist(),
                                            bases.tolist())):
        out.append([a - base for a in row if a >= 0] if ok else [])
    return out
