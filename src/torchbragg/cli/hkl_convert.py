"""``torchbragg-hkl``: convert structure factors to nanoBragg's text format (``h k l F``).

Reads an MTZ file, an mmCIF structure-factor file, a PDB or mmCIF model (with ``--dmin``) or
a nanoBragg text file, expands the reflections to P1 with their symmetry equivalents and
Friedel mates (see :mod:`torchbragg.io.reflections`), and writes one ``h k l F`` line per
reflection: what nanoBragg's ``mtz_to_P1hkl.com`` did with CCP4 programs.

Exit status: 0 on success, 2 for bad input or an output that cannot be written (one line on
stderr, no traceback), 130 when interrupted, 143 on SIGTERM while writing (nothing
half-written).
"""

from __future__ import annotations

import argparse
import sys

from torchbragg.cli.entry import interrupts_end_the_process
from torchbragg.cli.small import OneLineParser, run_command

PROG = "torchbragg-hkl"


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=PROG,
        description="Convert structure factors (MTZ, mmCIF structure factors, PDB/mmCIF model, "
        "or nanoBragg text) to nanoBragg's text format, expanded to P1 with Friedel mates.",
    )
    parser.add_argument("input", metavar="IN", help="file to read; its kind is recognised by "
                        "content")
    parser.add_argument("output", metavar="OUT", help="text file to write (h k l F per line)")
    parser.add_argument("--column", metavar="NAME", help="amplitude column of an MTZ or mmCIF "
                        "file (default: chosen automatically; an F(+) or F(-) column takes the "
                        "anomalous pair)")
    parser.add_argument("--dmin", metavar="A", type=_positive_float,
                        help="resolution limit in Angstrom for the structure factors of a model "
                        "(needed for models)")
    return parser


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a positive number of Angstrom, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Convert one file; return the exit status.

    Parameters
    ----------
    argv : list of str, optional
        Arguments after the program name; ``sys.argv[1:]`` when None.

    Returns
    -------
    int
        0 on success; 2 for bad input or an unwritable output (one line on stderr);
        130 when interrupted; 143 on SIGTERM while writing.
    """
    return run_command(PROG, _parser(), _convert, argv)


def _convert(args: argparse.Namespace) -> int:
    """Read, write, and report; bad input or output ends in one line and status 2."""
    from torchbragg.errors import one_line
    from torchbragg.io.errors import InputFileError
    from torchbragg.io.images import Terminated
    from torchbragg.io.reflections import read_structure_factors, write_hkl_text

    try:
        table = read_structure_factors(args.input, column=args.column, dmin_A=args.dmin)
        for warning in table.warnings:
            print(f"{PROG}: warning: {one_line(warning)}", file=sys.stderr)
        count = write_hkl_text(table, args.output)
    except InputFileError as error:
        print(f"{PROG}: error: {one_line(error)}", file=sys.stderr)
        return 2
    except OSError as error:  # the output: write_atomic's message names the file
        print(f"{PROG}: error: {one_line(error.strerror or error)}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"{PROG}: error: not enough memory", file=sys.stderr)
        return 2
    except Terminated as error:
        print(f"{PROG}: {one_line(error)}", file=sys.stderr)
        return 143
    source = getattr(table, "source", "")
    print(f"wrote {count} reflections to {args.output}" + (f" ({source})" if source else ""))
    return 0


def main_exit() -> None:
    """Console-script entry point: ``sys.exit(main())``; Ctrl-C during imports exits at once."""
    with interrupts_end_the_process():
        import torchbragg.io.reflections  # noqa: F401 - numpy, before the work starts
    sys.exit(main())
