"""`python -m pipelines.benchmark mnist|cheques|global ...`: accuracy and speed measurements."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pipelines.cli import dispatch

COMMANDS = {
    "mnist": ("pipelines.bench_mnist", "MNIST test error, confusions and speed of a recognizer"),
    "cheques": ("pipelines.bench_cheques", "amount, field and segmentation accuracy of the reader"),
    "global": ("pipelines.bench_global", "isolated vs global training on the same test cheques"),
}


def main(argv: Sequence[str] | None = None) -> int:
    return dispatch("pipelines.benchmark", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
