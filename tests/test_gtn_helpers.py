"""Shared hypothesis strategies and brute-force path enumeration for the gtn tests."""

from __future__ import annotations

import math
from collections import defaultdict

import torch
from hypothesis import given
from hypothesis import strategies as st

import gtn

Path = tuple[list[int], float]  # arc indices, score


@st.composite
def graphs(draw, max_states=5, max_arcs=8, labels=(-1, 0, 1, 2), acyclic=True,
           transducer=False, dtype=torch.float64):
    """Small random graphs; acyclic ones have arcs going up a random permutation of states."""
    n = draw(st.integers(1, max_states))
    perm = draw(st.permutations(range(n)))
    arcs = []
    for _ in range(draw(st.integers(0, max_arcs))):
        if acyclic:
            if n < 2:
                break
            a = draw(st.integers(0, n - 2))
            b = draw(st.integers(a + 1, n - 1))
            s, d = perm[a], perm[b]
        else:
            s, d = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
        il = draw(st.sampled_from(labels))
        ol = draw(st.sampled_from(labels)) if transducer else il
        w = draw(st.floats(-3, 3, allow_nan=False).map(lambda x: round(x, 2)))
        arcs.append((s, d, il, ol, w))
    start = draw(st.sets(st.integers(0, n - 1), min_size=1, max_size=2))
    accept = draw(st.sets(st.integers(0, n - 1), max_size=2))
    return gtn.Graph.from_arcs(n, sorted(start), sorted(accept), arcs, dtype=dtype)


def paths(g: gtn.Graph, max_len: int = 12) -> list[Path]:
    """All accepting paths (up to ``max_len`` arcs) with their scores."""
    src, dst, w = g.src.tolist(), g.dst.tolist(), g.weight.detach().tolist()
    out = defaultdict(list)
    for i, s in enumerate(src):
        out[s].append(i)
    acc = g.accept.tolist()
    result: list[Path] = []

    def walk(s: int, arcs: list[int], score: float) -> None:
        if acc[s]:
            result.append((list(arcs), score))
        if len(arcs) >= max_len:
            return
        for i in out[s]:
            walk(dst[i], arcs + [i], score + w[i])

    for s in g.start.nonzero().flatten().tolist():
        walk(s, [], 0.0)
    return result


def strings(g: gtn.Graph, ps: list[Path], side: str = "o") -> list[tuple[tuple[int, ...], float]]:
    labels = (g.olabel if side == "o" else g.ilabel).tolist()
    return [(tuple(labels[i] for i in arcs if labels[i] != gtn.EPSILON), sc) for arcs, sc in ps]


def logsumexp(xs: list[float]) -> float:
    if not xs:
        return -math.inf
    m = max(xs)
    return m + math.log(sum(math.exp(x - m) for x in xs))


def relation(g: gtn.Graph, max_len: int = 12) -> dict[tuple, list[float]]:
    """(input string, output string) -> sorted scores of the paths carrying them."""
    il, ol = g.ilabel.tolist(), g.olabel.tolist()
    rel: dict[tuple, list[float]] = defaultdict(list)
    for arcs, sc in paths(g, max_len):
        key = (tuple(il[i] for i in arcs if il[i] != -1), tuple(ol[i] for i in arcs if ol[i] != -1))
        rel[key].append(sc)
    return {k: sorted(v) for k, v in rel.items()}


@given(graphs())
def test_brute_force_paths_are_accepting(g):
    for arcs, _ in paths(g):
        if arcs:
            assert bool(g.start[g.src[arcs[0]]]) and bool(g.accept[g.dst[arcs[-1]]])
