"""The learnable field scorer: a candidate field's log-score from its layout features."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pipelines.fields import NUM_FIELD_FEATURES, FieldRanker


class FieldScorer(nn.Module):
    """Log-score of a candidate field from its layout features: (K, F) -> (K,)."""

    def __init__(self, hidden: int = 32, num_features: int = NUM_FIELD_FEATURES) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(num_features, hidden), nn.Tanh(),
                                 nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, features: Tensor) -> Tensor:
        return self.net(features).squeeze(-1)

    @torch.no_grad()
    def ranker(self) -> FieldRanker:
        """The same scores computed in numpy, from a copy of the current weights."""
        layers = [m for m in self.net if isinstance(m, nn.Linear)]
        return FieldRanker(tuple(m.weight.detach().cpu().float().numpy().copy() for m in layers),
                           tuple(m.bias.detach().cpu().float().numpy().copy() for m in layers))
