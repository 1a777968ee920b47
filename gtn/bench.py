"""Benchmark: ``python -m gtn.bench [--out FILE.json]``.

Seeded random acyclic lattices (segment arcs i -> i+1..i+3, each expanded into 10-17 labels as
after a character recognizer) of 20, 200 and 2000 states and a batch of 64 cheque-sized (30-state)
lattices. Each op is timed (median) here and, where ``pynini`` is installed, in OpenFst in the same
process on the same graphs; scores are checked to agree. Graph construction and conversion are
outside the timed regions. One thread (``torch.set_num_threads(1)``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import statistics
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import torch

from . import jit
from .compose import compose, compose_many, compose_pairs
from .graph import EPSILON, Graph, linear_graph
from .nbest import nbest
from .shortest import forward_score, viterbi_score
from .viterbi import viterbi_paths

NUM_LABELS = 20


def random_lattice(num_states: int, seed: int, dtype: torch.dtype = torch.float64) -> Graph:
    """An acyclic segmentation-style lattice acceptor with 10-17 labelled arcs per segment."""
    gen = torch.Generator().manual_seed(seed)
    arcs: list[tuple[int, int, int, int, float]] = []
    for s in range(num_states - 1):
        for d in range(s + 1, min(s + 4, num_states)):
            n = int(torch.randint(10, 18, (1,), generator=gen))
            labels = torch.randperm(NUM_LABELS, generator=gen)[:n].tolist()
            ws = (-5 * torch.rand(n, generator=gen, dtype=torch.float64)).tolist()
            arcs += [(s, d, lab, lab, w) for lab, w in zip(labels, ws)]
    return Graph.from_arcs(num_states, [0], [num_states - 1], arcs, dtype=dtype)


def grammar(dtype: torch.dtype = torch.float64) -> Graph:
    """A small cyclic grammar transducer with epsilon arcs: digits (0-9) then an optional tail
    of any symbol; label 10-19 maps to itself, digits loop."""
    arcs: list[tuple[int, int, int, int, float]] = []
    for d in range(10):
        arcs += [(0, 1, d, d, -0.1), (1, 1, d, d, -0.2)]
    arcs.append((1, 2, EPSILON, EPSILON, -0.5))
    for lab in range(10, NUM_LABELS):
        arcs.append((2, 3, lab, lab, -0.3))
    for lab in range(NUM_LABELS):
        arcs.append((3, 3, lab, lab, -0.4))
    arcs.append((3, 4, EPSILON, EPSILON, 0.0))
    return Graph.from_arcs(5, [0], [1, 4], arcs, dtype=dtype)


CHEQUE_LABELS = 17


def cheque_lattice(seed: int, num_states: int = 15, num_segments: int = 50,
                   dtype: torch.dtype = torch.float64) -> Graph:
    """A cheque-field interpretation lattice: ``num_segments`` segment arcs (spanning 1-4
    positions) each expanded into all 17 labels; start states 0 and 1, accept the last."""
    gen = torch.Generator().manual_seed(seed)
    arcs: list[tuple[int, int, int, int, float]] = []
    pairs = [(s, s + 1) for s in range(num_states - 1)]
    while len(pairs) < num_segments:
        s = int(torch.randint(0, num_states - 2, (1,), generator=gen))
        pairs.append((s, min(num_states - 1, s + int(torch.randint(2, 5, (1,), generator=gen)))))
    for s, d in pairs:
        ws = (-6 * torch.rand(CHEQUE_LABELS, generator=gen, dtype=torch.float64)).tolist()
        arcs += [(s, d, lab, lab, w) for lab, w in enumerate(ws)]
    return Graph.from_arcs(num_states, [0, 1], [num_states - 1], arcs, dtype=dtype)


def cheque_grammar(dtype: torch.dtype = torch.float64, num_states: int = 25) -> Graph:
    """A cyclic, input-deterministic amount grammar: 25 states, 12 labels out of each (300 arcs),
    digit self-loops, no input epsilons, about half the outputs epsilon."""
    gen = torch.Generator().manual_seed(7)
    arcs: list[tuple[int, int, int, int, float]] = []
    for s in range(num_states):
        labels = torch.randperm(CHEQUE_LABELS, generator=gen)[:12].tolist()
        for lab in labels:
            step = int(torch.randint(0, 3, (1,), generator=gen))
            d = s if lab < 10 and step == 0 else (s + step) % num_states
            out = lab if bool(torch.rand(1, generator=gen) < 0.5) else EPSILON
            arcs.append((s, d, lab, out, -0.1 * float(torch.rand(1, generator=gen))))
    return Graph.from_arcs(num_states, [0], [5, 12, 24], arcs, dtype=dtype)


def _pynini() -> Any:
    """pynini, untyped: its stubs, where installed, do not re-export Weight and Arc (they are
    pywrapfst's), and mypy must pass the same with or without them."""
    return importlib.import_module("pynini")


def to_pynini(g: Graph, arc_type: str) -> Any:
    pynini = _pynini()
    f = pynini.Fst(arc_type=arc_type)
    for _ in range(g.num_states):
        f.add_state()
    for s in g.start.nonzero().flatten().tolist():
        f.set_start(s)
    wtype = f.weight_type()
    one = pynini.Weight.one(wtype)
    for s in g.accept.nonzero().flatten().tolist():
        f.set_final(s, one)
    for s, d, il, ol, w in g.arcs():
        weight = pynini.Weight(wtype, -w)
        f.add_arc(s, pynini.Arc(il + 1, ol + 1, weight, d))
    return f


def median_time(fn: Callable[[], Any], min_reps: int = 5, budget: float = 1.0) -> float:
    times: list[float] = []
    t_end = time.perf_counter() + budget
    fn()  # warm-up
    while len(times) < min_reps or (time.perf_counter() < t_end and len(times) < 200):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _fwd_bwd(gs: Graph | list[Graph]) -> Callable[[], float]:
    single = isinstance(gs, Graph)
    glist = [gs] if isinstance(gs, Graph) else gs
    leaves = [g.weight.detach().clone().requires_grad_(True) for g in glist]
    graphs = [g.replace(weight=w) for g, w in zip(glist, leaves)]
    for g, h in zip(glist, graphs):  # reuse the cached topology (construction is not timed)
        h._cache.update(g._cache)

    def run() -> float:
        s = forward_score(graphs[0] if single else graphs)
        s.sum().backward()  # type: ignore[no-untyped-call]  # Tensor.backward is untyped
        return float(s.detach().sum())

    return run


def _peer_score(fsts: list[Any], arc_type: str) -> float:
    pynini = _pynini()
    total = 0.0
    for f in fsts:
        d = pynini.shortestdistance(f, reverse=True)
        total += -float(d[f.start()]) if len(d) else -math.inf
    return total


def _import_pynini() -> ModuleType | None:
    """The pynini module, or None where it is not installed."""
    try:
        return importlib.import_module("pynini")
    except ImportError:
        return None


def run_benchmark(dtype: torch.dtype = torch.float64, budget: float = 1.0) -> list[dict[str, Any]]:
    pynini = _import_pynini()
    torch.set_num_threads(1)
    tol = 1e-6 if dtype == torch.float64 else 1e-3
    cases: list[tuple[str, int, list[Graph]]] = [
        (f"lattice{n}", n, [random_lattice(n, seed=n, dtype=dtype)]) for n in (20, 200, 2000)]
    cases.append(("cheques", 30, [random_lattice(30, seed=1000 + i, dtype=dtype)
                                  for i in range(64)]))
    gram = grammar(dtype)
    rows: list[dict[str, Any]] = []

    def record(op: str, size: int, batch: int, ours: float, peer: float | None,
               ok: bool | None) -> None:
        rows.append(dict(op=op, size=size, batch=batch, seconds=ours, peer_seconds=peer,
                         ratio=None if peer is None else ours / peer, scores_agree=ok))

    for _name, size, gs in cases:
        for g in gs:
            g.state_levels()
        arg: Graph | list[Graph] = gs[0] if len(gs) == 1 else gs
        log_f = [to_pynini(g, "log64") for g in gs] if pynini else []
        trop_f = [to_pynini(g, "standard") for g in gs] if pynini else []
        # forward + backward
        fb = _fwd_bwd(arg)
        ours = median_time(fb, budget=budget)
        peer = median_time(lambda: _peer_score(log_f, "log64"), budget=budget) if pynini else None
        ok = math.isclose(fb(), _peer_score(log_f, "log64"), rel_tol=tol) if pynini else None
        record("forward+backward", size, len(gs), ours, peer, ok)
        # viterbi score
        ours = median_time(lambda: viterbi_score(arg), budget=budget)
        peer = median_time(lambda: _peer_score(trop_f, "standard"),
                           budget=budget) if pynini else None
        ok = math.isclose(float(viterbi_score(arg).sum()), _peer_score(trop_f, "standard"),
                          rel_tol=tol) if pynini else None
        record("viterbi_score", size, len(gs), ours, peer, ok)
        # viterbi path
        ours = median_time(lambda: viterbi_paths(gs), budget=budget)
        peer = median_time(lambda: [pynini.shortestpath(f) for f in trop_f],
                           budget=budget) if pynini else None
        ok = None
        if pynini:
            mine = sum(float(g.weight[idx].sum()) for g, idx in zip(gs, viterbi_paths(gs)))
            theirs = _peer_score([pynini.shortestpath(f) for f in trop_f], "standard")
            ok = math.isclose(mine, theirs, rel_tol=tol)
        record("viterbi_path", size, len(gs), ours, peer, ok)
        # compose with the grammar, then forward score
        # a batch goes through the batched composition, as the reader and training use it
        def composed() -> list[Graph]:
            return compose_many(gs, gram) if len(gs) > 1 else [compose(gs[0], gram)]

        ours = median_time(lambda: forward_score(composed()), budget=budget)
        peer, ok = None, None
        if pynini:
            gram_f = to_pynini(gram, "log64")

            def peer_compose() -> float:
                return _peer_score([pynini.compose(f, gram_f) for f in log_f], "log64")

            peer = median_time(peer_compose, budget=budget)
            mine = float(forward_score(composed()).sum())
            ok = math.isclose(mine, peer_compose(), rel_tol=tol)
        record("compose+forward", size, len(gs), ours, peer, ok)
    rows += cheque_rows(dtype, budget, pynini)
    return rows


def cheque_rows(dtype: torch.dtype, budget: float, pynini: Any) -> list[dict[str, Any]]:
    """The cheque reader's decoding steps on a batch of 32 cheque lattices (15 states, 50
    segments x 17 labels) and a 25-state cyclic grammar with output epsilons, under no_grad."""
    lats = [cheque_lattice(seed, dtype=dtype) for seed in range(32)]
    gram = cheque_grammar(dtype)
    rows: list[dict[str, Any]] = []
    with torch.no_grad():
        full = compose_many(lats, gram)
        best = viterbi_paths(full)
        sel = [linear_graph([x for x in c.olabel[idx].tolist() if x != EPSILON])
               for c, idx in zip(full, best)]
        steps: list[tuple[str, Callable[[], Any]]] = [
            ("cheque_compose", lambda: compose_many(lats, gram)),
            ("cheque_viterbi_path", lambda: viterbi_paths(full)),
            ("cheque_forward", lambda: forward_score(full)),
            ("cheque_constrain+fwd", lambda: forward_score(compose_pairs(full, sel))),
            ("cheque_nbest3", lambda: [nbest(c, 3) for c in full]),
        ]
        for op, fn in steps:
            peer = None
            if op == "cheque_compose" and pynini:
                lat_f = [to_pynini(g, "standard") for g in lats]
                gram_f = to_pynini(gram, "standard")
                peer = median_time(lambda: [pynini.compose(f, gram_f) for f in lat_f],
                                   budget=budget)
            ours = median_time(fn, budget=budget)
            rows.append(dict(op=op, size=15, batch=32, seconds=ours, peer_seconds=peer,
                             ratio=None if peer is None else ours / peer, scores_agree=None))
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    head = f"{'op':<18}{'size':>6}{'batch':>6}{'ours ms':>11}{'OpenFst ms':>12}{'ratio':>8}  agree"
    lines = [head, "-" * len(head)]
    for r in rows:
        peer = "-" if r["peer_seconds"] is None else f"{1e3 * r['peer_seconds']:.3f}"
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        lines.append(f"{r['op']:<18}{r['size']:>6}{r['batch']:>6}{1e3 * r['seconds']:>11.3f}"
                     f"{peer:>12}{ratio:>8}  {r['scores_agree']}")
    return "\n".join(lines)


def kernel_status() -> str:
    if not jit.available():
        return ("compiled kernels: off (numba is not installed, or GTN_JIT=0): every row ran "
                "on the numpy and torch routes")
    return (f"compiled kernels: numba, for every graph after {jit.WARM_CALLS} dynamic programs "
            f"(warmed up before timing: gtn.jit.warm_up), for graphs of {jit.MIN_LEVELS}+ levels "
            "from the first")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", help="write the rows as JSON to this file")
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    p.add_argument("--budget", type=float, default=1.0, help="seconds of repeats per timing")
    args = p.parse_args(argv)
    if not args.budget > 0:  # also refuses nan
        p.error(f"--budget must be a positive number of seconds, got {args.budget}")
    if args.out and not os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
        p.error(f"--out {args.out}: its folder does not exist")
    jit.warm_up()  # timings of a warm process, as in training
    rows = run_benchmark(getattr(torch, args.dtype), args.budget)
    print(format_table(rows))
    print(kernel_status())
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
