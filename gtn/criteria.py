"""Training criteria of the paper (section VI), as scores to minimise, per example.

``constrained`` is the graph restricted to the desired label sequence (the path selector's
output), ``full`` the whole interpretation graph. Lists give (B,) losses in one batched pass.
"""

from __future__ import annotations

from torch import Tensor

from .graph import Graph
from .shortest import forward_score, viterbi_score

Graphs = Graph | list[Graph]


def viterbi_loss(constrained: Graphs) -> Tensor:
    """-viterbi_score(constrained): scalar or (B,). Collapses if used alone (paper VI-A)."""
    return -viterbi_score(constrained)


def forward_loss_constrained(constrained: Graphs) -> Tensor:
    """-forward_score(constrained): the non-discriminative forward criterion."""
    return -forward_score(constrained)


def discriminative_viterbi_loss(constrained: Graphs, full: Graphs) -> Tensor:
    """viterbi(full) - viterbi(constrained) >= 0, zero once the best path is correct."""
    return viterbi_score(full) - viterbi_score(constrained)


def forward_loss(constrained: Graphs, full: Graphs) -> Tensor:
    """Discriminative forward loss -(forward(constrained) - forward(full)) >= 0, i.e.
    -log P(desired sequence | input). Scalar or (B,)."""
    return forward_score(full) - forward_score(constrained)
