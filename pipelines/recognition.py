"""The recognition transformer: segmentation graphs -> interpretation graph [paper IV, X].

Every segment arc becomes one arc per class (the rubbish class included) whose score is
-(recognizer penalty for the class) - (segment penalty from the arc's geometry). A cheque's
candidate fields are alternatives: their lattices sit side by side in one graph, each with
its own start state, and the field scorer's score is added to the arcs leaving its start.
A candidate character that sits high and small (`Segmentation.raised`: cents
written raised, "125⁰⁰") also gets one arc per digit labelled as that digit raised
(`pipelines.charset.RAISED`), scored by the recognizer on the candidate normalised on its own
(`Prepared.raised_inputs`), and `RaisedScorer` shares the candidate between its raised and
plain digit readings.
Scores are log-domain (higher is better), as `gtn` expects.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

import gtn
from pipelines.charset import NUM_CLASSES, RAISED
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


class RaisedScorer(nn.Module):
    """Log-odds that a candidate character that may be a raised digit (`Segmentation.raised`)
    is one rather than a plain digit: linear in its geometry (`Segmentation.raised_geometry`,
    then the segmentation features), starting as 10 x (height of its foot above the line's
    foot - 0.3 line heights)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(2 + NUM_FEATURES, 1)
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.weight[0, 0] = -10.0  # the foot's offset below the line's foot
            self.linear.bias.fill_(-3.0)

    def forward(self, geometry: Tensor, features: Tensor) -> Tensor:
        """(A, 2) raised geometry, (A, NUM_FEATURES) features -> (A,) log-odds."""
        return self.linear(torch.cat([geometry, features], 1)).squeeze(-1)


def lattice_arcs(seg: Segmentation, offset: int) -> tuple[Tensor, Tensor]:
    """(src, dst) of every class arc of a field's lattice, its nodes numbered from `offset`:
    segment arc a, class c is arc a * NUM_CLASSES + c."""
    start = torch.as_tensor(seg.arc_start, dtype=torch.long) + offset
    end = torch.as_tensor(seg.arc_end, dtype=torch.long) + offset
    return start.repeat_interleave(NUM_CLASSES), end.repeat_interleave(NUM_CLASSES)


def interpretation_graph(fields: Sequence[Segmentation], class_penalties: Sequence[Tensor],
                         segment_penalties: Sequence[Tensor], field_scores: Tensor,
                         class_beam: float = math.inf,
                         raised_logits: Sequence[Tensor] | None = None,
                         raised_penalties: Sequence[Tensor] | None = None) -> gtn.Graph:
    """One cheque's interpretation graph over its candidate fields.

    class_penalties[k]: (A_k, NUM_CLASSES) recognizer penalties of field k's segment arcs;
    segment_penalties[k]: (A_k,); field_scores: (K,) log-scores of the fields;
    raised_logits[k]: (A_k,) log-odds of each segment arc being a raised digit (`RaisedScorer`),
    used where `Segmentation.raised` allows one: its plain digit arcs get log sigmoid(-logit),
    and its raised digit arcs -(raised_penalties[k] + segment penalty) + log sigmoid(logit),
    raised_penalties[k] being (G_k, NUM_CLASSES) recognizer penalties of field k's G_k such
    arcs, in order. Without them, no raised arcs.
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
        score = -(pen + segment_penalties[k][:, None])
        label = torch.arange(NUM_CLASSES).repeat(seg.num_arcs)
        payload = torch.arange(seg.num_arcs).repeat_interleave(NUM_CLASSES)
        in_beam = (pen - pen.min(1, keepdim=True).values) <= class_beam
        if raised_logits is not None and raised_penalties is not None:
            gate = torch.as_tensor(seg.raised)
            logit = raised_logits[k][gate]
            plain = torch.zeros_like(score)
            plain[gate, :10] = nn.functional.logsigmoid(-logit)[:, None]
            up = raised_penalties[k][:, :10]
            raised = -(up + segment_penalties[k][gate][:, None]) \
                + nn.functional.logsigmoid(logit)[:, None]
            score = score + plain
            at = torch.nonzero(gate).squeeze(1)
            src = torch.cat([src, (torch.as_tensor(seg.arc_start)[at] + offset)
                             .repeat_interleave(10)])
            dst = torch.cat([dst, (torch.as_tensor(seg.arc_end)[at] + offset)
                             .repeat_interleave(10)])
            label = torch.cat([label, RAISED + torch.arange(10).repeat(len(at))])
            payload = torch.cat([payload, at.repeat_interleave(10)])
            score = torch.cat([score.reshape(-1), raised.reshape(-1)])
            in_beam = torch.cat([in_beam.reshape(-1),
                                 ((up - up.min(1, keepdim=True).values) <= class_beam).reshape(-1)])
        else:
            score = score.reshape(-1)
            in_beam = in_beam.reshape(-1)
        first = src == offset
        score = score + first.to(score.dtype) * field_scores[k]
        payload = payload + seg_offset
        if class_beam < math.inf:
            src, dst, score, payload, label = (t[in_beam] for t in (src, dst, score, payload,
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
