"""`python -m pipelines.train global`: train the whole reader end to end from (image, amount).

Every parameter (LeNet, the segment and field scorers, the grammars' weights) learns from the
amount alone [paper VI, X]: the amount graph of an image (interpretation graph composed with the
grammar) is composed with the linear graph of the correct amount (the path selector), and the
criterion compares that constrained graph with the whole graph:

- `forward` (default, the discriminative forward criterion): forward(full) - forward(constrained)
  = -log P(correct amount | image) >= 0;
- `discriminative-viterbi`: viterbi(full) - viterbi(constrained) >= 0, zero once the best path is
  right (no margin);
- `viterbi`: -viterbi(constrained) alone. It collapses: nothing stops it from raising every score
  (the grammar's log-weights are unbounded), so its loss falls without limit while accuracy does
  not improve. Kept to show the paper's point.

The graphs of a mini-batch are scored in one batched pass. An image whose graph holds no path
with the correct amount (the segmenter missed a cut) cannot teach anything; it is counted and
left out of the loss. The recognizer stays in eval mode (frozen batch-norm statistics, no
dropout): batches of candidate characters from a few fields are small and far from i.i.d., so
batch statistics would be noisy; `--recognizer-train-mode` turns this off.

Runs unchanged under `torchrun --nproc_per_node=N` (DistributedDataParallel over gloo: the reader
trains on the CPU, also on machines with GPUs, so nccl, which reduces only CUDA tensors, is not
used). Each rank owns a fixed shard of the data (`train[rank::N]`, `validation[rank::N]`),
prepares only that shard (so N processes prepare N times faster and hold 1/N of the images each),
shuffles it every epoch, and contributes `batch_size // N` examples to each global batch.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

import gtn
from pipelines.amounts import GRAMMARS
from pipelines.cli import output_problem, positive_int
from pipelines.datasets import BadRow, BadRowsError, Example, load_examples
from pipelines.preparation import Prepared, prepare
from pipelines.reader import (
    TRAINED_READER_WEIGHTS,
    ChequeReader,
    decode_batch,
    load_trainable_reader,
    save_reader,
)

CRITERIA = ("forward", "discriminative-viterbi", "viterbi")
LR_SCHEDULES = ("constant", "cosine")
# What trains: every parameter, or only those that read raised cents (the raised scorer and
# the grammars' raised-digit arcs), the rest of a trained reader kept as it is.
TRAIN_ONLY = ("all", "raised")


@dataclass(frozen=True)
class GlobalConfig:
    criterion: str = "forward"
    epochs: int = 3
    batch_size: int = 16
    lr: float = 1e-4  # LeNet
    lr_head: float = 3e-3  # segment scorer, field scorer, grammars
    clip: float = 5.0  # gradient norm
    seed: int = 0
    val_frac: float = 0.1
    is_field: bool = False
    max_fields: int = 3
    recognizer_train_mode: bool = False
    lr_schedule: str = "constant"  # or "cosine": both rates decay to 0 over all epochs' steps
    train_only: str = "all"  # or "raised" (see TRAIN_ONLY)

    def __post_init__(self) -> None:
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"unknown learning-rate schedule {self.lr_schedule!r}; expected "
                             f"one of {', '.join(LR_SCHEDULES)}")
        if self.train_only not in TRAIN_ONLY:
            raise ValueError(f"unknown --train-only {self.train_only!r}; expected one of "
                             f"{', '.join(TRAIN_ONLY)}")
        if self.criterion not in CRITERIA:
            raise ValueError(f"unknown criterion {self.criterion!r}; expected one of "
                             f"{', '.join(CRITERIA)}")
        if self.epochs < 0 or self.batch_size <= 0 or not 0 <= self.val_frac < 1:
            raise ValueError(f"need epochs >= 0, batch_size > 0, 0 <= val_frac < 1; got "
                             f"{self.epochs}, {self.batch_size}, {self.val_frac}")


def criterion_loss(constrained: list[gtn.Graph], full: list[gtn.Graph], criterion: str) -> Tensor:
    """(B,) losses of a batch of constrained / full graphs under one of `CRITERIA`."""
    if criterion == "forward":
        return gtn.forward_loss(constrained, full)
    if criterion == "discriminative-viterbi":
        return gtn.discriminative_viterbi_loss(constrained, full)
    if criterion == "viterbi":
        return gtn.viterbi_loss(constrained)
    raise ValueError(f"unknown criterion {criterion!r}; expected one of {', '.join(CRITERIA)}")


class GlobalLoss(nn.Module):
    """The reader under its training criterion (the module DDP wraps)."""

    def __init__(self, reader: ChequeReader, criterion: str = "forward",
                 recognizer_train_mode: bool = False) -> None:
        super().__init__()
        self.reader = reader
        self.criterion = criterion
        self.recognizer_train_mode = recognizer_train_mode

    def train(self, mode: bool = True) -> GlobalLoss:
        super().train(mode)
        if not self.recognizer_train_mode:
            self.reader.recognizer.eval()
        return self

    def forward(self, batch: Sequence[Prepared], amounts: Sequence[str],
                grammars: Sequence[str]) -> tuple[Tensor, int]:
        """Sum of the losses of the images whose graph can read their amount, and how many
        could not. Every parameter takes part (with weight 0 when unused) so that DDP always
        sees the same set of gradients on every rank."""
        total = sum(p.sum() for p in self.parameters()) * 0.0
        missed = 0
        for g in sorted(set(grammars)):
            ids = [i for i, gi in enumerate(grammars) if gi == g]
            interpretations = self.reader.interpretation_graphs([batch[i] for i in ids])
            full = self.reader.with_grammar(interpretations, g)
            cons = self.reader.constrained_graphs(interpretations, g, [amounts[i] for i in ids])
            keep = [j for j, c in enumerate(cons) if c.num_arcs > 0]
            missed += len(ids) - len(keep)
            if keep:
                losses = criterion_loss([cons[j] for j in keep], [full[j] for j in keep],
                                        self.criterion)
                total = total + losses.sum()
        return total, missed


def world() -> tuple[int, int]:
    """(rank, world size): (0, 1) unless under torchrun."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def prepare_examples(examples: Sequence[Example], is_field: bool, max_fields: int,
                reader: ChequeReader, skip_bad: bool, log: Callable[[str], None],
                desc: str = "preparing", indices: Sequence[int] | None = None,
                ) -> dict[int, Prepared]:
    """The fixed front of the pipeline of `examples[i]` for every i in `indices` (default: all),
    computed once: {i: Prepared}. Images without a readable amount field raise `BadRowsError`
    (all of them, gathered from every rank) or, with `skip_bad`, are logged and left out."""
    from tqdm import tqdm

    rank, size = world()
    todo = range(len(examples)) if indices is None else indices
    preps: dict[int, Prepared] = {}
    bad: list[BadRow] = []
    for i in tqdm(todo, desc=desc, unit="image", file=sys.stderr, disable=rank != 0):
        ex = examples[i]
        try:
            prep = prepare(ex.load(), is_field=is_field, max_fields=max_fields,
                           field_scorer=reader.field_proposer, field_beam=math.inf)
            # Training needs the graphs and LeNet inputs, not the field pictures (most of the
            # memory); the inputs are kept in float16, exact enough, as `train_reader` keeps
            # its candidates: with 6,000 cheques a process, 8.4 GB instead of 11.8 GB.
            preps[i] = replace(prep, inputs=prep.inputs.astype(np.float16),
                               segmentations=[s.without_images() for s in prep.segmentations])
        except ValueError as err:
            file, _, line = ex.where.rpartition(":")
            bad.append(BadRow(file, int(line) if line.isdigit() else 0, str(err)))
    if size > 1:  # every rank must see every bad row, to fail or log alike
        gathered: list[list[BadRow]] = [[] for _ in range(size)]
        torch.distributed.all_gather_object(gathered, bad)
        bad = sorted((b for part in gathered for b in part), key=lambda b: (b.file, b.line))
    if bad and not skip_bad:
        raise BadRowsError(bad)
    for row in bad:
        log(f"skipped {row}")
    return preps


