"""Beam pruning and the n best distinct output strings."""

from __future__ import annotations

import heapq
import itertools

import torch

from .graph import EPSILON, Graph
from .ops import keep_states, trim
from .semiring import MAX
from .shortest import shortest_distance


def prune(g: Graph, beam: float) -> Graph:
    """Keep the arcs that lie on some accepting path whose score is within ``beam`` of the
    best path score (``beam >= 0``), then trim. Weights keep their autograd history."""
    if beam < 0:
        raise ValueError(f"beam must be >= 0, got {beam}")
    best, (alpha,) = shortest_distance(g, MAX)
    _, (beta,) = shortest_distance(g, MAX, reverse=True)
    if torch.isinf(best):
        return trim(g)
    through = alpha[g.src] + g.weight.detach() + beta[g.dst]
    keep_arcs = through >= best.detach() - beam
    return trim(keep_states(g, torch.ones(g.num_states, dtype=torch.bool), keep_arcs))


def nbest(g: Graph, k: int) -> list[tuple[tuple[int, ...], float]]:
    """The ``k`` best DISTINCT output label strings (epsilons dropped), best first, each with
    the Viterbi score of its best path (max, not logsumexp, over the paths that carry it).
    ``g`` must be acyclic (ValueError otherwise).

    A* search over (output prefix, state) pairs, with the exact backward Viterbi score of the
    state as the heuristic: each pair is expanded once, at its best score, and complete strings
    pop in order of their best path score, so only the states on paths scoring at least the
    k-th best string are visited (no epsilon removal over the whole graph)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    with torch.no_grad():
        _, (beta,) = shortest_distance(g, MAX, reverse=True)
    order = torch.argsort(g.src, stable=True)
    rowptr = [0] + torch.cumsum(torch.bincount(g.src, minlength=g.num_states), 0).tolist()
    dst_l, lab_l = g.dst[order].tolist(), g.olabel[order].tolist()
    w_l = g.weight.detach()[order].tolist()
    b = beta.tolist()
    accept = g.accept.tolist()
    ninf = float("-inf")
    tick = itertools.count()
    # entries: (-(score + heuristic), tie, state or -1 for a complete string, score, prefix)
    heap: list[tuple[float, int, int, float, tuple[int, ...]]] = [
        (-b[s], next(tick), s, 0.0, ()) for s in g.start.nonzero().flatten().tolist()
        if b[s] > ninf]
    heapq.heapify(heap)
    expanded: set[tuple[tuple[int, ...], int]] = set()
    results: dict[tuple[int, ...], float] = {}
    while heap and len(results) < k:
        _, _, s, v, prefix = heapq.heappop(heap)
        if s < 0:
            results.setdefault(prefix, v)
            continue
        if (prefix, s) in expanded:
            continue
        expanded.add((prefix, s))
        if accept[s]:
            heapq.heappush(heap, (-v, next(tick), -1, v, prefix))
        for j in range(rowptr[s], rowptr[s + 1]):
            d, lab = dst_l[j], lab_l[j]
            if b[d] == ninf:
                continue
            word = prefix if lab == EPSILON else prefix + (lab,)
            if (word, d) not in expanded:
                nv = v + w_l[j]
                heapq.heappush(heap, (-(nv + b[d]), next(tick), d, nv, word))
    return list(results.items())
