"""Shared helpers for the thin command-line entry points: subcommand dispatch and exit codes."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2


def dispatch(prog: str, commands: dict[str, tuple[str, str]], argv: Sequence[str] | None) -> int:
    """Run `prog SUBCOMMAND ...` by importing the subcommand's module and calling its `main`.

    `commands` maps a subcommand to (module, one-line help). Modules are imported lazily so that
    one subcommand's dependencies never slow down or break another.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    usage = f"usage: python -m {prog} {{{','.join(commands)}}} [options]\n" + "".join(
        f"  {name:<10} {help_}\n" for name, (_, help_) in commands.items()
    )
    if not args or args[0] in ("-h", "--help"):
        print(usage, end="")
        return EXIT_OK if args else EXIT_USAGE
    name, rest = args[0], args[1:]
    if name not in commands:
        print(f"{prog}: unknown command {name!r}; expected one of {', '.join(commands)}",
              file=sys.stderr)
        return EXIT_USAGE
    module = importlib.import_module(commands[name][0])
    return quiet_on_closed_pipe(lambda: int(module.main(rest) or 0))


def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer of at least `low`."""

    def parse(text: str) -> int:
        import argparse

        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


positive_int = int_at_least(1)  # threads, workers, processes


def output_problem(*paths: Path | None) -> str | None:
    """Make the folders of the output files a command will write (before it runs, so that a
    long run does not end in an error); the problem, or None when all can be made."""
    for path in paths:
        if path is None:
            continue
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            return f"cannot write {path}: {err}"
        if path.is_dir():
            return f"cannot write {path}: it is a folder"
    return None


def device_problem(name: str) -> str | None:
    """Why `name` cannot be used as a torch device here, or None when it can."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        return f"--device {name!r} is not a torch device (cpu, cuda, cuda:N)"
    if device.type == "cuda" and not torch.cuda.is_available():
        return f"--device {name!r} asked for, but no CUDA device is available; use cpu"
    return None


def quiet_on_closed_pipe(main: Callable[[], int]) -> int:
    """Run a command; if whatever reads its output stops early (`... | head`), end quietly with
    EXIT_SOME_FAILED (some output was not delivered) instead of a BrokenPipeError traceback."""
    try:
        status = main()
        sys.stdout.flush()  # a closed pipe shows up here, not at exit where it cannot be caught
        return status
    except BrokenPipeError:
        # Python flushes stdout once more at exit: give it somewhere harmless to write.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_SOME_FAILED
