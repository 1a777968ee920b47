"""Labelled images for global training: a generator folder (`labels.jsonl`) or a CSV of scans.

A CSV holds `path,amount[,grammar]` rows (an optional header row `path,amount[,grammar]`), paths
relative to the CSV. Every row is checked before training starts: the file exists, the amount is
normalised ("1234.56", `pipelines.grammar.amount_to_labels`) and the grammar can write it. Bad
rows are never skipped silently: `load_examples` raises `BadRowsError` listing every one
(file:line: reason), or, with `skip_bad=True`, prints each skipped row and goes on.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

import gtn
from pipelines.amounts import GRAMMARS
from pipelines.grammar import AmountGrammar, amount_to_labels
from pipelines.images import load_gray


@dataclass(frozen=True)
class Example:
    """One labelled image: a file on disk, or an in-memory `image` (H, W) uint8."""

    where: str  # "labels.jsonl:12" or "scans.csv:7": the row it came from
    amount: str
    grammar: str
    path: Path | None = None
    image: np.ndarray | None = None

    def load(self) -> np.ndarray:
        """The greyscale image (H, W) uint8; ValueError naming the row when unreadable."""
        if self.image is not None:
            return self.image
        try:  # as the reader reads it: the pixels trained on are those read
            return load_gray(self.path)  # type: ignore[arg-type]
        except ValueError as err:
            raise ValueError(f"{self.where}: cannot read image: {err}") from None


@dataclass(frozen=True)
class BadRow:
    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


class BadRowsError(ValueError):
    """Raised with every bad row of a data set; `rows` holds them."""

    def __init__(self, rows: Sequence[BadRow]) -> None:
        self.rows = list(rows)
        super().__init__(f"{len(self.rows)} bad row(s) (pass --skip-bad to skip them):\n"
                         + "\n".join(f"  {r}" for r in self.rows))


@cache
def _grammar_graph(name: str) -> gtn.Graph:
    g = AmountGrammar(name).graph()
    return g.replace(weight=g.weight.detach())


def amount_problem(amount: str, grammar: str) -> str | None:
    """Why `grammar` cannot write `amount`, or None when it can."""
    if grammar not in GRAMMARS:
        return f"unknown grammar {grammar!r}; expected one of {', '.join(GRAMMARS)}"
    try:
        labels = amount_to_labels(amount)
    except ValueError as err:
        return str(err)
    path = gtn.compose(_grammar_graph(grammar), gtn.linear_graph(labels))
    if path.num_arcs == 0:
        return f"the {grammar!r} grammar cannot write the amount {amount!r}"
    return None


def read_csv(path: Path | str, grammar: str = "us") -> tuple[list[Example], list[BadRow]]:
    """Rows `path,amount[,grammar]` of a CSV and the bad rows among them."""
    csv_path = Path(path)
    good: list[Example] = []
    bad: list[BadRow] = []
    with open(csv_path, newline="", encoding="utf-8") as f:
        for line, row in enumerate(csv.reader(f), 1):
            cells = [c.strip() for c in row]
            if not cells or not any(cells) or cells[0].startswith("#"):
                continue
            if line == 1 and cells[0].lower() == "path":
                continue  # header
            if len(cells) not in (2, 3):
                bad.append(BadRow(str(csv_path), line,
                                  f"expected 'path,amount[,grammar]', got {len(cells)} columns"))
                continue
            file = csv_path.parent / cells[0]
            row_grammar = cells[2] if len(cells) == 3 and cells[2] else grammar
            problem = (f"image {file} is missing" if not file.is_file()
                       else amount_problem(cells[1], row_grammar))
            if problem:
                bad.append(BadRow(str(csv_path), line, problem))
            else:
                good.append(Example(f"{csv_path}:{line}", cells[1], row_grammar, path=file))
    return good, bad


def read_labels(folder: Path | str, grammar: str = "us") -> tuple[list[Example], list[BadRow]]:
    """The entries of a generator folder (labels.jsonl) and its bad rows. The label's `grammar`
    field wins over `grammar`."""
    import json

    labels = Path(folder) / "labels.jsonl"
    good: list[Example] = []
    bad: list[BadRow] = []
    with open(labels, encoding="utf-8") as f:
        for line, text in enumerate(f, 1):
            if not text.strip():
                continue
            try:
                rec = json.loads(text)
                file, amount = Path(folder) / rec["file"], str(rec["amount"])
                row_grammar = str(rec.get("grammar") or grammar)
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                bad.append(BadRow(str(labels), line, f"corrupt label ({type(err).__name__}: "
                                                     f"{err})"))
                continue
            problem = (f"image {file} is missing" if not file.is_file()
                       else amount_problem(amount, row_grammar))
            if problem:
                bad.append(BadRow(str(labels), line, problem))
            else:
                good.append(Example(f"{labels}:{line}", amount, row_grammar, path=file))
    return good, bad


def load_examples(data: Path | str, grammar: str = "us", skip_bad: bool = False,
                  log: Callable[[str], None] | None = None) -> list[Example]:
    """Examples of a folder with labels.jsonl or of a CSV file. Bad rows raise `BadRowsError`
    (all of them), or with `skip_bad` are each reported through `log` (default: stderr)."""
    data = Path(data)
    if grammar not in GRAMMARS:
        raise ValueError(f"unknown grammar {grammar!r}; expected one of {', '.join(GRAMMARS)}")
    if data.is_dir() and (data / "labels.jsonl").is_file():
        good, bad = read_labels(data, grammar)
    elif data.is_file():
        good, bad = read_csv(data, grammar)
    else:
        raise ValueError(f"{data} is neither a folder with labels.jsonl nor a CSV file")
    if bad and not skip_bad:
        raise BadRowsError(bad)
    log = log or (lambda msg: print(msg, file=sys.stderr))
    for row in bad:
        log(f"skipped {row}")
    if not good:
        raise ValueError(f"{data}: no usable labelled image")
    return good
