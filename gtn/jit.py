"""Optional compiled kernels (numba, ``pip install 'cheque-gtn[jit]'``) for the dynamic
programs whose sequential steps, or whose many small calls, no array formulation makes cheap:
the best path (:func:`best_paths`), the log and max semiring scan of :func:`gtn.banded.scan`
(:func:`scan`), the whole of an acyclic composition (:func:`compose`: join, trimming and
renumbering in one pass) and a log-semiring score with its arc posteriors (:func:`log_score`).

In numpy or torch each sequential step, and each array operation, is a call costing
microseconds: a 2000-state lattice's best path took ~2.7 ms, against OpenFst's ~0.55 ms, and a
20-state lattice's compose-then-forward ~0.9 ms in ~560 Python-level calls, against ~0.32 ms.
Compiled, each is a few passes over the arcs (~0.2 ms for that path, ~0.2 ms for that
composition and score).

Which calls run compiled (:func:`use`): a graph of at least MIN_LEVELS topological levels from a
process's first call; a shallower one once the process has asked for WARM_CALLS dynamic
programs, that is once it is evidently doing graph work in a loop (training, a benchmark, a long
run of reading): the kernels' loading (~0.3-0.5 s, and about a second for each kernel's first
compilation, then cached on disk where the package folder is writable) is then soon repaid,
while a process reading a few cheques never waits for it. Nothing is compiled at install time.
Without numba, or with ``GTN_JIT=0`` in the environment, every result comes from the numpy and
torch routes: the same compositions (state for state and arc for arc), the same scores and arc
posteriors to rounding, and best paths of the same score (ties may pick another path).
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .graph import Graph

# Graphs of at least this many topological levels (the longest path's length + 1) take the
# kernels from a process's first call: the array routes pay per sequential step, many
# milliseconds on such graphs. Shallower ones, however many arcs (the reader's 32 composed
# fields of a batch, ~35 levels: 7.6 ms), are fast enough there for a process reading a few
# cheques not to pay the kernels' first compilation or loading (0.3-1 s).
MIN_LEVELS = 256

# Shallow graphs run compiled too once a process has asked for this many dynamic programs: it
# is then doing graph work in a loop (training, a benchmark, a long batch), where each call
# saves ~0.1-1 ms of per-call overhead and loading the kernels (~0.3-0.5 s) is soon repaid.
WARM_CALLS = 200
_asked = 0

# The compiled log-semiring score (:func:`log_score`) costs ~30 ns an arc forward and
# backward, against ~15 for the vectorised banded scan (:mod:`gtn.banded`) once a graph's
# layout is built, but that takes ~40 numpy and torch calls and a layout. So it takes every
# graph scored for the first time (a composition is scored once or twice, as in training), and
# a batch scored again only while it has at most this many arcs.
MAX_SCORE_ARCS = 20_000

_KERNELS: dict[str, Callable[..., Any]] = {}


@cache
def _numba_installed() -> bool:
    # numba is imported only when a kernel is first needed: importing it costs ~0.3 s
    return importlib.util.find_spec("numba") is not None


def available() -> bool:
    """Whether the compiled kernels are used: numba is installed and ``GTN_JIT`` is not 0."""
    return os.environ.get("GTN_JIT", "1") != "0" and _numba_installed()


def _best_path(w: np.ndarray, topo: np.ndarray, first: np.ndarray, by_dst: np.ndarray,
               src: np.ndarray, start: np.ndarray, accept: np.ndarray
               ) -> tuple[np.ndarray, bool]:
    """Arc indices of the best accepting path (empty when none accepts or the best is the empty
    path), and whether any path accepts. ``topo`` (S,) the states in topological order; the
    arcs into state s are ``by_dst[first[s]:first[s + 1]]``. Ties go to the first arc in that
    order."""
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
    return path, end >= 0


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


def _compose(a_arcs: tuple[np.ndarray, ...], lev_a: np.ndarray,
             a_ends: tuple[np.ndarray, np.ndarray], ga: np.ndarray, own: np.ndarray,
             b_arcs: np.ndarray, lev_e: np.ndarray, b_ends: np.ndarray,
             gb: np.ndarray, n_groups: int, n_own: int, b_loops: bool
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All of :func:`gtn.compose_dag.compose_dag` in one pass, on ``a`` (``a_arcs``: source,
    destination, output label, input label and payload (or empty) of its arcs; ``lev_a`` its
    states' levels; ``a_ends`` start and accept flags) and ``b`` ((4, Ab) source, destination,
    input label, output label; ``lev_e`` the levels of its input-epsilon subgraph; ``b_ends``
    (2, Sb)), pairing only states of the same group (``ga``, ``gb``): the join on the label
    (``a``'s arcs stably by sweep group, then K - 1 epsilon self-loops per state of ``a``;
    ``b``'s arcs, then with ``b_loops`` one epsilon self-loop per state), reachability both
    ways over the product arcs in join order, then the kept states numbered by (owner ``own``
    of their state of ``a``, level, product id) and the kept arcs grouped by owner: the numpy
    route's states and arcs, in its order.

    Returns (7, A) the arcs (source, destination, arc of ``a``, arc of ``b`` (one past the
    end for the side that stays), input label, output label, payload (-1: none)), (2, S) start
    and accept, (S,) dense levels, (S,) the state of ``a`` of each state."""
    a_src, a_dst, a_out, a_in, a_pay = a_arcs
    a_start, a_accept = a_ends
    Sa, Sb, Aa, Ab = lev_a.shape[0], lev_e.shape[0], a_src.shape[0], b_arcs.shape[1]
    K = lev_e.max() + 1 if Sb else 1
    # product ids p * W + (q's rank in its group): pairs within a group only
    b_size = np.zeros(n_groups, np.int64)
    for q in range(Sb):
        b_size[gb[q]] += 1
    b_first = np.cumsum(b_size) - b_size
    W = b_size.max()
    # b's side: key (label, an epsilon's carrying its source's epsilon level; group), local
    # source and destination; then entries by key, found through a table over the key range
    nb = Ab + (Sb if b_loops else 0)
    kb = np.empty(nb, np.int64)
    b_loc = np.empty((2, nb), np.int64)
    for j in range(nb):
        q = b_arcs[0, j] if j < Ab else j - Ab
        d = b_arcs[1, j] if j < Ab else q
        lab = b_arcs[2, j] if j < Ab else -1
        if lab == -1 and j < Ab:
            lab = -1 - lev_e[q]
        kb[j] = (lab + K) * n_groups + gb[q]
        b_loc[0, j] = q - b_first[gb[q]]
        b_loc[1, j] = d - b_first[gb[d]]
    ob = np.argsort(kb, kind="mergesort")
    lo_key = kb.min() if nb else 0
    span = kb.max() - lo_key + 1 if nb else 0
    runs = np.zeros(span + 1, np.int64)  # entries of key lo_key + v: ob[runs[v]:runs[v + 1]]
    for j in range(nb):
        runs[kb[j] - lo_key + 1] += 1
    runs = np.cumsum(runs)
    # a's side in sweep order: stably by level * K + (K - 1 for arcs, e for the loop that
    # stays while b takes an input epsilon from epsilon level e)
    na = Aa + (K - 1) * Sa
    first = np.zeros((lev_a.max() + 1) * K + 1 if Sa else 1, np.int64)
    a_ent = np.empty((4, na), np.int64)  # source, destination, key, arc (Aa: a loop)
    for i in range(na):
        if i < Aa:
            s, d, lab, arc = a_src[i], a_dst[i], a_out[i], i
            g = lev_a[s] * K + K - 1
        else:
            e = (i - Aa) // Sa
            s = d = (i - Aa) - e * Sa
            lab, arc = -1 - e, Aa
            g = lev_a[s] * K + e
        a_ent[0, i], a_ent[1, i], a_ent[2, i], a_ent[3, i] = s, d, (lab + K) * n_groups + ga[s], arc
        first[g + 1] += 1
    first = np.cumsum(first)
    order = np.empty(na, np.int64)
    for i in range(na):
        s = a_ent[0, i]
        g = lev_a[s] * K + (K - 1 if i < Aa else (i - Aa) // Sa)
        order[first[g]] = i
        first[g] += 1
    # the join: count, then the product arcs in sweep order (row 4: the source's state of a)
    m = 0
    for i in range(na):
        v = a_ent[2, i] - lo_key
        if 0 <= v < span:
            m += runs[v + 1] - runs[v]
    arcs = np.empty((5, m), np.int64)
    n = 0
    for r in range(na):
        i = order[r]
        v = a_ent[2, i] - lo_key
        if not 0 <= v < span:
            continue
        s, d = a_ent[0, i], a_ent[1, i]
        for t in range(runs[v], runs[v + 1]):
            j = ob[t]
            arcs[0, n] = s * W + b_loc[0, j]
            arcs[1, n] = d * W + b_loc[1, j]
            arcs[2, n] = a_ent[3, i]
            arcs[3, n] = min(j, Ab)
            arcs[4, n] = s
            n += 1
    # reachability from the start pairs, and to the accepting pairs
    fwd = np.zeros(Sa * W, np.bool_)
    bwd = np.zeros(Sa * W, np.bool_)
    for p in range(Sa):
        for k in range(b_size[ga[p]]):
            q = b_first[ga[p]] + k
            fwd[p * W + k] = a_start[p] and b_ends[0, q]
            bwd[p * W + k] = a_accept[p] and b_ends[1, q]
    for t in range(m):
        if fwd[arcs[0, t]]:
            fwd[arcs[1, t]] = True
    for t in range(m - 1, -1, -1):
        if bwd[arcs[1, t]]:
            bwd[arcs[0, t]] = True
    # kept states by (owner, level, id), their levels ranked densely
    rank = np.zeros((lev_a.max() + 1) * K + 1 if Sa else 1, np.int64)
    for p in range(Sa):
        for k in range(b_size[ga[p]]):
            if fwd[p * W + k] and bwd[p * W + k]:
                rank[lev_a[p] * K + lev_e[b_first[ga[p]] + k] + 1] = 1
    rank = np.cumsum(rank)
    top = rank[-1]
    first = np.zeros(n_own * top + 1, np.int64)
    for p in range(Sa):
        for k in range(b_size[ga[p]]):
            if fwd[p * W + k] and bwd[p * W + k]:
                first[own[p] * top + rank[lev_a[p] * K + lev_e[b_first[ga[p]] + k]] + 1] += 1
    first = np.cumsum(first)
    S = first[-1]
    new_id = np.full(Sa * W, -1, np.int64)
    ends = np.zeros((2, S), np.bool_)
    levels = np.empty(S, np.int64)
    p_of = np.empty(S, np.int64)
    for p in range(Sa):
        for k in range(b_size[ga[p]]):
            if fwd[p * W + k] and bwd[p * W + k]:
                q = b_first[ga[p]] + k
                lev = rank[lev_a[p] * K + lev_e[q]]
                y = first[own[p] * top + lev]
                first[own[p] * top + lev] += 1
                new_id[p * W + k] = y
                ends[0, y] = a_start[p] and b_ends[0, q]
                ends[1, y] = a_accept[p] and b_ends[1, q]
                levels[y] = lev
                p_of[y] = p
    # kept arcs grouped by owner, in join order within each
    first = np.zeros(n_own + 1, np.int64)
    for t in range(m):
        if fwd[arcs[0, t]] and bwd[arcs[1, t]]:
            first[own[arcs[4, t]] + 1] += 1
    first = np.cumsum(first)
    out = np.empty((7, first[-1]), np.int64)
    for t in range(m):
        if fwd[arcs[0, t]] and bwd[arcs[1, t]]:
            y = first[own[arcs[4, t]]]
            first[own[arcs[4, t]]] += 1
            out[0, y] = new_id[arcs[0, t]]
            out[1, y] = new_id[arcs[1, t]]
            out[2, y] = ia = arcs[2, t]
            out[3, y] = ib = arcs[3, t]
            out[4, y] = a_in[ia] if ia < Aa else -1
            out[5, y] = b_arcs[3, ib] if ib < Ab else -1
            out[6, y] = a_pay[ia] if ia < Aa and a_pay.shape[0] else -1
    return out, ends, levels, p_of

def _log_values(frm: np.ndarray, to: np.ndarray, w: np.ndarray, rank: np.ndarray,
                init: np.ndarray) -> np.ndarray:
    """(S,) log-semiring values of the states: 0 for an ``init`` state, plus the logsumexp over
    arcs k into s (``to[k] == s``) of ``value[frm[k]] + w[k]``; states taken by ascending
    ``rank`` (>= 0; ``rank[frm[k]] < rank[to[k]]`` on every arc)."""
    S, A = rank.shape[0], frm.shape[0]
    first = np.zeros((rank.max() + 2) if S else 1, np.int64)
    for s in range(S):
        first[rank[s] + 1] += 1
    first = np.cumsum(first)
    order = np.empty(S, np.int64)
    for s in range(S):
        order[first[rank[s]]] = s
        first[rank[s]] += 1
    into = np.zeros(S + 1, np.int64)
    for k in range(A):
        into[to[k] + 1] += 1
    into = np.cumsum(into)
    fill = into.copy()
    by_to = np.empty(A, np.int64)
    for k in range(A):
        by_to[fill[to[k]]] = k
        fill[to[k]] += 1
    val = np.full(S, -np.inf)
    for u in order:
        m = 0.0 if init[u] else -np.inf
        for t in range(into[u], into[u + 1]):
            m = max(m, val[frm[by_to[t]]] + w[by_to[t]])
        if m == -np.inf:
            continue
        total = np.exp(-m) if init[u] else 0.0
        for t in range(into[u], into[u + 1]):
            total += np.exp(val[frm[by_to[t]]] + w[by_to[t]] - m)
        val[u] = m + np.log(total)
    return val


def _log_totals(alpha: np.ndarray, accept: np.ndarray, owner: np.ndarray,
                n_graphs: int) -> np.ndarray:
    """(B,) the logsumexp of each graph's accepting states' ``alpha`` (``owner`` (S,) the
    graph of each state); -inf where none is reached."""
    m = np.full(n_graphs, -np.inf)
    for s in range(alpha.shape[0]):
        if accept[s]:
            m[owner[s]] = max(m[owner[s]], alpha[s])
    total = np.zeros(n_graphs)
    for s in range(alpha.shape[0]):
        if accept[s] and m[owner[s]] > -np.inf:
            total[owner[s]] += np.exp(alpha[s] - m[owner[s]])
    for g in range(n_graphs):
        if m[g] > -np.inf:
            m[g] += np.log(total[g])
    return m


def _log_posteriors(src: np.ndarray, dst: np.ndarray, w: np.ndarray, owner: np.ndarray,
                    alpha: np.ndarray, beta: np.ndarray, totals: np.ndarray,
                    scale: np.ndarray) -> np.ndarray:
    """(A,) each arc's posterior ``exp(alpha[src] + w + beta[dst] - Z)`` times its graph's
    ``scale``: the gradient of the totals; 0 in a graph where no path accepts."""
    out = np.zeros(src.shape[0])
    for k in range(src.shape[0]):
        z = totals[owner[src[k]]]
        if z > -np.inf:
            out[k] = np.exp(alpha[src[k]] + w[k] + beta[dst[k]] - z) * scale[owner[src[k]]]
    return out

_PYTHON: dict[str, Callable[..., Any]] = {
    "best_path": _best_path, "compose": _compose, "log_posteriors": _log_posteriors,
    "log_totals": _log_totals, "log_values": _log_values, "scan": _scan}


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
    """Whether a dynamic program of this many sequential steps is deep enough to run compiled
    from a process's first call."""
    return levels >= MIN_LEVELS and available()


def use(levels: int) -> bool:
    """Whether a dynamic program of this many sequential steps runs compiled: a deep one
    always, a shallow one once this process has asked WARM_CALLS times (:func:`warm`)."""
    global _asked
    if deep(levels):
        return True
    if not available():
        return False
    _asked += 1
    return warm()


def warm_up() -> None:
    """Declare this process warm, as if it had run WARM_CALLS dynamic programs, and load (or
    compile) every kernel now rather than at its first use: for a process about to do graph
    work in a loop, and for timings of one that does."""
    global _asked
    _asked = max(_asked, WARM_CALLS)
    if available():
        for name in _PYTHON:
            _kernel(name)


def warm() -> bool:
    """Whether this process has asked for enough shallow dynamic programs to run them compiled."""
    return _asked > WARM_CALLS


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
    return all(g.weight.device.type == "cpu" for g in graphs) and use(_deepest(graphs))


def use_for_scores(graphs: list[Graph], weight: Tensor) -> bool:
    """Whether :func:`log_score` takes this batch: CPU weights, kernels in use (:func:`use`)
    for its deepest graph, and either at most MAX_SCORE_ARCS arcs or a graph not scored
    before (the banded scan's layout pays for itself only on graphs scored again)."""
    return (weight.device.type == "cpu"
            and (weight.shape[0] <= MAX_SCORE_ARCS
                 or not all(g._cache.get("log_scored") for g in graphs))
            and use(_deepest(graphs)))


def _deepest(graphs: list[Graph]) -> int:
    """The most topological levels of a graph of the batch."""
    return max((int(g.state_levels().max()) + 1 for g in graphs if g.num_states), default=0)


def best_paths(graphs: list[Graph]) -> list[list[int]]:
    """Arc indices (in path order) of the best accepting path of each graph, ``[]`` when
    nothing accepts: :func:`gtn.viterbi_paths` by the compiled kernel."""
    return [path.tolist() for path, _ in _paths(graphs, [g.weight for g in graphs])]


def _paths(graphs: list[Graph], weights: Sequence[Tensor]) -> list[tuple[np.ndarray, bool]]:
    """Each graph's best path under ``weights`` and whether any path accepts."""
    kernel = _kernel("best_path")
    out = []
    for g, weight in zip(graphs, weights):
        w = weight.detach().numpy()
        if w.dtype not in (np.float32, np.float64):  # numba has no half floats
            w = w.astype(np.float64)
        out.append(kernel(w, *_structure(g)))
    return out


def max_score(graphs: list[Graph], weight: Tensor) -> Tensor:
    """(B,) Viterbi scores of acyclic CPU ``graphs`` (``weight`` (A,) their arc weights,
    concatenated): each the sum of its best path's weights, found by the compiled kernel, so
    that the gradient is the path's 0/1 indicator; -inf where no path accepts."""
    sizes = [g.num_arcs for g in graphs]
    found = _paths(graphs, torch.split(weight, sizes))
    offsets = np.cumsum([0] + sizes[:-1])
    arcs = np.concatenate([path + off for (path, _), off in zip(found, offsets)])
    owner = np.repeat(np.arange(len(graphs)), [len(path) for path, _ in found])
    base = torch.tensor([0.0 if ok else -math.inf for _, ok in found], dtype=weight.dtype)
    return base.index_add(0, torch.from_numpy(owner),
                          weight.index_select(0, torch.from_numpy(arcs)))


def compose(a: Graph, b: Graph, lev_e: np.ndarray, ga: np.ndarray | None,
            gb: np.ndarray | None, own: np.ndarray | None, b_loops: bool, max_ids: int
            ) -> tuple[np.ndarray, ...] | None:
    """:func:`_compose` compiled, on the graphs' arrays (``ga``, ``gb``, ``own`` as there;
    None: all zeros); None when its tables would pass ``max_ids`` entries (product ids, or
    join keys: labels times groups)."""
    if "jit_compose" not in b._cache:  # b is the side that is reused (a grammar, a selector)
        b._cache["jit_compose"] = (
            np.stack([b.src.numpy(), b.dst.numpy(), b.ilabel.numpy(), b.olabel.numpy()]),
            np.stack([b.start.numpy(), b.accept.numpy()]),
            np.zeros(b.num_states, dtype=np.int64), int(b.ilabel.numpy().max(initial=0)))
    b_arcs, b_ends, b_zeros, b_labels = b._cache["jit_compose"]
    a_out = a.olabel.numpy()
    n_groups, widest = 1, b.num_states
    if ga is not None and gb is not None:
        n_groups = int(max(ga.max(initial=0), gb.max(initial=0))) + 1
        widest = int(np.bincount(gb).max()) if gb.size else 0
    labels = max(b_labels, int(a_out.max(initial=0)))
    if max(a.num_states * widest, (labels + lev_e.shape[0] + 2) * n_groups) > max_ids:
        return None
    zeros = np.zeros(a.num_states, dtype=np.int64)
    pay = a.payload.numpy() if a.payload is not None else zeros[:0]
    out: tuple[np.ndarray, ...] = _kernel("compose")(
        (a.src.numpy(), a.dst.numpy(), a_out, a.ilabel.numpy(), pay), a.state_levels().numpy(),
        (a.start.numpy(), a.accept.numpy()), zeros if ga is None else ga,
        zeros if own is None else own, b_arcs, lev_e, b_ends, b_zeros if gb is None else gb,
        n_groups, 1 if own is None else int(own[-1]) + 1, b_loops)
    return out


def log_score(graphs: list[Graph], weight: Tensor) -> Tensor:
    """(B,) log-semiring totals of acyclic CPU ``graphs`` (``weight`` (A,) their arc weights,
    concatenated) by the compiled kernels, in float64 whatever the weights' dtype.
    Differentiable: the gradient is the arc posteriors."""
    # torch.autograd.Function.apply is untyped
    out: Tensor = _CompiledLogScore.apply(  # type: ignore[no-untyped-call]
        weight, _batch_arrays(graphs), len(graphs))
    for g in graphs:
        g._cache["log_scored"] = True
    return out


def _batch_arrays(graphs: list[Graph]) -> tuple[np.ndarray, ...]:
    """(src, dst, levels, start, accept, owner) of ``graphs`` laid side by side, numpy."""
    if len(graphs) == 1:
        g = graphs[0]
        return (g.src.numpy(), g.dst.numpy(), g.state_levels().numpy(), g.start.numpy(),
                g.accept.numpy(), np.zeros(g.num_states, dtype=np.int64))
    sizes = np.array([g.num_states for g in graphs])
    offs = np.repeat(np.cumsum(sizes) - sizes, [g.num_arcs for g in graphs])
    return (np.concatenate([g.src.numpy() for g in graphs]) + offs,
            np.concatenate([g.dst.numpy() for g in graphs]) + offs,
            np.concatenate([g.state_levels().numpy() for g in graphs]),
            np.concatenate([g.start.numpy() for g in graphs]),
            np.concatenate([g.accept.numpy() for g in graphs]),
            np.repeat(np.arange(len(graphs)), sizes))


class _CompiledLogScore(torch.autograd.Function):
    """:func:`log_score`: forward values then totals; backward, the backward values and the
    arc posteriors."""

    @staticmethod
    def forward(ctx: Any, weight: Tensor, arrays: tuple[np.ndarray, ...], n_graphs: int
                ) -> Tensor:
        src, dst, levels, start, accept, owner = arrays
        w = weight.detach().numpy().astype(np.float64, copy=False)
        alpha = _kernel("log_values")(src, dst, w, levels, start)
        totals = _kernel("log_totals")(alpha, accept, owner, n_graphs)
        ctx.saved = (arrays, w, alpha, totals)
        ctx.dtype = weight.dtype
        return torch.from_numpy(totals).to(weight.dtype)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor, None, None]:
        (src, dst, levels, start, accept, owner), w, alpha, totals = ctx.saved
        top = int(levels.max()) if levels.size else 0
        beta = _kernel("log_values")(dst, src, w, top - levels, accept)
        scale = grad_out.detach().numpy().astype(np.float64)
        post = _kernel("log_posteriors")(src, dst, w, owner, alpha, beta, totals, scale)
        return torch.from_numpy(post).to(ctx.dtype), None, None
