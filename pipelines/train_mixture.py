"""`python -m pipelines.train mixture READER READER [...] --out PATH`: put trained readers into
one weights file that reads with all of them (`reader.ReaderMixture`).

Nothing is trained: each reader keeps its weights, and reading takes, among the readers' best
amounts, the one with the highest mean posterior. A mixture given as one of the READERs adds
its readers, in order. Each reader after the first reads only the scans that the readers
before it read less confidently than its `--ask-below`. The readers must share their field
proposer (every reader made by `train reader` and `train global` from the shipped files
does), so that a scan is prepared once for all of them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pipelines.cli import output_problem


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipelines.train mixture")
    p.add_argument("readers", type=Path, nargs="+",
                   help="whole-reader weights files (train reader / train global) or "
                        "mixtures, two or more readers in all")
    p.add_argument("--ask-below", type=float, nargs="+", metavar="P",
                   help="for each reader after the first, the confidence of the readers before "
                        "it under which it is asked (default 0.95 each; over 1: always)")
    p.add_argument("--out", type=Path, required=True, help="the mixture's weights file")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    if any(args.out.resolve() == r.resolve() for r in args.readers):
        print(f"train mixture: --out {args.out} is one of the readers; write the mixture "
              "elsewhere", file=sys.stderr)
        return 2
    problem = output_problem(args.out)
    if problem is not None:
        print(f"train mixture: {problem}", file=sys.stderr)
        return 2
    from pipelines.reader import save_mixture

    try:
        asking = "" if args.ask_below is None else " --ask-below " + " ".join(
            str(a) for a in args.ask_below)
        count = save_mixture(args.readers, args.out, args.ask_below, config={
            "command": "python -m pipelines.train mixture "
                       + " ".join(str(r) for r in args.readers) + asking + f" --out {args.out}",
            "readers": [str(r) for r in args.readers]})
    except ValueError as err:
        print(f"train mixture: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: a mixture of {count} readers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
