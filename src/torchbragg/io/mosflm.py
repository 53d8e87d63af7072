"""MOSFLM orientation matrices (``-mat``).

A MOSFLM matrix file starts with the 3x3 "A matrix", whose columns are the reciprocal
cell vectors a*, b*, c* multiplied by the wavelength (so dimensionless). The C program
reads only those first nine numbers, row by row, in the way ``scanf("%lg")`` does:
whitespace-separated, line breaks irrelevant, and numbers may run together as in
``-0.01234567-0.00123456``. Everything after them (U matrix, cell, missets) is ignored.

The matrix must hold finite numbers and have rank 3 (a*, b*, c* independent): the C program
would go on with a NaN or infinite cell, so such files are reported as errors here.
"""

from __future__ import annotations

import math
import os

import numpy as np

from torchbragg.io.errors import InputFileError, c_number_prefix, read_input_bytes, show_text

__all__ = ["read_mosflm_matrix", "reciprocal_vectors_from_mosflm"]

# Singular values below this fraction of the largest count as zero when finding the rank.
SINGULAR_TOLERANCE = 1e-12


def read_mosflm_matrix(path: str | os.PathLike) -> np.ndarray:
    """Read the A matrix from a MOSFLM orientation file.

    Parameters
    ----------
    path : str or os.PathLike
        Matrix file (``-mat``).

    Returns
    -------
    numpy.ndarray of float64, shape (3, 3)
        The first nine numbers as they appear in the file, three per row. Row ``i`` holds
        the x, y or z component (i = 0, 1, 2) of a*, b*, c* times the wavelength; columns
        are a*, b*, c*.

    Raises
    ------
    InputFileError
        When the file cannot be read, does not start with nine numbers, holds NaN or an
        infinity among them, or gives a singular matrix (rank below 3).
    """
    content = read_input_bytes(path)
    values: list[float] = []
    position = 0
    while len(values) < 9:
        found = c_number_prefix(content, position)
        if found is None:
            _raise_not_a_number(path, content, position, len(values))
        value, end = found
        if not math.isfinite(value):
            _raise_not_finite(path, content, position, end, len(values))
        values.append(value)
        position = end
    matrix = np.array(values, dtype=np.float64).reshape(3, 3)
    _check_matrix(path, matrix)
    return matrix


def _raise_not_a_number(path: str | os.PathLike, content: bytes, position: int, count: int):
    """Report that number ``count + 1`` of the A matrix is missing or malformed."""
    rest = content[position:]
    stripped = rest.lstrip(b" \t\n\v\f\r")
    line = content.count(b"\n", 0, position + len(rest) - len(stripped)) + 1
    if not stripped:
        raise InputFileError(path, f"expected 9 numbers (the A matrix), found only {count}")
    text = stripped.split(b"\n", 1)[0]
    raise InputFileError(
        path, f"expected 9 numbers (the A matrix), number {count + 1} is {show_text(text)}", line
    )


def _raise_not_finite(
    path: str | os.PathLike, content: bytes, start: int, end: int, count: int
) -> None:
    """Report that number ``count + 1`` of the A matrix, ``content[start:end]``, is NaN or inf."""
    line = content.count(b"\n", 0, end) + 1
    text = show_text(content[start:end])
    raise InputFileError(path, f"A matrix number {count + 1} is {text}, not a finite number", line)


def _check_matrix(path: str | os.PathLike, matrix: np.ndarray) -> None:
    """Raise :class:`InputFileError` unless the A matrix is finite and of rank 3."""
    if not np.isfinite(matrix).all():
        raise InputFileError(path, "the A matrix holds a value that is not a finite number")
    rank = _rank(matrix)
    if rank < 3:
        raise InputFileError(
            path,
            f"the orientation (A) matrix is singular (rank {rank}): its columns a*, b*, c* "
            "must be three independent vectors",
        )


def _rank(matrix: np.ndarray) -> int:
    """Numerical rank of a finite 3x3 matrix: singular values above a tiny share of the largest."""
    scale = float(np.abs(matrix).max())
    if scale == 0.0:
        return 0
    singular = np.linalg.svd(matrix / scale, compute_uv=False)
    return int(np.count_nonzero(singular > SINGULAR_TOLERANCE * singular[0]))


def reciprocal_vectors_from_mosflm(
    matrix: np.ndarray,
    wavelength_A: float | None = None,
    *,
    wavelength_m: float | None = None,
    path: str | os.PathLike = "<A matrix>",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Turn a MOSFLM A matrix into reciprocal cell vectors, as the C program does.

    The C program takes column ``j`` of the matrix as the wavelength-scaled vector and
    multiplies it by ``1e-10/lambda0``, with ``lambda0`` in metres; the same operations here
    give bit-identical vectors (pass ``wavelength_m`` when the caller holds ``lambda0`` itself,
    else ``wavelength_A``, turned into ``wavelength_A/1e10``). The wavelength is the nominal one
    (``-lambda``, ``-energy`` or an ``-img`` header), even when sources carry their own.
    The C program then builds the real-space cell from these vectors, and a ``-cell``
    option, if given, rescales them to that cell.

    Parameters
    ----------
    matrix : numpy.ndarray, shape (3, 3)
        A matrix as read by :func:`read_mosflm_matrix`.
    wavelength_A : float, optional
        Wavelength in angstroms.
    wavelength_m : float, optional
        Wavelength in metres; give exactly one of the two.
    path : str or os.PathLike
        Where the matrix came from, for error messages.

    Returns
    -------
    tuple of three numpy.ndarray, shape (3,)
        a*, b*, c* in 1/angstrom.

    Raises
    ------
    InputFileError
        When the matrix holds NaN or an infinity, is singular (rank below 3), or overflows
        once scaled.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (3, 3):
        raise ValueError(f"expected a 3x3 matrix, got shape {matrix.shape}")
    if (wavelength_A is None) == (wavelength_m is None):
        raise ValueError("give exactly one of wavelength_A and wavelength_m")
    _check_matrix(path, matrix)
    lambda0_m = wavelength_A / 1.0e10 if wavelength_m is None else wavelength_m
    factor = 1e-10 / lambda0_m
    with np.errstate(over="ignore", invalid="ignore"):
        vectors = tuple(matrix[:, column] * factor for column in range(3))
    if not all(np.isfinite(vector).all() for vector in vectors):
        raise InputFileError(
            path, f"the A matrix times 1e-10/lambda = {factor:g} is not finite (lambda too small)"
        )
    with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
        det = float(np.dot(vectors[0], np.cross(vectors[1], vectors[2])))
        volume = 1.0 / det if det != 0.0 else math.inf
        lengths = [float(np.sqrt(np.dot(v, v))) for v in vectors]
    if not (math.isfinite(det) and math.isfinite(volume) and det != 0.0
            and all(1e-50 < length < 1e50 for length in lengths)):
        raise InputFileError(path, f"the A matrix gives a reciprocal cell volume of {det:g} "
                             "1/A^3, out of the range a unit cell can have")
    return vectors
