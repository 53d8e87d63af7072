r"""Structure factors: text HKL files (``-hkl``) and the binary cache ``Fdump.bin`` (``-dump``).

HKL text: one reflection per line, ``h k l F``. Beyond what the C program reads, blank lines
and ``#`` comments are skipped and columns after F (sigma, phase, ...) are ignored. The C
program instead reads whitespace-separated numbers four at a time and silently stops at the
first one that is not a number, so it cannot read files with extra columns. Miller indices
must be integers (``2`` or ``2.0``); the C program warns about others and then misreads the
rest of the file, so they are reported as errors here. So is an F that is NaN or infinite,
which the C program would render as a NaN image. A negative F, and a reflection listed again
with a different F, are read as the C program reads them (F as is; the last line wins), with
a warning.

The file is read in blocks of whole lines; a block whose lines all hold the same plain numbers
is parsed by numpy at once, any other block line by line, with the same results.

Fdump: the text line ``"h_min h_max k_min k_max l_min l_max\n\f"`` followed by
``(h_range+1)*(k_range+1)*(l_range+1)`` native (little-endian) doubles, l fastest, where
``h_range = h_max - h_min + 1``. The last plane along each axis is padding the C program
allocates and writes as zeros; it is never used for lookups.
"""

from __future__ import annotations

import io
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from torchbragg.io.errors import (
    NUMBER_PATTERN,
    InputFileError,
    open_input,
    parse_number,
    read_input_bytes,
    read_or_fail,
    show_text,
)
from torchbragg.io.images import write_atomic

__all__ = ["HKLTable", "fdump_bytes", "read_fdump", "read_hkl", "write_fdump"]

