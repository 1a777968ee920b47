"""`python -m pipelines.make_cheques`: write a data set of synthetic cheques.

    python -m pipelines.make_cheques --split train --n 20000 --seed 1 --out data/cheques/train \
        --format mixed --workers 2

Writes `OUT/NNNNN.png` and `OUT/labels.jsonl` (see `pipelines.cheques`). Bad arguments give a
one-line error and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from multiprocessing import get_context

import numpy as np
from tqdm import tqdm

from pipelines.cheques import (
    DIGIT_POOLS,
    FORMATS,
    ChequeSample,
    derive_seed,
    digit_pool,
    encode_png,
    file_name,
    generate_cheque,
    has_raised_cents,
    has_underlined_cents,
    is_bitonal,
    prepare_dir,
    roughened,
    to_label,
    write_records,
)
from pipelines.cli import EXIT_USAGE, int_at_least
from pipelines.mnist import SPLITS


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and 1")
    return value


def add_cents_arguments(p: argparse.ArgumentParser, fraction: Callable[[str], float]) -> None:
    """The options of how cents are written (`make_cheques`, `benchmark cheques`), each a
    fraction parsed by `fraction`."""
    p.add_argument("--raised-cents-fraction", type=fraction, default=0.0,
                   help="write the cents of this fraction of the amounts small and raised "
                        "(\"125⁰⁰\"), default 0")
    p.add_argument("--underlined-cents-fraction", type=fraction, default=0.0,
                   help="underline the raised cents of this fraction of the amounts written "
                        "with them, default 0")


def get_args_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="make_cheques", description="Write synthetic cheques with labels.")
    p.add_argument("--split", required=True, choices=SPLITS,
                   help="MNIST split of the digits: train for training data, test for evaluation")
    p.add_argument("--n", required=True, type=int_at_least(0), help="number of cheques")
    p.add_argument("--seed", required=True, type=int_at_least(0), help="non-negative integer seed")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--fields-only", action="store_true", help="write only the amount field")
    p.add_argument("--format", default="us", choices=FORMATS, help="how amounts are written")
    p.add_argument("--bitonal", action="store_true", help="black-and-white output")
    p.add_argument("--bitonal-fraction", type=_fraction, default=None,
                   help="make this fraction of the cheques bitonal (overrides --bitonal)")
    p.add_argument("--rough-fraction", type=_fraction, default=0.0,
                   help="give this fraction of the (non-bitonal) cheques a rough scan: heavy "
                        "pen, faint ink, blur, noise, dust, shading, coarse JPEG (default 0)")
    add_cents_arguments(p, _fraction)
    p.add_argument("--digit-pool", default="all", choices=DIGIT_POOLS,
                   help="which of the split's digits to write with: all (default), or of the "
                        "training split the first 55,000 (fit: LeNet's training digits) or "
                        "the last 5,000 (held-out: its validation digits), so that training "
                        "and validation cheques share no digit image")
    p.add_argument("--workers", type=int_at_least(0), default=1, help="processes (default 1)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing data set")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


_JOB: dict = {}


def make_sample(job: dict, index: int) -> tuple[np.ndarray, ChequeSample]:
    """Cheque `index` of the data set that `job` (the options of `make_cheques`, as in
    `main`) describes: its image as written to disk (roughened where drawn) and its sample."""
    bitonal = is_bitonal(job["bitonal"], job["seed"], index)
    digits, first = digit_pool(job["split"], job["pool"])
    sample = generate_cheque(derive_seed(job["seed"], index), job["split"], digits,
                             job["format"], bitonal, job["fields_only"],
                             has_raised_cents(job["raised"], job["seed"], index),
                             has_underlined_cents(job["underlined"], job["seed"], index))
    sample.mnist_indices = [first + i for i in sample.mnist_indices]  # the split's numbering
    return roughened(sample.image, job["rough"], job["seed"], index, bitonal), sample


def _make_one(index: int) -> tuple[bytes, dict]:
    image, sample = make_sample(_JOB, index)
    return encode_png(image), to_label(sample, file_name(index))


def _init(job: dict) -> None:
    _JOB.clear()
    _JOB.update(job)


def make_records(job: dict, n: int, workers: int) -> Iterator[tuple[bytes, dict]]:
    """The (png, label) pairs of cheques 0..n-1, in order, made by `workers` processes."""
    _init(job)
    digit_pool(job["split"], job["pool"])  # load once before forking
    if workers <= 1:
        yield from map(_make_one, range(n))
        return
    with get_context("fork").Pool(workers, initializer=_init, initargs=(job,)) as pool:
        yield from pool.imap(_make_one, range(n), chunksize=8)


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.n == 0:
        print("make_cheques: error: --n must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    if args.digit_pool != "all" and args.split != "train":
        print(f"make_cheques: error: --digit-pool {args.digit_pool} is part of the training "
              "split; use it with --split train", file=sys.stderr)
        return EXIT_USAGE
    try:
        prepare_dir(args.out, args.overwrite)
    except (FileExistsError, NotADirectoryError, OSError) as err:
        print(f"make_cheques: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    job = {"seed": args.seed, "split": args.split, "format": args.format,
           "bitonal": args.bitonal_fraction if args.bitonal_fraction is not None
           else float(args.bitonal), "fields_only": args.fields_only,
           "rough": args.rough_fraction, "raised": args.raised_cents_fraction,
           "underlined": args.underlined_cents_fraction, "pool": args.digit_pool}
    start = time.perf_counter()
    try:
        records = make_records(job, args.n, max(1, args.workers))
        bar = tqdm(records, total=args.n, unit="cheque", disable=args.no_progress or args.n < 50)
        count = write_records(bar, args.out, overwrite=True)
    except ValueError as err:  # e.g. MNIST missing
        print(f"make_cheques: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    elapsed = time.perf_counter() - start
    print(f"wrote {count} {'fields' if args.fields_only else 'cheques'} to {args.out} "
          f"in {elapsed:.1f} s ({count / elapsed:.1f}/s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
