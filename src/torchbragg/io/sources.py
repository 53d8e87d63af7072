r"""X-ray source lists (``-sourcefile``).

One source per line: ``X Y Z weight wavelength``, with position in metres (a point on the
source side; only its direction from the sample matters, the C program normalises it) and
wavelength in metres. Numbers are separated by any of `` \t,;:!``. Trailing columns may be
left out and ``nan`` may stand for any column: such values get defaults (see
:func:`apply_source_defaults`). Columns after the fifth are ignored, and blank lines skipped.
Beyond the C program, ``#`` starts a comment, and a line holding anything but numbers is an
error (the C reader would turn text into zeros).

The C program prints each source as ``"%g %g %g   %g %g"`` (X Y Z weight wavelength, before
normalising), and never uses the weight in the intensity: every source counts equally.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np

from torchbragg.io.errors import InputFileError, parse_number, read_input_bytes, show_text

__all__ = ["SourceTable", "apply_source_defaults", "read_sources"]

# The C program's default source distance, in metres.
SOURCE_DISTANCE_M = 10.0

_SEPARATORS = re.compile(rb"[ \t,;:!\r\v\f]+")


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
    """

    position_m: np.ndarray
    weight: np.ndarray
    wavelength_m: np.ndarray

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
        One row per non-blank line.

    Raises
    ------
    InputFileError
        For an unreadable file, a value that is not a number, or a file with no sources
        (the C program stops with "reading source definition file").
    """
    rows: list[list[float]] = []
    for number, line in enumerate(read_input_bytes(path).split(b"\n"), start=1):
        tokens = [token for token in _SEPARATORS.split(line.split(b"#", 1)[0]) if token]
        if not tokens:
            continue
        values = [parse_number(token) for token in tokens[:5]]
        if any(value is None for value in values):
            raise InputFileError(
                path,
                f"expected up to 5 numbers (X Y Z weight wavelength), got {show_text(line)}",
                number,
            )
        rows.append(values + [float("nan")] * (5 - len(values)))
    if not rows:
        raise InputFileError(path, "no sources found (expected lines 'X Y Z weight wavelength')")
    table = np.array(rows, dtype=np.float64)
    return SourceTable(
        position_m=table[:, 0:3].copy(), weight=table[:, 3].copy(), wavelength_m=table[:, 4].copy()
    )


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
        A new table without NaN.
    """
    beam = np.asarray(beam_vector, dtype=np.float64).reshape(3)
    default_position = -source_distance_m * beam
    position = np.where(np.isnan(sources.position_m), default_position[None, :], sources.position_m)
    weight = np.where(np.isnan(sources.weight), 1.0, sources.weight)
    wavelength = np.where(np.isnan(sources.wavelength_m), wavelength_m, sources.wavelength_m)
    return SourceTable(position_m=position, weight=weight, wavelength_m=wavelength)
