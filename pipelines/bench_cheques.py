"""`python -m pipelines.benchmark cheques`: how well and how fast the reader reads cheques.

Generates the synthetic TEST split in memory (test-split MNIST digits only), or reads a labelled
folder (`--data DIR` with labels.jsonl), encodes every image as PNG beforehand, then times the
reader end to end in batch mode from PNG bytes to readings (decoding included).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from pipelines.amounts import GRAMMARS
from pipelines.batch_reading import read_all
from pipelines.cli import output_problem, positive_int
from pipelines.make_cheques import add_cents_arguments
from pipelines.metrics import (
    edit_distance,
    error_at_reject,
    error_reject_curve,
    iou,
    segmentation_correct,
)
from pipelines.prepare_pool import prepare_all
from pipelines.reader import ZOOM_LOOK_BELOW, Reading, first_readers, load_reader

BITONAL = 0.1  # the share of bitonal test cheques


@dataclass
class Case:
    png: bytes
    text: str
    amount: str
    grammar: str
    field_box: tuple[int, int, int, int]
    char_boxes: list[tuple[int, int, int, int]]


def synthetic_cases(n: int, seed: int, is_field: bool, fmt: str = "us",
                    rough: float = 0.0, mottled: float = 0.0, raised: float = 0.0,
                    underlined: float = 0.0) -> list[Case]:
    """`n` test-split cheques (10% bitonal); a fraction `mottled` of the others on a mottled
    background (`scan_effects.mottled`) and a fraction `rough` as rough scans
    (`scan_effects.rough_scan`), and a fraction `raised` with their cents written raised
    ("125⁰⁰"), a fraction `underlined` of those underlined, the rest the same as without."""
    from pipelines.cheques import generate_cheques, is_bitonal, on_mottled_paper, roughened

    cases = []
    for i, s in enumerate(generate_cheques(n, seed, "test", fmt=fmt, fields_only=is_field,
                                           bitonal=BITONAL, raised_cents=raised,
                                           underlined_cents=underlined)):
        bitonal = is_bitonal(BITONAL, seed, i)
        image = roughened(on_mottled_paper(s.image, mottled, seed, i, bitonal), rough, seed, i,
                          bitonal)
        ok, png = cv2.imencode(".png", image)
        cases.append(Case(png.tobytes(), s.text, s.amount, s.grammar, tuple(s.field_box),
                          [tuple(c.box) for c in s.chars]))
    return cases


def folder_cases(folder: Path, n: int) -> list[Case]:
    from pipelines.cheques import read_dataset

    cases = []
    for item in read_dataset(folder)[:n]:
        cases.append(Case(Path(item.path).read_bytes(), item.text, item.amount,
                          getattr(item, "grammar", "us"), tuple(item.field_box),
                          [tuple(c.box) for c in item.chars]))
    return cases


def run_reader(cases: Sequence[Case], weights: Path | None, is_field: bool, grammar: str | None,
               threads: int, workers: int = 2, zoom_below: float = ZOOM_LOOK_BELOW,
               readers: int | None = None) -> tuple[list[Reading], float]:
    """Readings of every case and the wall time spent (PNG decoding, image analysis in
    `workers` processes, LeNet and graphs in this one: `batch_reading.read_all`; `zoom_below`
    as `reader.read_prepared`'s; `readers`: the mixture's first so many only, default all)."""
    torch.set_num_threads(threads)
    reader = load_reader(weights)
    if readers is not None:
        reader = first_readers(reader, readers)
    start = time.perf_counter()
    with prepare_all([c.png for c in cases], is_field, reader.field_proposer, workers,
                     keep_images=False) as prepared:
        readings = [r for _, r in read_all(reader, prepared, [c.png for c in cases], is_field,
                                           [grammar or c.grammar for c in cases],
                                           zoom_below=zoom_below)]
        seconds = time.perf_counter() - start  # the helpers' exit is not reading
    return readings, seconds


def score(cases: Sequence[Case], readings: Sequence[Reading], seconds: float) -> dict:
    correct = [r.amount == c.amount for c, r in zip(cases, readings)]
    conf = [r.confidence for r in readings]
    chars = sum(len(c.text.replace(" ", "")) for c in cases)
    errors = sum(edit_distance((r.text or "").replace(" ", ""), c.text.replace(" ", ""))
                 for c, r in zip(cases, readings))
    fields = [r.field_box is not None and iou(r.field_box, c.field_box) > 0.5
              for c, r in zip(cases, readings)]
    segs = [segmentation_correct([s.box for s in r.segments if s.char != "<rubbish>"],
                                 c.char_boxes) for c, r in zip(cases, readings)]
    n = len(cases)
    return {
        "n": n,
        "amount_accuracy": float(np.mean(correct)) if n else 0.0,
        "char_error_rate": errors / max(chars, 1),
        "field_accuracy": float(np.mean(fields)) if n else 0.0,
        "segmentation_accuracy": float(np.mean(segs)) if n else 0.0,
        "error_at_reject": error_at_reject(correct, conf),
        "cheques_per_second": n / seconds if seconds > 0 else 0.0,
    }


def draw_curve(curves: dict[str, tuple[np.ndarray, np.ndarray]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    for name, (rej, err) in curves.items():
        ax.plot(100 * rej, 100 * err, label=name)
    ax.set_xlabel("rejected (% of cheques)")
    ax.set_ylabel("accepted and wrong (% of cheques)")
    ax.set_xlim(0, 50)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def print_table(rows: dict[str, dict]) -> None:
    keys = ["amount_accuracy", "char_error_rate", "field_accuracy", "segmentation_accuracy"]
    print(f"{'':<12}" + "".join(f"{k:>23}" for k in keys) + f"{'cheques/s':>12}")
    for name, m in rows.items():
        print(f"{name:<12}" + "".join(f"{m[k]:>23.4f}" for k in keys)
              + f"{m['cheques_per_second']:>12.1f}")
        print(f"{'':<12}error at reject: " + ", ".join(
            f"{float(r) * 100:g}% -> {e * 100:.2f}%" for r, e in m["error_at_reject"].items()))


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipelines.benchmark cheques")
    p.add_argument("--n", type=int, default=500, help="number of test cheques (500)")
    p.add_argument("--seed", type=int, default=20261126, help="generator seed of the test set")
    p.add_argument("--data", type=Path, help="a labelled folder instead of generated cheques")
    p.add_argument("--field", action="store_true", help="amount-field images, not cheques")
    p.add_argument("--format", choices=("us", "eu", "mixed"), default="us",
                   help="how the generated amounts are written (us)")
    p.add_argument("--rough-fraction", type=float, default=0.0,
                   help="read this fraction of the generated (non-bitonal) cheques as rough "
                        "scans: heavy pen, faint ink, blur, noise, dust, shading, coarse JPEG")
    p.add_argument("--mottled-fraction", type=float, default=0.0,
                   help="print this fraction of the generated (non-bitonal) cheques over a "
                        "mottled, picture-like background")
    add_cents_arguments(p, float)  # checked against 0..1 in main, as the others
    p.add_argument("--weights", type=Path, help="reader checkpoint (default: shipped)")
    p.add_argument("--readers", type=positive_int, default=None, metavar="N",
                   help="read with the first N readers of the mixture only (default: all)")
    p.add_argument("--grammar", choices=GRAMMARS, help="force a grammar (default: the label's)")
    p.add_argument("--zoom-below", type=float, default=ZOOM_LOOK_BELOW, metavar="P",
                   help="read scans read with a confidence below P again at other sizes "
                        f"and pen widths ({ZOOM_LOOK_BELOW}; 0: never)")
    p.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads (1)")
    p.add_argument("--workers", type=positive_int, default=2,
                   help="processes for the image analysis, this one included (2; 1 = all "
                        "in this process)")
    p.add_argument("--curve", type=Path, default=Path("error_reject.png"),
                   help="error-reject curve picture (error_reject.png)")
    p.add_argument("--out", type=Path, help="write the metrics as JSON")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.n <= 0:
        print(f"benchmark cheques: --n must be positive, got {args.n}", file=sys.stderr)
        return 2
    problem = output_problem(args.out, args.curve)
    if problem is not None:
        print(f"benchmark cheques: {problem}", file=sys.stderr)
        return 2
    for name, value in (("--rough-fraction", args.rough_fraction),
                        ("--mottled-fraction", args.mottled_fraction),
                        ("--raised-cents-fraction", args.raised_cents_fraction),
                        ("--underlined-cents-fraction", args.underlined_cents_fraction),
                        ("--zoom-below", args.zoom_below)):
        if not 0 <= value <= 1:
            print(f"benchmark cheques: {name} must be between 0 and 1, got {value}",
                  file=sys.stderr)
            return 2
    try:
        cases = (folder_cases(args.data, args.n) if args.data
                 else synthetic_cases(args.n, args.seed, args.field, args.format,
                                      args.rough_fraction, args.mottled_fraction,
                                      args.raised_cents_fraction,
                                      args.underlined_cents_fraction))
        readings, seconds = run_reader(cases, args.weights, args.field, args.grammar,
                                       args.threads, args.workers, args.zoom_below,
                                       args.readers)
    except ValueError as err:
        print(f"benchmark cheques: {err}", file=sys.stderr)
        return 2
    metrics = score(cases, readings, seconds)
    print_table({"reader": metrics})
    correct = [r.amount == c.amount for c, r in zip(cases, readings)]
    draw_curve({"reader": error_reject_curve(correct, [r.confidence for r in readings])},
               args.curve)
    print(f"error-reject curve: {args.curve}")
    if args.out:
        args.out.write_text(json.dumps(metrics, indent=2))
    return 0
