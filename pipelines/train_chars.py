"""`python -m pipelines.train chars`: train a recognizer on isolated characters.

Data (see `chardata`): MNIST TRAIN digits 0..54,999 for training, 55,000..59,999 held out for
validation (with their own symbols and rubbish); the model kept is the epoch with the lowest
validation error. The MNIST TEST split is only evaluated and printed for reporting, never used
for a choice. Optimiser: Adam with a linear warm-up (first 2% of steps) then cosine decay to 0.
Distortions (`--distort`) are drawn on the fly per batch (`distort.distort`).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from pipelines.chardata import CharData, build_chars, mnist_inputs
from pipelines.charimage import ink_to_input
from pipelines.cli import EXIT_OK, EXIT_USAGE, device_problem, output_problem, positive_int
from pipelines.distort import DistortConfig, distort
from pipelines.lenet import count_parameters, loss_for
from pipelines.mnist import TRAIN_HELD_OUT, MnistError, load_mnist
from pipelines.recognizer import ARCHS, build_model, checkpoint_dict

VAL_DIGITS = TRAIN_HELD_OUT
SYMBOL_RATE, RUBBISH_RATE = 0.055, 0.10  # per training digit: ~3,000 per symbol, 5,500 rubbish


@dataclass(frozen=True)
class TrainConfig:
    arch: str = "lenet5"
    epochs: int = 20
    distort: bool = False
    seed: int = 1
    device: str = "cpu"
    batch_size: int = 128
    limit: int | None = None  # use only the first N training digits (and N test digits)
    lr: float = 1e-3
    threads: int | None = None


@dataclass(frozen=True)
class Splits:
    train: CharData
    val: CharData
    test_images: torch.Tensor  # (M, 32, 32) uint8 ink, paper normalisation
    test_labels: torch.Tensor  # (M,) int64


def prepare_data(cfg: TrainConfig) -> Splits:
    """Build the train / validation character sets and the MNIST test inputs (MnistError)."""
    train, test = load_mnist("train"), load_mnist("test")
    n_train = len(train.images) - VAL_DIGITS
    n_val = VAL_DIGITS
    if cfg.limit is not None:
        n_train = min(n_train, cfg.limit)
        n_val = min(VAL_DIGITS, max(100, cfg.limit // 5))
    tr_img, tr_lab = train.images[:n_train], train.labels[:n_train]
    va_img = train.images[len(train.images) - n_val :]
    va_lab = train.labels[len(train.images) - n_val :]

    def chars(images: np.ndarray, labels: np.ndarray, seed: int) -> CharData:
        n = len(images)
        return build_chars(images, labels, max(2, round(n * SYMBOL_RATE)),
                           max(2, round(n * RUBBISH_RATE)), seed)

    n_test = len(test.images) if cfg.limit is None else min(len(test.images), cfg.limit)
    return Splits(
        train=chars(tr_img, tr_lab, cfg.seed),
        val=chars(va_img, va_lab, 10_000 + cfg.seed),
        test_images=mnist_inputs(test.images[:n_test]),
        test_labels=torch.from_numpy(test.labels[:n_test].astype(np.int64)),
    )


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Argmin-penalty class over all 17 classes for uint8 ink images (N, 32, 32) -> (N,)."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(images), batch_size):
        x = ink_to_input(images[i : i + batch_size, None].to(device).float() / 255)
        out.append(model(x).argmin(1).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def error_rate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    return float((predict(model, images) != labels).float().mean())


def train_one_epoch(model: nn.Module, opt: torch.optim.Optimizer,
                    sched: torch.optim.lr_scheduler.LRScheduler, data: CharData, cfg: TrainConfig,
                    gen: torch.Generator, desc: str) -> float:
    """One pass over `data` in random order; returns the mean training loss."""
    model.train()
    device = torch.device(cfg.device)
    order = torch.randperm(len(data), generator=gen)
    total, count = 0.0, 0
    bar = tqdm(range(0, len(order), cfg.batch_size), desc=desc, leave=False, mininterval=2,
               file=sys.stderr)
    for start in bar:
        idx = order[start : start + cfg.batch_size]
        ink = data.images[idx, None].to(device).float() / 255
        if cfg.distort:
            ink = distort(ink, DistortConfig(), generator=gen if device.type == "cpu" else None)
        loss = loss_for(model, model(ink_to_input(ink)), data.labels[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        total += loss.item() * len(idx)
        count += len(idx)
        bar.set_postfix(loss=f"{total / count:.4f}", refresh=False)
    return total / max(count, 1)


def _schedule(opt: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    warm = max(1, steps // 50)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, steps - warm))))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def train(cfg: TrainConfig, out: Path | None, log=print) -> dict:  # noqa: ANN001
    """Train per `cfg`, save the best-validation checkpoint to `out`; returns the checkpoint."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    t0 = time.perf_counter()
    data = prepare_data(cfg)
    log(f"data: {len(data.train)} train / {len(data.val)} validation characters, "
        f"{len(data.test_labels)} MNIST test digits ({time.perf_counter() - t0:.1f} s)")
    model = build_model(cfg.arch).to(cfg.device)
    log(f"{cfg.arch}: {count_parameters(model)} trainable parameters, "
        f"{torch.get_num_threads()} threads, device {cfg.device}")
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    steps = cfg.epochs * math.ceil(len(data.train) / cfg.batch_size)
    sched = _schedule(opt, steps)
    best: dict | None = None
    epoch_times = []
    t_train = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        t = time.perf_counter()
        loss = train_one_epoch(model, opt, sched, data.train, cfg, gen, f"epoch {epoch}")
        epoch_times.append(time.perf_counter() - t)
        val = error_rate(model, data.val.images, data.val.labels)
        test = error_rate(model, data.test_images, data.test_labels)
        log(f"epoch {epoch:3d}  loss {loss:.4f}  val error {100 * val:.2f}%  "
            f"MNIST test error {100 * test:.2f}%  ({epoch_times[-1]:.1f} s)")
        if best is None or val <= best["metrics"]["val_error"]:
            metrics = {"val_error": val, "test_error": test, "epoch": epoch, "train_loss": loss}
            best = checkpoint_dict(model, asdict(cfg), metrics)
            if out is not None:
                _save(best, out)
    assert best is not None
    total = time.perf_counter() - t_train
    best["metrics"].update(seconds_per_epoch=sum(epoch_times) / len(epoch_times),
                           train_seconds=total)
    if out is not None:
        _save(best, out)
    m = best["metrics"]
    log(f"best epoch {m['epoch']} (validation error {100 * m['val_error']:.2f}%, MNIST test "
        f"error {100 * m['test_error']:.2f}%); {m['seconds_per_epoch']:.1f} s/epoch, "
        f"{total:.0f} s in all" + (f"; saved {out}" if out is not None else ""))
    return best


def _save(ckpt: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(out)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipelines.train chars", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="lenet5", choices=list(ARCHS))
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--distort", action="store_true", help="random elastic/affine distortions")
    p.add_argument("--out", type=Path, default=None, help="checkpoint (default runs/ARCH.pt)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--limit", type=int, default=None, help="first N training/test digits only")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam's peak learning rate")
    p.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = get_args_parser().parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    if args.epochs < 1 or args.batch_size < 1 or (args.limit is not None and args.limit < 1):
        print("train chars: error: --epochs, --batch-size and --limit must be positive",
              file=sys.stderr)
        return EXIT_USAGE
    problem = device_problem(args.device)
    if problem is not None:
        print(f"train chars: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    cfg = TrainConfig(arch=args.arch, epochs=args.epochs, distort=args.distort, seed=args.seed,
                      device=args.device, batch_size=args.batch_size, limit=args.limit,
                      lr=args.lr, threads=args.threads)
    out = args.out if args.out is not None else Path("runs") / f"{args.arch}.pt"
    problem = output_problem(out)
    if problem is not None:
        print(f"train chars: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        train(cfg, out, log=lambda s: print(s, flush=True))
    except MnistError as err:
        print(f"train chars: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK
