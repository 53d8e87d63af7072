"""``torchbragg-compare``: how two simulations differ, down to the first quantity.

Three uses::

    torchbragg-compare --c-binary PATH [--c-args "..."] [--tb-args "..."] [--c-threads N]
                       [--timeout S] [--rtol X] [options] -- <nanoBragg arguments>
    torchbragg-compare --images REFERENCE IMAGE [--size FAST SLOW] [options]
    torchbragg-compare --traces REFERENCE OTHER [--rtol X] [--json FILE]

Run both: render the command with the C build and with torchbragg, compare, and when the
images differ beyond ``--max-rel`` (1e-5 by default here) trace the worst pixel in both and
try torchbragg's C-compatibility switches (see :mod:`torchbragg.runboth`). Images: SMV files
or raw float32 (``-floatfile``) images; a raw image that is not square needs ``--size``.
Traces: torchbragg's ``-trace_pixel`` output, an instrumented C build's ``TRACE_C:`` lines or a
``-printout_pixel`` block (see :mod:`torchbragg.tracecompare`).

Options: ``--json FILE`` (the numbers), ``--png FILE`` (both images and their difference),
``--max-rel``, ``--min-corr``, ``--peaks N``, ``--radius PX``. Exit status: 0 when the
thresholds hold (traces: no divergence), 1 when not, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys

from torchbragg.compare import compare_images, read_image
from torchbragg.io.errors import InputFileError
from torchbragg.io.images import write_atomic

RUN_BOTH_MAX_REL = 1e-5  # the parity goal: C computes in double and stores float32


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        raise ValueError(message)


def parser() -> argparse.ArgumentParser:
    """The command line of torchbragg-compare (the nanoBragg arguments follow ``--``)."""
    p = _Parser(prog="torchbragg-compare",
                description="Compare two diffraction simulations: run both programs, two "
                            "images, or two traces of one pixel.")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--c-binary", metavar="PATH",
                      help="a nanoBragg build: render the arguments after -- with it and "
                           "with torchbragg")
    mode.add_argument("--images", nargs=2, metavar=("REFERENCE", "IMAGE"),
                      help="SMV or raw float32 images; REFERENCE is the one trusted")
    mode.add_argument("--traces", nargs=2, metavar=("REFERENCE", "OTHER"),
                      help="two traces of one pixel (-trace_pixel, TRACE_C or -printout)")
    p.add_argument("--c-args", default="", help="extra arguments for the C program only")
    p.add_argument("--tb-args", default="", help="extra arguments for torchbragg only")
    p.add_argument("--c-threads", type=int, default=1,
                   help="OMP_NUM_THREADS of the C program (1)")
    p.add_argument("--size", nargs=2, type=int, metavar=("FAST", "SLOW"),
                   help="pixels of a raw float32 image that is not square")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    p.add_argument("--png", metavar="FILE",
                   help="write both images and their difference (needs matplotlib)")
    p.add_argument("--max-rel", type=float,
                   help=f"fail when max_rel exceeds this ({RUN_BOTH_MAX_REL:g} when running "
                        "both)")
    p.add_argument("--min-corr", type=float, help="fail when the correlation is below this")
    p.add_argument("--rtol", type=float, default=1e-6,
                   help="traces: relative difference beyond which a quantity differs (1e-6)")
    p.add_argument("--timeout", type=float, help="run both: seconds each program may take")
    p.add_argument("--peaks", type=int, default=50, help="brightest peaks to register (50)")
    p.add_argument("--radius", type=float, default=2.0,
                   help="pixels within which peaks match (2)")
    return p


def unmet_thresholds(result, max_rel: float | None, min_corr: float | None) -> list[str]:
    """The thresholds that do not hold, as lines (empty: all hold)."""
    failed = []
    if max_rel is not None and not result.max_rel <= max_rel:
        failed.append(f"max_rel {result.max_rel:.3e} > {max_rel:g}")
    if min_corr is not None and not (math.isfinite(result.corr) and result.corr >= min_corr):
        failed.append(f"correlation {result.corr:.9f} < {min_corr:g}")
    return failed


def _plain(value):
    """``value`` with NaN and infinities as None, so the JSON is strict."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _write_json(path: str | None, data: dict) -> None:
    if path:
        text = json.dumps(_plain(data), indent=1, allow_nan=False)
        write_atomic(path, [(text + "\n").encode()])


def _check_options(args) -> None:
    """Values out of range, and outputs that could not be written, before any work."""
    for name, value, ok in (("--rtol", args.rtol, args.rtol > 0),
                            ("--peaks", args.peaks, args.peaks >= 1),
                            ("--radius", args.radius, args.radius >= 0),
                            ("--c-threads", args.c_threads, args.c_threads >= 1),
                            ("--timeout", args.timeout, args.timeout is None
                             or args.timeout > 0)):
        if not ok or (isinstance(value, float) and not math.isfinite(value)):
            raise ValueError(f"{name} {value} is out of range")
    for path in (args.json, args.png):
        folder = os.path.dirname(os.path.abspath(path)) if path else None
        if folder and not (os.path.isdir(folder) and os.access(folder, os.W_OK)):
            raise ValueError(f"cannot write {path}: folder {folder} does not exist or is not "
                             "writable")
    if args.png:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ImportError("--png needs matplotlib: pip install 'torchbragg[plot]'") \
                from None


