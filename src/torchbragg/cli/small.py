"""What torchbragg's small argparse commands share: parse, run, one line on failure."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit status 2 (no usage dump)."""

    def error(self, message: str):
        """End with ``PROG: error: message`` and status 2."""
        self.exit(2, f"{self.prog}: error: {message}\n")


def whole_number(minimum: int):
    """An argparse type: an integer of at least ``minimum``."""
    def read(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {text}")
        return value
    return read


count_argument = whole_number(1)


def run_command(prog: str, parser: argparse.ArgumentParser,
                action: Callable[[argparse.Namespace], int], argv: list[str] | None) -> int:
    """Parse ``argv`` (``sys.argv[1:]`` when None) and run ``action``; return the exit status.

    ``--help`` and usage errors end as argparse ends them (0, 2); Ctrl-C ends with one line and
    status 130, an unexpected error with one ``internal error`` line and status 70; a reader
    of stdout or stderr that leaves early is not an error.
    """
    from torchbragg.cli.entry import quiet_when_readers_leave

    argv = sys.argv[1:] if argv is None else argv
    with quiet_when_readers_leave():  # a closed pipe stops the printing, not the work
        try:
            args = parser.parse_args(argv)
        except SystemExit as stop:  # --help (0) or a usage error (2), already printed
            return int(stop.code or 0)
        try:
            return action(args)
        except KeyboardInterrupt:
            print(f"{prog}: interrupted", file=sys.stderr)
            return 130
        except Exception as err:  # noqa: BLE001 - anything else is a bug: one line
            from torchbragg.errors import one_line

            print(f"{prog}: internal error: {type(err).__name__}: {one_line(err)} (please "
                  "report it)", file=sys.stderr)
            return 70


def fail(prog: str, message: object) -> int:
    """Print ``prog: error: message`` on one line; return status 2."""
    from torchbragg.errors import one_line

    print(f"{prog}: error: {one_line(message)}", file=sys.stderr)
    return 2