def split_indices(n: int, val_frac: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, validation) indices: a seeded permutation, the first val_frac held out."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = int(round(val_frac * n)) if n > 1 else 0
    return sorted(perm[n_val:]), sorted(perm[:n_val])


def evaluate(reader: ChequeReader, preps: Mapping[int, Prepared], examples: Sequence[Example],
             idx: Sequence[int], batch_size: int = 32) -> float:
    """Amount accuracy (Viterbi answer, no reject) over `idx`, sharded across ranks (rank r
    reads `idx[r::N]`); an image that could not be prepared counts as wrong."""
    rank, size = world()
    mine = list(idx)[rank::size]
    reader.eval()
    correct = 0
    ready = [i for i in mine if i in preps]
    for at in range(0, len(ready), batch_size):
        chunk = ready[at : at + batch_size]
        for g in sorted({examples[i].grammar for i in chunk}):
            ids = [i for i in chunk if examples[i].grammar == g]
            for i, r in zip(ids, decode_batch(reader, [preps[i] for i in ids], g)):
                correct += int(r.amount == examples[i].amount)
    counts = torch.tensor([correct, len(mine)], dtype=torch.float64)
    if size > 1:
        torch.distributed.all_reduce(counts)
    return float(counts[0] / counts[1]) if counts[1] else float("nan")


