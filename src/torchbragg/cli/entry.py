"""Console-script entry points that import nothing heavy before they can catch Ctrl-C.

A Ctrl-C while Python imports modules (numpy, torch) can surface as an ImportError from deep
inside them rather than as KeyboardInterrupt, so while the command line's modules import, a
Ctrl-C ends the process at once with one line; nothing has been written by then.
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


def torchbragg() -> None:
    """``torchbragg``: nanoBragg's command line."""
    with interrupts_end_the_process():
        from torchbragg.cli.main import main
    sys.exit(main())


def compare() -> None:
    """``torchbragg-compare``."""
    with interrupts_end_the_process():
        from torchbragg.cli.compare import main
    sys.exit(main())
