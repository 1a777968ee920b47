"""The level DP of :mod:`gtn.shortest` in numpy, for the log and max semirings on the CPU.

A level of a batch is typically a few dozen arcs, where a numpy call costs a fraction of a torch
call, and a composed graph has thousands of levels. Both semirings share one loop: per level,
gather the sources' values, add the arc weights, and reduce each run of arcs with the same
destination (the plan sorts a level's arcs by destination) with the semiring's plus; a level
where every destination has one arc needs no reduction.

Autograd records no graph of the levels: the log semiring's backward pass is the arc
posteriors ``exp(alpha[src] + w + beta[dst] - Z)`` from a reverse run, the max semiring's the
0/1 indicator of each graph's best path from back-pointers (ties to the lowest arc index).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import Tensor

from .graph import Graph
from .semiring import LOG, MAX, Semiring, exp_floor

if TYPE_CHECKING:
    from .shortest import Plan


@dataclass
class FlatPlan:
    """A :class:`gtn.shortest.Plan` as flat numpy arrays (arcs in plan order)."""

    widx: np.ndarray        # (A',) index into weights ++ virtual start arcs
    spos: np.ndarray        # (A',) value position of the arc's source
    arc_seg: np.ndarray     # (A',) the arc's destination run, counted within its level
    seg_start: np.ndarray   # (R,) first arc of each run
    seg_dpos: np.ndarray    # (R,) value position of each run's destination
    arc_bounds: list[int]   # level i's arcs are arc_bounds[i]:arc_bounds[i + 1]
    seg_bounds: list[int]   # level i's runs are seg_bounds[i]:seg_bounds[i + 1]


def flatten(plan: Plan) -> FlatPlan:
    """The flat form of ``plan`` (cached on it)."""
    cached = getattr(plan, "_flat", None)
    if cached is not None:
        return cast(FlatPlan, cached)
    counts = plan.arc_split
    widx, spos = plan.weight_index.numpy(), plan.src_pos.numpy()
    level_first = np.repeat(np.cumsum([0] + plan.state_split[:-1]), counts).astype(np.int64)
    dpos = plan.dst_local.numpy() + level_first
    new_run = np.ones(dpos.shape[0], bool)
    new_run[1:] = dpos[1:] != dpos[:-1]
    arc_bounds = np.cumsum([0] + counts)
    new_run[arc_bounds[:-1][np.asarray(counts) > 0]] = True  # runs never span two levels
    seg_start = np.flatnonzero(new_run)
    seg_bounds = np.searchsorted(seg_start, arc_bounds)
    run_of = np.cumsum(new_run) - 1
    level_of = np.repeat(np.arange(len(counts)), counts)
    flat = FlatPlan(widx, spos, run_of - seg_bounds[:-1][level_of], seg_start,
                    dpos[seg_start], arc_bounds.tolist(), seg_bounds.tolist())
    plan._flat = flat  # type: ignore[attr-defined]
    return flat


def level_dp(plan: Plan, weight: np.ndarray, semiring: Semiring,
             with_back: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """(N + 1,) value of every position (slot N is the super-source) and, for the max
    semiring ``with_back``, (N,) the best incoming arc of each position (index into
    ``weight`` ++ virtual start arcs; the lowest on ties; -1 if none)."""
    if semiring is not LOG and semiring is not MAX:
        raise ValueError(f"no numpy level DP for the {semiring.name} semiring")
    f = flatten(plan)
    N = plan.num_states
    w = np.concatenate([weight, np.zeros(f.widx.shape[0] - plan.num_arcs, weight.dtype)])
    wv = w[f.widx]
    alpha = np.full(N + 1, -np.inf, dtype=weight.dtype)
    alpha[N] = 0.0
    back = np.full(N, -1, dtype=np.int64) if with_back else None
    is_log = semiring is LOG
    floor = exp_floor(torch.float64 if weight.dtype == np.float64 else torch.float32)
    ab, sb = f.arc_bounds, f.seg_bounds
    with np.errstate(divide="ignore", invalid="ignore"):
        for i in range(len(ab) - 1):
            a0, a1, s0, s1 = ab[i], ab[i + 1], sb[i], sb[i + 1]
            if a0 == a1:
                continue
            vals = alpha[f.spos[a0:a1]] + wv[a0:a1]
            d = f.seg_dpos[s0:s1]
            if a1 - a0 == s1 - s0:  # one arc into each destination
                alpha[d] = vals
                if back is not None:
                    back[d] = f.widx[a0:a1]
                continue
            starts = f.seg_start[s0:s1] - a0
            best = np.maximum.reduceat(vals, starts)
            if is_log:
                safe = np.where(best == -np.inf, 0.0, best)
                shifted = np.maximum(vals - safe[f.arc_seg[a0:a1]], floor)
                alpha[d] = safe + np.log(np.add.reduceat(np.exp(shifted), starts))
                alpha[d[best == -np.inf]] = -np.inf
            else:
                alpha[d] = best
                if back is not None:
                    local = np.arange(a1 - a0)
                    hit = np.where(vals == best[f.arc_seg[a0:a1]], local, a1 - a0 - 1)
                    back[d] = f.widx[a0 + np.minimum.reduceat(hit, starts)]
    return alpha, back


def batch_arcs(gs: list[Graph]) -> tuple[Tensor, Tensor, Tensor]:
    """(src, dst, graph) of every arc of the batch, states numbered over the batch."""
    sizes = torch.tensor([g.num_states for g in gs])
    arcs = torch.tensor([g.num_arcs for g in gs])
    offs = torch.repeat_interleave(torch.cumsum(sizes, 0) - sizes, arcs)
    return (torch.cat([g.src for g in gs]) + offs, torch.cat([g.dst for g in gs]) + offs,
            torch.repeat_interleave(torch.arange(len(gs)), arcs))


def totals(plan: Plan, alpha: np.ndarray, semiring: Semiring) -> Tensor:
    """(B,) semiring sum of the accept states' values per graph."""
    final = torch.from_numpy(alpha).index_select(0, plan.final_pos)
    return semiring.scatter_plus(final, plan.final_graph, plan.num_graphs)


