"""The :class:`Graph` container: a weighted acceptor or transducer held as arc tensors."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import InitVar, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

EPSILON = -1


class SymbolTable:
    """A bijection between labels ``0..n-1`` and strings."""

    def __init__(self, symbols: Iterable[str]) -> None:
        self.symbols: list[str] = list(symbols)
        self._index = {s: i for i, s in enumerate(self.symbols)}
        if len(self._index) != len(self.symbols):
            raise ValueError("SymbolTable: duplicate symbols")

    def index(self, symbol: str) -> int:
        if symbol not in self._index:
            raise ValueError(f"symbol {symbol!r} not in table (allowed: {self.symbols[:20]})")
        return self._index[symbol]

    def symbol(self, label: int) -> str:
        if label == EPSILON:
            return "<eps>"
        if not 0 <= label < len(self.symbols):
            raise ValueError(f"label {label} outside symbol table of size {len(self.symbols)}")
        return self.symbols[label]

    def __len__(self) -> int:
        return len(self.symbols)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SymbolTable) and self.symbols == other.symbols

    def __hash__(self) -> int:
        return hash(tuple(self.symbols))

    def __repr__(self) -> str:
        return f"SymbolTable({self.symbols!r})"


def argsort_stable(key: Tensor, bound: int) -> Tensor:
    """Stable argsort of ``key`` (n,) long with values in ``0..bound - 1``. On the CPU a
    key below 2**16 uses numpy's radix sort (about 10x faster than ``torch.argsort``)."""
    if key.device.type == "cpu" and bound <= 1 << 16:
        order = np.argsort(key.numpy().astype(np.uint16), kind="stable")
        return torch.from_numpy(order.astype(np.int64))
    return torch.argsort(key, stable=True)


def _long(x: Any) -> Tensor:
    return torch.as_tensor(x, dtype=torch.long).reshape(-1)


# Keys of Graph._cache: names ("levels", "band", ...), and ("plan", reverse) for the DP plans
# of gtn.shortest.
_CacheKey = str | tuple[str, bool]