def train_only_raised(reader: ChequeReader) -> None:
    """Freeze every parameter but the raised scorer and the grammars' raised-digit arcs (the
    arcs after a grammar's `num_older_arcs`, whose other weights get no gradient)."""
    for name, p in reader.named_parameters():
        p.requires_grad_(name.startswith(("raised_scorer.", "grammars.")))
    for grammar in reader.grammars.values():
        keep = torch.arange(len(grammar.weight)) >= grammar.num_older_arcs
        grammar.weight.register_hook(lambda grad, keep=keep: grad * keep)


def make_optimizer(reader: ChequeReader, cfg: GlobalConfig) -> torch.optim.Optimizer:
    head = [p for n, p in reader.named_parameters()
            if not n.startswith("recognizer.") and p.requires_grad]
    return torch.optim.Adam([{"params": list(reader.recognizer.parameters()), "lr": cfg.lr},
                             {"params": head, "lr": cfg.lr_head}])


def lr_factor(schedule: str, step: int, total: int) -> float:
    """The multiple of the base learning rates at optimiser step `step` (0-based) of `total`."""
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))
    return 1.0


def epoch_batches(n_train: int, cfg: GlobalConfig) -> tuple[int, int]:
    """(examples per rank, examples per rank in a batch) of one epoch."""
    _, size = world()
    return n_train // size, max(1, cfg.batch_size // size)


def train_one_epoch(model: nn.Module, opt: torch.optim.Optimizer, preps: Mapping[int, Prepared],
                    examples: Sequence[Example], train_idx: Sequence[int], cfg: GlobalConfig,
                    epoch: int) -> dict[str, float]:
    """One pass over the (shuffled) training indices; returns mean loss, misses and time."""
    from tqdm import tqdm

    rank, size = world()
    shard = list(train_idx)[rank::size]
    # Every rank takes the same number of steps: shards differ in length by at most one, and
    # the longer ones leave out a different example each epoch.
    per_rank, local = epoch_batches(len(train_idx), cfg)
    gen = torch.Generator().manual_seed((cfg.seed * 1_000_003 + epoch) * 1009 + rank)
    order = [shard[i] for i in torch.randperm(len(shard), generator=gen).tolist()][:per_rank]
    batches = [order[at : at + local] for at in range(0, per_rank, local)]
    params = [p for p in model.parameters() if p.requires_grad]
    # The schedule is a pure function of the step, so a resumed run continues it exactly.
    first_step = (epoch - 1) * len(batches)
    total_steps = cfg.epochs * len(batches)
    model.train()
    start, total, count, missed = time.perf_counter(), 0.0, 0, 0
    bar = tqdm(batches, desc=f"epoch {epoch}", unit="batch", file=sys.stderr,
               disable=rank != 0)
    for step, batch in enumerate(bar, first_step):
        factor = lr_factor(cfg.lr_schedule, step, total_steps)
        for group, base in zip(opt.param_groups, (cfg.lr, cfg.lr_head)):
            group["lr"] = base * factor
        mine = [i for i in batch if i in preps]  # images that could not be prepared drop out
        opt.zero_grad()
        loss, miss = model([preps[i] for i in mine], [examples[i].amount for i in mine],
                           [examples[i].grammar for i in mine])
        # DDP averages gradients over ranks: scale so that the result is the global batch mean.
        (loss / len(batch)).backward()
        if cfg.clip > 0:
            nn.utils.clip_grad_norm_(params, cfg.clip)
        opt.step()
        stats = torch.tensor([float(loss.detach()), float(miss), float(len(mine))],
                             dtype=torch.float64)
        if size > 1:
            torch.distributed.all_reduce(stats)
        total += float(stats[0])
        missed += int(stats[1])
        count += int(stats[2])
        bar.set_postfix(loss=f"{total / max(count, 1):.3f}")
    return {"loss": total / max(count, 1), "unreachable": missed,
            "seconds": time.perf_counter() - start, "examples": count}


