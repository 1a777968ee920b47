"""LeNet-5 as in LeCun, Bottou, Bengio, Haffner (1998), and a modern variant of the same size.

Both map a batch of normalised characters (N, 1, 32, 32) to per-class penalties (N, 17), lower is
better (the graph layers use score = -penalty). The models know nothing about graphs.

Faithful `LeNet5` (60,000 trainable parameters, exactly the paper's count, since the paper's
count also excludes the fixed RBF vectors):
  C1 6@28x28 (5x5) -> S2 6@14x14 (2x2 sum x trainable coefficient + bias per map) ->
  C3 16@10x10 (5x5 over the paper's partial table of S2 maps; only the 60 connected 5x5 kernels
  are parameters: 1,516) -> S4 16@5x5 -> C5 120 (5x5 conv, so it widens on wider inputs) ->
  F6 84 -> Euclidean RBF: y_i = sum_j (x_j - w_ij)^2 with FIXED +1/-1 vectors w_i, the 7x12
  bitmaps in `BITMAPS` (+1 = ink). Squash f(a) = 1.7159 tanh(2a/3) after every layer up to F6.
  Init uniform in [-2.4/F, 2.4/F], F the fan-in of the unit. Trained with the MAP criterion
  `map_loss` (Eq. 9) with j = `MAP_J`.

`LeNet5Modern` ("lenet5-modern"): conv 5x5 16 -> BN -> ReLU -> maxpool, conv 5x5 32 -> BN ->
ReLU -> maxpool, conv 5x5 64 (a "C5") -> BN -> ReLU -> dropout -> linear 17; penalty =
-log_softmax; trained with `map_loss`'s modern counterpart, the negative log-likelihood.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipelines.charset import CLASSES, NUM_CLASSES

# C3 map -> the S2 maps it reads (Table I of the paper).
C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5), (0, 1, 2, 3, 4, 5),
)  # fmt: skip

# j of the MAP criterion: a correct-class penalty below about j stops being pushed down, like a
# rubbish class of constant penalty j. 10 = a mean squared F6 error of 0.12 per unit, well under
# the distance between any two bitmaps (>= 8 pixels differ -> >= 32).
MAP_J = 10.0

# 7 wide x 12 high output bitmaps, '#' = ink (+1), '.' = background (-1); one per class in the
# order of `charset.CLASSES`. Confusable characters get similar bitmaps ('.' / ',', '1' / '/'),
# the rubbish class a checkerboard that is far from every character.
_BITMAP_ROWS = {
    "0": ".......|..###..|.#...#.|.#...#.|.#...#.|.#...#.|.#...#.|.#...#.|.#...#.|.#...#.|..###..|.......",
    "1": ".......|...#...|..##...|...#...|...#...|...#...|...#...|...#...|...#...|...#...|...#...|.......",
    "2": ".......|..###..|.#...#.|.....#.|.....#.|....#..|...#...|..#....|.#.....|.#.....|.#####.|.......",
    "3": ".......|.####..|.....#.|.....#.|.....#.|..###..|.....#.|.....#.|.....#.|.....#.|.####..|.......",
    "4": ".......|....#..|...##..|..#.#..|.#..#..|#...#..|######.|....#..|....#..|....#..|....#..|.......",
    "5": ".......|.#####.|.#.....|.#.....|.#.....|.####..|.....#.|.....#.|.....#.|.....#.|.####..|.......",
    "6": ".......|...##..|..#....|.#.....|.#.....|.####..|.#...#.|.#...#.|.#...#.|.#...#.|..###..|.......",
    "7": ".......|.#####.|.....#.|.....#.|....#..|....#..|...#...|...#...|..#....|..#....|..#....|.......",
    "8": ".......|..###..|.#...#.|.#...#.|.#...#.|..###..|.#...#.|.#...#.|.#...#.|.#...#.|..###..|.......",
    "9": ".......|..###..|.#...#.|.#...#.|.#...#.|..####.|.....#.|.....#.|.....#.|....#..|..##...|.......",
    ".": ".......|.......|.......|.......|.......|.......|.......|.......|.......|..##...|..##...|.......",
    ",": ".......|.......|.......|.......|.......|.......|.......|.......|...##..|...##..|....#..|...#...",
    "-": ".......|.......|.......|.......|.......|.#####.|.#####.|.......|.......|.......|.......|.......",
    "/": ".......|.....#.|.....#.|....#..|....#..|...#...|...#...|..#....|..#....|.#.....|.#.....|.......",
    "$": "...#...|..####.|.#.#...|.#.#...|..##...|...##..|...#.#.|...#.#.|...#.#.|.####..|...#...|.......",
    "*": ".......|.......|.#.#.#.|..###..|#######|..###..|.#.#.#.|.......|.......|.......|.......|.......",
    "<rubbish>": "|".join(("#." * 4)[r % 2 : r % 2 + 7] for r in range(12)),
}  # fmt: skip


def rbf_bitmaps() -> torch.Tensor:
    """The fixed RBF parameter vectors: (17, 84) float32 of +1 (ink) / -1, row-major 12x7."""
    out = []
    for name in CLASSES:
        rows = _BITMAP_ROWS[name].split("|")
        assert len(rows) == 12 and all(len(r) == 7 for r in rows), name
        out.append([1.0 if ch == "#" else -1.0 for ch in "".join(rows)])
    return torch.tensor(out, dtype=torch.float32)


def squash(a: torch.Tensor) -> torch.Tensor:
    """The paper's sigmoid: 1.7159 tanh(2a/3), so that f(+-1) = +-1."""
    return 1.7159 * torch.tanh(a * (2.0 / 3.0))


