"""`python -m pipelines.benchmark global`: module-by-module vs globally trained reader.

Trains (or loads, `--global`) the globally trained reader from the module-trained one
(`--isolated`, default the shipped `weights/reader-modules.pt`), then reads the same synthetic
TEST cheques with both and prints amount accuracy, character error rate, segmentation accuracy
and the error at 0/5/10% reject, plus the training time. Training data are training-split
amount fields by default (fast: no field search), `--train-cheques` for whole cheques;
validation is a held-out part of them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pipelines.bench_cheques import draw_curve, print_table, run_reader, score, synthetic_cases
from pipelines.cli import output_problem, positive_int
from pipelines.metrics import error_reject_curve
from pipelines.reader import DEFAULT_READER_WEIGHTS, load_trainable_reader, save_reader
from pipelines.train_global import CRITERIA, GlobalConfig, train_global

# The shipped reader before global training (its model card: pipelines/weights/README.md): the
# comparison's module-by-module side. (The default was the globally trained reader itself, so
# `benchmark global` without --isolated compared that reader with a further-trained copy.)
MODULES_READER_WEIGHTS = DEFAULT_READER_WEIGHTS.with_name("reader-modules.pt")


def train_examples(n: int, seed: int, fields: bool, fmt: str) -> list:
    """Training-split synthetic images as in-memory `Example`s."""
    from pipelines.cheques import generate_cheques
    from pipelines.datasets import Example

    return [Example(f"train-seed{seed}:{i}", s.amount, s.grammar, image=s.image)
            for i, s in enumerate(generate_cheques(n, seed, "train", fmt=fmt, bitonal=0.1,
                                                   fields_only=fields))]


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipelines.benchmark global")
    p.add_argument("--n", type=int, default=500, help="test cheques (500)")
    p.add_argument("--seed", type=int, default=20261126, help="generator seed of the test set")
    p.add_argument("--field", action="store_true", help="test on amount-field images")
    p.add_argument("--format", choices=("us", "eu", "mixed"), default="us")
    p.add_argument("--isolated", type=Path,
                   help="module-trained reader (default: the shipped reader-modules.pt)")
    p.add_argument("--global", dest="global_", type=Path,
                   help="globally trained reader to load instead of training one")
    p.add_argument("--train-n", type=int, default=2000, help="training images (2000)")
    p.add_argument("--train-seed", type=int, default=1)
    p.add_argument("--train-cheques", action="store_true",
                   help="train on whole cheques instead of amount fields")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--criterion", choices=CRITERIA, default="forward")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--lr-head", type=float, default=3e-3)
    p.add_argument("--val-frac", type=float, default=0.1)
    p.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (1)")
    p.add_argument("--save-global", type=Path, default=Path("runs/bench_global.pt"),
                   help="where the trained global reader goes (runs/bench_global.pt)")
    p.add_argument("--curve", type=Path, default=Path("global_error_reject.png"))
    p.add_argument("--out", type=Path, help="write {isolated: ..., global: ...} as JSON")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    import torch

    args = get_args_parser().parse_args(argv)
    if args.n <= 0 or args.train_n <= 0:
        print("benchmark global: --n and --train-n must be positive", file=sys.stderr)
        return 2
    problem = output_problem(args.out, args.curve, args.save_global)
    if problem is not None:
        print(f"benchmark global: {problem}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    isolated = args.isolated or MODULES_READER_WEIGHTS
    if not Path(isolated).is_file():
        print(f"benchmark global: module-trained reader {isolated} does not exist "
              "(train it with `python -m pipelines.train reader` or pass --isolated)",
              file=sys.stderr)
        return 2
    train_info: dict = {}
    try:
        global_path = args.global_
        if global_path is None:
            fields = args.field or not args.train_cheques
            examples = train_examples(args.train_n, args.train_seed, fields, args.format)
            reader = load_trainable_reader(isolated)
            cfg = GlobalConfig(args.criterion, args.epochs, args.batch_size, args.lr,
                               args.lr_head, seed=args.train_seed, val_frac=args.val_frac,
                               is_field=fields)
            start = time.perf_counter()
            result = train_global(reader, examples, cfg, skip_bad=True)
            train_info = {"training_seconds": time.perf_counter() - start,
                          "best_epoch": result["best_epoch"],
                          "val_accuracy": result["best_val_accuracy"],
                          "train_examples": result["train"], "val_examples": result["val"],
                          "seconds_per_epoch": [h["seconds"] for h in result["history"][1:]]}
            global_path = args.save_global
            global_path.parent.mkdir(parents=True, exist_ok=True)
            save_reader(reader, global_path, config={"bench": " ".join(sys.argv),
                                                     **vars(cfg)}, metrics=train_info)
            print(f"global training: {train_info}")
        cases = synthetic_cases(args.n, args.seed, args.field, args.format)
        rows, curves = {}, {}
        for name, weights in (("isolated", Path(isolated)), ("global", global_path)):
            readings, seconds = run_reader(cases, weights, args.field, None, args.threads)
            rows[name] = score(cases, readings, seconds)
            correct = [r.amount == c.amount for c, r in zip(cases, readings)]
            curves[name] = error_reject_curve(correct, [r.confidence for r in readings])
    except ValueError as err:
        print(f"benchmark global: {err}", file=sys.stderr)
        return 2
    rows["global"].update(train_info)
    print_table(rows)
    e0 = 1 - rows["isolated"]["amount_accuracy"]
    e1 = 1 - rows["global"]["amount_accuracy"]
    if e0 > 0:
        print(f"amount error {e0:.2%} -> {e1:.2%}: {1 - e1 / e0:+.1%} relative reduction")
    if train_info:
        print(f"training time: {train_info['training_seconds']:.0f} s")
    draw_curve(curves, args.curve)
    print(f"error-reject curves: {args.curve}")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))
    return 0
