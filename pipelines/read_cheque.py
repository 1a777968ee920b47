"""`python -m pipelines.read_cheque PATH [PATH ...]`: print the amount written on cheques.

Plain output, one line per input: `PATH<TAB>AMOUNT<TAB>CONFIDENCE` (AMOUNT is `REJECT` when
the reading is rejected or the input could not be read; the reason for a failure goes to stderr
on one line). `--json`: one object per line with path, amount, text, confidence, rejected,
field_box and error. Exit status: 0 all read, 1 some rejected or failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pipelines.amounts import GRAMMARS
from pipelines.cli import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    EXIT_USAGE,
    device_problem,
    output_problem,
    quiet_on_closed_pipe,
)

BATCH = 32
AUTO_WORKERS_FROM = 32


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipelines.read_cheque",
                                description="Read the courtesy amount of cheque scans.")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="cheque scans (PNG, JPEG, TIFF incl. bitonal G4, BMP; 8- or 16-bit)")
    p.add_argument("--field", action="store_true", help="the images are amount fields already")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--grammar", choices=GRAMMARS, default="us", help="amount grammar (us)")
    p.add_argument("--weights", type=Path, help="reader or recognizer checkpoint")
    p.add_argument("--reject-below", type=float, default=None, metavar="P",
                   help="reject readings whose confidence is below P (0..1)")
    p.add_argument("--zoom-below", type=float, default=None, metavar="P",
                   help="read scans read with a confidence below P again at other sizes "
                        "and pen widths (0..1; default 0.7; 0: never, the fastest)")
    p.add_argument("--readers", type=int, default=None, metavar="N",
                   help="read with the first N readers of the weights' mixture only (default: "
                        "all; fewer is faster and less sure, see the model card)")
    p.add_argument("--explain", type=Path, metavar="OUT.png",
                   help="draw the field, cuts, chosen segments and alternatives")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    p.add_argument("--workers", type=int, default=None,
                   help="processes (this one included) for the image analysis (default: the "
                        f"number of CPU cores, at most 8, from {AUTO_WORKERS_FROM} inputs on, "
                        "else 1)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (1: the graphs are many small operations)")
    return p


def _explain_path(out: Path, index: int, total: int) -> Path:
    return out if total == 1 else out.with_name(f"{out.stem}-{index}{out.suffix}")


def _emit(source, reading, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    """One input's line. `source` is its path, or an `images.Page` of a multi-page file,
    named `PATH[n]` in plain output and given as the file's path and the page in JSON."""
    from pipelines.images import Page

    path = str(source)
    if as_json:
        out = {
            "path": source.path if isinstance(source, Page) else path,
            "amount": None if reading.rejected else reading.amount,
            "text": reading.text, "confidence": round(reading.confidence, 4),
            "rejected": reading.rejected,
            "field_box": list(reading.field_box) if reading.field_box else None,
            "error": reading.error,
        }
        if isinstance(source, Page):
            out["page"] = source.index + 1
        print(json.dumps(out), flush=True)
        return
    if reading.error:
        print(f"{path}: {reading.error}", file=sys.stderr, flush=True)
    amount = "REJECT" if reading.rejected or reading.amount is None else reading.amount
    print(f"{path}\t{amount}\t{reading.confidence:.3f}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)  # exits 2 on a usage error
    if args.reject_below is not None and not 0.0 <= args.reject_below <= 1.0:
        print(f"read_cheque: --reject-below must be within 0..1, got {args.reject_below}",
              file=sys.stderr)
        return EXIT_USAGE
    if args.zoom_below is not None and not 0.0 <= args.zoom_below <= 1.0:
        print(f"read_cheque: --zoom-below must be within 0..1, got {args.zoom_below}",
              file=sys.stderr)
        return EXIT_USAGE
    if args.explain is not None:
        import cv2

        problem = output_problem(args.explain)
        if problem is None and not cv2.haveImageWriter(str(args.explain)):
            problem = f"--explain {args.explain}: not a picture name (.png, .jpg, ...)"
        if problem is not None:
            print(f"read_cheque: {problem}", file=sys.stderr)
            return EXIT_USAGE
    import torch

    from pipelines.batch_reading import read_all
    from pipelines.images import pages_of
    from pipelines.preparation import load_source
    from pipelines.prepare_pool import prepare_all
    from pipelines.reader import DEFAULT_REJECT_BELOW, ZOOM_LOOK_BELOW, first_readers, load_reader

    if args.threads < 1:
        print(f"read_cheque: --threads must be at least 1, got {args.threads}", file=sys.stderr)
        return EXIT_USAGE
    if args.workers is not None and args.workers < 1:
        print(f"read_cheque: --workers must be at least 1, got {args.workers}", file=sys.stderr)
        return EXIT_USAGE
    torch.set_num_threads(args.threads)
    problem = device_problem(args.device)
    if problem is not None:
        print(f"read_cheque: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        reader = load_reader(args.weights, args.device)
        if args.readers is not None:
            reader = first_readers(reader, args.readers)
    except ValueError as err:
        print(f"read_cheque: {err}", file=sys.stderr)
        return EXIT_USAGE
    reject_below = DEFAULT_REJECT_BELOW if args.reject_below is None else args.reject_below
    zoom_below = ZOOM_LOOK_BELOW if args.zoom_below is None else args.zoom_below
    inputs = pages_of(args.paths)  # each page of a multi-page TIFF is an input of its own
    progress = None
    if sys.stderr.isatty() and len(inputs) > BATCH:
        from tqdm import tqdm

        progress = tqdm(total=len(inputs), unit="cheque", file=sys.stderr)
    status = EXIT_OK
    workers = args.workers
    if workers is None:  # helpers pay for their start (~0.5 s) from a few dozen inputs on
        workers = min(os.cpu_count() or 1, 8) if len(inputs) >= AUTO_WORKERS_FROM else 1
    keep_images = args.explain is not None
    with prepare_all(inputs, args.field, reader.field_proposer, workers,
                     keep_images=keep_images) as prepared:
        readings = read_all(reader, prepared, inputs, args.field, [args.grammar] * len(inputs),
                            reject_below, 3 if args.explain else 0, keep_images, zoom_below)
        for k, (source, (prep, reading)) in enumerate(zip(inputs, readings)):
            if args.explain and prep is not None:
                from pipelines.explain import draw_explanation

                draw_explanation(load_source(source), prep, reading,
                                 _explain_path(args.explain, k, len(inputs)))
            _emit(source, reading, args.json)
            if reading.error or reading.rejected:
                status = EXIT_SOME_FAILED
            if progress is not None:
                progress.update(1)
    if progress is not None:
        progress.close()
    return status


if __name__ == "__main__":
    sys.exit(quiet_on_closed_pipe(main))
