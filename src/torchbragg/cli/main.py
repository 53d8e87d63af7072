"""``torchbragg``: nanoBragg's command line, rendered with PyTorch.

This module answers ``--help`` (also ``-h``, ``-help``), ``--version``, usage and option
errors without importing torch (start-up in a fraction of a second);
:mod:`torchbragg.cli.simulate` does the rest. A reader that leaves early (``torchbragg ... |
head``) does not stop a run: printing stops quietly and the output files are still written.
"""

from __future__ import annotations

import sys

from torchbragg.cli.entry import interrupts_end_the_process, version_line
from torchbragg.cli.guard import guarded_main
from torchbragg.cli.parse import UsageError, early_exit, parse_args
from torchbragg.cli.progressbar import clear_progress_bar
from torchbragg.cli.usage import usage_needed, usage_reason, usage_text
from torchbragg.config import KERNELS
from torchbragg.errors import one_line


def _say(line: str) -> None:
    print(line)


def _read_headers(st) -> list[str]:
    if st.img_path is None and st.mask_path is None:
        return []
    with interrupts_end_the_process():
        from torchbragg.precedence import apply_smv_headers  # imports torch

    return apply_smv_headers(st)


def check_extensions(ext: dict) -> None:
    """Check ``--dtype`` and ``--kernel``, and settle ``ext["kernel"]``.

    ``--compile`` is ``--kernel fused``; with another ``--kernel`` it is an error.
    """
    if ext.get("dtype", "float64") not in ("float64", "float32"):
        raise UsageError(f"--dtype must be float64 or float32, got {ext['dtype']}")
    kernel = ext.get("kernel", "fused" if ext.get("compile") else "auto")
    if kernel not in KERNELS:
        raise UsageError(f"--kernel must be one of {', '.join(KERNELS)}, got {kernel}")
    if ext.get("compile") and kernel != "fused":
        raise UsageError(f"--compile asks for --kernel fused, but --kernel {kernel} was given")
    ext["kernel"] = kernel


def run(argv: list[str]) -> int:
    """Run one simulation; raise UsageError, SetupError or InputFileError on bad input.

    ``-h``, ``-help``, ``--help`` and ``--version`` anywhere answer at once (exit status 0),
    whatever else the command line holds.
    """
    asked = early_exit(argv)
    if asked:
        _say(usage_text() if asked == "help" else version_line())
        return 0
    parsed = parse_args(argv, read_headers=_read_headers)
    st, ext = parsed.state, parsed.extensions
    for line in parsed.warnings:
        print(one_line(line), file=sys.stderr)
    for line in parsed.messages:
        _say(line)
    if usage_needed(st):
        _say(usage_text())
        print(f"torchbragg: error: {usage_reason(st)}", file=sys.stderr)
        return 9
    check_extensions(ext)
    with interrupts_end_the_process():
        from torchbragg.cli.simulate import simulate  # imports torch

    try:
        return simulate(st, ext)
    finally:  # a bar left on the terminal by a failed run would run into its error line
        clear_progress_bar()


def main(argv: list[str] | None = None) -> int:
    """Entry point: returns the exit status; bad input gives one line on stderr.

    An unexpected internal error also ends in one line (exit status 70); ``--debug`` shows
    its traceback instead. A closed stdout or stderr (its reader gone) silences it, but the
    run goes on and the status is that of the run (see :mod:`torchbragg.cli.guard`).
    """
    argv = sys.argv[1:] if argv is None else argv
    return guarded_main("torchbragg", run, argv, "lower the detector size, the number of steps "
                        "or --memory-budget-mb")

