"""`python -m pipelines.train chars|reader|global|mixture ...`: train the recognizer, then the
whole reader; put readers together."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pipelines.cli import dispatch

COMMANDS = {
    "chars": ("pipelines.train_chars", "train LeNet-5 on isolated characters (MNIST + synthetic)"),
    "reader": ("pipelines.train_reader", "assemble the reader; train its modules one by one"),
    "global": ("pipelines.train_global", "train the whole reader end to end from amounts"),
    "mixture": ("pipelines.train_mixture", "one weights file that reads with several readers"),
}


def main(argv: Sequence[str] | None = None) -> int:
    return dispatch("pipelines.train", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
