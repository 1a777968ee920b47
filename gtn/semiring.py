"""Semirings used by the dynamic programs in :mod:`gtn.shortest`.

A semiring says how path scores combine: ``times`` along a path, ``plus`` across parallel
paths. Values are tensors whose trailing ``shape`` dimensions hold one semiring element
(empty for log/max/counting, ``(k,)`` for k-best).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

NEG_INF = float("-inf")


def exp_floor(dtype: torch.dtype) -> float:
    """A log value below which exp is negligible next to 1 in ``dtype`` but still fast: exp
    takes a slow path for results near underflow (about 1e-308 in float64)."""
    return 0.85 * math.log(torch.finfo(dtype).tiny)


@dataclass(frozen=True)
class Semiring:
    """Base class. ``zero`` is the plus-identity, ``one`` the times-identity."""

    name: str
    zero: float
    one: float

    @property
    def shape(self) -> tuple[int, ...]:
        return ()

    def arc_value(self, weight: Tensor) -> Tensor:
        """Arc weights (A,) -> semiring elements (A, *shape)."""
        return weight

    def full(self, n: int, value: float, like: Tensor) -> Tensor:
        """(n, *shape) tensor filled with ``value`` in the first element of each entry."""
        return torch.full((n, *self.shape), value, dtype=like.dtype, device=like.device)

    def times(self, a: Tensor, b: Tensor) -> Tensor:
        return a + b

    def scatter_plus(self, values: Tensor, index: Tensor, size: int) -> Tensor:
        """Plus-reduce ``values`` (N, *shape) into ``size`` buckets given by ``index`` (N,)."""
        raise NotImplementedError

    def plus(self, values: Tensor, dim: int) -> Tensor:
        """Plus-reduce along ``dim`` (a batch axis, not one of the trailing ``shape`` axes)."""
        raise NotImplementedError

    def reduce(self, values: Tensor, dim: int) -> Tensor:
        """``plus`` where no gradient is needed (it may be faster)."""
        return self.plus(values, dim)


@dataclass(frozen=True)
class LogSemiring(Semiring):
    """(logsumexp, +): forward scores; its gradient w.r.t. arc weights is the arc posterior."""

    name: str = "log"
    zero: float = NEG_INF
    one: float = 0.0

    def scatter_plus(self, values: Tensor, index: Tensor, size: int) -> Tensor:
        m = torch.full((size,), NEG_INF, dtype=values.dtype, device=values.device)
        m = m.scatter_reduce(0, index, values.detach(), "amax", include_self=True)
        m = torch.where(torch.isinf(m), torch.zeros_like(m), m)
        s = torch.zeros(size, dtype=values.dtype, device=values.device)
        s = s.index_add(0, index, torch.exp(values - m[index]))
        ok = s > 0
        return torch.where(ok, m + torch.log(torch.where(ok, s, torch.ones_like(s))), NEG_INF)

    def plus(self, values: Tensor, dim: int) -> Tensor:
        m = values.detach().amax(dim, keepdim=True)
        m = torch.where(torch.isinf(m), torch.zeros_like(m), m)
        s = torch.exp(values - m).sum(dim, keepdim=True)
        ok = s > 0
        out = torch.where(ok, m + torch.log(torch.where(ok, s, torch.ones_like(s))), NEG_INF)
        return out.squeeze(dim)

    def reduce(self, values: Tensor, dim: int) -> Tensor:
        # torch.logsumexp masks infinities with index ops, and exp is 5-20x slower on inputs
        # that (nearly) underflow: shifted values are floored at exp_floor (adding a
        # negligible amount each, far below rounding) and all -inf groups set back to -inf.
        m = values.amax(dim, keepdim=True)
        empty = (m == NEG_INF).squeeze(dim)
        m = m.clamp_(min=torch.finfo(values.dtype).min)
        x = (values - m).clamp_(min=exp_floor(values.dtype))
        out = x.exp_().sum(dim).log_().add_(m.squeeze(dim))
        return out.masked_fill_(empty, NEG_INF)


@dataclass(frozen=True)
class MaxSemiring(Semiring):
    """(max, +), the tropical semiring on scores. Ties go to the lowest index, so the
    gradient w.r.t. arc weights is the 0/1 indicator of one best path."""

    name: str = "max"
    zero: float = NEG_INF
    one: float = 0.0

    def scatter_argmax(self, values: Tensor, index: Tensor, size: int) -> Tensor:
        """Index into ``values`` of the first maximum per bucket, -1 for empty buckets."""
        m = torch.full((size,), NEG_INF, dtype=values.dtype, device=values.device)
        m = m.scatter_reduce(0, index, values.detach(), "amax", include_self=True)
        n = values.shape[0]
        pos = torch.arange(n, device=values.device)
        cand = torch.where(values.detach() == m[index], pos, n)
        best = torch.full((size,), n, dtype=torch.long, device=values.device)
        best = best.scatter_reduce(0, index, cand, "amin", include_self=True)
        return torch.where(best == n, -1, best)

    def scatter_plus(self, values: Tensor, index: Tensor, size: int) -> Tensor:
        if not (values.requires_grad and torch.is_grad_enabled()):  # no gradient to route:
            m = torch.full((size,), NEG_INF, dtype=values.dtype, device=values.device)
            return m.scatter_reduce(0, index, values, "amax", include_self=True)  # same values
        best = self.scatter_argmax(values, index, size)
        padded = torch.cat([values, values.new_full((1,), NEG_INF)])
        return padded[best]  # best == -1 picks the -inf pad

    def plus(self, values: Tensor, dim: int) -> Tensor:
        return values.max(dim).values


@dataclass(frozen=True)
class CountingSemiring(Semiring):
    """(+, *) on path counts, for tests: every arc counts 1."""

    name: str = "count"
    zero: float = 0.0
    one: float = 1.0

    def arc_value(self, weight: Tensor) -> Tensor:
        return torch.ones_like(weight)

    def times(self, a: Tensor, b: Tensor) -> Tensor:
        return a * b

    def scatter_plus(self, values: Tensor, index: Tensor, size: int) -> Tensor:
        out = torch.zeros(size, dtype=values.dtype, device=values.device)
        return out.index_add(0, index, values)

    def plus(self, values: Tensor, dim: int) -> Tensor:
        return values.sum(dim)


@dataclass(frozen=True)
class KBestSemiring(Semiring):
    """Elements are the k best path scores, sorted descending, padded with -inf.
    ``plus`` merges two lists, ``times`` takes the k best pairwise sums."""

    name: str = "kbest"
    zero: float = NEG_INF
    one: float = 0.0
    k: int = 1

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.k,)

    def arc_value(self, weight: Tensor) -> Tensor:
        pad = weight.new_full((weight.shape[0], self.k - 1), NEG_INF)
        return torch.cat([weight[:, None], pad], 1)

    def full(self, n: int, value: float, like: Tensor) -> Tensor:
        out = torch.full((n, self.k), NEG_INF, dtype=like.dtype, device=like.device)
        out[:, 0] = value
        return out

    def times(self, a: Tensor, b: Tensor) -> Tensor:
        sums = (a[..., :, None] + b[..., None, :]).flatten(-2)
        return sums.topk(self.k, -1).values

    def scatter_plus(self, values: Tensor, index: Tensor, size: int) -> Tensor:
        order = torch.argsort(index, stable=True)
        idx = index[order]
        counts = torch.bincount(idx, minlength=size)
        width = int(counts.max()) if idx.numel() else 0
        starts = torch.cumsum(counts, 0) - counts
        slot = torch.arange(idx.numel(), device=idx.device) - starts[idx]
        grid = values.new_full((size, max(width, 1), self.k), NEG_INF)
        grid = grid.index_put((idx, slot), values[order])
        return grid.flatten(1).topk(self.k, -1).values

    def plus(self, values: Tensor, dim: int) -> Tensor:
        moved = values.movedim(dim, -2).flatten(-2)
        return moved.topk(self.k, -1).values


LOG = LogSemiring()
MAX = MaxSemiring()
TROPICAL = MAX
COUNT = CountingSemiring()


def kbest(k: int) -> KBestSemiring:
    """The k-best semiring for ``k >= 1``."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return KBestSemiring(k=k)