# Refuse grids larger than this many cells (8 bytes each) rather than exhaust memory.
MAX_GRID_CELLS = 1 << 30
# Bytes read at a time; each block parsed holds the whole lines among them.
BLOCK_BYTES = 1 << 20
# Warnings show this many lines of each kind, then count the rest.
MAX_EXAMPLES = 3
# Miller indices must lie in [-_INDEX_LIMIT, _INDEX_LIMIT), the C program's int.
_INDEX_LIMIT = 2**31


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
    warnings : list of str
        One sentence per surprise in the file that the C program accepts and this reader
        follows (negative F, a reflection repeated with a different F), each starting with
        the file name and line; a few of each kind, then a count of the rest.
    """

    h_min: int
    h_max: int
    k_min: int
    k_max: int
    l_min: int
    l_max: int
    F: np.ndarray
    n_entries: int
    warnings: list[str] = field(default_factory=list)

    @property
    def ranges(self) -> tuple[int, int, int, int, int, int]:
        """The six index limits in Fdump order: h_min, h_max, k_min, k_max, l_min, l_max."""
        return (self.h_min, self.h_max, self.k_min, self.k_max, self.l_min, self.l_max)


def read_hkl(path: str | os.PathLike, default_F: float = 0.0) -> HKLTable:
    """Read a text HKL file as the C program does, plus comments and extra columns.

    The grid spans the smallest and largest h, k and l in the file; every cell starts at
    ``default_F`` and each line then sets its own cell, a repeated reflection keeping its
    last value. The file is read in blocks, so memory stays near the size of the grid.

    Parameters
    ----------
    path : str or os.PathLike
        HKL file: lines of ``h k l F [more columns]``; ``#`` starts a comment.
    default_F : float
        Structure factor for reflections the file does not list (``-default_F``).

    Returns
    -------
    HKLTable
        The grid, with ``n_entries`` the number of reflection lines, and ``warnings`` for
        negative F and for reflections repeated with a different F.

    Raises
    ------
    InputFileError
        For an unreadable file, a line without four numbers, a Miller index that is not an
        integer, an F that is NaN or infinite, or a file with no reflections.
    """
    grid = _GridBuilder()
    negatives = _Examples()
    for block, first_line, n_lines in _line_blocks(path):
        reflections = _parse_block(path, block, first_line, n_lines)
        negatives.add(reflections, reflections.F < 0)
        grid.add(reflections)
    limits, F = grid.result(path, default_F)
    warnings = _negative_F_warnings(path, negatives) + _repeat_warnings(path, grid)
    return HKLTable(*limits, F=F, n_entries=grid.count, warnings=warnings)


@dataclass(frozen=True)
class _Reflections:
    """The reflections of one block of lines.

    Attributes
    ----------
    indices : numpy.ndarray of float64, shape (n, 3)
        Whole-number h, k, l; those outside the 32-bit range are clamped just outside it.
    F : numpy.ndarray of float64, shape (n,)
        Finite structure factors.
    lines : numpy.ndarray of int64, shape (n,)
        1-based line numbers.
    """

    indices: np.ndarray
    F: np.ndarray
    lines: np.ndarray


def _line_blocks(path: str | os.PathLike) -> Iterator[tuple[bytes, int, int]]:
    r"""Yield the file as blocks of whole lines, each ending in ``\n``.

    Each block comes with the number of its first line and its number of lines.
    """
    with open_input(path) as handle:
        pending: list[bytes] = []
        first_line = 1
        while chunk := read_or_fail(handle, path, BLOCK_BYTES):
            cut = chunk.rfind(b"\n") + 1
            if cut == 0:
                pending.append(chunk)
                continue
            block = b"".join([*pending, chunk[:cut]])
            pending = [chunk[cut:]]
            n_lines = block.count(b"\n")
            yield block, first_line, n_lines
            first_line += n_lines
        tail = b"".join(pending)
        if tail:
            yield tail + b"\n", first_line, tail.count(b"\n") + 1


def _parse_block(
    path: str | os.PathLike, block: bytes, first_line: int, n_lines: int
) -> _Reflections:
    """Parse a block of whole lines: at once when they are plain, else line by line."""
    fast = _parse_plain_block(block, first_line, n_lines)
    return fast if fast is not None else _parse_block_by_line(path, block, first_line)


# A block that holds only these bytes may be parsed at once.
_PLAIN_BYTES = b"0123456789+-.eE \t\r\n"


def _parse_plain_block(block: bytes, first_line: int, n_lines: int) -> _Reflections | None:
    """Parse a block of plain ``h k l F ...`` lines with numpy; None when it is not that simple.

    None, which sends the block to :func:`_parse_block_by_line` (it reports any error, with its
    line), comes for: a byte other than digits, signs, points, exponents and blanks, a lone
    carriage return, a blank line, a line with fewer than four numbers, a malformed number, an
    index that is not a whole number, or a value that is NaN or infinite.
    """
    if block.translate(None, _PLAIN_BYTES) or not block.strip():
        return None
    if b"\r" in block and block.count(b"\r") != block.count(b"\r\n"):
        return None
    try:
        table = np.loadtxt(
            io.StringIO(block.decode("ascii")),
            dtype=np.float64,
            comments=None,
            usecols=(0, 1, 2, 3),
            ndmin=2,
        )
    except ValueError:
        return None
    indices = table[:, :3]
    usable = np.isfinite(table).all() and (np.floor(indices) == indices).all()
    if len(table) != n_lines or not usable:
        return None
    lines = np.arange(first_line, first_line + n_lines, dtype=np.int64)
    return _Reflections(indices, table[:, 3], lines)


def _parse_block_by_line(path: str | os.PathLike, block: bytes, first_line: int) -> _Reflections:
    """Parse a block one line at a time, raising :class:`InputFileError` at its first bad line."""
    indices: list[int] = []
    amplitudes: list[float] = []
    lines: list[int] = []
    for number, line in enumerate(block.split(b"\n"), start=first_line):
        parsed = _parse_line(path, line, number)
        if parsed is not None:
            indices += parsed[:3]
            amplitudes.append(parsed[3])
            lines.append(number)
    return _Reflections(
        _index_array(indices), np.array(amplitudes, dtype=np.float64), np.array(lines, np.int64)
    )


def _index_array(indices: list[int]) -> np.ndarray:
    """Flat Python-int indices as float64 rows of three, huge ones clamped past the int range."""
    if indices and (max(indices) >= _INDEX_LIMIT or min(indices) < -_INDEX_LIMIT):
        indices = [min(max(i, -_INDEX_LIMIT - 1), _INDEX_LIMIT) for i in indices]
    return np.array(indices, dtype=np.float64).reshape(-1, 3)


_BLANK = rb"[ \t\v\f\r]"
# The common line: three integers and a number, then a separator or the end.
_SIMPLE_LINE = re.compile(
    _BLANK + rb"*" + (rb"([+-]?\d+)" + _BLANK + rb"+") * 3 + rb"(" + NUMBER_PATTERN + rb")"
    rb"(?=[ \t\v\f\r#]|\Z)",
    re.IGNORECASE,
)


def _parse_line(
    path: str | os.PathLike, line: bytes, number: int
) -> tuple[int, int, int, float] | None:
    """Parse one line: None for blank or comment, else h, k, l, F."""
    simple = _SIMPLE_LINE.match(line)
    if simple is None:
        return _parse_unusual_line(path, line, number)
    h, k, l, amplitude = simple.groups()
    return int(h), int(k), int(l), _finite_F(path, float(amplitude), amplitude, number)


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
    F = _finite_F(path, values[3], tokens[3], number)
    return int(values[0]), int(values[1]), int(values[2]), F


def _finite_F(path: str | os.PathLike, value: float, token: bytes, number: int) -> float:
    """Return ``value``, or raise when the F read from ``token`` is NaN or infinite."""
    if not math.isfinite(value):
        raise InputFileError(
            path, f"structure factor F must be a finite number, got {show_text(token)}", number
        )
    return value


def _cells(lows: np.ndarray, highs: np.ndarray) -> float:
    """Number of grid cells between two corners, both included (as a float: it may be huge)."""
    return float(np.prod((highs - lows + 1).astype(np.float64)))


class _GridBuilder:
    """The dense F grid, filled block by block in file order and grown as index ranges widen.

    A cell no line has set holds NaN (file values are finite) until :meth:`result` fills it
    with ``default_F``. A grid that would pass ``MAX_GRID_CELLS`` cells, or an index past the
    32-bit range, stops the filling; :meth:`result` then reports it, once every line has been
    checked, as the whole-file reader did.

    Attributes
    ----------
    count : int
        Reflection lines read.
    repeats : list of tuple
        ``(line, (h, k, l), earlier F, new F)`` for the first ``MAX_EXAMPLES`` reflections
        that a later line gives a different F.
    n_repeats : int
        Lines that give an already-set reflection a different F.
    """

    def __init__(self) -> None:
        self.count = 0
        self.repeats: list[tuple[int, tuple[int, int, int], float, float]] = []
        self.n_repeats = 0
        self._out_of_range = False
        self._lows: np.ndarray | None = None  # index limits of the lines so far
        self._highs: np.ndarray | None = None
        self._grid: np.ndarray | None = None  # NaN-initialised, maybe larger than the limits
        self._origin: np.ndarray | None = None  # (h, k, l) of _grid[0, 0, 0]

    def add(self, reflections: _Reflections) -> None:
        """Set the cells of one block's reflections, in file order."""
        self.count += len(reflections.F)
        if len(reflections.F) == 0 or self._out_of_range:
            return
        indices = reflections.indices
        if ((indices < -_INDEX_LIMIT) | (indices >= _INDEX_LIMIT)).any():
            self._out_of_range, self._grid = True, None
            return
        hkl = indices.astype(np.int64)
        lo, hi = hkl.min(axis=0), hkl.max(axis=0)
        self._lows = lo if self._lows is None else np.minimum(self._lows, lo)
        self._highs = hi if self._highs is None else np.maximum(self._highs, hi)
        if _cells(self._lows, self._highs) > MAX_GRID_CELLS:
            self._grid = None
            return
        self._make_room(lo, hi)
        self._fill(hkl, reflections.F, reflections.lines)

    def result(
        self, path: str | os.PathLike, default_F: float
    ) -> tuple[tuple[int, int, int, int, int, int], np.ndarray]:
        """Return the six limits and the grid, unset cells holding ``default_F``.

        Raises
        ------
        InputFileError
            For no reflections, an index past 32 bits, or index ranges too wide for a grid.
        """
        if self.count == 0:
            raise InputFileError(path, "no reflections found (expected lines 'h k l F')")
        if self._out_of_range:
            raise InputFileError(path, "Miller index outside the 32-bit integer range")
        shape = tuple(int(n) for n in self._highs - self._lows + 1)
        if _cells(self._lows, self._highs) > MAX_GRID_CELLS:
            raise InputFileError(path, f"Miller index ranges too large for a dense grid: {shape}")
        start = self._lows - self._origin
        F = self._grid[tuple(slice(s, s + n) for s, n in zip(start, shape, strict=True))]
        F = np.ascontiguousarray(F)
        self._grid = None
        # The C program fills with default_F only when it is nonzero, so -0.0 leaves +0.0.
        _fill_unset(F, default_F if default_F != 0.0 else 0.0)
        limits = tuple(int(v) for pair in zip(self._lows, self._highs, strict=True) for v in pair)
        return limits, F

    def _make_room(self, lo: np.ndarray, hi: np.ndarray) -> None:
        """Grow the grid to hold indices from ``lo`` to ``hi``, with some room to spare."""
        if self._grid is None:
            self._grid, self._origin = np.full(tuple(hi - lo + 1), np.nan), lo
            return
        top = self._origin + np.array(self._grid.shape) - 1
        if (lo >= self._origin).all() and (hi <= top).all():
            return
        new_lo, new_hi = _grown_limits(self._origin, top, lo, hi)
        if (new_lo == self._origin).all() and (new_hi[1:] == top[1:]).all():
            self._add_last_planes(int(new_hi[0] - new_lo[0] + 1))
            return
        grid = np.full(tuple(new_hi - new_lo + 1), np.nan)
        start = self._origin - new_lo
        old = tuple(slice(s, s + n) for s, n in zip(start, self._grid.shape, strict=True))
        grid[old] = self._grid
        self._grid, self._origin = grid, new_lo

    def _add_last_planes(self, n_planes: int) -> None:
        """Grow the grid past its last h plane (a file sorted by h) without a second copy.

        ``resize`` extends the buffer in place where it can; no view of the grid is alive here.
        """
        old = self._grid.shape[0]
        self._grid.resize((n_planes, *self._grid.shape[1:]), refcheck=False)
        self._grid[old:] = np.nan

    def _fill(self, hkl: np.ndarray, F: np.ndarray, lines: np.ndarray) -> None:
        """Set the cells, the last line of a repeated reflection winning; note changed values."""
        cells = self._grid.reshape(-1)
        flat = np.ravel_multi_index(tuple((hkl - self._origin).T), self._grid.shape)
        flat, F, lines, first = _grouped_by_cell(flat, F, lines)
        previous = np.empty_like(F)
        previous[1:] = F[:-1]
        previous[first] = cells[flat[first]]
        changed = ~np.isnan(previous) & (previous != F)
        if changed.any():
            self._note_repeats(flat[changed], previous[changed], F[changed], lines[changed])
        last = np.append(first[1:], True)
        cells[flat[last]] = F[last]

    def _note_repeats(
        self, flat: np.ndarray, old: np.ndarray, new: np.ndarray, lines: np.ndarray
    ) -> None:
        """Count lines that change a reflection's F; keep the first few distinct ones."""
        self.n_repeats += len(lines)
        if len(self.repeats) >= MAX_EXAMPLES:
            return
        order = np.argsort(lines, kind="stable")
        first_of_cell = np.sort(np.unique(flat[order], return_index=True)[1])
        for i in order[first_of_cell]:
            if len(self.repeats) >= MAX_EXAMPLES:
                return
            cell = np.unravel_index(flat[i], self._grid.shape)
            hkl = tuple(int(c + o) for c, o in zip(cell, self._origin, strict=True))
            if all(seen[1] != hkl for seen in self.repeats):
                self.repeats.append((int(lines[i]), hkl, float(old[i]), float(new[i])))


