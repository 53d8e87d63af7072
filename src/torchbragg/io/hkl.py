r"""Structure factors: text HKL files (``-hkl``) and the binary cache ``Fdump.bin`` (``-dump``).

HKL text: one reflection per line, ``h k l F``. Beyond what the C program reads, blank lines
and ``#`` comments are skipped and columns after F (sigma, phase, ...) are ignored. The C
program instead reads whitespace-separated numbers four at a time and silently stops at the
first one that is not a number, so it cannot read files with extra columns. Miller indices
must be integers (``2`` or ``2.0``); the C program warns about others and then misreads the
rest of the file, so they are reported as errors here.

Fdump: the text line ``"h_min h_max k_min k_max l_min l_max\n\f"`` followed by
``(h_range+1)*(k_range+1)*(l_range+1)`` native (little-endian) doubles, l fastest, where
``h_range = h_max - h_min + 1``. The last plane along each axis is padding the C program
allocates and writes as zeros; it is never used for lookups.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

import numpy as np

from torchbragg.io.errors import (
    NUMBER_PATTERN,
    InputFileError,
    parse_number,
    read_input_bytes,
    show_text,
)
from torchbragg.io.images import write_atomic

__all__ = ["HKLTable", "fdump_bytes", "read_fdump", "read_hkl", "write_fdump"]

# Refuse grids larger than this many cells (8 bytes each) rather than exhaust memory.
MAX_GRID_CELLS = 1 << 30


@dataclass(frozen=True)
class HKLTable:
    """Structure factors on a dense Miller-index grid.

    Attributes
    ----------
    h_min, h_max, k_min, k_max, l_min, l_max : int
        Index ranges, both ends included.
    F : numpy.ndarray of float64, shape (h_max-h_min+1, k_max-k_min+1, l_max-l_min+1)
        ``F[h-h_min, k-k_min, l-l_min]``; entries missing from the file hold ``default_F``.
    n_entries : int
        The C program's ``hkls``: lines read from an HKL file, or the product of the three
        ranges for an Fdump file. It prints ``"%d initialized hkls (all others =%g)"`` with
        it, and treats 0 as "no structure factors" (no lookups, no interpolation).
    """

    h_min: int
    h_max: int
    k_min: int
    k_max: int
    l_min: int
    l_max: int
    F: np.ndarray
    n_entries: int

    @property
    def ranges(self) -> tuple[int, int, int, int, int, int]:
        """The six index limits in Fdump order: h_min, h_max, k_min, k_max, l_min, l_max."""
        return (self.h_min, self.h_max, self.k_min, self.k_max, self.l_min, self.l_max)


def read_hkl(path: str | os.PathLike, default_F: float = 0.0) -> HKLTable:
    """Read a text HKL file as the C program does, plus comments and extra columns.

    The grid spans the smallest and largest h, k and l in the file; every cell starts at
    ``default_F`` and each line then sets its own cell, a repeated reflection keeping its
    last value.

    Parameters
    ----------
    path : str or os.PathLike
        HKL file: lines of ``h k l F [more columns]``; ``#`` starts a comment.
    default_F : float
        Structure factor for reflections the file does not list (``-default_F``).

    Returns
    -------
    HKLTable
        The grid, with ``n_entries`` the number of reflection lines.

    Raises
    ------
    InputFileError
        For an unreadable file, a line without four numbers, a non-integer Miller index,
        or a file with no reflections.
    """
    indices, amplitudes = _parse_hkl_lines(path, read_input_bytes(path))
    if len(amplitudes) == 0:
        raise InputFileError(path, "no reflections found (expected lines 'h k l F')")
    if max(indices) >= 2**31 or min(indices) < -(2**31):
        raise InputFileError(path, "Miller index outside the 32-bit integer range")
    hkl = np.array(indices, dtype=np.int64).reshape(-1, 3)
    lows = hkl.min(axis=0)
    highs = hkl.max(axis=0)
    shape = tuple(int(n) for n in highs - lows + 1)
    if np.prod(np.array(shape, dtype=np.float64)) > MAX_GRID_CELLS:
        raise InputFileError(path, f"Miller index ranges too large for a dense grid: {shape}")

    # The C program fills with default_F only when it is nonzero, so -0.0 leaves +0.0.
    F = np.full(shape, default_F if default_F != 0.0 else 0.0, dtype=np.float64)
    flat = np.ravel_multi_index(tuple((hkl - lows).T), shape)
    last = len(flat) - 1 - np.unique(flat[::-1], return_index=True)[1]
    F.reshape(-1)[flat[last]] = np.asarray(amplitudes, dtype=np.float64)[last]
    h_min, k_min, l_min = (int(v) for v in lows)
    h_max, k_max, l_max = (int(v) for v in highs)
    return HKLTable(h_min, h_max, k_min, k_max, l_min, l_max, F, n_entries=len(amplitudes))


_BLANK = rb"[ \t\v\f\r]"
# The common line: three integers and a number, then a separator or the end.
_SIMPLE_LINE = re.compile(
    _BLANK + rb"*" + (rb"([+-]?\d+)" + _BLANK + rb"+") * 3 + rb"(" + NUMBER_PATTERN + rb")"
    rb"(?=[ \t\v\f\r#]|\Z)",
    re.IGNORECASE,
)


def _parse_hkl_lines(path: str | os.PathLike, content: bytes) -> tuple[list[int], list[float]]:
    """Parse ``h k l F`` lines into a flat list of indices and a list of amplitudes."""
    indices: list[int] = []
    amplitudes: list[float] = []
    for number, line in enumerate(content.split(b"\n"), start=1):
        simple = _SIMPLE_LINE.match(line)
        if simple is not None:
            *hkl, amplitude = simple.groups()
            indices += (int(hkl[0]), int(hkl[1]), int(hkl[2]))
            amplitudes.append(float(amplitude))
            continue
        parsed = _parse_unusual_line(path, line, number)
        if parsed is not None:
            indices += parsed[:3]
            amplitudes.append(parsed[3])
    return indices, amplitudes


def _parse_unusual_line(
    path: str | os.PathLike, line: bytes, number: int
) -> tuple[int, int, int, float] | None:
    """Parse a line the fast pattern refused: None for blank or comment, else h, k, l, F."""
    tokens = line.split(b"#", 1)[0].split()
    if not tokens:
        return None
    values = [parse_number(token) for token in tokens[:4]]
    if len(values) < 4 or any(value is None for value in values):
        raise InputFileError(path, f"expected 4 numbers (h k l F), got {show_text(line)}", number)
    for value, token in zip(values[:3], tokens[:3], strict=True):
        if not (math.isfinite(value) and value == int(value)):
            raise InputFileError(
                path, f"Miller index must be an integer, got {show_text(token)}", number
            )
    return int(values[0]), int(values[1]), int(values[2]), values[3]


def fdump_bytes(table: HKLTable) -> bytes:
    """Encode a table exactly as the C program writes ``Fdump.bin``.

    Parameters
    ----------
    table : HKLTable
        Structure factors.

    Returns
    -------
    bytes
        Header line, form feed, then the zero-padded grid as little-endian doubles.
    """
    header = " ".join(str(limit) for limit in table.ranges) + "\n\f"
    h_range, k_range, l_range = table.F.shape
    padded = np.zeros((h_range + 1, k_range + 1, l_range + 1), dtype="<f8")
    padded[:h_range, :k_range, :l_range] = table.F
    return header.encode("ascii") + padded.tobytes()


def write_fdump(path: str | os.PathLike, table: HKLTable) -> None:
    """Write the structure-factor cache byte-for-byte as the C program does, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination, ``Fdump.bin`` unless ``-dump`` names another file.
    table : HKLTable
        Structure factors, normally just read by :func:`read_hkl`.
    """
    write_atomic(path, [fdump_bytes(table)])


_FDUMP_HEADER = re.compile(
    rb"\A[ \t\r\n]*" + rb"([+-]?\d+)[ \t\r\n]+" * 5 + rb"([+-]?\d+)[ \t\r]*\n\f"
)


def read_fdump(path: str | os.PathLike) -> HKLTable:
    r"""Read a structure-factor cache written by the C program or :func:`write_fdump`.

    The doubles start right after the header's form feed. (The C reader's ``"\n\f"``
    scanf pattern also swallows any following bytes that look like whitespace, misreading
    a cache whose first double begins with such a byte; this reader does not.)

    Parameters
    ----------
    path : str or os.PathLike
        Cache file.

    Returns
    -------
    HKLTable
        The grid without its padding planes; ``n_entries`` is the product of the three
        ranges, as the C program counts it.

    Raises
    ------
    InputFileError
        For an unreadable file, a bad header, or a data size that does not match it.
    """
    content = read_input_bytes(path)
    match = _FDUMP_HEADER.match(content)
    if match is None:
        raise InputFileError(
            path, "not a structure-factor dump: expected 'h_min h_max k_min k_max l_min l_max'"
        )
    limits = [int(group) for group in match.groups()]
    shape = tuple(limits[2 * axis + 1] - limits[2 * axis] + 1 for axis in range(3))
    if min(shape) < 1:
        raise InputFileError(path, f"empty index range in dump header {limits}")
    padded_shape = tuple(n + 1 for n in shape)
    cells = int(np.prod(np.array(padded_shape, dtype=np.float64)))
    if cells > MAX_GRID_CELLS:
        raise InputFileError(path, f"index ranges too large in dump header {limits}")
    data = content[match.end() :]
    if len(data) != 8 * cells:
        raise InputFileError(
            path, f"dump holds {len(data)} data bytes, header {limits} needs {8 * cells}"
        )
    grid = np.frombuffer(data, dtype="<f8").reshape(padded_shape)
    F = grid[: shape[0], : shape[1], : shape[2]].astype(np.float64)
    return HKLTable(*limits, F=F, n_entries=shape[0] * shape[1] * shape[2])
