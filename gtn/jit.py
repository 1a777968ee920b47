"""Optional compiled kernels (numba, ``pip install 'cheque-gtn[jit]'``) for the dynamic
programs whose sequential steps no array formulation makes cheap, on deep acyclic graphs (at
least MIN_LEVELS topological levels): the best path (:func:`best_paths`), the log and max
semiring scan of :func:`gtn.banded.scan` (:func:`scan`) and the reachability sweeps that trim a
composition (:func:`reach`).

In numpy or torch each sequential step is a call costing microseconds: a 2000-state lattice's
best path took ~2.7 ms, against OpenFst's ~0.55 ms; compiled, one pass over the states in
topological order, each taking the best of its incoming arcs, then the walk back, takes ~0.2
ms. Nothing is compiled at install time: numba compiles each kernel at its first use (about a
second; cached on disk where the package folder is writable, then ~0.3 s to load). Without
numba, or with ``GTN_JIT=0`` in the environment, every result comes from the numpy and torch
routes: the same compositions, the same scores to rounding, and best paths of the same score
(ties may pick another path).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np

from .graph import Graph

# Graphs with fewer topological levels (the longest path's length + 1) keep the array routes:
# those pay per sequential step, so shallow graphs, however many arcs, are already fast there
# (the reader's 32 composed fields of a batch, ~35 levels: 7.6 ms), and a process reading a few
# cheques should not pay the kernel's first compilation or loading (0.3-1 s).
MIN_LEVELS = 256

_KERNELS: dict[str, Callable[..., Any]] = {}


@cache
def _numba_installed() -> bool:
    # numba is imported only when a kernel is first needed: importing it costs ~0.3 s
    return importlib.util.find_spec("numba") is not None


def available() -> bool:
    """Whether the compiled kernels are used: numba is installed and ``GTN_JIT`` is not 0."""
    return os.environ.get("GTN_JIT", "1") != "0" and _numba_installed()


def _best_path(w: np.ndarray, topo: np.ndarray, first: np.ndarray, by_dst: np.ndarray,
               src: np.ndarray, start: np.ndarray, accept: np.ndarray) -> np.ndarray:
    """Arc indices of the best accepting path (empty when none accepts or the best is the empty
    path). ``topo`` (S,) the states in topological order; the arcs into state s are
    ``by_dst[first[s]:first[s + 1]]``. Ties go to the first arc in that order."""
    n_states = topo.shape[0]
    alpha = np.full(n_states, -np.inf)
    back = np.full(n_states, -1, np.int64)
    for s in topo:
        best = 0.0 if start[s] else -np.inf
        arg = -1
        for k in range(first[s], first[s + 1]):
            a = by_dst[k]
            v = alpha[src[a]] + w[a]
            if v > best:
                best = v
                arg = a
        alpha[s] = best
        back[s] = arg
    end, top = -1, -np.inf
    for s in range(n_states):
        if accept[s] and alpha[s] > top:
            end, top = s, alpha[s]
    out = np.empty(n_states, np.int64)
    n = 0
    s = end
    while s >= 0 and back[s] >= 0:
        out[n] = back[s]
        n += 1
        s = src[back[s]]
    path: np.ndarray = out[:n][::-1].copy()
    return path


def _reach(src: np.ndarray, dst: np.ndarray, seen: np.ndarray, reverse: bool) -> None:
    """Reachability along arcs in sweep order (no arc's destination is the source of an arc
    before it), in place on ``seen``: forward, an arc from a seen state sees its destination;
    with ``reverse``, backwards over the arcs, an arc into a seen state sees its source."""
    n = src.shape[0]
    if reverse:
        for k in range(n - 1, -1, -1):
            if seen[dst[k]]:
                seen[src[k]] = True
    else:
        for k in range(n):
            if seen[src[k]]:
                seen[dst[k]] = True


def _scan(into: np.ndarray, enter: np.ndarray, at: np.ndarray, is_log: bool,
          buf: np.ndarray) -> None:
    """The position-by-position recursion of :func:`gtn.banded.scan` in place on ``buf``
    (T + K, C): row ``i + K`` is the semiring sum over j of ``buf[i + j] + into[i, j]``, plus
    ``enter[i]`` where ``at[i]``; log semiring (``is_log``) or max."""
    T, K, C = into.shape
    for i in range(T):
        for c in range(C):
            m = -np.inf
            for j in range(K):
                m = max(m, buf[i + j, c] + into[i, j, c])
            if at[i]:
                m = max(m, enter[i, c])
            if not is_log or m == -np.inf:
                buf[i + K, c] = m
                continue
            total = 0.0
            for j in range(K):
                total += np.exp(buf[i + j, c] + into[i, j, c] - m)
            if at[i]:
                total += np.exp(enter[i, c] - m)
            buf[i + K, c] = m + np.log(total)


_PYTHON: dict[str, Callable[..., Any]] = {"best_path": _best_path, "reach": _reach,
                                          "scan": _scan}


def _kernel(name: str) -> Callable[..., Any]:
    """The compiled form of kernel ``name`` (compiled, or loaded from numba's cache, once)."""
    if name not in _KERNELS:
        import numba

        try:
            _KERNELS[name] = numba.njit(cache=True, nogil=True)(_PYTHON[name])
        except RuntimeError:  # numba finds nowhere writable to cache it: compile each time
            _KERNELS[name] = numba.njit(nogil=True)(_PYTHON[name])
    return _KERNELS[name]


def deep(levels: int) -> bool:
    """Whether a dynamic program of this many sequential steps runs compiled."""
    return levels >= MIN_LEVELS and available()


def reach(src: np.ndarray, dst: np.ndarray, init: np.ndarray, reverse: bool) -> np.ndarray:
    """(N,) bool: the states reachable from ``init`` (or, ``reverse``, co-reachable) along
    arcs in sweep order (see :func:`_reach`)."""
    seen: np.ndarray = init.copy()
    _kernel("reach")(src, dst, seen, reverse)
    return seen


def scan(into: np.ndarray, enter: np.ndarray, at: set[int], is_log: bool,
         buf: np.ndarray) -> None:
    """:func:`_scan` compiled, with the positions ``at`` where ``enter`` joins as a set."""
    mask = np.zeros(into.shape[0], dtype=np.bool_)
    mask[list(at)] = True
    _kernel("scan")(np.ascontiguousarray(into), np.ascontiguousarray(enter), mask, is_log,
                    buf)


def _structure(g: Graph) -> tuple[np.ndarray, ...]:
    """(topological order, first incoming arc of each state, arcs by destination, sources,
    start, accept) of ``g``, as numpy arrays (cached). Raises ValueError for a cyclic graph."""
    if "jit_paths" not in g._cache:
        topo = np.argsort(g.state_levels().numpy(), kind="stable")
        dst = g.dst.numpy()
        by_dst = np.argsort(dst, kind="stable")
        first = np.searchsorted(dst[by_dst], np.arange(g.num_states + 1))
        g._cache["jit_paths"] = (topo, first, by_dst, g.src.numpy().astype(np.int64),
                                 g.start.numpy(), g.accept.numpy())
    out: tuple[np.ndarray, ...] = g._cache["jit_paths"]
    return out


def use_for(graphs: list[Graph]) -> bool:
    """Whether :func:`best_paths` takes this batch: kernels available, CPU weights, a graph
    with at least MIN_LEVELS topological levels."""
    return (all(g.weight.device.type == "cpu" for g in graphs)
            and deep(max((int(g.state_levels().max()) + 1 for g in graphs if g.num_states),
                         default=0)))


def best_paths(graphs: list[Graph]) -> list[list[int]]:
    """Arc indices (in path order) of the best accepting path of each graph, ``[]`` when
    nothing accepts: :func:`gtn.viterbi_paths` by the compiled kernel."""
    kernel = _kernel("best_path")
    out = []
    for g in graphs:
        topo, first, by_dst, src, start, accept = _structure(g)
        w = g.weight.detach().numpy()
        if w.dtype not in (np.float32, np.float64):  # numba has no half floats
            w = w.astype(np.float64)
        out.append(kernel(w, topo, first, by_dst, src, start, accept).tolist())
    return out
