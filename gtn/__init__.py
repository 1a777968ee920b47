"""gtn: differentiable weighted finite-state graphs (acceptors and transducers) in PyTorch.

Weights are scores (higher is better); a path scores the sum of its arc weights.
"""

from .compose import compose, compose_many, compose_pairs, intersect
from .criteria import (
    discriminative_viterbi_loss,
    forward_loss,
    forward_loss_constrained,
    viterbi_loss,
)
from .draw import draw, to_dot, to_networkx
from .graph import EPSILON, Graph, SymbolTable, linear_graph
from .nbest import nbest, prune
from .ops import closure, concat, invert, project_input, project_output, remove_epsilon, trim, union
from .semiring import COUNT, LOG, MAX, TROPICAL, Semiring, kbest
from .shortest import (
    arc_posteriors,
    forward_score,
    shortest_distance,
    viterbi_score,
)
from .viterbi import viterbi_path, viterbi_paths

__all__ = [
    "COUNT", "EPSILON", "LOG", "MAX", "TROPICAL", "Graph", "Semiring", "SymbolTable",
    "arc_posteriors", "closure", "compose", "compose_many", "compose_pairs", "concat",
    "discriminative_viterbi_loss", "draw",
    "forward_loss", "forward_loss_constrained", "forward_score", "intersect", "kbest",
    "invert", "linear_graph", "nbest", "project_input", "project_output", "prune", "remove_epsilon",
    "shortest_distance", "to_dot", "to_networkx", "trim", "union", "viterbi_loss",
    "viterbi_path", "viterbi_paths", "viterbi_score",
]
