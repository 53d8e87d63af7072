"""``torchbragg-compare``: how two diffraction images differ.

    torchbragg-compare --images REFERENCE IMAGE [--size FAST SLOW] [--json FILE]
                       [--max-rel X] [--min-corr Y] [--peaks N] [--radius PX]

REFERENCE and IMAGE are SMV files or raw float32 (``-floatfile``) images; a raw image that is
not square needs ``--size``. Prints the metrics (see :mod:`torchbragg.compare`); the exit
status is 0 when the thresholds given hold, 1 when one does not, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from torchbragg.compare import compare_images, read_image
from torchbragg.io.errors import InputFileError
from torchbragg.io.images import write_atomic


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        raise ValueError(message)


def parser() -> argparse.ArgumentParser:
    """The command line of torchbragg-compare."""
    p = _Parser(prog="torchbragg-compare", description="Compare two diffraction images.")
    p.add_argument("--images", nargs=2, metavar=("REFERENCE", "IMAGE"), required=True,
                   help="SMV or raw float32 images; REFERENCE is the one trusted")
    p.add_argument("--size", nargs=2, type=int, metavar=("FAST", "SLOW"),
                   help="pixels of a raw float32 image that is not square")
    p.add_argument("--json", metavar="FILE", help="write the metrics as JSON")
    p.add_argument("--max-rel", type=float, help="fail when max_rel exceeds this")
    p.add_argument("--min-corr", type=float, help="fail when the correlation is below this")
    p.add_argument("--peaks", type=int, default=50, help="brightest peaks to register (50)")
    p.add_argument("--radius", type=float, default=2.0,
                   help="pixels within which peaks match (2)")
    return p


def thresholds_met(result, max_rel: float | None, min_corr: float | None) -> list[str]:
    """The thresholds that do not hold, as lines (empty: all hold)."""
    failed = []
    if max_rel is not None and not result.max_rel <= max_rel:
        failed.append(f"max_rel {result.max_rel:.3e} > {max_rel:g}")
    if min_corr is not None and not (math.isfinite(result.corr) and result.corr >= min_corr):
        failed.append(f"correlation {result.corr:.9f} < {min_corr:g}")
    return failed


def run(argv: list[str]) -> int:
    """Compare, print, write JSON; the exit status."""
    args = parser().parse_args(argv)
    size = tuple(args.size) if args.size else None
    if size is not None and min(size) <= 0:
        raise ValueError(f"--size must be positive, got {size[0]} {size[1]}")
    reference, image = (read_image(path, size) for path in args.images)
    result = compare_images(reference, image, args.peaks, args.radius)
    for line in result.lines():
        print(line)
    failed = thresholds_met(result, args.max_rel, args.min_corr)
    if args.json:
        data = dict(result.as_dict(), reference=args.images[0], image=args.images[1],
                    thresholds_met=not failed)
        write_atomic(args.json, [(json.dumps(data, indent=1) + "\n").encode()])
    for line in failed:
        print(f"torchbragg-compare: threshold not met: {line}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: bad input gives one line on stderr and exit status 2."""
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except (ValueError, InputFileError, OSError) as err:
        print(f"torchbragg-compare: error: {err}", file=sys.stderr)
        return 2


def console_main() -> None:
    """Console-script wrapper."""
    sys.exit(main())
