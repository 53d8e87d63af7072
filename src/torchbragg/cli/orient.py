"""``torchbragg-orient``: orientation matrices for ``-mat``, or angles for ``-misset``.

Builds the MOSFLM A matrix (see :mod:`torchbragg.orientation`) of a cell in one or more
orientations and writes one matrix file per orientation (``PREFIX_0001.mat``, ...), prints
the one matrix file on stdout, or prints ``-misset`` angles, one line ``rx ry rz`` (degrees)
per orientation::

    torchbragg-orient --cell a b c al be ga [--wavelength A] [--exact-cell]
        (--misset x y z | --umatrix U11 ... U33 | --ub UB11 ... UB33 | --random N [--seed S]
         [--spread DEG]) [--out PREFIX | --misset-only]

Matrices are given row by row. ``--ub`` holds a*, b*, c* (1/Å) as columns and needs no
cell (a cell given with it must match). By default the cell is the crystal nanoBragg's
``-cell`` builds from it, so that ``-mat`` reproduces ``-cell ... -misset ...``;
``--exact-cell`` takes the cell exactly (see :func:`torchbragg.orientation.b_matrix`).
Without ``--seed``, a fresh seed is drawn and reported (on stdout with ``--out``, on stderr
otherwise) so the run can be repeated.

Exit status: 0 on success, 2 for bad input or an output that cannot be written (one line on
stderr, no traceback), 130 when interrupted, 143 on SIGTERM while writing.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import TYPE_CHECKING

from torchbragg.cli.entry import interrupts_end_the_process
from torchbragg.cli.small import (
    OneLineParser,
    count_argument,
    fail,
    run_command,
    whole_number,
)

if TYPE_CHECKING:
    import numpy as np

PROG = "torchbragg-orient"


# Arguments that are negative numbers, not options: argparse (before Python 3.13) knows only
# "-12" and "-1.5", so "--misset -1e-3 0 0" would read "-1e-3" as an unknown option.
_NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=PROG,
        description="MOSFLM orientation (A) matrices for -mat, or -misset angles, of a cell "
        "in given or random orientations.",
    )
    parser._negative_number_matcher = _NEGATIVE_NUMBER  # see _NEGATIVE_NUMBER
    parser.add_argument("--cell", nargs=6, type=_number, metavar=("A", "B", "C", "AL", "BE", "GA"),
                        help="unit cell: lengths in Angstrom, angles in degrees (needed unless "
                        "--ub)")
    parser.add_argument("--wavelength", type=_number, default=1.0, metavar="A",
                        help="wavelength in Angstrom the simulation runs at (-lambda); the A "
                        "matrix holds it (default 1)")
    parser.add_argument("--exact-cell", action="store_true",
                        help="the exact cell instead of the crystal nanoBragg's -cell makes of "
                        "it (they differ when at most one angle is 90 degrees)")
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument("--misset", nargs=3, type=_number, metavar=("X", "Y", "Z"),
                     help="rotations about x, y, z in degrees, as -misset applies them")
    how.add_argument("--umatrix", nargs=9, type=_number, metavar="U",
                     help="rotation matrix U, row by row")
    how.add_argument("--ub", nargs=9, type=_number, metavar="UB",
                     help="UB matrix (columns a*, b*, c* in 1/Angstrom), row by row")
    how.add_argument("--random", type=count_argument, metavar="N",
                     help="N random orientations, uniform over all rotations")
    parser.add_argument("--seed", type=whole_number(0), metavar="S",
                        help="seed for --random (default: a fresh one, reported)")
    parser.add_argument("--spread", type=_number, metavar="DEG",
                        help="with --random: rotations by at most DEG degrees from the cell's "
                        "default orientation (uniform over that ball of rotations)")
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--out", metavar="PREFIX",
                     help="write PREFIX_0001.mat, PREFIX_0002.mat, ... (default: the matrix "
                     "file on stdout, one orientation only)")
    out.add_argument("--misset-only", action="store_true",
                     help="print the -misset angles (degrees) instead, one line per orientation")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; return the exit status.

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
    return run_command(PROG, _parser(), _run, argv)


def _fail(message: object) -> int:
    return fail(PROG, message)


def _run(args: argparse.Namespace) -> int:
    """Check the options, build the matrices, write or print them."""
    from torchbragg.io.images import Terminated

    if args.random is None and (args.seed is not None or args.spread is not None):
        return _fail("--seed and --spread go with --random")
    if args.cell is None and args.ub is None:
        return _fail("--cell is required (unless --ub is given)")
    try:
        seed, matrices = _matrices(args)
        seed = seed if args.seed is None else None  # reported only when drawn here
        if args.misset_only:
            return _print_missets(matrices, seed)
        if args.out is None:
            return _print_matrix(matrices, args.cell)
        return _write_files(args.out, matrices, args.cell, seed)
    except ValueError as error:
        return _fail(error)
    except OSError as error:  # the output: write_atomic's message names the file
        return _fail(error.strerror or error)
    except MemoryError:
        return _fail("not enough memory")
    except Terminated as error:
        from torchbragg.errors import one_line

        print(f"{PROG}: {one_line(error)}", file=sys.stderr)
        return 143


def _matrices(args: argparse.Namespace) -> tuple[int | None, list[np.ndarray]]:
    """The seed used (None unless --random) and the A matrices, one per orientation."""
    from torchbragg import orientation as o

    if args.ub is not None:
        return None, [o.a_matrix(UB=args.ub, wavelength_A=args.wavelength)]
    common = dict(wavelength_A=args.wavelength, exact_cell=args.exact_cell)
    if args.misset is not None:
        return None, [o.a_matrix(args.cell, misset_deg=args.misset, **common)]
    if args.umatrix is not None:
        return None, [o.a_matrix(args.cell, U=args.umatrix, **common)]
    import numpy as np

    o.b_matrix(args.cell)  # a bad cell is reported before any drawing
    seed = args.seed if args.seed is not None else int(np.random.SeedSequence().entropy % 2**63)
    rotations = o.random_rotations(args.random, seed, spread_deg=args.spread)
    return seed, [o.a_matrix(args.cell, U=u, **common) for u in rotations]


def _print_missets(matrices: list[np.ndarray], seed: int | None) -> int:
    from torchbragg import orientation as o

    if seed is not None:
        print(f"{PROG}: seed {seed}", file=sys.stderr)
    for a in matrices:
        angles = o.misset_angles(o.u_matrix(a))
        print(" ".join(f"{x:.10f}" for x in angles))
    return 0


def _print_matrix(matrices: list[np.ndarray], cell) -> int:
    from torchbragg import orientation as o

    if len(matrices) != 1:
        raise ValueError("give --out PREFIX or --misset-only for more than one orientation")
    sys.stdout.write(o.mosflm_matrix_text(matrices[0], cell))
    return 0


def _write_files(prefix: str, matrices: list[np.ndarray], cell, seed: int | None) -> int:
    from torchbragg import orientation as o

    width = max(4, len(str(len(matrices))))
    names = [f"{prefix}_{i:0{width}d}.mat" for i in range(1, len(matrices) + 1)]
    for name, a in zip(names, matrices, strict=True):
        o.write_mosflm_matrix(name, a, cell)
    what = names[0] if len(names) == 1 else f"{names[0]} .. {names[-1]}"
    note = "" if seed is None else f" (seed {seed})"
    print(f"wrote {len(names)} matrix file{'s' if len(names) > 1 else ''}: {what}{note}")
    return 0


def main_exit() -> None:
    """Console-script entry point: ``sys.exit(main())``; Ctrl-C during imports exits at once."""
    with interrupts_end_the_process():
        import torchbragg.orientation  # noqa: F401 - numpy, before the work starts
    sys.exit(main())
