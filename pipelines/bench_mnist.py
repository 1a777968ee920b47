"""`python -m pipelines.benchmark mnist`: MNIST test error, confusions and CPU speed of a
recognizer.

All 10,000 MNIST TEST digits, normalised the paper's way (`to_lenet_input(patch)`, which on an
MNIST digit is its 28x28 image re-centred and padded to 32x32). A digit counts as wrong when the
lowest penalty over ALL 17 classes is not its label (so answering '/' or rubbish is an error).
Speed: model forward only on already-normalised inputs, batches of 256, on the CPU with the
thread count printed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from pipelines.chardata import mnist_inputs
from pipelines.charimage import ink_to_input
from pipelines.charset import CLASSES, NUM_CLASSES
from pipelines.cli import EXIT_OK, EXIT_USAGE, output_problem, positive_int
from pipelines.mnist import MnistError, load_mnist
from pipelines.recognizer import DEFAULT_WEIGHTS, load_recognizer


@torch.no_grad()
def penalties(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """(N, 1, 32, 32) inputs -> (N, 17) penalties."""
    return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


@torch.no_grad()
def chars_per_second(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 256,
                     min_seconds: float = 1.0) -> float:
    """Forward throughput on the inputs `x` (N, 1, 32, 32), repeated for at least `min_seconds`."""
    model(x[:batch_size])  # warm-up
    done, t0 = 0, time.perf_counter()
    while True:
        for i in range(0, len(x), batch_size):
            model(x[i : i + batch_size])
            done += len(x[i : i + batch_size])
        if time.perf_counter() - t0 >= min_seconds:
            return done / (time.perf_counter() - t0)


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """(10, 17) counts: true digit x predicted class."""
    m = np.zeros((10, NUM_CLASSES), np.int64)
    np.add.at(m, (labels, predicted), 1)
    return m


def draw_confusion(matrix: np.ndarray, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    off = matrix.copy()
    off[np.arange(10), np.arange(10)] = 0
    fig, ax = plt.subplots(figsize=(9, 5))
    ax.imshow(np.log1p(off), cmap="Reds")
    for (i, j), v in np.ndenumerate(matrix):
        if v:
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7,
                    color="black" if i != j else "gray")
    ax.set_xticks(range(NUM_CLASSES), [c if len(c) == 1 else "rub" for c in CLASSES])
    ax.set_yticks(range(10), [str(d) for d in range(10)])
    ax.set_xlabel("predicted (lowest penalty over all 17 classes)")
    ax.set_ylabel("true digit")
    ax.set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(weights: Path, limit: int | None = None, threads: int = 1) -> dict:
    """Evaluate `weights` on the first `limit` (default all) MNIST test digits."""
    torch.set_num_threads(threads)
    model = load_recognizer(weights)
    test = load_mnist("test")
    n = len(test.images) if limit is None else min(limit, len(test.images))
    x = ink_to_input(mnist_inputs(test.images[:n]).float()[:, None] / 255)
    labels = test.labels[:n].astype(np.int64)
    pen = penalties(model, x)
    predicted = pen.argmin(1).numpy()
    digit_only = pen[:, :10].argmin(1).numpy()  # the paper's MNIST protocol: 10 outputs
    matrix = confusion_matrix(labels, predicted)
    per_class = {str(d): float(1 - matrix[d, d] / max(1, matrix[d].sum())) for d in range(10)}
    return {
        "weights": str(weights), "arch": str(model.arch), "n": int(n),
        "test_error": float((predicted != labels).mean()),
        "digit_only_test_error": float((digit_only != labels).mean()),
        "per_class_error": per_class, "threads": threads,
        "chars_per_second": chars_per_second(model, x), "confusion": matrix.tolist(),
    }


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipelines.benchmark mnist", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    p.add_argument("--confusion", type=Path, default=Path("mnist_confusion.png"),
                   help="confusion-matrix picture (default ./mnist_confusion.png)")
    p.add_argument("--limit", type=int, default=None, help="first N test digits only")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="torch CPU threads for the speed test")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = get_args_parser().parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    problem = output_problem(args.out, args.confusion)
    if problem is not None:
        print(f"benchmark mnist: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        r = run(args.weights, args.limit, args.threads)
    except (MnistError, ValueError) as err:
        print(f"benchmark mnist: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{r['arch']} ({r['weights']}): MNIST test error {100 * r['test_error']:.2f}% "
          f"on {r['n']} digits (argmin over all 17 classes)")
    print(f"{r['arch']}: MNIST test error {100 * r['digit_only_test_error']:.2f}% with the "
          f"paper's protocol (argmin over the 10 digit classes)")
    print("per-class error: " + "  ".join(f"{d}:{100 * e:.2f}%"
                                          for d, e in r["per_class_error"].items()))
    print(f"speed: {r['chars_per_second']:.0f} characters/s on the CPU "
          f"({r['threads']} thread(s), batches of 256, model forward only)")
    draw_confusion(np.array(r["confusion"]), args.confusion,
                   f"{r['arch']}: MNIST test error {100 * r['test_error']:.2f}% (n={r['n']})")
    print(f"confusion matrix: {args.confusion}")
    if args.out is not None:
        keys = ("test_error", "digit_only_test_error", "n", "chars_per_second",
                "per_class_error", "arch", "threads")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({k: r[k] for k in keys}, indent=2) + "\n")
    return EXIT_OK
