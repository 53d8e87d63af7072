r"""Structure factor of amorphous material versus sin(theta)/lambda, as nonBragg reads and uses it.

nonBragg's ``-stol`` file holds one molecule's structure factor F (electrons) against
sin(theta)/lambda (1/Å): two numbers a line, separated by any of `` \t,;:!`` (``-4stol``: the
first column is 4 sin(theta)/lambda; ``-Q``: it is Q = 4 pi sin(theta)/lambda). The C program
pads the table with two far-away points at each end (at +-1e98 and +-1e99 1/m, holding the
lowest- and highest-angle F) and interpolates F with the cubic through the four table points
around each sin(theta)/lambda (Lagrange's form, the C function ``polint``): inside the table
that is a local cubic, beyond either end a straight line through the last two points.

Reading, beyond the C program (which never complains):

* a line must start with two numbers (more columns are ignored, as in C); ``nan`` as F marks
  a missing value, which the C program takes as 0 there and leaves out of the end padding; a
  line with a single number is such a line too, with a warning;
* ``#`` starts a comment; blank lines are skipped;
* sin(theta)/lambda must increase strictly from line to line: the C program's interval search
  walks from the previous pixel's interval, so an unsorted table gives an image that depends
  on the pixel order (and equal values divide by zero);
* a line the C reader would take differently (a carriage return, a ``#``, no final newline) is
  read as written, with a warning.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from torchbragg.io.ctext import c_may_differ, first_few, reading_difference
from torchbragg.io.errors import InputFileError, parse_number, read_input_bytes, show_text

__all__ = ["STOL_UNITS", "StolTable", "StructureFactorCurve", "padded_table", "read_stol_table"]

#: Metres^-1 per unit of the table's first column, for ``-stol``, ``-4stol`` and ``-Q``
#: (computed as the C program computes them).
STOL_UNITS = {"-stol": 1e10, "-4stol": 1e10 / 4, "-Q": 1e10 / math.pi / 4}

# The padding points at each end of the C program's table (1/m).
PAD_LOW = (-1e99, -1e98)
PAD_HIGH = (1e98, 1e99)

_SEPARATORS = re.compile(rb"[ \t,;:!\r\v\f]+")
MAX_EXAMPLES = 3
# The bucket lookup (see StructureFactorCurve) is used up to this many buckets.
MAX_BUCKETS = 1 << 22


@dataclass(frozen=True)
class StolTable:
    """A ``-stol`` table as written in the file.

    Attributes
    ----------
    stol : numpy.ndarray of float64, shape (n,)
        First column (sin(theta)/lambda in 1/Å for ``-stol``), strictly increasing.
    F : numpy.ndarray of float64, shape (n,)
        Structure factor of one molecule (electrons); NaN marks a missing value.
    path : str
        The file, for messages.
    line_numbers : numpy.ndarray of int64, shape (n,)
        The line each row was read from.
    warnings : list of str
        Lines the C program would read differently, lines without F (a few, then a count).
    """

    stol: np.ndarray
    F: np.ndarray
    path: str = "<table>"
    line_numbers: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.stol)


def read_stol_table(path: str | os.PathLike) -> StolTable:
    """Read a ``-stol`` file: ``sin(theta)/lambda F`` per line.

    Parameters
    ----------
    path : str or os.PathLike
        The table.

    Returns
    -------
    StolTable
        One row per line holding numbers.

    Raises
    ------
    InputFileError
        Naming the file and line: unreadable file, a line not starting with a number, a
        non-finite sin(theta)/lambda or an infinite F, values that do not increase, no rows,
        or no F at all.
    """
    pieces = read_input_bytes(path).split(b"\n")
    last_ends = pieces[-1] == b""
    if last_ends:
        pieces.pop()
    rows, numbers, differs, single = [], [], [], []
    for number, line in enumerate(pieces, start=1):
        row = _parse_line(path, line, number)
        if row is not None:
            _check_order(path, rows, numbers, row, number)
            rows.append(row)
            numbers.append(number)
            if math.isnan(row[1]) and len(_tokens(line)) == 1:
                single.append(number)
        terminated = number < len(pieces) or last_ends
        if c_may_differ(line, terminated):
            differs.extend(_c_difference(path, line, number, row, terminated))
    if not rows:
        raise InputFileError(path, "no data: expected lines 'sin(theta)/lambda F'")
    table = np.array(rows, dtype=np.float64).reshape(-1, 2)
    if np.isnan(table[:, 1]).all():
        raise InputFileError(path, "no F values: every line lacks F (or has nan)")
    return StolTable(stol=table[:, 0].copy(), F=table[:, 1].copy(), path=os.fspath(path),
                     line_numbers=np.array(numbers, dtype=np.int64),
                     warnings=first_few(path, differs, "that nonBragg would read differently",
                                        MAX_EXAMPLES)
                     + _single_warnings(path, single))


def _tokens(line: bytes) -> list[bytes]:
    """The fields of a line, comment removed."""
    return [t for t in _SEPARATORS.split(line.split(b"#", 1)[0]) if t]


def _parse_line(path, line: bytes, number: int) -> list[float] | None:
    """(stol, F) of one line, F NaN when missing; None for a blank or comment line."""
    tokens = _tokens(line)
    if not tokens:
        return None
    values = [parse_number(t) for t in tokens[:2]]
    if any(v is None for v in values):
        raise InputFileError(path, "expected two numbers (sin(theta)/lambda F), got "
                             f"{show_text(line)}", number)
    if not math.isfinite(values[0]):
        raise InputFileError(path, f"sin(theta)/lambda is {show_text(tokens[0])}, not a "
                             "finite number", number)
    if len(values) > 1 and math.isinf(values[1]):
        raise InputFileError(path, f"F is {show_text(tokens[1])}, not a finite number "
                             "(nan marks a missing value)", number)
    return values + [math.nan] * (2 - len(values))


def _check_order(path, rows: list, numbers: list, row: list[float], number: int) -> None:
    """Refuse a sin(theta)/lambda that does not exceed the previous row's."""
    if rows and not row[0] > rows[-1][0]:
        raise InputFileError(
            path, f"sin(theta)/lambda {row[0]:g} does not increase (line {numbers[-1]} has "
            f"{rows[-1][0]:g}); nonBragg interpolates only tables sorted by increasing "
            "sin(theta)/lambda, without repeats", number)