def _grown_limits(
    lows: np.ndarray, highs: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """New grid corners holding both boxes, a quarter wider on each side that grows."""
    spare = (highs - lows + 1) // 4
    new_lo = np.where(lo < lows, np.minimum(lo, lows - spare), lows)
    new_hi = np.where(hi > highs, np.maximum(hi, highs + spare), highs)
    if _cells(new_lo, new_hi) > MAX_GRID_CELLS:
        return np.minimum(lows, lo), np.maximum(highs, hi)
    return new_lo, new_hi


def _grouped_by_cell(
    flat: np.ndarray, F: np.ndarray, lines: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Order one block's entries by cell, file order within a cell; mark each cell's first."""
    n = len(flat)
    if n < 2 or (flat[1:] > flat[:-1]).all():
        return flat, F, lines, np.ones(n, dtype=bool)
    # Sorting unique keys (cell, then position) is a stable sort by cell, and much faster.
    order = np.sort(flat * n + np.arange(n)) % n
    flat, F, lines = flat[order], F[order], lines[order]
    first = np.ones(len(flat), dtype=bool)
    first[1:] = flat[1:] != flat[:-1]
    return flat, F, lines, first


def _fill_unset(F: np.ndarray, value: float, chunk: int = 1 << 20) -> None:
    """Replace the NaN cells of a C-contiguous grid by ``value``, a chunk at a time."""
    cells = F.reshape(-1)
    for start in range(0, cells.size, chunk):
        part = cells[start : start + chunk]
        np.copyto(part, value, where=np.isnan(part))


@dataclass
class _Examples:
    """The first few lines showing one surprise, and how many lines show it."""

    items: list[tuple[int, tuple[int, int, int], float]] = field(default_factory=list)
    count: int = 0

    def add(self, reflections: _Reflections, chosen: np.ndarray) -> None:
        """Count the reflections where ``chosen`` is true and keep the first few."""
        found = np.flatnonzero(chosen)
        self.count += len(found)
        for i in found[: max(0, MAX_EXAMPLES - len(self.items))]:
            hkl = tuple(int(v) for v in reflections.indices[i])
            self.items.append((int(reflections.lines[i]), hkl, float(reflections.F[i])))


def _number_text(value: float) -> str:
    """``%g`` of a value when that reads back exactly, else its shortest exact form."""
    text = f"{value:g}"
    return text if float(text) == value else repr(value)


def _negative_F_warnings(path: str | os.PathLike, negatives: _Examples) -> list[str]:
    """Warning lines for negative F: the first few, then a count."""
    name = os.fspath(path)
    warnings = [
        f"{name} line {line}: negative F ({_number_text(F)}) for {h} {k} {l}; nanoBragg squares "
        f"F, so it acts as {_number_text(-F)} (but -interpolate uses the sign)"
        for line, (h, k, l), F in negatives.items
    ]
    more = negatives.count - len(negatives.items)
    if more:
        warnings.append(
            f"{name}: {more} more lines with a negative F; nanoBragg squares F, so each acts as |F|"
        )
    return warnings


def _repeat_warnings(path: str | os.PathLike, grid: _GridBuilder) -> list[str]:
    """Warning lines for reflections listed again with a different F: the first few, a count."""
    name = os.fspath(path)
    earlier = _earlier_lines(path, grid.repeats)
    warnings = []
    for (line, (h, k, l), old, new), before in zip(grid.repeats, earlier, strict=True):
        where = f"line {before}" if before else "an earlier line"
        warnings.append(
            f"{name} line {line}: {h} {k} {l} repeats {where} with a different F "
            f"({_number_text(new)}, was {_number_text(old)}); nanoBragg keeps the last value"
        )
    more = grid.n_repeats - len(grid.repeats)
    if more:
        warnings.append(
            f"{name}: {more} more lines repeat a reflection with a different F; nanoBragg keeps "
            "the last value of each"
        )
    return warnings


def _earlier_lines(
    path: str | os.PathLike, repeats: list[tuple[int, tuple[int, int, int], float, float]]
) -> list[int]:
    """For each repeat, the last line before it listing the same reflection (0 if none).

    Reads the file again, but only up to the last of these few lines.
    """
    found = [0] * len(repeats)
    if not repeats:
        return found
    stop = max(line for line, *_ in repeats)
    for block, first_line, n_lines in _line_blocks(path):
        if first_line >= stop:
            break
        reflections = _parse_block(path, block, first_line, n_lines)
        for i, (line, hkl, _, _) in enumerate(repeats):
            same = (reflections.indices == hkl).all(axis=1) & (reflections.lines < line)
            if same.any():
                found[i] = int(reflections.lines[same].max())
    return found


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
        For an unreadable file, a bad header, a data size that does not match it, or a
        structure factor that is NaN or infinite.
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
    _check_finite_dump(path, F, limits[::2])
    return HKLTable(*limits, F=F, n_entries=shape[0] * shape[1] * shape[2])


def _check_finite_dump(path: str | os.PathLike, F: np.ndarray, lows: list[int]) -> None:
    """Raise :class:`InputFileError` naming the first reflection whose F is NaN or infinite."""
    bad = ~np.isfinite(F)
    if not bad.any():
        return
    cell = np.unravel_index(int(np.argmax(bad)), F.shape)
    h, k, l = (int(c) + low for c, low in zip(cell, lows, strict=True))
    more = int(np.count_nonzero(bad)) - 1
    others = f" (and {more} more)" if more else ""
    raise InputFileError(
        path,
        f"structure factor for {h} {k} {l} is {F[cell]}, not a finite number{others}; "
        "rerun with -hkl to rewrite it",
    )
