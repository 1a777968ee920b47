"""One dynamic program over a topological order, with the semiring as a parameter.

All graphs of a batch are laid side by side as one disjoint graph; states are sorted by
longest-path level, so level ``l`` is a contiguous slice of the state-value vector and each level
costs one gather and one scatter-plus for the whole batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from . import jit
from .banded import banded_ok, banded_score, scan_ok, scanned_log_score
from .graph import Graph, argsort_stable
from .semiring import LOG, MAX, Semiring


@dataclass
class Plan:
    """Index tensors of the level-by-level DP for a batch of graphs (structure only)."""

    num_graphs: int
    num_states: int            # N, over the batch; value slot N is the virtual super-source
    state_pos: Tensor          # (N,) position of each batch state in the value vector
    state_split: list[int]     # states per level
    arc_split: list[int]       # arcs (virtual start arcs included) per level
    weight_index: Tensor       # (A',) by level: index into weights ++ virtual zeros
    src_pos: Tensor            # (A',) value-vector position of the arc source
    dst_local: Tensor          # (A',) destination position within the arc's level
    final_pos: Tensor          # (F,) positions of accept states
    final_graph: Tensor        # (F,) graph id of each accept state
    num_arcs: int              # real arcs over the batch

    def per_level(self, t: Tensor) -> list[Tensor]:
        """One of the (A',) arc tensors cut into levels."""
        return list(torch.split(t, self.arc_split))


def _as_list(graphs: Graph | list[Graph]) -> tuple[list[Graph], bool]:
    if isinstance(graphs, Graph):
        return [graphs], True
    if not isinstance(graphs, (list, tuple)) or not all(isinstance(g, Graph) for g in graphs):
        raise TypeError("expected a Graph or a list of Graphs")
    return list(graphs), False


def make_plan(graphs: list[Graph], reverse: bool = False) -> Plan:
    """Build the DP plan (cached on the graph for a single graph). ``reverse`` runs from the
    accept states backwards (for backward scores)."""
    if len(graphs) == 1 and ("plan", reverse) in graphs[0]._cache:
        plan: Plan = graphs[0]._cache[("plan", reverse)]
        return plan
    levels = torch.cat([g.state_levels(reverse) for g in graphs])
    sizes = torch.tensor([g.num_states for g in graphs])
    offs = torch.cumsum(sizes, 0) - sizes
    arc_offs = torch.repeat_interleave(offs, torch.tensor([g.num_arcs for g in graphs]))
    src = torch.cat([g.src for g in graphs]) + arc_offs
    dst = torch.cat([g.dst for g in graphs]) + arc_offs
    start = torch.cat([g.start for g in graphs])
    accept = torch.cat([g.accept for g in graphs])
    if reverse:
        src, dst, start, accept = dst, src, accept, start
    N, A = int(sizes.sum()), int(src.shape[0])
    L = int(levels.max()) + 1 if N else 0
    order = argsort_stable(levels, L)
    pos = torch.empty(N + 1, dtype=torch.long)
    pos[order] = torch.arange(N)
    pos[N] = N
    starts = start.nonzero().flatten()
    a_src = torch.cat([src, torch.full_like(starts, N)])
    a_dst = torch.cat([dst, starts])
    a_lvl = levels.index_select(0, a_dst)
    dst_pos = pos.index_select(0, a_dst)
    aorder = argsort_stable(dst_pos, N + 1)   # by level, then destination
    state_counts = torch.bincount(levels, minlength=L)
    level_first = torch.cumsum(state_counts, 0) - state_counts
    arc_counts = torch.bincount(a_lvl, minlength=L).tolist()
    a_lvl = a_lvl.index_select(0, aorder)
    dst_local = dst_pos.index_select(0, aorder) - level_first.index_select(0, a_lvl)
    graph_of = torch.repeat_interleave(torch.arange(len(graphs)), sizes)
    plan = Plan(
        num_graphs=len(graphs), num_states=N, state_pos=pos[:N],
        state_split=state_counts.tolist(), arc_split=arc_counts, weight_index=aorder,
        src_pos=pos.index_select(0, a_src.index_select(0, aorder)), dst_local=dst_local,
        final_pos=pos[accept.nonzero().flatten()],
        final_graph=graph_of[accept], num_arcs=A,
    )
    if len(graphs) == 1:
        graphs[0]._cache[("plan", reverse)] = plan
    return plan


def run_plan(plan: Plan, weight: Tensor, semiring: Semiring) -> tuple[Tensor, Tensor]:
    """Run the DP. ``weight`` (A,) are the batch's arc weights in batch order.
    Returns (totals (B, *shape), state values (N, *shape) in batch state order)."""
    n_virtual = int(plan.weight_index.shape[0]) - plan.num_arcs
    w = torch.cat([weight, weight.new_zeros(n_virtual)])
    w = semiring.arc_value(w)
    N = plan.num_states
    alpha = semiring.full(N + 1, semiring.zero, w)
    alpha[N] = semiring.full(1, semiring.one, w)[0]
    first = 0
    for n, widx, spos, dloc in zip(plan.state_split, plan.per_level(plan.weight_index),
                                   plan.per_level(plan.src_pos), plan.per_level(plan.dst_local)):
        if widx.numel():
            vals = semiring.times(alpha[spos], w[widx])
            alpha[first:first + n] = semiring.scatter_plus(vals, dloc, n)
        first += n
    totals = semiring.scatter_plus(alpha[plan.final_pos], plan.final_graph, plan.num_graphs)
    return totals, alpha[plan.state_pos]


def shortest_distance(graphs: Graph | list[Graph], semiring: Semiring = LOG,
                      reverse: bool = False) -> tuple[Tensor, list[Tensor]]:
    """Semiring sum over all accepting paths of each graph.

    Returns (totals, state_values): totals is (B, *shape) for a list (``()``-batch for one
    graph), state_values one (S_b, *shape) tensor per graph (forward scores from the start
    states, or with ``reverse`` backward scores to the accept states).
    Raises ValueError for a cyclic graph."""
    gs, single = _as_list(graphs)
    _check_dtypes(gs)
    plan = make_plan(gs, reverse)
    weight = torch.cat([g.weight for g in gs]) if len(gs) > 1 else gs[0].weight
    totals, values = run_plan(plan, weight, semiring)
    per_graph = list(torch.split(values, [g.num_states for g in gs]))
    return (totals[0] if single else totals), per_graph


def _check_dtypes(gs: list[Graph]) -> None:
    if len({g.weight.dtype for g in gs}) > 1:
        raise TypeError("graphs in a batch must share one weight dtype, got "
                        f"{sorted({str(g.weight.dtype) for g in gs})}")


def score(graphs: Graph | list[Graph], semiring: Semiring,
          weight: Tensor | None = None) -> Tensor:
    """Semiring total over accepting paths, scalar for one graph, (B,) for a list.
    ``weight`` (A,) optionally replaces the graphs' concatenated arc weights. Uses the banded
    scan (log semiring) or tree reduction when the graphs' topological bandwidth is small,
    else the level DP (in numpy for the log and max semirings on the CPU)."""
    gs, single = _as_list(graphs)
    _check_dtypes(gs)
    if weight is None:
        weight = torch.cat([g.weight for g in gs]) if len(gs) > 1 else gs[0].weight
    if semiring is LOG and jit.use_for_scores(gs, weight):
        totals = jit.log_score(gs, weight)
    elif semiring is MAX and weight.device.type == "cpu" and jit.use_for(gs):
        totals = jit.max_score(gs, weight)
    elif semiring is LOG and scan_ok(gs):
        totals = scanned_log_score(gs, weight)
    elif banded_ok(gs) and not semiring.shape:
        totals = banded_score(gs, weight, semiring)
    elif (semiring is LOG or semiring is MAX) and weight.device.type == "cpu":
        from .levels import level_score

        totals = level_score(gs, weight, semiring)
    else:
        totals = run_plan(make_plan(gs), weight, semiring)[0]
    return totals[0] if single else totals


def forward_score(graphs: Graph | list[Graph]) -> Tensor:
    """Log-semiring total (logsumexp over accepting paths; -inf if none).
    Scalar for one graph, (B,) for a list. Differentiable: the gradient is the arc posterior."""
    return score(graphs, LOG)


def viterbi_score(graphs: Graph | list[Graph]) -> Tensor:
    """Max over accepting paths of the path score (-inf if none). Scalar or (B,).
    The gradient is the 0/1 indicator of one best path."""
    return score(graphs, MAX)


def arc_posteriors(g: Graph) -> Tensor:
    """(A,) posterior probability of each arc under the log semiring (0 if no path accepts)."""
    w = g.weight.detach().clone().requires_grad_(True)
    total = score(g, LOG, w)
    if torch.isinf(total).all():
        return torch.zeros_like(w)
    (grad,) = torch.autograd.grad(total.sum(), w)
    return grad
