"""Beam pruning and the n best distinct output strings."""

from __future__ import annotations

import heapq
import itertools

import torch

from .graph import EPSILON, Graph
from .ops import keep_states, project_output, remove_epsilon, trim
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

    The graph is projected on its output, epsilon-removed in the max semiring, and searched
    best-first over string prefixes (each prefix holds the best score of every state it can
    reach); the exact backward Viterbi scores make the search pop complete strings in order."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    h = remove_epsilon(project_output(g).replace(weight=g.weight.detach()), MAX)
    _, (beta,) = shortest_distance(h, MAX, reverse=True)
    order = torch.argsort(h.src, stable=True)
    counts = torch.bincount(h.src, minlength=h.num_states).tolist()
    src_l, dst_l = h.src[order].tolist(), h.dst[order].tolist()
    lab_l, w_l = h.ilabel[order].tolist(), h.weight[order].tolist()
    out: list[list[tuple[int, int, float]]] = [[] for _ in range(h.num_states)]
    for s, d, lab, w in zip(src_l, dst_l, lab_l, w_l):
        out[s].append((d, lab, w))
    del counts
    b = beta.tolist()
    accept = h.accept.tolist()
    tick = itertools.count()
    heap: list[tuple[float, int, bool, tuple[int, ...], dict[int, float]]] = []
    init = {s: 0.0 for s in h.start.nonzero().flatten().tolist()}
    best0 = max((b[s] for s in init), default=float("-inf"))
    if best0 > float("-inf"):
        heap.append((-best0, next(tick), False, (), init))
    results: list[tuple[tuple[int, ...], float]] = []
    while heap and len(results) < k:
        negp, _, done, prefix, states = heapq.heappop(heap)
        if done:
            results.append((prefix, -negp))
            continue
        final = max((v for s, v in states.items() if accept[s]), default=float("-inf"))
        if final > float("-inf"):
            heapq.heappush(heap, (-final, next(tick), True, prefix, {}))
        nxt: dict[int, dict[int, float]] = {}
        for s, v in states.items():
            for d, lab, w in out[s]:
                table = nxt.setdefault(lab, {})
                if v + w > table.get(d, float("-inf")):
                    table[d] = v + w
        for lab, table in nxt.items():
            table = {d: v for d, v in table.items() if v + b[d] > float("-inf")}
            if not table:
                continue
            pri = max(v + b[d] for d, v in table.items())
            word = prefix if lab == EPSILON else prefix + (lab,)
            heapq.heappush(heap, (-pri, next(tick), False, word, table))
    return results
