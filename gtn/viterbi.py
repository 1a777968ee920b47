"""Best paths by backpointers of the max semiring (no autograd pass, so it runs under
``torch.no_grad()`` and ``torch.inference_mode()``).

Lattices (small topological bandwidth) use the banded tree reduction, keeping the argmax of
every max-plus matrix product and walking the tree back down; other graphs use the level DP of
:mod:`gtn.shortest`, keeping the best incoming arc of each state. Ties go to the lowest index.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .banded import banded_matrices, banded_ok
from .graph import Graph
from .semiring import MAX
from .shortest import Plan, _as_list, make_plan


def viterbi_paths(graphs: Graph | list[Graph]) -> list[list[int]]:
    """Arc indices (in path order) of the best accepting path of each graph; ``[]`` when
    nothing accepts. One batched pass over the list."""
    gs, _ = _as_list(graphs)
    with torch.no_grad():
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
    weight = torch.cat([g.weight.detach() for g in gs])
    A = plan.num_arcs
    alpha_np, back_np = _level_argmax(plan, weight.cpu().numpy())
    alpha, back = torch.from_numpy(alpha_np), torch.from_numpy(back_np)
    end = MAX.scatter_argmax(alpha[plan.final_pos], plan.final_graph, len(gs))
    end_pos = torch.cat([plan.final_pos, torch.tensor([-1])])[end].tolist()  # end -1: none
    sizes = torch.tensor([g.num_states for g in gs])
    offs = torch.cumsum(sizes, 0) - sizes
    arc_offs = torch.repeat_interleave(offs, torch.tensor([g.num_arcs for g in gs]))
    src_pos = plan.state_pos[torch.cat([g.src for g in gs]) + arc_offs]
    prev = torch.where(back < A, src_pos[back.clamp(0, max(A - 1, 0))] if A else back, -1)
    back_l, prev_l = back.tolist(), prev.tolist()
    arc_first = (torch.cumsum(torch.tensor([g.num_arcs for g in gs]), 0)).tolist()
    out: list[list[int]] = []
    for b, pos in enumerate(end_pos):
        if pos < 0 or alpha[pos] == float("-inf"):
            out.append([])
            continue
        path: list[int] = []
        while 0 <= back_l[pos] < A:
            path.append(back_l[pos])
            pos = prev_l[pos]
        base = arc_first[b] - gs[b].num_arcs
        out.append([a - base for a in reversed(path)])
    return out


def _level_argmax(plan: Plan, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The max-semiring level DP in numpy: (N + 1,) best scores by position (slot N is the
    super-source) and (N,) the best incoming arc of each position (index into ``weight`` ++
    virtual start arcs; the lowest on ties; -1 if none). Arcs of a level come grouped by
    destination, so each level is two segment reductions."""
    counts = [int(t.shape[0]) for t in plan.arc_weight_index]
    widx = torch.cat(plan.arc_weight_index).numpy()
    spos = torch.cat(plan.arc_src_pos).numpy()
    first = np.repeat(np.cumsum([0] + plan.state_split[:-1]), counts)
    dpos = torch.cat(plan.arc_dst_local).numpy() + first
    w = np.concatenate([weight, np.zeros(widx.shape[0] - plan.num_arcs, weight.dtype)])
    N = plan.num_states
    alpha = np.full(N + 1, -np.inf, dtype=weight.dtype)
    alpha[N] = 0.0
    back = np.full(N, -1, dtype=np.int64)
    if not widx.shape[0]:
        return alpha, back
    new_seg = np.concatenate([[True], dpos[1:] != dpos[:-1]])
    seg_start = np.flatnonzero(new_seg)
    seg_of = np.cumsum(new_seg) - 1
    arc_bounds = np.cumsum([0] + counts)
    seg_bounds = np.searchsorted(seg_start, arc_bounds).tolist()
    arc_bounds_l = arc_bounds.tolist()
    local = np.arange(max(counts))
    for i in range(len(counts)):
        a0, a1 = arc_bounds_l[i], arc_bounds_l[i + 1]
        if a0 == a1:
            continue
        s0, s1 = seg_bounds[i], seg_bounds[i + 1]
        vals = alpha[spos[a0:a1]] + w[widx[a0:a1]]
        starts = seg_start[s0:s1] - a0
        best = np.maximum.reduceat(vals, starts)
        hit = np.where(vals == best[seg_of[a0:a1] - s0], local[:a1 - a0], a1 - a0 - 1)
        d = dpos[seg_start[s0:s1]]
        alpha[d] = best
        back[d] = widx[a0 + np.minimum.reduceat(hit, starts)]
    return alpha, back


def _banded_paths(gs: list[Graph]) -> list[list[int]]:
    weight = torch.cat([g.weight.detach() for g in gs])
    M, best_arc, K = banded_matrices(gs, weight, MAX, with_arcs=True)
    assert best_arc is not None
    B, T, n = M.shape[0], M.shape[1], M.shape[2]
    picks: list[tuple[Tensor, int]] = []   # per round: argmax over the inner index, length in
    while M.shape[1] > 1:
        length = M.shape[1]
        if length % 2:
            eye = M.new_full((n, n), float("-inf"))
            eye.fill_diagonal_(0.0)
            M = torch.cat([M, eye.expand(B, 1, n, n)], 1)
        a, b = M[:, 0::2], M[:, 1::2]
        M, k = (a[..., :, :, None] + b[..., None, :, :]).max(-2)
        picks.append((k, length))
    total = M[:, 0, K + 1, K]
    rows = torch.full((B, 1), K + 1, dtype=torch.long)
    cols = torch.full((B, 1), K, dtype=torch.long)
    for k, length in reversed(picks):
        mid = k.gather(2, rows[:, :, None, None].expand(B, -1, 1, n)).squeeze(2)
        mid = mid.gather(2, cols[:, :, None]).squeeze(2)
        rows = torch.stack([rows, mid], 2).flatten(1)[:, :length]
        cols = torch.stack([mid, cols], 2).flatten(1)[:, :length]
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
