r"""X-ray source lists (``-sourcefile``).

One source per line: ``X Y Z weight wavelength``, with position in metres (a point on the
source side; only its direction from the sample matters, the C program normalises it) and
wavelength in metres. Numbers are separated by any of `` \t,;:!``. Trailing columns may be
left out and ``nan`` may stand for any column: such values get defaults (see
:func:`apply_source_defaults`). Columns after the fifth are ignored, and blank lines skipped.
Beyond the C program, ``#`` starts a comment, and a line holding anything but numbers is an
error (the C reader would turn text into zeros). So is an infinite value, and a source at
0 0 0 (the C program would normalise it to a NaN direction). A negative weight is read as is,
with a warning. So is a line the C program would read differently (one ending in a carriage
return, a last line without a newline, a comment: it reads the columns after them as 0).

The C program prints each source as ``"%g %g %g   %g %g"`` (X Y Z weight wavelength, before
normalising), and never uses the weight in the intensity: every source counts equally.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field

import numpy as np

from torchbragg.io.ctext import c_may_differ, first_few, reading_difference
from torchbragg.io.errors import InputFileError, parse_number, read_input_bytes, show_text

__all__ = ["SourceTable", "apply_source_defaults", "read_sources"]

# The C program's default source distance, in metres.
SOURCE_DISTANCE_M = 10.0

_SEPARATORS = re.compile(rb"[ \t,;:!\r\v\f]+")
_COLUMNS = ("X", "Y", "Z", "weight", "wavelength")
# Warnings show this many lines, then count the rest.
MAX_EXAMPLES = 3


@dataclass(frozen=True)
class SourceTable:
    """Sources read from a ``-sourcefile``; NaN marks a value to be defaulted.

    Attributes
    ----------
    position_m : numpy.ndarray of float64, shape (n, 3)
        Source positions X, Y, Z in metres.
    weight : numpy.ndarray of float64, shape (n,)
        Weights (read and printed by the C program, not used in the intensity).
    wavelength_m : numpy.ndarray of float64, shape (n,)
        Wavelengths in metres.
    warnings : list of str
        One sentence per surprise the C program accepts and this reader follows (a negative
        weight), each starting with the file name and line; a few, then a count of the rest.
    line_numbers : numpy.ndarray of int64, shape (n,), optional
        The line each source was read from, for error messages.
    path : str, optional
        The file the sources were read from, for error messages.
    """

    position_m: np.ndarray
    weight: np.ndarray
    wavelength_m: np.ndarray
    warnings: list[str] = field(default_factory=list)
    line_numbers: np.ndarray | None = None
    path: str | None = None

    def __len__(self) -> int:
        return len(self.weight)


def read_sources(path: str | os.PathLike) -> SourceTable:
    """Read a source list, leaving missing values as NaN.

    Parameters
    ----------
    path : str or os.PathLike
        Source file.

    Returns
    -------
    SourceTable
        One row per non-blank line, with ``warnings`` for negative weights.

    Raises
    ------
    InputFileError
        For an unreadable file, a value that is not a number or is infinite, a source at
        0 0 0, or a file with no sources (the C program stops with "reading source definition
        file").
    """
    rows: list[list[float]] = []
    numbers: list[int] = []
    c_differs: list[str] = []
    pieces = read_input_bytes(path).split(b"\n")
    last_ends = pieces[-1] == b""
    if last_ends:
        pieces.pop()  # the empty text after the final newline
    for number, line in enumerate(pieces, start=1):
        row = _parse_source_line(path, line, number)
        if row is not None:
            rows.append(row)
            numbers.append(number)
        terminated = number < len(pieces) or last_ends
        if c_may_differ(line, terminated):
            c_differs.extend(_c_difference(path, line, number, row, terminated))
    if not rows:
        raise InputFileError(path, "no sources found (expected lines 'X Y Z weight wavelength')")
    table = np.array(rows, dtype=np.float64)
    line_numbers = np.array(numbers, dtype=np.int64)
    return SourceTable(
        position_m=table[:, 0:3].copy(),
        weight=table[:, 3].copy(),
        wavelength_m=table[:, 4].copy(),
        warnings=first_few(path, c_differs, "that nanoBragg would read differently",
                           MAX_EXAMPLES)
        + _negative_weight_warnings(path, table[:, 3], line_numbers),
        line_numbers=line_numbers,
        path=os.fspath(path),
    )


def _parse_source_line(path: str | os.PathLike, line: bytes, number: int) -> list[float] | None:
    """Read one line as X Y Z weight wavelength, NaN for those left out; None when blank."""
    tokens = [token for token in _SEPARATORS.split(line.split(b"#", 1)[0]) if token]
    if not tokens:
        return None
    values = [parse_number(token) for token in tokens[:5]]
    if any(value is None for value in values):
        raise InputFileError(
            path,
            f"expected up to 5 numbers (X Y Z weight wavelength), got {show_text(line)}",
            number,
        )
    for name, value, token in zip(_COLUMNS, values, tokens, strict=False):
        if math.isinf(value):
            raise InputFileError(
                path,
                f"{name} is {show_text(token)}, not a finite number (nan takes the default)",
                number,
            )
    row = values + [float("nan")] * (5 - len(values))
    if row[0] == row[1] == row[2] == 0.0:
        raise InputFileError(path, _ZERO_POSITION, number)
    return row


_ZERO_POSITION = (
    "source position X Y Z is 0 0 0, which gives no direction from the sample (nanoBragg "
    "would normalise it to NaN)"
)


def _c_difference(path, line: bytes, number: int, row: list[float] | None,
                  terminated: bool) -> list[str]:
    """One warning when nanoBragg's reader would take this line other than as written."""
    zero_wave = lambda c: " (a zero wavelength: an image of NaN)" if c[4] == 0 else ""  # noqa: E731
    return reading_difference(path, line, number, row, terminated, len(_COLUMNS),
                              label="X Y Z weight wavelength = ", note=zero_wave,
                              ours_note=" ('nan': the default)")


def _negative_weight_warnings(
    path: str | os.PathLike, weight: np.ndarray, line_numbers: np.ndarray
) -> list[str]:
    """Warning lines for negative weights: the first few, then a count."""
    name = os.fspath(path)
    negative = np.flatnonzero(weight < 0)
    warnings = [
        f"{name} line {line_numbers[i]}: negative source weight ({weight[i]:g}); nanoBragg "
        "never uses source weights in the intensity, so this source counts like the others"
        for i in negative[:MAX_EXAMPLES]
    ]
    if len(negative) > MAX_EXAMPLES:
        warnings.append(
            f"{name}: {len(negative) - MAX_EXAMPLES} more sources with a negative weight; "
            "nanoBragg ignores source weights in the intensity"
        )
    return warnings


def apply_source_defaults(
    sources: SourceTable,
    beam_vector: np.ndarray,
    wavelength_m: float,
    source_distance_m: float = SOURCE_DISTANCE_M,
) -> SourceTable:
    """Fill NaN entries with the C program's defaults.

    Each missing coordinate becomes ``-source_distance_m * beam_vector`` (that component),
    a missing weight 1.0, and a missing wavelength the nominal one.

    Parameters
    ----------
    sources : SourceTable
        As read by :func:`read_sources`.
    beam_vector : numpy.ndarray, shape (3,)
        Unit vector along the beam, from source to sample.
    wavelength_m : float
        Nominal wavelength in metres (C ``lambda0``).
    source_distance_m : float
        Distance of default source positions from the sample, metres (C: 10).

    Returns
    -------
    SourceTable
        A new table without NaN, keeping the warnings, line numbers and path.

    Raises
    ------
    InputFileError
        When a source ends up at 0 0 0, which gives no direction from the sample.
    """
    beam = np.asarray(beam_vector, dtype=np.float64).reshape(3)
    default_position = -source_distance_m * beam
    position = np.where(np.isnan(sources.position_m), default_position[None, :], sources.position_m)
    _check_directions(sources, position, source_distance_m)
    weight = np.where(np.isnan(sources.weight), 1.0, sources.weight)
    wavelength = np.where(np.isnan(sources.wavelength_m), wavelength_m, sources.wavelength_m)
    return SourceTable(
        position_m=position,
        weight=weight,
        wavelength_m=wavelength,
        warnings=list(sources.warnings),
        line_numbers=sources.line_numbers,
        path=sources.path,
    )


def _check_directions(sources: SourceTable, position_m: np.ndarray, distance_m: float) -> None:
    """Raise :class:`InputFileError` for the first source at 0 0 0 after defaults."""
    zero = np.flatnonzero((position_m == 0.0).all(axis=1))
    if len(zero) == 0:
        return
    row = int(zero[0])
    line = None if sources.line_numbers is None else int(sources.line_numbers[row])
    where = sources.path if sources.path is not None else "<sources>"
    if not np.isnan(sources.position_m[row]).any():
        raise InputFileError(where, _ZERO_POSITION, line)
    raise InputFileError(
        where,
        "source position is 0 0 0 once its missing coordinates take their defaults "
        f"(-{distance_m:g} m times the beam direction), which gives no direction from the sample",
        line,
    )
