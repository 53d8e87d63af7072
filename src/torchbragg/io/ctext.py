r"""How nanoBragg's own text-table reader takes a line, to say where it differs from ours.

nanoBragg reads text tables (the ``-sourcefile``) with a small tokenizer of its own: numbers
are separated by any of `` \t,;:!``, a value left out stays "missing" (NaN) only when the line
ends in a newline right after the last number or separator. Anything else there (a carriage
return from a Windows editor, no newline at the end of the file, a ``#`` comment) makes it read
every later column as 0, and a line holding only a carriage return becomes a row of zeros.
torchbragg reads such lines as written; :func:`c_reading` lets the readers warn where the C
program would have read something else.
"""

from __future__ import annotations

import math
import os

from torchbragg.io.errors import c_atof

__all__ = ["c_may_differ", "c_reading", "first_few", "reading_difference", "why_c_differs"]

_DELIMITERS = b" \t,;:!"
_NUMBER_CHARS = b"0123456789-+.EGeg"


def _span(text: bytes, pos: int, chars: bytes) -> int:
    """C's ``strspn``: the offset after the run of ``chars`` starting at ``pos``."""
    while pos < len(text) and text[pos] in chars:
        pos += 1
    return pos


def _cspan(text: bytes, pos: int, chars: bytes) -> int:
    """C's ``strcspn``: the offset of the first of ``chars`` at or after ``pos``."""
    while pos < len(text) and text[pos] not in chars:
        pos += 1
    return pos


def c_reading(text: bytes, columns: int) -> list[float] | None:
    r"""The values nanoBragg's reader takes from one line, NaN where it leaves one missing.

    Parameters
    ----------
    text : bytes
        One line as ``fgets`` returns it: ending in ``b"\n"``, except the file's last line
        when the file has no final newline.
    columns : int
        The number of columns the table has.

    Returns
    -------
    list of float, length ``columns``, or None
        None for a line the C program skips as blank.
    """
    pos = _span(text, 0, _DELIMITERS)
    if text[pos:] == b"\n":
        return None
    values = [math.nan] * columns
    column = 0
    while True:
        values[column] = c_atof(text[pos:])
        pos = _span(text, pos, _NUMBER_CHARS)
        if text[pos:] == b"\n":
            return values
        pos = _span(text, _cspan(text, pos, _DELIMITERS), _DELIMITERS)
        if text[pos:] == b"\n":
            return values
        column += 1
        if column >= columns:
            return values


def c_may_differ(line: bytes, terminated: bool) -> bool:
    """Whether the C reader might take ``line`` (without its newline) other than as written."""
    return not terminated or any(c in line for c in b"#\r\v\f")


def why_c_differs(line: bytes, terminated: bool, program: str = "nanoBragg") -> str:
    """A few words on what makes the C reader take ``line`` differently."""
    if b"\r" in line:
        return "the line ends in a carriage return (a Windows line end)"
    if not terminated:
        return "the file has no newline after its last line"
    if b"#" in line:
        return f"{program} has no '#' comments"
    return "the line holds a vertical tab or form feed"


def reading_difference(path, line: bytes, number: int, row: list[float] | None,
                       terminated: bool, columns: int, program: str = "nanoBragg",
                       label: str = "", note=lambda c_row: "", ours_note: str = ""
                       ) -> list[str]:
    """One warning when ``program``'s reader would take this line other than ``row``.

    ``row`` (``columns`` values) is how torchbragg reads the line (None: skipped);
    ``label`` names the C reading's columns ("X Y Z = "), ``note(c_row)`` adds its
    consequence and ``ours_note`` explains torchbragg's values.
    """
    c_row = c_reading(line + b"\n" if terminated else line, columns)
    if _same(c_row, row):
        return []
    show = lambda r: " ".join(f"{v:g}" for v in r)  # noqa: E731
    c_text = "skip it" if c_row is None else f"read {label}{show(c_row)}{note(c_row)}"
    ours = "skips it" if row is None else f"reads {show(row)}{ours_note}"
    return [f"{os.fspath(path)} line {number}: {why_c_differs(line, terminated, program)}, so "
            f"{program} would {c_text}; torchbragg {ours}"]


def _same(a: list[float] | None, b: list[float] | None) -> bool:
    if a is None or b is None:
        return a is b
    return all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b, strict=True))


def first_few(path, lines: list[str], what: str, shown: int = 3) -> list[str]:
    """The first ``shown`` warning lines, then a count of the rest (``... more lines what``)."""
    if len(lines) <= shown:
        return lines
    return lines[:shown] + [f"{os.fspath(path)}: {len(lines) - shown} more lines {what}"]
