import torch
from hypothesis import given
from test_gtn_helpers import graphs

import gtn


@given(graphs(labels=(0, 1)))
def test_discriminative_losses_are_nonnegative(g):
    selector = gtn.linear_graph([0, 1]).replace(weight=torch.zeros(2, dtype=torch.float64))
    constrained = gtn.compose(g, selector)
    if not torch.isfinite(gtn.forward_score(constrained)):
        return
    assert float(gtn.forward_loss(constrained, g)) >= -1e-9
    assert float(gtn.discriminative_viterbi_loss(constrained, g)) >= -1e-9


def test_batched_losses_and_gradients():
    p = torch.nn.Parameter(torch.tensor([0.0, 1.0, 0.5, -0.5]))
    full = gtn.Graph.from_tensors(3, torch.tensor([0]), torch.tensor([2]),
                                  torch.tensor([0, 0, 1, 1]), torch.tensor([1, 1, 2, 2]),
                                  torch.tensor([0, 1, 0, 1]), None, p)
    cons = [gtn.compose(full, gtn.linear_graph(w)) for w in ([0, 1], [1, 0])]
    loss = gtn.forward_loss(cons, [full, full])
    assert loss.shape == (2,) and bool((loss >= 0).all())
    loss.sum().backward()
    assert p.grad is not None and torch.isfinite(p.grad).all()
    v = gtn.viterbi_loss(cons)
    assert torch.allclose(v, -torch.tensor([0.0 - 0.5, 1.0 + 0.5]))
    assert gtn.discriminative_viterbi_loss(cons, [full, full]).tolist()[1] == 0.0
