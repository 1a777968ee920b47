"""LeNet-5 (faithful and modern): shapes, parameter counts, C3 table, RBF bitmaps, MAP loss."""

from __future__ import annotations

import pytest
import torch

from pipelines.charset import NUM_CLASSES
from pipelines.lenet import (
    C3_TABLE,
    MAP_J,
    LeNet5,
    LeNet5Modern,
    count_parameters,
    map_loss,
    rbf_bitmaps,
)
from pipelines.recognizer import build_model


def test_faithful_shapes_and_parameter_count() -> None:
    torch.manual_seed(0)
    model = LeNet5()
    assert model(torch.randn(3, 1, 32, 32)).shape == (3, NUM_CLASSES)
    assert model.arch == "lenet5"
    # the paper: 156 + 12 + 1,516 + 32 + 48,120 + 10,164 = 60,000 (RBF vectors are fixed)
    sizes = {
        "c1": 156, "s2": 12, "c3": 1516, "s4": 32, "c5": 48120, "f6": 10164,
    }  # fmt: skip
    for name, n in sizes.items():
        assert count_parameters(getattr(model, name)) == n, name
    assert count_parameters(model) == 60000
    assert not any(p is model.output.centres for p in model.parameters())


def test_c3_connection_table() -> None:
    model = LeNet5()
    dense = model.c3.dense_weight()
    assert dense.shape == (16, 6, 5, 5)
    for k, inputs in enumerate(C3_TABLE):
        for i in range(6):
            connected = bool(dense[k, i].abs().sum() > 0)
            assert connected == (i in inputs), (k, i)
    assert sum(len(t) for t in C3_TABLE) == 60


def test_c3_unconnected_kernels_get_no_gradient() -> None:
    model = LeNet5()
    model(torch.randn(2, 1, 32, 32)).sum().backward()
    assert model.c3.weight.grad is not None and model.c3.weight.grad.shape == (60, 25)


def test_init_range() -> None:
    model = LeNet5()
    assert model.c1.weight.abs().max() <= 2.4 / 25
    assert model.c5.weight.abs().max() <= 2.4 / 400
    assert model.f6.weight.abs().max() <= 2.4 / 120


def test_rbf_bitmaps_are_signs_and_distinct() -> None:
    b = rbf_bitmaps()
    assert b.shape == (NUM_CLASSES, 84)
    assert set(b.unique().tolist()) == {-1.0, 1.0}
    d = torch.cdist(b, b) ** 2
    d.fill_diagonal_(float("inf"))
    assert d.min() >= 4 * 4  # every pair differs in at least 4 of the 84 pixels


def test_rbf_penalty_is_squared_distance() -> None:
    model = LeNet5()
    f = torch.randn(5, 84)
    direct = ((f[:, None, :] - rbf_bitmaps()[None]) ** 2).sum(-1)
    torch.testing.assert_close(model.output(f), direct, rtol=1e-4, atol=1e-3)


def test_map_loss_matches_direct_computation() -> None:
    y = torch.rand(4, NUM_CLASSES, dtype=torch.float64) * 30
    t = torch.tensor([0, 5, 16, 3])
    direct = torch.stack([
        y[n, t[n]] + torch.log(torch.exp(torch.tensor(-MAP_J, dtype=torch.float64))
                               + torch.exp(-y[n]).sum())
        for n in range(4)
    ]).mean()  # fmt: skip
    torch.testing.assert_close(map_loss(y, t), direct)
    assert map_loss(y, t, j=3.0) > map_loss(y, t, j=30.0) - 1e-9


def test_modern_penalties_are_negative_log_probabilities() -> None:
    model = LeNet5Modern().eval()
    assert count_parameters(model) < 100_000
    p = model(torch.randn(4, 1, 32, 32))
    assert p.shape == (4, NUM_CLASSES) and model.arch == "lenet5-modern"
    torch.testing.assert_close(torch.exp(-p).sum(1), torch.ones(4))


def test_build_model_names() -> None:
    assert isinstance(build_model("lenet5"), LeNet5)
    assert build_model("cnn-wide").arch == "cnn-wide"
    with pytest.raises(ValueError, match="lenet5-modern"):
        build_model("lenet6")


def test_the_wide_net_gives_penalties_of_a_distribution() -> None:
    from pipelines.lenet import WideCNN

    net = WideCNN().eval()
    pen = net(torch.randn(5, 1, 32, 32))
    assert pen.shape == (5, NUM_CLASSES)
    assert torch.allclose(torch.exp(-pen).sum(1), torch.ones(5), atol=1e-5)
    assert 290_000 < count_parameters(net) < 310_000


def test_the_context_net_reads_an_isolated_character_as_its_own_surroundings() -> None:
    from pipelines.lenet import ContextCNN, WideCNN, channels_for, input_channels

    torch.manual_seed(0)
    net = build_model("cnn-context").eval()
    assert isinstance(net, ContextCNN) and input_channels(net) == 2
    assert count_parameters(net) == count_parameters(WideCNN()) + 16 * 9  # one more input map
    one = torch.randn(4, 1, 32, 32)
    assert torch.equal(net(one), net(one.repeat(1, 2, 1, 1)))
    both = torch.randn(4, 2, 32, 32)
    assert not torch.allclose(net(both), net(both[:, :1]))  # the second channel is read
    assert torch.equal(channels_for(net, both), both)
    assert torch.equal(channels_for(LeNet5(), both), both[:, :1])


def test_penalties_are_differentiable_wrt_input() -> None:
    x = torch.randn(2, 1, 32, 32, requires_grad=True)
    LeNet5()(x)[:, 3].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("arch", ["lenet5-modern", "cnn-wide", "cnn-context"])
def test_the_folded_nets_give_the_eval_penalties(arch: str) -> None:
    """`for_inference` folds batch norm into the convolutions and pools before the ReLU; on a
    net with non-trivial batch-norm statistics it must give the same penalties in eval mode."""
    from pipelines.lenet import for_inference

    torch.manual_seed(0)
    net = build_model(arch)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    net.eval()
    for channels in range(1, getattr(net, "in_channels", 1) + 1):
        x = torch.randn(64, channels, 32, 32)
        with torch.no_grad():
            expected, folded = net(x), for_inference(net)(x)
        assert torch.allclose(expected, folded, atol=1e-4), (expected - folded).abs().max()


@pytest.mark.parametrize("shape", [(3, 5, 28, 28), (2, 4, 9, 13), (1, 2, 2, 7)])
def test_the_fast_max_pool_is_max_pool2d(shape: tuple[int, int, int, int]) -> None:
    from pipelines.lenet import _max_pool2

    torch.manual_seed(1)
    x = torch.randn(shape)
    for a in (x, x.to(memory_format=torch.channels_last)):
        assert torch.equal(_max_pool2(a), torch.nn.functional.max_pool2d(a, 2))


def test_the_folded_modern_net_reads_wide_lines_like_the_eval_net() -> None:
    from pipelines.lenet import LeNet5Modern, for_inference

    torch.manual_seed(2)
    net = LeNet5Modern().eval()
    x = torch.randn(2, 1, 32, 57).to(memory_format=torch.channels_last)
    with torch.no_grad():
        expected, folded = net(x), for_inference(net)(x)
    assert expected.shape == folded.shape == (2, 17, 7)
    assert torch.allclose(expected, folded, atol=1e-4)
