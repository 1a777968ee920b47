"""The recognition transformer: segmentation graphs -> interpretation graph [paper IV, X].

Every segment arc becomes one arc per class (the rubbish class included) whose score is
-(recognizer penalty for the class) - (segment penalty from the arc's geometry). A cheque's
candidate fields are alternatives: their lattices sit side by side in one graph, each with
its own start state, and the field scorer's score is added to the arcs leaving its start.
Scores are log-domain (higher is better), as `gtn` expects.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

import gtn
from pipelines.charset import NUM_CLASSES
from pipelines.segmentation import NUM_FEATURES, Segmentation


class SegmentScorer(nn.Module):
    """Penalty (>= 0) of a candidate character from its geometry: a small MLP over the
    segmentation features (width, height, offsets from the line, gaps, piece count)."""

    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(NUM_FEATURES, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        nn.init.zeros_(self.net[2].weight)
        nn.init.constant_(self.net[2].bias, -3.0)  # softplus(-3) ~ 0.05: nearly neutral at first

    def forward(self, features: Tensor) -> Tensor:
        """(A, NUM_FEATURES) -> (A,) penalties."""
        return nn.functional.softplus(self.net(features).squeeze(-1))


def lattice_arcs(seg: Segmentation, offset: int) -> tuple[Tensor, Tensor]:
    """(src, dst) of every class arc of a field's lattice, its nodes numbered from `offset`:
    segment arc a, class c is arc a * NUM_CLASSES + c."""
    start = torch.as_tensor(seg.arc_start, dtype=torch.long) + offset
    end = torch.as_tensor(seg.arc_end, dtype=torch.long) + offset
    return start.repeat_interleave(NUM_CLASSES), end.repeat_interleave(NUM_CLASSES)


def interpretation_graph(fields: Sequence[Segmentation], class_penalties: Sequence[Tensor],
                         segment_penalties: Sequence[Tensor], field_scores: Tensor,
                         class_beam: float = math.inf) -> gtn.Graph:
    """One cheque's interpretation graph over its candidate fields.

    class_penalties[k]: (A_k, NUM_CLASSES) recognizer penalties of field k's segment arcs;
    segment_penalties[k]: (A_k,); field_scores: (K,) log-scores of the fields.
    Arc payload = index of the segment arc, counted over all fields in order.
    With a finite `class_beam`, a segment's classes whose penalty exceeds its best class's by
    more than the beam get no arc (a reading-time pruning: such arcs carry next to no weight).
    """
    srcs, dsts, weights, payloads, labels = [], [], [], [], []
    starts, accepts = [], []
    offset = seg_offset = 0
    for k, seg in enumerate(fields):
        src, dst = lattice_arcs(seg, offset)
        pen = class_penalties[k]
        score = -(pen + segment_penalties[k][:, None]).reshape(-1)
        first = src == offset
        score = score + first.to(score.dtype) * field_scores[k]
        payload = torch.arange(seg.num_arcs).repeat_interleave(NUM_CLASSES) + seg_offset
        label = torch.arange(NUM_CLASSES).repeat(seg.num_arcs)
        if class_beam < math.inf:
            keep = ((pen - pen.min(1, keepdim=True).values) <= class_beam).reshape(-1)
            src, dst, score, payload, label = (t[keep] for t in (src, dst, score, payload,
                                                                 label))
        srcs.append(src)
        dsts.append(dst)
        weights.append(score)
        payloads.append(payload)
        labels.append(label)
        starts.append(offset)
        accepts.append(offset + seg.num_pieces)
        offset += seg.num_pieces + 1
        seg_offset += seg.num_arcs
    label = torch.cat(labels)
    return gtn.Graph.from_tensors(
        num_states=offset, start=torch.tensor(starts), accept=torch.tensor(accepts),
        src=torch.cat(srcs), dst=torch.cat(dsts), ilabel=label, olabel=label,
        weight=torch.cat(weights), payload=torch.cat(payloads),
    )
