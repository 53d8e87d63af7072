"""``torchbragg-nonbragg``: a drop-in for nanoBragg's companion program nonBragg.

nonBragg renders the diffuse scattering of amorphous material (water, air, ice) from a table
of F versus sin(theta)/lambda (``-stol``), on nanoBragg's detector and beam. This command
reads the same command line, prints the same lines on stdout (the C program's text, line for
line) and writes the same files: ``-floatfile`` (float32 photons), ``-intfile`` (SMV),
``-pgmfile`` (always, as the C program ignores ``-nopgm``), ``-noisefile`` (SMV with Poisson
noise from the C program's generator; same seed, same image) and, with ``-img``, the F versus
sin(theta)/lambda statistics of an image (``-stolout``).

Bad input (an unknown option, a malformed value, a missing or malformed file, an impossible
value) ends the run before anything is written, with one line ``torchbragg-nonbragg: error:
...`` on stderr and a non-zero exit status; a missing ``-stol`` prints the usage and exits 9,
as nonBragg does.

Where this program deliberately differs from the C program (beyond refusing bad input):
the PGM holds width x height bytes (the C program writes twice as many, the second half
read from memory it never wrote); with ``-img``, the median and MAD columns of ``-stolout``
are 0 (the C program prints variables it never sets) and pixels outside ``-roi`` are left out
(the C program writes them past the end of a buffer).
"""

from __future__ import annotations

import os
import stat
import sys

from torchbragg.cli.entry import (
    interrupts_end_the_process,
    quiet_when_readers_leave,
    version_line,
)
from torchbragg.cli.guard import guarded_main
from torchbragg.cli.nonbragg_options import BANNER, parse_nonbragg, usage_text
from torchbragg.cli.parse import UsageError, early_exit
from torchbragg.errors import one_line

PROGRAM = "torchbragg-nonbragg"


def _say(line: str) -> None:
    print(line)


def _say_all(lines: list[str]) -> None:
    if lines:
        sys.stdout.write("\n".join(lines) + "\n")


def check_outputs_writable(paths: list[str]) -> None:
    """Fail before rendering when an output's folder is missing or read-only."""
    for path in paths:
        if not path:
            raise UsageError("cannot write '': an output file name is empty")
        if os.path.isdir(path):
            raise UsageError(f"cannot write {path}: it is a folder")
        if os.path.exists(path) and not stat.S_ISREG(os.stat(path).st_mode):
            if not os.access(path, os.W_OK):
                raise UsageError(f"cannot write {path}: not writable")
            continue
        folder = os.path.dirname(os.path.realpath(path))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise UsageError(f"cannot write {path}: folder {folder} does not exist or is not "
                             "writable")


def _read_img(st) -> list[str]:
    with interrupts_end_the_process():
        from torchbragg.cli.nonbragg_plan import read_img_header  # imports torch

    return read_img_header(st)


def run(argv: list[str]) -> int:
    """Run one nonBragg simulation; raise UsageError, SetupError or InputFileError."""
    asked = early_exit(argv)
    if asked:
        _say(usage_text() if asked == "help" else version_line())
        return 0
    parsed = parse_nonbragg(argv, read_img=_read_img)
    st, ext = parsed.state, parsed.extensions
    for line in parsed.warnings:
        print(one_line(line), file=sys.stderr)
    if st.stol_path is None:
        _say_all(parsed.messages)
        _say(BANNER)
        _say(usage_text())
        print(f"{PROGRAM}: error: no -stol file given (F versus sin(theta)/lambda)",
              file=sys.stderr)
        return 9
    with interrupts_end_the_process():
        from torchbragg.cli.nonbragg_run import simulate  # imports torch

    return simulate(st, ext, parsed.messages)


def main(argv: list[str] | None = None) -> int:
    """Entry point: return the exit status; bad input gives one line on stderr.

    Exit status: 0 done; 2 bad input or an unwritable output; 9 no ``-stol`` (as nonBragg);
    70 an internal error (``--debug`` shows its traceback); 130 interrupted; 143 SIGTERM
    while a file was written (no file is left half-written).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    return guarded_main(PROGRAM, run, argv,
                        "lower the detector size, the number of sources or --chunk-elements")


def main_exit() -> None:
    """Console-script entry point: ``sys.exit(main())``; Ctrl-C during imports exits at once."""
    with interrupts_end_the_process():
        if "--version" in sys.argv[1:] and early_exit(sys.argv[1:]) == "version":
            with quiet_when_readers_leave():
                print(version_line())
            sys.exit(0)
    sys.exit(main())


if __name__ == "__main__":
    main_exit()


__all__ = ["check_outputs_writable", "main", "main_exit", "run"]