def _plain(d: dict) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}


def save_checkpoint(path: Path, reader: ChequeReader, opt: torch.optim.Optimizer, epoch: int,
                    cfg: GlobalConfig, history: list[dict], best: dict) -> None:
    """Everything needed to resume; loadable with `torch.load(..., weights_only=True)`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"kind": "global-checkpoint", "arch": getattr(reader.recognizer, "arch", "lenet5"),
                "reader": reader.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                "rng": torch.get_rng_state(), "config": asdict(cfg), "history": history,
                "best": best}, tmp)
    tmp.replace(path)


def train_global(reader: ChequeReader, examples: Sequence[Example], cfg: GlobalConfig,
                 checkpoint: Path | None = None, resume: Path | None = None,
                 skip_bad: bool = False, log: Callable[[str], None] = print,
                 preps: Sequence[Prepared] | Mapping[int, Prepared] | None = None) -> dict:
    """Train `reader` in place on `examples`; on return it holds the weights of the epoch with
    the best validation accuracy (epoch 0 = the starting reader). Returns the history."""
    rank, size = world()
    torch.manual_seed(cfg.seed)
    train_idx, val_idx = split_indices(len(examples), cfg.val_frac, cfg.seed)
    if len(train_idx) < size:
        raise ValueError(f"{len(train_idx)} training examples (after holding out the "
                         f"validation part) cannot feed {size} processes")
    if preps is None:
        mine = sorted(train_idx[rank::size] + val_idx[rank::size])
        preps = prepare_examples(examples, cfg.is_field, cfg.max_fields, reader, skip_bad, log,
                               indices=mine)
    elif not isinstance(preps, Mapping):
        preps = dict(enumerate(preps))
    if cfg.train_only == "raised":
        train_only_raised(reader)
    opt = make_optimizer(reader, cfg)
    history: list[dict] = []
    first = 1
    if resume is not None:
        ck = torch.load(resume, map_location="cpu", weights_only=True)
        if ck.get("kind") != "global-checkpoint":
            raise ValueError(f"{resume} is not a global-training checkpoint")
        reader.load_state_dict(ck["reader"])
        opt.load_state_dict(ck["optimizer"])
        torch.set_rng_state(ck["rng"])
        history, best, first = list(ck["history"]), dict(ck["best"]), int(ck["epoch"]) + 1
        log(f"resumed from {resume} after epoch {ck['epoch']}")
    else:
        acc = evaluate(reader, preps, examples, val_idx) if val_idx else float("nan")
        log(f"epoch 0 (start): validation amount accuracy {acc:.4f} on {len(val_idx)}")
        history.append({"epoch": 0, "val_accuracy": acc})
        best = {"epoch": 0, "val_accuracy": acc, "state_dict": _copy_state(reader)}
    model: nn.Module = GlobalLoss(reader, cfg.criterion, cfg.recognizer_train_mode)
    if size > 1:
        model = nn.parallel.DistributedDataParallel(model)
    for epoch in range(first, cfg.epochs + 1):
        stats = train_one_epoch(model, opt, preps, examples, train_idx, cfg, epoch)
        acc = evaluate(reader, preps, examples, val_idx) if val_idx else float("nan")
        stats.update(epoch=epoch, val_accuracy=acc)
        history.append(stats)
        log(f"epoch {epoch}: loss {stats['loss']:.4f}, unreachable {stats['unreachable']}, "
            f"{stats['seconds']:.0f} s, validation amount accuracy {acc:.4f}")
        if not val_idx or acc >= best["val_accuracy"]:
            best = {"epoch": epoch, "val_accuracy": acc, "state_dict": _copy_state(reader)}
        if checkpoint is not None and rank == 0:
            save_checkpoint(checkpoint, reader, opt, epoch, cfg, history, best)
    reader.load_state_dict(best["state_dict"])
    reader.eval()
    return {"history": history, "best_epoch": best["epoch"],
            "best_val_accuracy": best["val_accuracy"], "train": len(train_idx),
            "val": len(val_idx)}


def _copy_state(reader: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in reader.state_dict().items()}


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipelines.train global")
    p.add_argument("--data", type=Path, required=True,
                   help="folder with labels.jsonl (make_cheques) or a CSV 'path,amount[,grammar]'")
    p.add_argument("--field", action="store_true", help="images are amount fields, not cheques")
    p.add_argument("--criterion", choices=CRITERIA, default="forward")
    p.add_argument("--init", type=Path, help=f"starting reader (default {TRAINED_READER_WEIGHTS})")
    p.add_argument("--grammar", choices=GRAMMARS, default="us",
                   help="grammar of rows whose label names none (us)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-4, help="Adam step for LeNet (1e-4)")
    p.add_argument("--lr-head", type=float, default=3e-3,
                   help="Adam step for the scorers and grammars (3e-3)")
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES, default="constant",
                   help="constant rates, or cosine decay to 0 over all epochs (constant)")
    p.add_argument("--clip", type=float, default=5.0, help="gradient-norm clip (5; 0 = off)")
    p.add_argument("--train-only", choices=TRAIN_ONLY, default="all",
                   help="train every parameter (all), or only those that read raised cents "
                        "(raised: the raised scorer and the grammars' raised-digit arcs)")
    p.add_argument("--val-frac", type=float, default=0.1,
                   help="fraction of the data held out for validation (0.1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--recognizer-train-mode", action="store_true",
                   help="let LeNet's batch norm / dropout run in training mode")
    p.add_argument("--skip-bad", action="store_true", help="skip (and print) bad rows")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="torch CPU threads per process (1: more is slower on shared cores)")
    p.add_argument("--out", type=Path, default=Path("runs/global.pt"))
    p.add_argument("--checkpoint", type=Path, help="training checkpoint (default OUT.ckpt)")
    p.add_argument("--resume", type=Path, help="resume from a training checkpoint")
    return p


def _init_distributed() -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.distributed.is_initialized():
        # The reader trains on the CPU (its graphs are CPU work), so its gradients are CPU
        # tensors: gloo, even on a machine with GPUs (nccl only reduces CUDA tensors).
        torch.distributed.init_process_group("gloo")


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    problem = output_problem(args.out, args.checkpoint)
    if problem is not None:
        print(f"train global: {problem}", file=sys.stderr)
        return 2
    _init_distributed()
    rank, size = world()
    torch.set_num_threads(args.threads)
    log = print if rank == 0 else (lambda msg: None)
    try:
        cfg = GlobalConfig(args.criterion, args.epochs, args.batch_size, args.lr, args.lr_head,
                           args.clip, args.seed, args.val_frac, args.field,
                           lr_schedule=args.lr_schedule, train_only=args.train_only)
        examples = load_examples(args.data, args.grammar, args.skip_bad, log)
        reader = load_trainable_reader(args.init)
        if args.init is None and not TRAINED_READER_WEIGHTS.exists():
            log(f"warning: {TRAINED_READER_WEIGHTS} is missing; starting from an untrained "
                "reader around the shipped recognizer")
        start = time.perf_counter()
        result = train_global(reader, examples, cfg, args.checkpoint or
                              args.out.with_name(args.out.name + ".ckpt"), args.resume,
                              args.skip_bad, log)
    except (ValueError, FileNotFoundError) as err:
        print(f"train global: {err}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    if rank == 0:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        save_reader(reader, args.out, config={**_plain(vars(args)), "command": " ".join(
            sys.argv), "world_size": size}, metrics={
            "best_epoch": result["best_epoch"], "val_accuracy": result["best_val_accuracy"],
            "train_examples": result["train"], "val_examples": result["val"],
            "seconds": seconds})
        log(f"wrote {args.out} (epoch {result['best_epoch']}, validation amount accuracy "
            f"{result['best_val_accuracy']:.4f}) in {seconds:.0f} s")
    if size > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return 0