def _uniform_(t: torch.Tensor, fan_in: int) -> None:
    bound = 2.4 / fan_in
    nn.init.uniform_(t, -bound, bound)


class Subsample(nn.Module):
    """S2/S4: sum of each 2x2 block, times a trainable coefficient, plus a trainable bias per map."""

    def __init__(self, maps: int) -> None:
        super().__init__()
        self.coef = nn.Parameter(torch.empty(maps))
        self.bias = nn.Parameter(torch.empty(maps))
        _uniform_(self.coef, 4)
        _uniform_(self.bias, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = 4.0 * F.avg_pool2d(x, 2)
        return s * self.coef.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class PartialConv(nn.Module):
    """C3: a 5x5 convolution whose output map k reads only the input maps `table[k]`.

    Only the connected kernels are parameters (`weight` is (connections, k*k)); they are
    scattered into a dense (out, in, k, k) kernel on each call, so `parameters()` counts exactly
    the trainable weights (1,500 + 16 biases for the paper's table).
    """

    def __init__(self, table: tuple[tuple[int, ...], ...], in_maps: int, kernel: int = 5) -> None:
        super().__init__()
        self.out_maps, self.in_maps, self.kernel = len(table), in_maps, kernel
        index = [k * in_maps + i for k, inputs in enumerate(table) for i in inputs]
        self.register_buffer("index", torch.tensor(index, dtype=torch.long), persistent=False)
        mask = torch.zeros(self.out_maps, in_maps)
        mask.view(-1)[self.index] = 1.0
        self.register_buffer("mask", mask, persistent=False)
        self.weight = nn.Parameter(torch.empty(len(index), kernel * kernel))
        self.bias = nn.Parameter(torch.empty(self.out_maps))
        for k, inputs in enumerate(table):  # fan-in differs per map (75, 100 or 150)
            fan_in = len(inputs) * kernel * kernel
            rows = [n for n, flat in enumerate(index) if flat // in_maps == k]
            with torch.no_grad():
                self.weight[rows] = torch.empty(len(rows), kernel * kernel).uniform_(
                    -2.4 / fan_in, 2.4 / fan_in
                )
                self.bias[k] = torch.empty(()).uniform_(-2.4 / fan_in, 2.4 / fan_in)

    def dense_weight(self) -> torch.Tensor:
        """(out, in, k, k) kernel with zeros for unconnected pairs."""
        full = self.weight.new_zeros(self.out_maps * self.in_maps, self.kernel * self.kernel)
        full = full.index_copy(0, self.index, self.weight)
        return full.view(self.out_maps, self.in_maps, self.kernel, self.kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.dense_weight(), self.bias)


class EuclideanRBF(nn.Module):
    """y_i = sum_j (x_j - w_ij)^2 with fixed vectors w (a buffer, not a parameter)."""

    def __init__(self, centres: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("centres", centres.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N, C) penalties."""
        c = self.centres
        return (x * x).sum(1, keepdim=True) - 2.0 * x @ c.t() + (c * c).sum(1)


def _conv(cin: int, cout: int, k: int = 5) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, k)
    _uniform_(conv.weight, cin * k * k)
    _uniform_(conv.bias, cin * k * k)
    return conv


class LeNet5(nn.Module):
    """The 1998 LeNet-5: (N, 1, 32, 32) normalised characters -> (N, 17) RBF penalties.

    On a wider input (N, 1, 32, W) C5 and the layers above it are applied at every position and
    the output is (N, 17, W') -- one column of penalties per 4-px step, as in the paper's SDNN.
    """

    arch = "lenet5"

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.c1 = _conv(1, 6)
        self.s2 = Subsample(6)
        self.c3 = PartialConv(C3_TABLE, 6)
        self.s4 = Subsample(16)
        self.c5 = _conv(16, 120)
        self.f6 = nn.Linear(120, 84)
        _uniform_(self.f6.weight, 120)
        _uniform_(self.f6.bias, 120)
        bitmaps = rbf_bitmaps()
        if num_classes != bitmaps.shape[0]:
            raise ValueError(f"LeNet5 has bitmaps for {bitmaps.shape[0]} classes, not {num_classes}")
        self.output = EuclideanRBF(bitmaps)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 32, W) -> F6 activations (N, 84, W')."""
        x = squash(self.c1(x))
        x = squash(self.s2(x))
        x = squash(self.c3(x))
        x = squash(self.s4(x))
        x = squash(self.c5(x))  # (N, 120, 1, W')
        x = x.squeeze(2).transpose(1, 2)  # (N, W', 120)
        return squash(self.f6(x)).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)  # (N, 84, W')
        n, d, w = f.shape
        y = self.output(f.transpose(1, 2).reshape(n * w, d)).view(n, w, -1).transpose(1, 2)
        return y.squeeze(2) if w == 1 else y


class LeNet5Modern(nn.Module):
    """Same size class, modern parts: (N, 1, 32, 32) -> (N, 17) penalties = -log_softmax."""

    arch = "lenet5-modern"

    def __init__(self, num_classes: int = NUM_CLASSES, dropout: float = 0.3) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 5, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.body = nn.Sequential(
            *block(1, 16), nn.MaxPool2d(2),
            *block(16, 32), nn.MaxPool2d(2),
            *block(32, 64), nn.Dropout(dropout),
        )  # fmt: skip
        self.head = nn.Conv2d(64, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.head(self.body(x)).flatten(2)  # (N, C, W')
        y = -F.log_softmax(y, dim=1)
        return y.squeeze(2) if y.shape[2] == 1 else y


class WideCNN(nn.Module):
    """A wider recognizer for the same inputs (not LeNet-5): five 3x3 convolutions with batch
    norm (16, 16, 32, 32, 64 maps, a 2x2 max-pool after the 2nd, 4th and 5th), then 256
    hidden units: 301,793 parameters and about 7.5 million multiply-adds a character (LeNet-5:
    about 0.4 million). (N, 1, 32, 32) -> (N, 17) penalties = -log_softmax. The recognizer of
    the default mixture's fourth reader (and, as `ContextCNN`, of its second and third),
    trained end to end from amounts: the model card has how and what it gains and costs."""

    arch = "cnn-wide"
    in_channels = 1

    def __init__(self, num_classes: int = NUM_CLASSES, dropout: float = 0.3) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                    nn.ReLU()]

        self.body = nn.Sequential(
            *block(self.in_channels, 16), *block(16, 16), nn.MaxPool2d(2),
            *block(16, 32), *block(32, 32), nn.MaxPool2d(2),
            *block(32, 64), nn.MaxPool2d(2),
        )  # fmt: skip
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(64 * 16, 256),
                                  nn.ReLU(), nn.Dropout(dropout), nn.Linear(256, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -F.log_softmax(self.head(self.body(x)), dim=1)


class ContextCNN(WideCNN):
    """`WideCNN` reading two channels (301,937 parameters): the candidate character and,
    mapped the same way, the ink around it (`Prepared.inputs`). Segmentation's commonest
    mistakes, a fragment of a digit and two touching digits taken as one, look like whole
    characters on their own; what lies beside them tells them apart. A one-channel input (an
    isolated character, nothing around it) is read as its own surroundings."""

    arch = "cnn-context"
    in_channels = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.expand(-1, 2, -1, -1) if x.shape[1] == 1 else x)


def input_channels(model: nn.Module) -> int:
    """How many channels of the reader's inputs (`Prepared.inputs`) `model` reads: 1 unless
    it says otherwise."""
    return int(getattr(model, "in_channels", 1))


def channels_for(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The channels of reader inputs `x` (N, C, 32, 32) that `model` reads (the first)."""
    return x[:, : input_channels(model)]


def _fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """One convolution computing conv then batch norm with its running statistics."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                      conv.stride, conv.padding, bias=True).to(conv.weight.device)
    with torch.no_grad():
        fused.weight.copy_(conv.weight * scale[:, None, None, None])
        fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    return fused


def _max_pool2(x: torch.Tensor) -> torch.Tensor:
    """`F.max_pool2d(x, 2)` as pairwise maxima over a (N, H/2, 2, W/2, 2, C) view: the same
    values, about twice as fast on channels-last CPU maps."""
    n, c, h, w = x.shape
    h, w = h // 2, w // 2
    t = x[:, :, : 2 * h, : 2 * w].permute(0, 2, 3, 1).reshape(n, h, 2, w, 2, c)
    top = torch.maximum(t[:, :, 0, :, 0], t[:, :, 0, :, 1])
    bottom = torch.maximum(t[:, :, 1, :, 0], t[:, :, 1, :, 1])
    return torch.maximum(top, bottom).permute(0, 3, 1, 2)


class _FoldedModern(nn.Module):
    """`LeNet5Modern` in eval mode with each batch norm folded into its convolution and each
    ReLU moved after its max-pool (they commute, and the pooled map is 4x smaller): the same
    penalties for about two thirds of the CPU time. Inference only; built by `for_inference`."""

    def __init__(self, model: LeNet5Modern) -> None:
        super().__init__()
        b = model.body
        self.c1, self.c2, self.c3 = (_fold_conv_bn(b[i], b[i + 1]) for i in (0, 4, 8))
        self.head = model.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(_max_pool2(self.c1(x)))
        x = F.relu(_max_pool2(self.c2(x)))
        y = self.head(F.relu(self.c3(x))).flatten(2)
        y = -F.log_softmax(y, dim=1)
        return y.squeeze(2) if y.shape[2] == 1 else y


class _FoldedWide(nn.Module):
    """`WideCNN` in eval mode with its batch norms folded into the convolutions and each
    ReLU before a pool moved after it (`_FoldedModern`'s tricks). Built by `for_inference`."""

    def __init__(self, model: WideCNN) -> None:
        super().__init__()
        b = model.body
        self.convs = nn.ModuleList(_fold_conv_bn(b[i], b[i + 1]) for i in (0, 3, 7, 10, 14))
        self.head = model.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] < self.convs[0].in_channels:  # `ContextCNN`'s isolated character
            x = x.expand(-1, self.convs[0].in_channels, -1, -1)
        c = self.convs
        x = F.relu(_max_pool2(c[1](F.relu(c[0](x)))))
        x = F.relu(_max_pool2(c[3](F.relu(c[2](x)))))
        x = F.relu(_max_pool2(c[4](x)))
        return -F.log_softmax(self.head(x), dim=1)


def for_inference(model: nn.Module) -> nn.Module:
    """A faster module giving `model`'s eval-mode penalties (the model itself where there is
    nothing to fold). Not for training: it is a detached copy."""
    if isinstance(model, LeNet5Modern):
        return _FoldedModern(model).eval()
    if isinstance(model, WideCNN):
        return _FoldedWide(model).eval()
    return model


def map_loss(penalties: torch.Tensor, targets: torch.Tensor, j: float = MAP_J) -> torch.Tensor:
    """The paper's MAP criterion (Eq. 9), mean over the batch.

    E = y_correct + log(exp(-j) + sum_i exp(-y_i)); `penalties` (N, C), `targets` (N,) long.
    """
    return map_losses(penalties, targets, j).mean()


def map_losses(penalties: torch.Tensor, targets: torch.Tensor,
               j: float = MAP_J) -> torch.Tensor:
    """`map_loss` of each example, (N,)."""
    const = penalties.new_full((penalties.shape[0], 1), -j)
    lse = torch.logsumexp(torch.cat([const, -penalties], 1), dim=1)
    return penalties.gather(1, targets[:, None]).squeeze(1) + lse


def loss_for(model: nn.Module, penalties: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The training criterion of `model`: MAP for the faithful net, NLL for the modern one."""
    return losses_for(model, penalties, targets).mean()


def losses_for(model: nn.Module, penalties: torch.Tensor,
               targets: torch.Tensor) -> torch.Tensor:
    """`loss_for` of each example, (N,); the modern net's penalties are already -log p."""
    if isinstance(model, LeNet5):
        return map_losses(penalties, targets)
    return penalties.gather(1, targets[:, None]).squeeze(1)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (fixed RBF vectors and masked C3 pairs are not parameters)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def bitmap_text(index: int) -> str:
    """The 7x12 bitmap of class `index` as text ('#' ink), for the model card and debugging."""
    rows = np.where(rbf_bitmaps()[index].view(12, 7).numpy() > 0, "#", ".")
    return "\n".join("".join(r) for r in rows)
