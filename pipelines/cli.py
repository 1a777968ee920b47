"""Shared helpers for the thin command-line entry points: subcommand dispatch and exit codes."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

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
    return int(module.main(rest) or 0)
