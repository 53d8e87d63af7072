"""What torchbragg's small argparse commands share: parse, run, one line on failure."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable


def run_command(prog: str, parser: argparse.ArgumentParser,
                action: Callable[[argparse.Namespace], int], argv: list[str] | None) -> int:
    """Parse ``argv`` (``sys.argv[1:]`` when None) and run ``action``; return the exit status.

    ``--help`` and usage errors end as argparse ends them (0, 2); Ctrl-C ends with one line and
    status 130.
    """
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help (0) or a usage error (2), already printed
        return int(stop.code or 0)
    try:
        return action(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def fail(prog: str, message: object) -> int:
    """Print ``prog: error: message`` on one line; return status 2."""
    from torchbragg.errors import one_line

    print(f"{prog}: error: {one_line(message)}", file=sys.stderr)
    return 2
