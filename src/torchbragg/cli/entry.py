"""Console-script entry points that import nothing heavy before they can catch Ctrl-C.

A Ctrl-C while Python imports modules (numpy, torch) can surface as an ImportError from deep
inside them rather than as KeyboardInterrupt, so while the command line's modules import, a
Ctrl-C ends the process at once with one line; nothing has been written by then.

``torchbragg --version`` answers here, before the command line's modules import. While a
command runs, :func:`quiet_when_readers_leave` keeps a closed pipe on stdout or stderr
(``torchbragg ... | head``) from ending it: the run goes on quietly and writes its files.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator


def _exit_interrupted(signum=None, frame=None) -> None:
    os.write(2, b"torchbragg: interrupted\n")
    os._exit(130)


@contextlib.contextmanager
def interrupts_end_the_process() -> Iterator[None]:
    """While imports run, Ctrl-C exits with status 130 and one line (main thread only)."""
    try:
        previous = signal.signal(signal.SIGINT, _exit_interrupted)
    except ValueError:  # not the main thread: signals are not ours to handle
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class QuietWhenClosed:
    """A text stream that goes quiet, instead of failing, once its reader has gone.

    Writing to a pipe whose reader has exited (``torchbragg ... | head -3``) raises
    BrokenPipeError. The first time it does, this stream stops writing and points the file
    descriptor under ``stream`` at the null device, so that the text still buffered there is
    dropped quietly when Python flushes it at exit (no "Exception ignored ... BrokenPipeError").
    Other errors (a full disk) still raise. ``stream`` may be None (Python's stdout when file
    descriptor 1 was closed): everything is then dropped.
    """

    def __init__(self, stream) -> None:
        self.stream = stream
        self.quiet = stream is None

    def write(self, text: str) -> int:
        """Write ``text`` unless the reader has gone; return its length either way."""
        if not self.quiet:
            try:
                self.stream.write(text)
            except BrokenPipeError:
                self._reader_gone()
        return len(text)

    def flush(self) -> None:
        """Flush unless the reader has gone."""
        if not self.quiet:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._reader_gone()

    def isatty(self) -> bool:
        """Whether the stream is a terminal (False once quiet)."""
        return not self.quiet and self.stream.isatty()

    def __getattr__(self, name: str):
        return getattr(self.stream, name)

    def _reader_gone(self) -> None:
        self.quiet = True
        try:
            fd = self.stream.fileno()
        except (AttributeError, OSError, ValueError):  # not a file: nothing is left to flush
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)


@contextlib.contextmanager
def quiet_when_readers_leave() -> Iterator[None]:
    """Within, ``sys.stdout`` and ``sys.stderr`` go quiet, not fail, when their reader leaves.

    Both are flushed on the way out, so that a reader gone by then is noticed here too.
    """
    saved = sys.stdout, sys.stderr
    guards = QuietWhenClosed(sys.stdout), QuietWhenClosed(sys.stderr)
    sys.stdout, sys.stderr = guards
    try:
        yield
    finally:
        for guard in guards:
            guard.flush()
        sys.stdout, sys.stderr = saved


def version_line() -> str:
    """``torchbragg X.Y.Z``: the installed version, else the package's ``__version__``."""
    from importlib import metadata

    try:
        version = metadata.version("torchbragg")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        from torchbragg import __version__ as version
    return f"torchbragg {version}"


def _answer_version(argv: list[str]) -> bool:
    """Print the version if the command line asks for it first; return whether it did."""
    if "--version" not in argv:
        return False
    from torchbragg.cli.parse import early_exit  # light: no numpy, no torch

    if early_exit(argv) != "version":
        return False
    with quiet_when_readers_leave():
        print(version_line())
    return True


def torchbragg() -> None:
    """``torchbragg``: nanoBragg's command line."""
    with interrupts_end_the_process():
        if _answer_version(sys.argv[1:]):
            sys.exit(0)
        from torchbragg.cli.main import main
    sys.exit(main())


def compare() -> None:
    """``torchbragg-compare``."""
    with interrupts_end_the_process():
        from torchbragg.cli.compare import main
    sys.exit(main())