def best_paths(plan: Plan, alpha: np.ndarray, back: np.ndarray,
               gs: list[Graph]) -> list[list[int]]:
    """Arc indices (per graph, in path order) of each graph's best path from back-pointers;
    ``[]`` when nothing accepts."""
    A = plan.num_arcs
    alpha_t, back_t = torch.from_numpy(alpha), torch.from_numpy(back)
    end = MAX.scatter_argmax(alpha_t[plan.final_pos], plan.final_graph, len(gs))
    end_pos = torch.cat([plan.final_pos, torch.tensor([-1])])[end].tolist()  # end -1: none
    src, _, _ = batch_arcs(gs)
    src_pos = plan.state_pos[src]
    prev = torch.where(back_t < A, src_pos[back_t.clamp(0, max(A - 1, 0))] if A else back_t, -1)
    back_l, prev_l = back_t.tolist(), prev.tolist()
    arc_first = torch.cumsum(torch.tensor([g.num_arcs for g in gs]), 0).tolist()
    out: list[list[int]] = []
    for b, pos in enumerate(end_pos):
        if pos < 0 or alpha[pos] == -np.inf:
            out.append([])
            continue
        path: list[int] = []
        while 0 <= back_l[pos] < A:
            path.append(back_l[pos])
            pos = prev_l[pos]
        base = arc_first[b] - gs[b].num_arcs
        out.append([a - base for a in reversed(path)])
    return out


class _LevelScore(torch.autograd.Function):
    """(B,) totals by :func:`level_dp`, with the backward pass of the module docstring."""

    @staticmethod
    def forward(ctx: Any, weight: Tensor, gs: list[Graph], semiring: Semiring,
                plan: Plan) -> Tensor:
        w = weight.detach().cpu().numpy()
        if semiring is LOG:  # float64 inside: the posteriors' alpha + beta - Z cancels large
            w = w.astype(np.float64, copy=False)  # numbers (float32 lost ~1e-4 of them)
        alpha, back = level_dp(plan, w, semiring,
                               with_back=semiring is MAX and ctx.needs_input_grad[0])
        total = totals(plan, alpha, semiring)
        ctx.gs, ctx.semiring, ctx.plan, ctx.alpha, ctx.back = gs, semiring, plan, alpha, back
        ctx.w, ctx.total = w, total
        ctx.save_for_backward(weight)
        return total.to(weight.device, weight.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None]:
        from .shortest import make_plan

        (weight,) = ctx.saved_tensors
        gs, plan, total = ctx.gs, ctx.plan, ctx.total
        if ctx.semiring is MAX:
            paths = best_paths(plan, ctx.alpha, ctx.back, gs)
            bases = np.cumsum([0] + [g.num_arcs for g in gs[:-1]])
            on_path = torch.tensor([a + base for path, base in zip(paths, bases) for a in path],
                                   dtype=torch.long)
            owner = torch.repeat_interleave(torch.arange(len(gs)),
                                            torch.tensor([len(p) for p in paths]))
            out = torch.zeros_like(weight)
            out[on_path] = grad[owner]
            return out, None, None, None
        src, dst, graph = batch_arcs(gs)
        rplan = make_plan(gs, reverse=True)
        beta, _ = level_dp(rplan, ctx.w, LOG)
        a = torch.from_numpy(ctx.alpha)[plan.state_pos]
        b_ = torch.from_numpy(beta)[rplan.state_pos]
        z = total.index_select(0, graph)
        post = torch.exp(a.index_select(0, src) + torch.from_numpy(ctx.w)
                         + b_.index_select(0, dst) - z)
        ok = torch.isfinite(z)
        out = torch.where(ok, post, 0.0) * grad.cpu().index_select(0, graph)
        return out.to(weight.device, weight.dtype), None, None, None


def level_score(gs: list[Graph], weight: Tensor, semiring: Semiring) -> Tensor:
    """(B,) log or max semiring totals of a batch by the numpy level DP (CPU tensors)."""
    from .shortest import make_plan

    return cast(Tensor, _LevelScore.apply(weight, gs, semiring, make_plan(gs)))  # type: ignore[no-untyped-call]