def _write_png(path: str | None, reference, image, titles: tuple[str, str]) -> None:
    if path:
        from torchbragg.plot import comparison_png

        comparison_png(reference, image, path, titles)


def _report(failed: list[str]) -> int:
    for line in failed:
        print(f"torchbragg-compare: threshold not met: {line}")
    return 1 if failed else 0


def compare_two_images(args) -> int:
    """Two image files: metrics, JSON, PNG, exit status."""
    size = tuple(args.size) if args.size else None
    if size is not None and min(size) <= 0:
        raise ValueError(f"--size must be positive, got {size[0]} {size[1]}")
    reference, image = (read_image(path, size) for path in args.images)
    result = compare_images(reference, image, args.peaks, args.radius)
    for line in result.lines():
        print(line)
    failed = unmet_thresholds(result, args.max_rel, args.min_corr)
    _write_json(args.json, dict(result.as_dict(), reference=args.images[0],
                                image=args.images[1], thresholds_met=not failed))
    _write_png(args.png, reference, image, (args.images[0], args.images[1]))
    return _report(failed)


def compare_two_traces(args) -> int:
    """Two trace files: the first divergence and the scale factors; 1 when they diverge."""
    from torchbragg.tracecompare import compare_traces, parse_trace

    traces = []
    for path in args.traces:
        try:
            with open(path, errors="replace") as fh:
                text = fh.read()
        except OSError as err:
            raise InputFileError(path, f"cannot read: {err.strerror}") from None
        try:
            traces.append(parse_trace(text))
        except ValueError as err:
            raise InputFileError(path, str(err)) from None
    try:
        result = compare_traces(*traces, rtol=args.rtol)
    except ValueError as err:
        raise ValueError(f"{args.traces[0]} and {args.traces[1]}: {err}") from None
    for line in result.lines():
        print(line)
    _write_json(args.json, dict(result.as_dict(), reference=args.traces[0],
                                other=args.traces[1]))
    return 0 if result.first is None else 1


def compare_run_both(args, nanobragg_args: list[str]) -> int:
    """Render with both programs, compare, explain."""
    from torchbragg.runboth import Session, run_both

    if not nanobragg_args:
        raise ValueError("--c-binary needs the nanoBragg arguments after --")
    max_rel = RUN_BOTH_MAX_REL if args.max_rel is None else args.max_rel
    session = Session(args.c_binary, nanobragg_args, shlex.split(args.c_args),
                      shlex.split(args.tb_args), args.c_threads, max_rel, args.timeout,
                      args.rtol)
    try:
        both = run_both(session, args.peaks, args.radius)
    finally:
        session.close()
    for line in both.lines():
        print(line)
    failed = unmet_thresholds(both.comparison, max_rel, args.min_corr)
    _write_json(args.json, dict(both.as_dict(), thresholds_met=not failed))
    _write_png(args.png, both.reference, both.image, ("C program", "torchbragg"))
    return _report(failed)


# options that mean something in one use only: (option, attribute, default, uses)
_ONE_USE = (("--c-args", "c_args", "", "c_binary"), ("--tb-args", "tb_args", "", "c_binary"),
            ("--c-threads", "c_threads", 1, "c_binary"), ("--size", "size", None, "images"),
            ("--rtol", "rtol", 1e-6, "c_binary traces"), ("--timeout", "timeout", None, "c_binary"),
            ("--png", "png", None, "c_binary images"),
            ("--max-rel", "max_rel", None, "c_binary images"),
            ("--min-corr", "min_corr", None, "c_binary images"),
            ("--peaks", "peaks", 50, "c_binary images"),
            ("--radius", "radius", 2.0, "c_binary images"))


def _check_options_fit(args) -> None:
    """An option given for another use is an error, not silently ignored."""
    use = next(u for u in ("c_binary", "images", "traces") if getattr(args, u) is not None)
    for option, attr, default, uses in _ONE_USE:
        if getattr(args, attr) != default and use not in uses.split():
            names = " or ".join("--" + u.replace("_", "-") for u in uses.split())
            raise ValueError(f"{option} applies to {names} only")


def _joined_values(argv: list[str]) -> list[str]:
    """``--tb-args -N 6`` as ``--tb-args=-N 6``: argparse takes a leading '-' for an option."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] in ("--c-args", "--tb-args") and i + 1 < len(argv):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def run(argv: list[str]) -> int:
    """Dispatch on the use; the exit status."""
    ours, nanobragg_args = argv, []
    if "--" in argv:
        cut = argv.index("--")
        ours, nanobragg_args = argv[:cut], argv[cut + 1:]
    args = parser().parse_args(_joined_values(ours))
    _check_options_fit(args)
    _check_options(args)
    if args.c_binary is not None:
        return compare_run_both(args, nanobragg_args)
    if nanobragg_args:
        raise ValueError("arguments after -- are for --c-binary")
    if args.traces is not None:
        return compare_two_traces(args)
    return compare_two_images(args)


def main(argv: list[str] | None = None) -> int:
    """Entry point: bad input gives one line on stderr and exit status 2."""
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except (ValueError, InputFileError, OSError, ImportError) as err:
        print(f"torchbragg-compare: error: {err}", file=sys.stderr)
        return 2

