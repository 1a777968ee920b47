"""The recognition transformer's interpretation graph against brute-force path enumeration."""

import itertools
from types import SimpleNamespace

import numpy as np
import torch

import gtn
from pipelines.charset import NUM_CLASSES, RAISED
from pipelines.recognition import RaisedScorer, SegmentScorer, interpretation_graph
from pipelines.segmentation import NUM_FEATURES


def fake_field(arcs, pieces, raised=None):
    start, end = zip(*arcs)
    return SimpleNamespace(arc_start=torch.tensor(start).numpy(), arc_end=torch.tensor(end).numpy(),
                           num_pieces=pieces, num_arcs=len(arcs), raised=raised)


def brute_force(fields, cls, seg, field_scores):
    """Best and log-sum-exp of all (field, segmentation, class sequence) paths."""
    scores = []
    for k, f in enumerate(fields):
        arcs = list(zip(f.arc_start.tolist(), f.arc_end.tolist()))
        def paths(node):
            if node == f.num_pieces:
                yield []
            for a, (s, e) in enumerate(arcs):
                if s == node:
                    for rest in paths(e):
                        yield [a] + rest
        for path in paths(0):
            for labels in itertools.product(range(NUM_CLASSES), repeat=len(path)):
                scores.append(float(field_scores[k]) - sum(
                    float(cls[k][a, c] + seg[k][a]) for a, c in zip(path, labels)))
    return max(scores), torch.logsumexp(torch.tensor(scores, dtype=torch.float64), 0)


def test_interpretation_graph_scores_every_path_once():
    torch.manual_seed(0)
    fields = [fake_field([(0, 1), (1, 2), (0, 2)], 2), fake_field([(0, 1)], 1)]
    cls = [torch.rand(3, NUM_CLASSES, dtype=torch.float64) * 3,
           torch.rand(1, NUM_CLASSES, dtype=torch.float64) * 3]
    seg = [torch.rand(3, dtype=torch.float64), torch.rand(1, dtype=torch.float64)]
    field_scores = torch.log_softmax(torch.tensor([0.3, -0.2], dtype=torch.float64), 0)
    g = interpretation_graph(fields, cls, seg, field_scores)
    assert g.num_arcs == 4 * NUM_CLASSES
    best, total = brute_force(fields, cls, seg, field_scores)
    assert torch.allclose(gtn.viterbi_score(g), torch.tensor(best, dtype=torch.float64))
    assert torch.allclose(gtn.forward_score(g), total)
    # Payload names the segment arc over all fields: 0..2 for field 0, 3 for field 1.
    assert sorted(set(g.payload.tolist())) == [0, 1, 2, 3]


def test_gradients_reach_recognizer_and_segment_penalties():
    fields = [fake_field([(0, 1), (1, 2), (0, 2)], 2)]
    cls = [torch.rand(3, NUM_CLASSES, requires_grad=True)]
    seg = [torch.rand(3, requires_grad=True)]
    g = interpretation_graph(fields, cls, seg, torch.zeros(1))
    gtn.forward_score(g).backward()
    # Each arc's posterior is minus the gradient of its penalty; per segment arc they sum to
    # the probability that the path uses it, and the two segmentations share all the mass.
    used = -cls[0].grad.sum(1)
    assert torch.allclose(used[0], used[1], atol=1e-5)
    assert torch.allclose(used[0] + used[2], torch.tensor(1.0), atol=1e-5)
    assert torch.allclose(seg[0].grad, cls[0].grad.sum(1), atol=1e-5)


def test_segment_scorer_gives_nonnegative_penalties():
    scorer = SegmentScorer()
    pen = scorer(torch.randn(7, NUM_FEATURES))
    assert pen.shape == (7,) and (pen >= 0).all()


def test_raised_digit_arcs_against_brute_force():
    """A candidate that may be a raised digit gets 10 more arcs (labels RAISED + d) scored from
    its own recognizer penalties, and the raised scorer's log-odds split it between the raised
    and the plain digit readings; other classes and other candidates are as before."""
    torch.manual_seed(1)
    field = fake_field([(0, 1), (1, 2), (0, 2)], 2, np.array([False, True, False]))
    gate = field.raised
    cls = torch.rand(3, NUM_CLASSES, dtype=torch.float64) * 3
    up = torch.rand(1, NUM_CLASSES, dtype=torch.float64) * 3
    seg = torch.rand(3, dtype=torch.float64)
    logit = torch.tensor([0.7, 1.3, -0.4], dtype=torch.float64)
    g = interpretation_graph([field], [cls], [seg], torch.zeros(1), raised_logits=[logit],
                             raised_penalties=[up])
    assert g.num_arcs == 3 * NUM_CLASSES + 10
    assert sorted(g.ilabel[g.ilabel >= RAISED].tolist()) == [RAISED + d for d in range(10)]
    lsig = torch.nn.functional.logsigmoid

    def choices(a):  # (score) of each reading of segment arc a
        out = [float(-(cls[a, c] + seg[a]) + (lsig(-logit[a]) if gate[a] and c < 10 else 0))
               for c in range(NUM_CLASSES)]
        if gate[a]:
            out += [float(-(up[0, d] + seg[a]) + lsig(logit[a])) for d in range(10)]
        return out

    scores = [x + y for x in choices(0) for y in choices(1)] + choices(2)
    total = torch.logsumexp(torch.tensor(scores, dtype=torch.float64), 0)
    assert torch.allclose(gtn.forward_score(g), total)
    assert torch.allclose(gtn.viterbi_score(g), torch.tensor(max(scores), dtype=torch.float64))


def test_raised_scorer_starts_from_the_height_of_the_foot():
    scorer = RaisedScorer()
    feats = torch.rand(3, NUM_FEATURES)  # the segmentation features start with no say
    geometry = torch.tensor([[-0.5, 0.6], [-0.25, 0.6], [0.0, 0.6]])
    odds = scorer(geometry, feats)
    assert odds[0] > 1.0 and odds[2] < -2.0 and odds[0] > odds[1] > odds[2]