def _c_difference(path, line: bytes, number: int, row: list[float] | None,
                  terminated: bool) -> list[str]:
    """One warning when the C reader would take this line other than as written."""
    return reading_difference(path, line, number, row, terminated, 2, program="nonBragg")


def _single_warnings(path, numbers: list[int]) -> list[str]:
    if not numbers:
        return []
    shown = ", ".join(str(n) for n in numbers[:MAX_EXAMPLES])
    more = f" and {len(numbers) - MAX_EXAMPLES} more" if len(numbers) > MAX_EXAMPLES else ""
    return [f"{os.fspath(path)} line {shown}{more}: no F value; taken as a missing value (F = "
            "0 there), as nonBragg does"]


def padded_table(table: StolTable, mult: float = STOL_UNITS["-stol"]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The C program's interpolation table: the rows in 1/m with two points added at each end.

    Parameters
    ----------
    table : StolTable
        As read.
    mult : float
        1/m per unit of the first column (see :data:`STOL_UNITS`).

    Returns
    -------
    x : numpy.ndarray, shape (n + 4,)
        sin(theta)/lambda (1/m): -1e99, -1e98, the rows times ``mult``, 1e98, 1e99.
    y : numpy.ndarray, shape (n + 4,)
        F: the lowest-angle F twice, the rows' F (missing ones 0), the highest-angle F twice.
    """
    F = np.asarray(table.F, dtype=np.float64)
    present = F[~np.isnan(F)]
    x = np.concatenate([PAD_LOW, np.asarray(table.stol, dtype=np.float64) * mult, PAD_HIGH])
    y = np.concatenate([[present[0]] * 2, np.where(np.isnan(F), 0.0, F), [present[-1]] * 2])
    return x, y


class StructureFactorCurve(nn.Module):
    """F as a function of sin(theta)/lambda, interpolated as nonBragg interpolates it.

    For each sin(theta)/lambda the C program finds the table interval [x_n, x_n+1) holding it
    (n counted in the padded table) and evaluates the cubic through points n-1 .. n+2. Here
    each interval's cubic is kept as a polynomial in t = stol - c_n (c_n = x_n, or x_n+1 for
    the interval below the table so that t stays small), evaluated by Horner's rule: the same
    cubic, rounded differently (relative differences of order 1e-15). :meth:`lagrange`
    evaluates the C program's formula itself.

    ``F`` (the padded F values) is a parameter: gradients reach the table when it requires
    them. ``x`` (1/m) is a buffer. The interval search uses a uniform grid of buckets, each
    narrower than a quarter of the smallest table step (so holding at most one table point),
    with one comparison to finish; tables too irregular for that use a binary search.

    Parameters
    ----------
    x, y : array-like, shape (N,)
        The padded table (:func:`padded_table`): sin(theta)/lambda in 1/m, strictly increasing,
        and F.
    dtype : torch.dtype
        Precision (float64 for nonBragg's results).
    """

    def __init__(self, x, y, dtype: torch.dtype = torch.float64):
        super().__init__()
        x = torch.as_tensor(np.asarray(x, dtype=np.float64), dtype=dtype)
        if x.ndim != 1 or len(x) < 5 or not bool((x[1:] > x[:-1]).all()):
            raise ValueError("the padded table needs at least 5 strictly increasing points")
        self.register_buffer("x", x)
        self.F = nn.Parameter(torch.as_tensor(np.asarray(y, dtype=np.float64), dtype=dtype),
                              requires_grad=False)
        self._build_lookup()

    @classmethod
    def from_table(cls, table: StolTable, mult: float = STOL_UNITS["-stol"],
                   dtype: torch.dtype = torch.float64) -> StructureFactorCurve:
        """The curve of a table read by :func:`read_stol_table` (``mult`` as padded_table)."""
        return cls(*padded_table(table, mult), dtype=dtype)

    @property
    def points(self) -> int:
        """Number of points in the padded table (the C program's "initialized F points")."""
        return len(self.x)

    def _build_lookup(self) -> None:
        real = self.x[2:-2]
        self.register_buffer("_next", torch.cat([real, real.new_tensor([math.inf])]))
        self._origin, self._inv_width, self._buckets = 0.0, 0.0, 0
        self.register_buffer("_first", torch.zeros(1, dtype=torch.int64))
        if len(real) < 2:
            return
        width = float((real[1:] - real[:-1]).min()) / 4.0
        span = float(real[-1] - real[0])
        buckets = math.ceil(span / width) + 3 if width > 0 and math.isfinite(span / width) \
            else MAX_BUCKETS + 1
        if buckets > MAX_BUCKETS:
            return
        # bucket 0 lies wholly below the first point: everything below it counts 0
        origin = float(real[0]) - width
        starts = origin + width * torch.arange(buckets, dtype=real.dtype)
        self._first = torch.searchsorted(real, starts, right=True)
        self._origin, self._inv_width, self._buckets = origin, 1.0 / width, buckets

    def interval(self, stol: torch.Tensor) -> torch.Tensor:
        """Index n in the padded table with x_n <= stol < x_n+1 (int64, shape of ``stol``).

        Clamped to 1 .. N-3, the intervals whose four points exist (stol below the first
        table point gives 1, at or above the last gives N-3).
        """
        stol = stol.detach()
        real = self.x[2:-2]
        if self._buckets == 0:
            count = torch.searchsorted(real, stol.contiguous(), right=True)
        else:
            pos = (stol - self._origin).mul_(self._inv_width)
            pos = pos.nan_to_num_(nan=0.0).clamp_(0.0, self._buckets - 1)
            count = self._first.index_select(0, pos.long().reshape(-1)).reshape(stol.shape)
            nxt = self._next.index_select(0, count.reshape(-1)).reshape(stol.shape)
            count += stol >= nxt
        return count + 1

    def coefficients(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Each interval's cubic: centre c_n (N,) and coefficients (4, N) of t^0 .. t^3.

        Rows 0, N-2 and N-1 (no interval) hold zeros. Differentiable in :attr:`F`.
        """
        x, y = self.x, self.F
        n = torch.arange(1, len(x) - 2, device=x.device)
        centre = torch.where(n == 1, x[2], x[n])
        pts = torch.stack([x[n - 1], x[n], x[n + 1], x[n + 2]])  # (4, M)
        roots = pts - centre  # the cubic's nodes in t
        coef = torch.zeros(4, len(n), dtype=x.dtype, device=x.device)
        for k in range(4):
            others = [j for j in range(4) if j != k]
            den = ((pts[k] - pts[others[0]]) * (pts[k] - pts[others[1]])
                   * (pts[k] - pts[others[2]]))
            a, b, c = (roots[j] for j in others)
            w = y[n - 1 + k] / den
            coef = coef + torch.stack([-(a * b * c) * w, (a * b + a * c + b * c) * w,
                                       -(a + b + c) * w, w])
        full_c = torch.zeros(len(x), dtype=x.dtype, device=x.device)
        full = torch.zeros(4, len(x), dtype=x.dtype, device=x.device)
        return (full_c.index_copy(0, n, centre), full.index_copy(1, n, coef))

    def forward(self, stol: torch.Tensor) -> torch.Tensor:
        """F at sin(theta)/lambda ``stol`` (1/m, any shape): nonBragg's cubic interpolation."""
        centre, coef = self.coefficients()
        return self.evaluate(stol, centre, coef)

    def evaluate(self, stol: torch.Tensor, centre: torch.Tensor,
                 coef: torch.Tensor) -> torch.Tensor:
        """F at ``stol`` from :meth:`coefficients` computed once (for many calls)."""
        n = self.interval(stol).reshape(-1)
        shape = stol.shape
        t = stol - centre.index_select(0, n).reshape(shape)
        c0, c1, c2, c3 = (coef[k].index_select(0, n).reshape(shape) for k in range(4))
        return torch.addcmul(c0, torch.addcmul(c1, torch.addcmul(c2, c3, t), t), t)

    def lagrange(self, stol: torch.Tensor) -> torch.Tensor:
        """F at ``stol`` by the C program's own formula (polint): a reference, slower."""
        n = self.interval(stol)
        xa = [self.x[n - 1 + k] for k in range(4)]
        ya = [self.F[n - 1 + k] for k in range(4)]
        total = torch.zeros_like(stol)
        for k in range(4):
            o = [j for j in range(4) if j != k]
            num = (stol - xa[o[0]]) * (stol - xa[o[1]]) * (stol - xa[o[2]]) * ya[k]
            total = total + num / ((xa[k] - xa[o[0]]) * (xa[k] - xa[o[1]]) * (xa[k] - xa[o[2]]))
        return total
