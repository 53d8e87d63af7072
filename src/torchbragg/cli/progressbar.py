r"""A progress bar on stderr while the pixels render, when stderr is a terminal.

nanoBragg's own meter ("42% done" lines on stdout) is unchanged; the bar is drawn besides
it, on one line of stderr redrawn in place with ``\r``, and only on a terminal: a log file
or a pipe never sees it, and ``-noprogress`` turns it off with the meter. The bar erases
itself when the render is done (or fails), so what stays on the screen is what the C program
prints. Around each progress report the bar is erased first, so that lines printed by the
report (the meter, an ETA line) start at the left margin and are not written over.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from typing import ClassVar

Hook = Callable[[float, int], None]


class ProgressBar:
    """One line of text, ``torchbragg [#####.......]  41%``, redrawn in place on ``stream``.

    Call it as ``bar(done, total)``; ``done`` may be fractional. It writes only when the text
    changes, and erases itself once ``done`` reaches ``total``.

    Parameters
    ----------
    stream:
        Where to draw (a terminal; anything with ``write`` and ``flush`` in tests).
    width:
        Cells in the bar; by default what fits an 80-column (or the actual) terminal.
    label:
        Text before the bar.
    """

    shown_now: ClassVar[ProgressBar | None] = None  # the bar on the screen, if any

    def __init__(self, stream, width: int | None = None, label: str = "torchbragg") -> None:
        self.stream, self.label = stream, label
        if width is None:
            columns = shutil.get_terminal_size((80, 24)).columns
            width = columns - len(label) - 10  # "label [", "] 100%" and a spare column
        self.width = max(10, min(50, width))
        self.shown = ""  # the text on the screen now ("" when erased)

    def text(self, done: float, total: int) -> str:
        """The bar for ``done`` of ``total`` (the percentage rounded down)."""
        fraction = min(max(done / total, 0.0), 1.0) if total > 0 else 1.0
        filled = int(fraction * self.width)
        return (f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] "
                f"{int(fraction * 100):3d}%")

    def __call__(self, done: float, total: int) -> None:
        """Draw the bar for ``done`` of ``total``, or erase it when the work is done."""
        if total <= 0 or done >= total:
            self.clear()
            return
        text = self.text(done, total)
        if text != self.shown:
            self._write("\r" + text)  # the text has a fixed length: it covers the last one
            self.shown = text
            ProgressBar.shown_now = self

    def clear(self) -> None:
        """Erase the bar (if shown), leaving the cursor at the start of its line."""
        if self.shown:
            self._write("\r" + " " * len(self.shown) + "\r")
            self.shown = ""
        if ProgressBar.shown_now is self:
            ProgressBar.shown_now = None

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


def is_terminal(stream) -> bool:
    """Whether ``stream`` is an interactive terminal (False for None or a closed stream)."""
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def with_bar(hook: Hook | None, enabled: bool = True, stream=None) -> Hook | None:
    """``hook(done, total)`` plus a :class:`ProgressBar` on ``stream``, if it is a terminal.

    Parameters
    ----------
    hook:
        The progress hook to wrap (the run's clock and meter), or None.
    enabled:
        False (``-noprogress``) returns ``hook`` unchanged.
    stream:
        Where the bar goes; ``sys.stderr`` (as it is now) by default. Not a terminal:
        ``hook`` is returned unchanged.

    Returns
    -------
    A hook that erases the bar, calls ``hook`` (which may print whole lines) and draws the
    bar again.
    """
    stream = sys.stderr if stream is None else stream
    if not enabled or not is_terminal(stream):
        return hook
    bar = ProgressBar(stream)

    def report(done: float, total: int) -> None:
        bar.clear()
        if hook is not None:
            hook(done, total)
        bar(done, total)

    return report


def clear_progress_bar() -> None:
    """Erase the bar still on the screen, if any (a run that failed while rendering)."""
    if ProgressBar.shown_now is not None:
        ProgressBar.shown_now.clear()