@dataclass(frozen=True, eq=False)
class Graph:
    """A weighted finite-state transducer; an acceptor when ``ilabel == olabel``.

    Shapes: ``start``/``accept`` (S,) bool; ``src``/``dst``/``ilabel``/``olabel`` (A,) long;
    ``weight`` (A,) float (a score: higher is better; may require grad); ``payload`` (A,) long
    or None (-1 = none). Treat as immutable: operations return new graphs.
    """

    num_states: int
    start: Tensor
    accept: Tensor
    src: Tensor
    dst: Tensor
    ilabel: Tensor
    olabel: Tensor
    weight: Tensor
    payload: Tensor | None = None
    isymbols: SymbolTable | None = None
    osymbols: SymbolTable | None = None
    _cache: dict[_CacheKey, Any] = field(default_factory=dict, repr=False, compare=False)
    # Operations pass False for graphs they build from valid graphs: checking every result
    # costs a dozen tensor passes, as much as a small composition itself.
    checked: InitVar[bool] = True

    def __post_init__(self, checked: bool) -> None:
        if checked:
            self.validate()

    # ------------------------------------------------------------------ builders
    @staticmethod
    def from_arcs(
        num_states: int,
        start: Sequence[int],
        accept: Sequence[int],
        arcs: Sequence[Sequence[Any]],
        payload: Sequence[int] | None = None,
        isymbols: SymbolTable | None = None,
        osymbols: SymbolTable | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> Graph:
        """Build from Python lists. Each arc is ``(src, dst, ilabel[, olabel[, weight]])``;
        a missing olabel copies ilabel (acceptor), a missing weight is 0."""
        cols: list[list[Any]] = [[], [], [], [], []]
        for arc in arcs:
            if not 3 <= len(arc) <= 5:
                raise ValueError(f"arc {arc!r} must be (src, dst, ilabel[, olabel[, weight]])")
            s, d, i = arc[0], arc[1], arc[2]
            o = arc[3] if len(arc) > 3 else i
            w = arc[4] if len(arc) > 4 else 0.0
            for col, v in zip(cols, (s, d, i, o, w)):
                col.append(v)
        return Graph.from_tensors(
            num_states,
            _mask(num_states, start, "start"),
            _mask(num_states, accept, "accept"),
            _long(cols[0]), _long(cols[1]), _long(cols[2]), _long(cols[3]),
            torch.tensor([float(w) for w in cols[4]], dtype=dtype),
            payload=None if payload is None else _long(payload),
            isymbols=isymbols, osymbols=osymbols,
        )

    @staticmethod
    def from_tensors(
        num_states: int,
        start: Tensor,
        accept: Tensor,
        src: Tensor,
        dst: Tensor,
        ilabel: Tensor,
        olabel: Tensor | None,
        weight: Tensor,
        payload: Tensor | None = None,
        isymbols: SymbolTable | None = None,
        osymbols: SymbolTable | None = None,
    ) -> Graph:
        """Wrap tensors without copying (``weight`` keeps its autograd history).
        ``start``/``accept`` may be (S,) bool masks or index lists."""
        if start.dtype != torch.bool:
            start = _mask(num_states, start.tolist(), "start")
        if accept.dtype != torch.bool:
            accept = _mask(num_states, accept.tolist(), "accept")
        return Graph(int(num_states), start, accept, src, dst, ilabel,
                     ilabel if olabel is None else olabel, weight, payload, isymbols, osymbols)

    @staticmethod
    def from_str(text: str, dtype: torch.dtype = torch.float32) -> Graph:
        """Parse the text format: line 1 start states, line 2 accept states, then one arc per
        line ``src dst ilabel [olabel] [weight]`` (labels are ints, -1 = epsilon)."""
        raw = text.splitlines()
        while raw and not raw[0].strip():
            raw.pop(0)
        lines = [ln.split() for ln in raw[:2]] + [ln.split() for ln in raw[2:] if ln.strip()]
        if len(lines) < 2:
            raise ValueError("graph text needs a start line and an accept line")
        start = [int(x) for x in lines[0]]
        accept = [int(x) for x in lines[1]]
        arcs: list[tuple[Any, ...]] = []
        for ln in lines[2:]:
            if not 3 <= len(ln) <= 5:
                raise ValueError(f"bad arc line {' '.join(ln)!r}: want src dst ilabel [olabel] [w]")
            s, d, i = int(ln[0]), int(ln[1]), int(ln[2])
            o = int(ln[3]) if len(ln) > 3 else i
            w = float(ln[4]) if len(ln) > 4 else 0.0
            arcs.append((s, d, i, o, w))
        ids = start + accept + [a[0] for a in arcs] + [a[1] for a in arcs]
        return Graph.from_arcs(max(ids, default=-1) + 1, start, accept, arcs, dtype=dtype)

    def to_str(self) -> str:
        """The text format of :meth:`from_str` (always writes olabel and weight)."""
        rows = [" ".join(map(str, self.start.nonzero().flatten().tolist())),
                " ".join(map(str, self.accept.nonzero().flatten().tolist()))]
        cols = zip(self.src.tolist(), self.dst.tolist(), self.ilabel.tolist(),
                   self.olabel.tolist(), self.weight.detach().tolist())
        rows += [f"{s} {d} {i} {o} {w:.9g}" for s, d, i, o, w in cols]
        return "\n".join(rows) + "\n"

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise ``ValueError``/``TypeError`` naming the first broken invariant."""
        S = self.num_states
        for name in ("start", "accept"):
            t = getattr(self, name)
            if not isinstance(t, Tensor) or t.dtype != torch.bool or t.shape != (S,):
                raise TypeError(f"Graph.{name} must be a bool tensor of shape ({S},)")
        A = self.src.shape[0] if isinstance(self.src, Tensor) else -1
        for name in ("src", "dst", "ilabel", "olabel"):
            t = getattr(self, name)
            if not isinstance(t, Tensor) or t.dtype != torch.long or t.shape != (A,):
                raise TypeError(f"Graph.{name} must be a long tensor of shape (A,) = ({A},)")
        if not isinstance(self.weight, Tensor) or not self.weight.is_floating_point():
            raise TypeError("Graph.weight must be a floating-point tensor")
        if self.weight.shape != (A,):
            raise ValueError(f"Graph.weight has shape {tuple(self.weight.shape)}, want ({A},)")
        if self.payload is not None and (self.payload.dtype != torch.long
                                         or self.payload.shape != (A,)):
            raise TypeError(f"Graph.payload must be None or a long tensor of shape ({A},)")
        if S > 0 and not bool(self.start.any()):
            raise ValueError("graph has no start state")
        if A:
            for name in ("src", "dst"):
                t = getattr(self, name)
                bad = (t < 0) | (t >= S)
                if bool(bad.any()):
                    v = int(t[bad][0])
                    raise ValueError(f"arc {name} {v} is an unknown state (num_states={S})")
            for name, table in (("ilabel", self.isymbols), ("olabel", self.osymbols)):
                t = getattr(self, name)
                hi = len(table) if table is not None else None
                bad = (t < EPSILON) if hi is None else (t < EPSILON) | (t >= hi)
                if bool(bad.any()):
                    v = int(t[bad][0])
                    allowed = "labels >= 0 or -1 (epsilon)" if hi is None else \
                        f"0..{hi - 1} of its symbol table or -1 (epsilon)"
                    raise ValueError(f"{name} {v} outside the allowed range: {allowed}")
            if bool(torch.isnan(self.weight.detach()).any()):
                i = int(torch.isnan(self.weight.detach()).nonzero()[0])
                raise ValueError(f"arc {i} has a NaN weight")

    # ------------------------------------------------------------------ properties
    @property
    def num_arcs(self) -> int:
        return int(self.src.shape[0])

    @property
    def is_acceptor(self) -> bool:
        return bool(torch.equal(self.ilabel, self.olabel))

    def replace(self, **changes: Any) -> Graph:
        """A copy with some fields changed (caches dropped)."""
        fields = {k: getattr(self, k) for k in ("num_states", "start", "accept", "src", "dst",
                                                 "ilabel", "olabel", "weight", "payload",
                                                 "isymbols", "osymbols")}
        fields.update(changes)
        return Graph(**fields)

    def payload_or_none(self) -> Tensor:
        """The payload, or a (A,) tensor of -1."""
        if self.payload is not None:
            return self.payload
        return torch.full((self.num_arcs,), -1, dtype=torch.long)

    def arcs(self) -> list[tuple[int, int, int, int, float]]:
        """The arcs as Python tuples (src, dst, ilabel, olabel, weight)."""
        return list(zip(self.src.tolist(), self.dst.tolist(), self.ilabel.tolist(),
                        self.olabel.tolist(), self.weight.detach().tolist()))

    def __repr__(self) -> str:
        kind = "acceptor" if self.is_acceptor else "transducer"
        return f"Graph({kind}, states={self.num_states}, arcs={self.num_arcs})"

    def has_epsilon(self, side: str) -> bool:
        """Whether an arc's input (``side="in"``) or output (``"out"``) label is EPSILON
        (cached)."""
        key = "epsilon_" + side
        if key not in self._cache:
            labels = {"in": self.ilabel, "out": self.olabel}[side]
            self._cache[key] = bool((labels == EPSILON).any())
        out: bool = self._cache[key]
        return out

    # ------------------------------------------------------------------ topology
    def state_levels(self, reverse: bool = False) -> Tensor:
        """(S,) long: longest-path depth of each state from the sources (``reverse``: from
        the sinks); raises ValueError on a cycle. Computed once (Kahn's algorithm over distinct
        state pairs) and cached."""
        key = "rlevels" if reverse else "levels"
        if key not in self._cache:
            self._cache[key] = _kahn_levels(self, reverse)
        levels: Tensor = self._cache[key]
        return levels

    @property
    def is_acyclic(self) -> bool:
        try:
            self.state_levels()
        except ValueError:
            return False
        return True


def _mask(num_states: int, states: Sequence[int], what: str) -> Tensor:
    m = torch.zeros(num_states, dtype=torch.bool)
    for s in states:
        if not 0 <= int(s) < num_states:
            raise ValueError(f"{what} state {s} is an unknown state (num_states={num_states})")
        m[int(s)] = True
    return m


def _kahn_levels(g: Graph, reverse: bool = False) -> Tensor:
    S = g.num_states
    if g.num_arcs == 0:
        return torch.zeros(S, dtype=torch.long)
    a, b = (g.dst, g.src) if reverse else (g.src, g.dst)
    keys = torch.unique(a * S + b)
    src, dst = (keys // S).tolist(), (keys % S).tolist()
    out: list[list[int]] = [[] for _ in range(S)]
    indeg = [0] * S
    for s, d in zip(src, dst):
        out[s].append(d)
        indeg[d] += 1
    level = [0] * S
    stack = [s for s in range(S) if indeg[s] == 0]
    seen = 0
    while stack:
        s = stack.pop()
        seen += 1
        ls = level[s] + 1
        for d in out[s]:
            if level[d] < ls:
                level[d] = ls
            indeg[d] -= 1
            if indeg[d] == 0:
                stack.append(d)
    if seen < S:
        raise ValueError(_cycle_message(g, [i for i in range(S) if indeg[i] > 0]))
    return torch.tensor(level, dtype=torch.long)


def _cycle_message(g: Graph, stuck: list[int]) -> str:
    eps = (g.ilabel == EPSILON) & (g.olabel == EPSILON)
    if bool(eps.all()):
        return ("graph has an epsilon cycle; an acyclic graph is required "
                f"(states on or after the cycle: {stuck[:10]})")
    if bool(eps.any()):
        sub = Graph(g.num_states, g.start, g.accept, g.src[eps], g.dst[eps], g.ilabel[eps],
                    g.olabel[eps], g.weight[eps])
        if not sub.is_acyclic:
            return ("graph has an epsilon cycle; an acyclic graph is required "
                    f"(states on or after the cycle: {stuck[:10]})")
    return f"graph has a cycle; an acyclic graph is required (states on or after it: {stuck[:10]})"


def linear_graph(labels: Sequence[int], weights: Tensor | Sequence[float] | None = None,
                 isymbols: SymbolTable | None = None) -> Graph:
    """A chain acceptor 0 -l0-> 1 -l1-> ... -> n for the label sequence (the path selector).
    ``weights`` (n,) defaults to zeros; a tensor keeps its autograd history."""
    n = len(labels)
    lab = _long(list(labels))
    w = torch.zeros(n) if weights is None else torch.as_tensor(weights)
    if not w.is_floating_point():
        w = w.float()
    return Graph.from_tensors(n + 1, _mask(n + 1, [0], "start"), _mask(n + 1, [n], "accept"),
                              torch.arange(n), torch.arange(1, n + 1), lab, lab.clone(), w,
                              isymbols=isymbols, osymbols=isymbols)
