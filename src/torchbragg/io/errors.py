"""Errors for bad input files, and the number parsing that raises them.

Every reader in :mod:`torchbragg.io` reports an unreadable, malformed or
truncated file as :class:`InputFileError`, whose message names the file and,
for text files, the line.
"""

from __future__ import annotations

import os
import re
from typing import BinaryIO

__all__ = [
    "NUMBER_PATTERN",
    "InputFileError",
    "c_atof",
    "c_number_prefix",
    "open_input",
    "parse_number",
    "read_input_bytes",
    "read_or_fail",
    "show_text",
]

# A number as C's strtod/scanf("%lg") accept it in decimal form, plus inf and nan.
NUMBER_PATTERN = rb"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan)"
_NUMBER_FULL = re.compile(NUMBER_PATTERN, re.IGNORECASE)
_NUMBER_PREFIX = re.compile(rb"[ \t\n\v\f\r]*(" + NUMBER_PATTERN + rb")", re.IGNORECASE)


class InputFileError(ValueError):
    """A bad input file: unreadable, malformed or truncated.

    Parameters
    ----------
    path : str or os.PathLike
        The file, as the user named it.
    message : str
        What is wrong, in one line.
    line : int, optional
        1-based line number of the offending text, when there is one.

    Notes
    -----
    ``str(error)`` is one line such as
    ``"inputs/x.hkl line 12: expected 4 numbers (h k l F), got 'abc'"``.
    """

    def __init__(self, path: str | os.PathLike, message: str, line: int | None = None):
        self.path = os.fspath(path)
        self.line = line
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path} line {self.line}"
        return f"{where}: {self.message}"

    def __reduce__(self):
        return (type(self), (self.path, self.message, self.line))


def read_input_bytes(path: str | os.PathLike) -> bytes:
    """Read a whole input file, turning operating-system errors into :class:`InputFileError`.

    Parameters
    ----------
    path : str or os.PathLike
        File to read.

    Returns
    -------
    bytes
        The file's content.
    """
    with open_input(path) as handle:
        return read_or_fail(handle, path)


def open_input(path: str | os.PathLike) -> BinaryIO:
    """Open an input file for reading in binary, turning failures into :class:`InputFileError`.

    Parameters
    ----------
    path : str or os.PathLike
        File to open.

    Returns
    -------
    BinaryIO
        The open file; close it (``with``) when done.
    """
    try:
        return open(path, "rb")
    except OSError as error:
        raise _cannot_read(path, error) from None


def read_or_fail(handle: BinaryIO, path: str | os.PathLike, size: int = -1) -> bytes:
    """Read up to ``size`` bytes (all when -1), turning failures into :class:`InputFileError`.

    Parameters
    ----------
    handle : BinaryIO
        File opened by :func:`open_input`.
    path : str or os.PathLike
        Its name, for the message.
    size : int
        Most bytes to read; -1 reads to the end.

    Returns
    -------
    bytes
        What was read; empty at the end of the file.
    """
    try:
        return handle.read(size)
    except OSError as error:
        raise _cannot_read(path, error) from None


def _cannot_read(path: str | os.PathLike, error: OSError) -> InputFileError:
    """The error for a file the operating system will not open or read."""
    return InputFileError(path, f"cannot read file: {error.strerror or error}")


def show_text(text: bytes | str, limit: int = 60) -> str:
    """Quote a piece of file text for an error message, shortened to ``limit`` characters."""
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    text = text.strip()
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return repr(text)


def parse_number(token: bytes) -> float | None:
    """Convert one whitespace-free token to a float, the way C's ``%lg`` reads a whole token.

    Parameters
    ----------
    token : bytes
        ASCII text such as ``b"-1.5e3"``, ``b"nan"`` or ``b"inf"``.

    Returns
    -------
    float or None
        The value, or None when the token is not entirely a number (``b"1.5x"``,
        ``b"1_0"`` and non-ASCII digits are refused, unlike Python's ``float``).
    """
    match = _NUMBER_FULL.fullmatch(token)
    if match is None:
        return None
    return float(token)


def c_number_prefix(text: bytes, start: int = 0) -> tuple[float, int] | None:
    """Read the number that starts at ``start``, after optional whitespace, as scanf ``%lg`` does.

    Parameters
    ----------
    text : bytes
        Text to scan.
    start : int
        Offset where scanning begins.

    Returns
    -------
    tuple of (float, int) or None
        The value and the offset just past it, or None when no number starts there.
        Numbers may run together (``b"-0.1-0.2"`` gives -0.1, then -0.2), as with scanf.
    """
    match = _NUMBER_PREFIX.match(text, start)
    if match is None:
        return None
    return float(match.group(1)), match.end()


def c_atof(text: bytes) -> float:
    """Return what C's ``atof`` gives for ``text``: its leading number, or 0.0 if none."""
    found = c_number_prefix(text)
    return 0.0 if found is None else found[0]
