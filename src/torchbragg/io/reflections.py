r"""Structure factors from MTZ files, mmCIF structure-factor files and atomic models, via gemmi.

nanoBragg reads only its text format (``h k l F`` per line, :func:`torchbragg.io.hkl.read_hkl`)
and relied on a CCP4 script (``mtz_to_P1hkl.com``) to make one from an MTZ file. The readers
here do that conversion in memory and return the same dense grid, an
:class:`~torchbragg.io.hkl.HKLTable` (a :class:`ReflectionTable`, which also records which
cells the file set).

Crystallography, briefly. A data file lists each reflection once, in the asymmetric unit of
its space group. The simulator looks reflections up in P1, so every listed reflection is
copied to all its symmetry equivalents: the space group's rotations ``R`` map ``h`` (a row
vector) to ``h R`` with the same ``|F|`` (translations only change the phase, and centring
adds no new rotations). Without anomalous scattering Friedel's law ``|F(-h)| = |F(h)|`` holds
too, so each ``h R`` also gets its mate ``-h R``. With anomalous pairs (MTZ columns of type
``G``, ``F(+)``/``F(-)``; mmCIF ``pdbx_F_plus``/``pdbx_F_minus``) Friedel's law is broken:
``F(+)`` goes to ``h`` and its equivalents ``h R``, ``F(-)`` to ``-h`` and its equivalents
``-h R``, and the two are never mixed.

Where the file is inconsistent with that (say a P1 file that lists both mates with different
F, or an unmerged list), every reflection the file lists keeps its own value, the cells it does
not list take one of the values offered, and the table's warnings count such cells. Missing
values (NaN, ``?`` or ``.``, or an MTZ's declared missing-number flag) are skipped: their cells
keep ``default_F``. ``n_entries`` counts the cells set.

MTZ files store 32-bit floats; each is read as the shortest decimal that identifies it (the
number CCP4 and gemmi tools print), so 12.3 stored reads as 12.3, not 12.300000190734863,
and an MTZ made from a text file reproduces that file's values exactly.

gemmi is imported only when one of these files is read (``pip install "torchbragg[formats]"``).
Every failure, gemmi's included, is an :class:`~torchbragg.io.errors.InputFileError`: one line
naming the file.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from torchbragg.errors import one_line
from torchbragg.io.errors import InputFileError, open_input, read_or_fail
from torchbragg.io.hkl import MAX_GRID_CELLS, HKLTable, read_hkl
from torchbragg.io.images import write_atomic

__all__ = [
    "KINDS",
    "ReflectionTable",
    "file_kind",
    "model_structure_factors",
    "read_mtz",
    "read_sf_mmcif",
    "read_structure_factors",
    "write_hkl_text",
]

# What file_kind() answers.
KINDS = ("mtz", "sf-mmcif", "model", "text")

_INSTALL_HINT = 'pip install "torchbragg[formats]"'
# Bytes looked at before deciding how a file begins; files are scanned further in blocks.
_HEAD_BYTES = 1 << 16
_SCAN_BYTES = 1 << 20
# Lines of text written at a time.
_WRITE_LINES = 1 << 16


@dataclass(frozen=True)
class ReflectionTable(HKLTable):
    """An :class:`HKLTable` that also records where its values came from.

    Attributes
    ----------
    placed : numpy.ndarray of bool, shape like ``F``, or None
        True for the cells the file set (directly or as a symmetry or Friedel mate); the others
        hold ``default_F``. :func:`write_hkl_text` writes these cells only.
    cell : tuple of 6 float, or None
        Unit cell of the file (a, b, c in Angstrom; alpha, beta, gamma in degrees), when it
        has one. Compare it with ``-cell``: F only makes sense on the same lattice.
    space_group : str or None
        Hermann-Mauguin symbol of the space group the reflections were expanded from.
    source : str
        One line saying what was read (file kind, column, expansion).
    """

    placed: np.ndarray | None = field(default=None, repr=False, compare=False)
    cell: tuple[float, ...] | None = None
    space_group: str | None = None
    source: str = ""


# ---------------------------------------------------------------------------------------------
# Recognising files


def file_kind(path: str | os.PathLike) -> str:
    """Tell the kind of a structure-factor file from its content, not its name.

    Parameters
    ----------
    path : str or os.PathLike
        File to look at.

    Returns
    -------
    str
        ``"mtz"`` (binary, starts with ``b"MTZ "``), ``"sf-mmcif"`` (CIF with ``_refln.``
        items), ``"model"`` (PDB with ATOM/HETATM/CRYST1 records, or CIF with ``_atom_site.``
        items), else ``"text"`` (nanoBragg's ``h k l F`` lines, or something no reader takes).
        A CIF file is classed by whichever of ``_refln.`` and ``_atom_site.`` comes first.

    Raises
    ------
    InputFileError
        When the file cannot be opened or read.
    """
    return _sniff(path)[0]


def _sniff(path: str | os.PathLike) -> tuple[str, bool]:
    """The file's kind, and whether it is CIF text."""
    with open_input(path) as handle:
        head = read_or_fail(handle, path, _HEAD_BYTES)
        if head.startswith(b"MTZ "):
            return "mtz", False
        if head.startswith(b"\x1f\x8b"):
            raise InputFileError(path, "the file is gzip-compressed: decompress it first "
                                 "(gunzip)")
        first = _first_statement(head)
        if first is None:
            return "text", False
        if first[:5].lower() == b"data_":
            found = _scan(path, handle, head, _CIF_ITEMS)
            return {"_refln.": "sf-mmcif", "_atom_site.": "model"}.get(found, "text"), True
        if first[:1].isalpha():  # PDB records start with a name such as HEADER or REMARK
            return ("model" if _scan(path, handle, head, _PDB_RECORDS) else "text"), False
        return "text", False


_CIF_ITEMS = re.compile(rb"^[ \t]*(_refln\.|_atom_site\.)", re.MULTILINE | re.IGNORECASE)
_PDB_RECORDS = re.compile(rb"^(ATOM[ \d]|HETATM|CRYST1)", re.MULTILINE)


def _first_statement(head: bytes) -> bytes | None:
    """The first line of ``head`` that is neither blank nor a ``#`` comment, stripped."""
    for line in head.split(b"\n"):
        line = line.strip()
        if line and not line.startswith(b"#"):
            return line
    return None


def _scan(path: str | os.PathLike, handle, head: bytes, pattern: re.Pattern) -> str | None:
    """The first match of a line-anchored pattern in the file, read on from ``head``."""
    pending = head
    while True:
        cut = pending.rfind(b"\n") + 1
        match = pattern.search(pending, 0, cut)
        if match is not None:
            return match.group(1).decode("ascii").lower()
        chunk = read_or_fail(handle, path, _SCAN_BYTES)
        if not chunk:
            match = pattern.search(pending + b"\n")
            return None if match is None else match.group(1).decode("ascii").lower()
        pending = pending[cut:] + chunk


# ---------------------------------------------------------------------------------------------
# The entry point


def read_structure_factors(
    path: str | os.PathLike,
    default_F: float = 0.0,
    column: str | None = None,
    dmin_A: float | None = None,
) -> ReflectionTable:
    """Read structure factors from any supported file, recognised by its content.

    Parameters
    ----------
    path : str or os.PathLike
        MTZ, mmCIF structure-factor file, PDB or mmCIF model, or nanoBragg text file.
    default_F : float
        F of the reflections the file does not set (``-default_F``).
    column : str, optional
        Amplitude column of an MTZ or mmCIF file (automatic when None); an error for the
        other kinds.
    dmin_A : float, optional
        Resolution limit in Angstrom to compute a model's structure factors to; needed for a
        model, ignored for the other kinds.

    Returns
    -------
    ReflectionTable
        The P1 grid (see the module notes); for a text file exactly what
        :func:`torchbragg.io.hkl.read_hkl` returns, plus the cells it set.

    Raises
    ------
    InputFileError
        For any unreadable or unusable file, a missing ``dmin_A`` for a model, or a missing
        gemmi; one line naming the file.
    """
    kind = file_kind(path)
    if kind == "mtz":
        return read_mtz(path, column=column, default_F=default_F)
    if kind == "sf-mmcif":
        return read_sf_mmcif(path, column=column, default_F=default_F)
    if column is not None:
        raise InputFileError(
            path, f"column {column!r} was asked for, but a {kind} file has no named columns; "
            "columns apply to MTZ and mmCIF structure-factor files"
        )
    if kind == "model":
        if dmin_A is None:
            raise InputFileError(
                path, "an atomic model needs a resolution limit (dmin, in Angstrom) for its "
                "structure factors"
            )
        return model_structure_factors(path, dmin_A, default_F=default_F)
    return _read_text(path, default_F)


def _read_text(path: str | os.PathLike, default_F: float) -> ReflectionTable:
    """nanoBragg's text file through :func:`read_hkl`, noting the cells the file set."""
    table = read_hkl(path, default_F=math.nan)  # file values are finite: NaN marks the unset
    placed = ~np.isnan(table.F)
    F = np.where(placed, table.F, _fill_value(default_F))
    return ReflectionTable(
        *table.ranges, F=F, n_entries=table.n_entries, warnings=table.warnings, placed=placed,
        source=f"text file, {table.n_entries} reflections",
    )


def _fill_value(default_F: float) -> float:
    """What unset cells hold: ``default_F``, but +0.0 for -0.0 (the C program skips a zero)."""
    return float(default_F) if default_F != 0.0 else 0.0


# ---------------------------------------------------------------------------------------------
# gemmi


def _gemmi(path: str | os.PathLike):
    """Import gemmi, or explain how to install it."""
    try:
        import gemmi
    except ImportError:
        raise InputFileError(path, f"reading this file needs gemmi: {_INSTALL_HINT}") from None
    return gemmi


@contextlib.contextmanager
def _gemmi_errors(path: str | os.PathLike, doing: str) -> Iterator[None]:
    """Turn gemmi's exceptions into one-line :class:`InputFileError` s."""
    try:
        yield
    except InputFileError:
        raise
    except (RuntimeError, ValueError, IndexError, KeyError, OSError) as error:
        message = one_line(str(error).strip().splitlines()[0] if str(error).strip() else error)
        name = os.fspath(path)
        for tail in (f": {name}", f" {name}"):  # gemmi often ends with the file name
            message = message.removesuffix(tail)
        raise InputFileError(path, f"{doing}: {message or type(error).__name__}") from None


def _rotations(space_group) -> list[np.ndarray]:
    """The space group's rotation matrices, each integer, shape (3, 3).

    A reflection ``h`` (row vector) has the equivalents ``h @ R``; the centring vectors only
    change phases, so they add none.
    """
    return [np.array(op.rot, dtype=np.int64) // op.DEN for op in space_group.operations().sym_ops]


def _cell_tuple(cell) -> tuple[float, ...] | None:
    """A gemmi UnitCell as six floats, or None for gemmi's placeholder 1 1 1 cell."""
    if not cell.is_crystal():
        return None
    return (cell.a, cell.b, cell.c, cell.alpha, cell.beta, cell.gamma)


# ---------------------------------------------------------------------------------------------
# Choosing the amplitude column


# Names of mean-amplitude columns, most wanted first (compared ignoring case).
_MTZ_NAMES = (
    "F", "FP", "FOBS", "F-obs", "F_obs", "FMEAS", "F_meas", "F-obs-filtered", "FO", "FNAT",
    "F-model", "FMODEL", "FC", "FCALC", "FC_ALL",
)
_CIF_NAMES = ("F_meas_au", "F_meas", "F_calc_au", "F_calc", "pdbx_F_calc")
# MTZ column types, for messages.
_MTZ_TYPES = {
    "H": "Miller index", "F": "amplitude", "G": "anomalous amplitude", "J": "intensity",
    "K": "anomalous intensity", "D": "anomalous difference", "Q": "standard deviation",
    "L": "standard deviation of an anomalous amplitude",
    "M": "standard deviation of an anomalous intensity", "P": "phase", "W": "weight",
    "A": "Hendrickson-Lattman coefficient", "I": "integer", "B": "batch number",
    "Y": "M/ISYM", "R": "real",
}
# Ways anomalous pairs are named: the (+) part, the (-) part.
_PAIR_MARKS = (("(+)", "(-)"), ("plus", "minus"), ("PLUS", "MINUS"), ("Plus", "Minus"),
               ("+", "-"))


@dataclass(frozen=True)
class _Choice:
    """The columns chosen: one (mean F), or two (F(+), F(-)); and a note for the warnings."""

    labels: tuple[str, ...]
    note: str | None = None

    @property
    def anomalous(self) -> bool:
        return len(self.labels) == 2


@dataclass(frozen=True)
class _Columns:
    """A file's columns sorted by role.

    Attributes
    ----------
    all : list of str
        Every column label, in file order.
    mean, anomalous, intensities : list of str
        Mean amplitudes; anomalous amplitudes (F(+), F(-)); intensities.
    describe : callable
        ``describe(label)`` says what an unusable column holds, for messages.
    names : tuple of str
        Preferred mean-amplitude names, most wanted first.
    """

    all: list[str]
    mean: list[str]
    anomalous: list[str]
    intensities: list[str]
    describe: object
    names: tuple[str, ...]

    @property
    def amplitudes(self) -> list[str]:
        return self.mean + self.anomalous


def _choose(path: str | os.PathLike, columns: _Columns, wanted: str | None) -> _Choice:
    """Pick the amplitude column(s): the one named, or the best one there is."""
    if wanted is not None:
        return _choose_named(path, columns, wanted)
    if columns.mean:
        return _choose_mean(path, columns)
    if columns.anomalous:
        pairs = [p for p in (_pair(label, columns.anomalous) for label in columns.anomalous) if p]
        if pairs:
            others = sorted({label for pair in pairs[1:] for label in pair} - set(pairs[0]))
            note = _other_note(path, pairs[0], others)
            return _Choice(pairs[0], note)
        raise InputFileError(
            path, f"cannot pair the anomalous amplitude columns {_list(columns.anomalous)} "
            "as F(+)/F(-); name one of them as the column"
        )
    if columns.intensities:
        raise InputFileError(
            path, f"no amplitude column, only intensities ({_list(columns.intensities)}); "
            "convert them to amplitudes first (for example with ctruncate)"
        )
    raise InputFileError(path, f"no amplitude column among {_list(columns.all)}")


def _choose_named(path: str | os.PathLike, columns: _Columns, wanted: str) -> _Choice:
    """The column the caller named, paired with its partner when it is anomalous."""
    label = _find_label(wanted, columns.all)
    if label is None:
        raise InputFileError(
            path, f"no column {wanted!r}; amplitude columns: {_list(columns.amplitudes)}"
        )
    if label in columns.mean:
        return _Choice((label,))
    if label in columns.anomalous:
        pair = _pair(label, columns.anomalous)
        if pair is None:
            raise InputFileError(path, f"no F(-) partner found for the anomalous column {label}")
        return _Choice(pair)
    raise InputFileError(
        path, f"column {label} is not an amplitude column ({columns.describe(label)}); "
        f"amplitude columns: {_list(columns.amplitudes)}"
    )


def _choose_mean(path: str | os.PathLike, columns: _Columns) -> _Choice:
    """The preferred mean-amplitude column, by name when there are several."""
    if len(columns.mean) == 1:
        label = columns.mean[0]
        return _Choice((label,), _other_note(path, (label,), columns.anomalous))
    for name in columns.names:
        label = _find_label(name, columns.mean)
        if label is not None:
            others = [other for other in columns.amplitudes if other != label]
            return _Choice((label,), _other_note(path, (label,), others))
    raise InputFileError(
        path, f"several amplitude columns ({_list(columns.mean)}) and none with a usual "
        "name; name the one to use"
    )


def _find_label(wanted: str, labels: Sequence[str]) -> str | None:
    """The label equal to ``wanted``, else the only one equal ignoring case."""
    if wanted in labels:
        return wanted
    folded = [label for label in labels if label.lower() == wanted.lower()]
    return folded[0] if len(folded) == 1 else None


def _pair(label: str, anomalous: Sequence[str]) -> tuple[str, str] | None:
    """``(F(+) label, F(-) label)`` for one label of an anomalous pair, by their names."""
    for plus, minus in _PAIR_MARKS:
        if plus in label:
            other = minus.join(label.rsplit(plus, 1))
            if other in anomalous:
                return label, other
        if minus in label:
            other = plus.join(label.rsplit(minus, 1))
            if other in anomalous:
                return other, label
    return None


def _other_note(path: str | os.PathLike, chosen: Sequence[str],
                others: Sequence[str]) -> str | None:
    """The warning line saying which column was taken when others could have been."""
    if not others:
        return None
    what = "columns" if len(chosen) == 2 else "column"
    return (f"{os.fspath(path)}: using amplitude {what} {_list(chosen)}; the file also has "
            f"{_list(others)} (name a column to use another)")


def _list(labels: Iterable[str]) -> str:
    return ", ".join(labels) if labels else "none"


# ---------------------------------------------------------------------------------------------
# MTZ


def read_mtz(
    path: str | os.PathLike, column: str | None = None, default_F: float = 0.0
) -> ReflectionTable:
    """Read amplitudes from a merged MTZ file and expand them to P1.

    Parameters
    ----------
    path : str or os.PathLike
        MTZ file.
    column : str, optional
        Amplitude column label. A column of type ``F`` is a mean amplitude (expanded with
        Friedel mates); naming either column of a type ``G`` pair (``F(+)``, ``F(-)``) takes
        the pair, kept apart. None chooses: the only type ``F`` column; else among several,
        the first with a usual name (F, FP, FOBS, F-obs, F_meas, ..., then calculated ones
        such as FC); else with no type ``F`` column, the first ``G`` pair. A file with only
        intensities (types ``J``, ``K``) is an error: convert them to amplitudes first.
    default_F : float
        F of the cells no reflection sets.

    Returns
    -------
    ReflectionTable
        ``F[h - h_min, k - k_min, l - l_min]`` (float64) over all symmetry equivalents and,
        for mean amplitudes, Friedel mates; ``n_entries`` cells set.

    Raises
    ------
    InputFileError
        For an unreadable or unmerged file, no space group, no usable column, an infinite
        value, or no reflection with a value.
    """
    gemmi = _gemmi(path)
    _check_mtz_complete(path)
    with _gemmi_errors(path, "cannot read MTZ file"):
        mtz = gemmi.read_mtz_file(os.fspath(path))
        types = {c.label: c.type for c in mtz.columns}
        indices = {c.label: c.idx for c in mtz.columns}
        data = np.asarray(mtz.array)
        missing_flag = float(mtz.valm)
        space_group = mtz.spacegroup
        cell = _cell_tuple(mtz.cell)
    if "M/ISYM" in types or len(mtz.batches) > 0:
        raise InputFileError(path, "unmerged MTZ file (it has batches); merge it first")
    if any(label not in types for label in "HKL"):
        raise InputFileError(path, "no H, K, L columns")
    if space_group is None:
        raise InputFileError(path, "no space group in the MTZ header")
    columns = _Columns(
        all=list(types), mean=[c for c, t in types.items() if t == "F"],
        anomalous=[c for c, t in types.items() if t == "G"],
        intensities=[c for c, t in types.items() if t in "JK"],
        describe=lambda label: f"MTZ type {types[label]}, {_MTZ_TYPES.get(types[label], '?')}",
        names=_MTZ_NAMES,
    )
    choice = _choose(path, columns, column)
    hkl = data[:, [indices["H"], indices["K"], indices["L"]]]
    if not (np.isfinite(hkl).all() and (hkl == np.round(hkl)).all()):
        raise InputFileError(path, "H, K, L columns hold values that are not integers")
    values = []
    for label in choice.labels:
        F = data[:, indices[label]].astype(np.float32)
        if not math.isnan(missing_flag):
            F = np.where(F == np.float32(missing_flag), np.float32(np.nan), F)
        values.append(_shortest_decimal(F))
    return _table_from_reflections(
        path, hkl.astype(np.int64), values, choice, space_group, cell, default_F,
        f"MTZ column {_list(choice.labels)}",
    )


def _check_mtz_complete(path: str | os.PathLike) -> None:
    """Refuse an MTZ file whose header (at the end of the file) is missing or cut short.

    Bytes 4-8 hold the header's position in 4-byte words (1-based), in the byte order that
    the machine stamp at byte 8 gives; the header's last record is ``MTZENDOFHEADERS``.
    gemmi reads a header cut short without complaint, as a file with no columns.
    """
    with open_input(path) as handle:
        start = read_or_fail(handle, path, 12)
        if len(start) < 12:
            raise InputFileError(path, "truncated MTZ file (shorter than its first record)")
        order = ">" if start[8] >> 4 == 1 else "<"  # 1: big-endian IEEE, 4: little-endian
        word = struct.unpack(order + "i", start[4:8])[0]
        if word <= 0:  # a newer layout keeps a 64-bit position elsewhere: left to gemmi
            return
        try:
            handle.seek((word - 1) * 4)
        except OSError as error:
            raise InputFileError(path, f"cannot read file: {error.strerror or error}") from None
        header = read_or_fail(handle, path)
    if b"MTZENDOFHEADERS" not in header:
        raise InputFileError(path, "truncated or damaged MTZ file: its header, at the end of "
                             "the file, is missing or incomplete")


def _shortest_decimal(values: np.ndarray) -> np.ndarray:
    """float32 values as float64 of the shortest decimal that identifies each (NaN stays NaN)."""
    return values.astype(str).astype(np.float64)


# ---------------------------------------------------------------------------------------------
# mmCIF structure factors


# _refln items that hold amplitudes, and those that hold intensities.
_CIF_AMPLITUDE = re.compile(r"^(F_|pdbx_F_|pdbx_FWT$|pdbx_DELFWT$)", re.IGNORECASE)
_CIF_NOT_AMPLITUDE = re.compile(r"sigma|squared|phase|_part_", re.IGNORECASE)
_CIF_INTENSITY = re.compile(r"^(intensity_|F_squared_|pdbx_I_)", re.IGNORECASE)
_CIF_ANOMALOUS = ("pdbx_F_plus", "pdbx_F_minus", "pdbx_anom_F_plus", "pdbx_anom_F_minus")


def read_sf_mmcif(
    path: str | os.PathLike, column: str | None = None, default_F: float = 0.0
) -> ReflectionTable:
    """Read amplitudes from an mmCIF structure-factor file (``_refln`` loop) and expand to P1.

    Parameters
    ----------
    path : str or os.PathLike
        mmCIF file such as the PDB's ``*-sf.cif``; the first data block whose ``_refln``
        loop holds an amplitude is used (with ``column``: the first that holds that item).
    column : str, optional
        ``_refln`` item, with or without the ``_refln.`` prefix: a mean amplitude such as
        ``F_meas_au`` or ``F_calc`` (expanded with Friedel mates), or ``pdbx_F_plus`` /
        ``pdbx_F_minus`` (the pair, kept apart). None chooses as :func:`read_mtz` does, with
        the usual names F_meas_au, F_meas, F_calc_au, F_calc.
    default_F : float
        F of the cells no reflection sets.

    Returns
    -------
    ReflectionTable
        As for :func:`read_mtz`.

    Raises
    ------
    InputFileError
        For an unreadable file, no block with a usable amplitude, no space group, an infinite
        value, or no reflection with a value.
    """
    gemmi = _gemmi(path)
    with _gemmi_errors(path, "cannot read mmCIF file"):
        blocks = [rb for rb in gemmi.as_refln_blocks(gemmi.cif.read(os.fspath(path)))
                  if rb.default_loop is not None and rb.is_merged()]
    wanted = None if column is None else column.removeprefix("_refln.")
    first_error = None
    for block in blocks:
        columns = _cif_columns(block.column_labels())
        if wanted is not None and _find_label(wanted, columns.all) is None:
            continue
        try:
            choice = _choose(path, columns, wanted)
        except InputFileError as error:
            first_error = first_error or error
            continue
        return _read_refln_block(path, block, choice, default_F)
    if first_error is not None:
        raise first_error
    if wanted is not None:
        raise InputFileError(path, f"no _refln.{wanted} in any data block")
    raise InputFileError(path, "no data block with a _refln loop of amplitudes")


def _cif_columns(labels: list[str]) -> _Columns:
    """The ``_refln`` items of one block, sorted by role."""
    amplitudes = [t for t in labels
                  if _CIF_AMPLITUDE.match(t) and not _CIF_NOT_AMPLITUDE.search(t)]
    anomalous = [t for t in amplitudes if t.lower() in {a.lower() for a in _CIF_ANOMALOUS}]
    return _Columns(
        all=list(labels), mean=[t for t in amplitudes if t not in anomalous],
        anomalous=anomalous, intensities=[t for t in labels if _CIF_INTENSITY.match(t)],
        describe=_describe_cif_item, names=_CIF_NAMES,
    )


def _describe_cif_item(label: str) -> str:
    """What a ``_refln`` item that is not an amplitude holds, roughly, for messages."""
    if _CIF_INTENSITY.match(label):
        return "intensity"
    return "standard deviation" if "sigma" in label.lower() else "not an amplitude item"


def _read_refln_block(path: str | os.PathLike, block, choice: _Choice,
                      default_F: float) -> ReflectionTable:
    """The table of one ``_refln`` block's chosen columns."""
    with _gemmi_errors(path, f"cannot read block {block.block.name}"):
        hkl = np.asarray(block.make_miller_array(), dtype=np.int64)
        values = [np.asarray(block.make_float_array(label), dtype=np.float64)
                  for label in choice.labels]
        space_group = block.spacegroup
        cell = _cell_tuple(block.cell)
    if space_group is None:
        raise InputFileError(
            path, f"block {block.block.name} has no space group (_symmetry.space_group_name_H-M "
            "or _space_group.name_H-M_alt), needed to expand the reflections to P1"
        )
    return _table_from_reflections(
        path, hkl, values, choice, space_group, cell, default_F,
        f"mmCIF block {block.block.name} _refln.{', _refln.'.join(choice.labels)}",
    )


# ---------------------------------------------------------------------------------------------
# Expansion to P1


def _table_from_reflections(
    path: str | os.PathLike, hkl: np.ndarray, values: list[np.ndarray], choice: _Choice,
    space_group, cell: tuple[float, ...] | None, default_F: float, what: str,
) -> ReflectionTable:
    """Expand listed reflections to P1 and build the table.

    Parameters
    ----------
    hkl : numpy.ndarray of int64, shape (n, 3)
        Listed Miller indices.
    values : list of numpy.ndarray of float64, shape (n,)
        One array (mean F) or two (F(+), F(-)); NaN where missing.
    """
    if choice.anomalous:  # F(+) belongs to h, F(-) to -h; Friedel's law does not hold
        sources = [_present(path, hkl, values[0]), _present(path, -hkl, values[1])]
        friedel = False
    else:
        sources = [_present(path, hkl, values[0])]
        friedel = True
    n_listed = sum(len(F) for _, F in sources)
    if n_listed == 0:
        raise InputFileError(path, f"no reflection has a value in {_list(choice.labels)}")
    warnings = [choice.note] if choice.note else []
    warnings += _negative_warning(path, sources)
    expansion = _P1Expansion(path, _rotations(space_group), friedel)
    placed, F, conflicts = expansion.run(sources)
    warnings += _conflict_warning(path, conflicts)
    mates = "symmetry equivalents" + (" and Friedel mates" if friedel else ", F(+)/F(-) apart")
    source = (f"{what}: {n_listed} reflections in {space_group.hm}, expanded to "
              f"{int(placed.sum())} in P1 ({mates})")
    return _finish(expansion.limits, F, placed, default_F, warnings, cell, space_group.hm,
                   source)


def _finish(limits, F: np.ndarray, placed: np.ndarray, default_F: float, warnings: list[str],
            cell, space_group: str | None, source: str) -> ReflectionTable:
    """The table, unset cells filled with ``default_F``."""
    F[~placed] = _fill_value(default_F)
    return ReflectionTable(
        *limits, F=F, n_entries=int(placed.sum()), warnings=warnings, placed=placed, cell=cell,
        space_group=space_group, source=source,
    )


def _present(path: str | os.PathLike, hkl: np.ndarray,
             F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reflections with a value (not NaN), refusing infinite ones."""
    keep = ~np.isnan(F)
    hkl, F = hkl[keep], F[keep]
    bad = ~np.isfinite(F)
    if bad.any():
        h, k, l = (int(i) for i in hkl[np.argmax(bad)])
        raise InputFileError(path, f"structure factor for {h} {k} {l} is {F[bad][0]}, not finite")
    return hkl, F


class _P1Expansion:
    """Places reflections and their symmetry (and Friedel) mates on a dense NaN grid.

    Every image of every source is placed first, a cell keeping the last value it is given;
    then the listed reflections are placed again, so each keeps its own value. A cell offered
    two different values is a conflict.
    """

    def __init__(self, path: str | os.PathLike, rotations: list[np.ndarray], friedel: bool):
        self.path = path
        self.operators = rotations + ([-R for R in rotations] if friedel else [])
        self.limits: tuple[int, ...] = ()

    def run(self, sources: list[tuple[np.ndarray, np.ndarray]]
            ) -> tuple[np.ndarray, np.ndarray, int]:
        """Return ``placed`` (bool), the grid (NaN where unset) and the number of conflicts."""
        sources = [(hkl, F) for hkl, F in sources if len(F)]
        lo, hi = self._corners(sources)
        shape = tuple(int(n) for n in hi - lo + 1)
        self.limits = tuple(int(v) for pair in zip(lo, hi, strict=True) for v in pair)
        grid = np.full(shape, np.nan)
        conflict = np.zeros(shape, dtype=bool)
        cells, clash = grid.reshape(-1), conflict.reshape(-1)
        sources = [self._unique(hkl, F, lo, shape, clash) for hkl, F in sources]
        for hkl, F in sources:
            for R in self.operators:
                flat = np.ravel_multi_index(tuple((hkl @ R - lo).T), shape)
                old = cells[flat]
                clash[flat[~np.isnan(old) & (old != F)]] = True
                cells[flat] = F
        for hkl, F in sources:  # the listed reflections keep their own values
            cells[np.ravel_multi_index(tuple((hkl - lo).T), shape)] = F
        return ~np.isnan(grid), grid, int(conflict.sum())

    def _corners(self, sources) -> tuple[np.ndarray, np.ndarray]:
        """Smallest and largest index of all images, refusing grids too large to hold."""
        lows, highs = [], []
        for hkl, _ in sources:
            for R in self.operators:
                image = hkl @ R
                lows.append(image.min(axis=0))
                highs.append(image.max(axis=0))
        lo, hi = np.min(lows, axis=0), np.max(highs, axis=0)
        shape = tuple(int(n) for n in hi - lo + 1)
        if float(np.prod(np.array(shape, dtype=np.float64))) > MAX_GRID_CELLS:
            raise InputFileError(self.path, f"Miller index ranges too large for a dense grid: "
                                 f"{shape}")
        return lo, hi

    @staticmethod
    def _unique(hkl: np.ndarray, F: np.ndarray, lo: np.ndarray, shape: tuple[int, ...],
                clash: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One entry per listed reflection (the last one), marking repeats that differ."""
        flat = np.ravel_multi_index(tuple((hkl - lo).T), shape)
        order = np.argsort(flat, kind="stable")
        flat, hkl, F = flat[order], hkl[order], F[order]
        last = np.append(flat[1:] != flat[:-1], True)
        differs = np.append(False, (flat[1:] == flat[:-1]) & (F[1:] != F[:-1]))
        clash[flat[differs]] = True
        return hkl[last], F[last]


def _negative_warning(path: str | os.PathLike, sources) -> list[str]:
    n = sum(int(np.count_nonzero(F < 0)) for _, F in sources)
    if not n:
        return []
    return [f"{os.fspath(path)}: {n} reflections have a negative F; nanoBragg squares F, so "
            "each acts as |F| (but -interpolate uses the sign)"]


def _conflict_warning(path: str | os.PathLike, conflicts: int) -> list[str]:
    if not conflicts:
        return []
    return [f"{os.fspath(path)}: {conflicts} reflections are given different F by entries "
            "that are repeats, symmetry equivalents or Friedel mates of each other; each "
            "listed reflection keeps its own F, the others take one of the values"]


# ---------------------------------------------------------------------------------------------
# Atomic models


def model_structure_factors(
    path: str | os.PathLike, dmin_A: float, default_F: float = 0.0
) -> ReflectionTable:
    """Compute |F| of a PDB or mmCIF model to a resolution limit, expanded to P1.

    Method: gemmi reads the model (the first one, if the file holds several) with its unit
    cell and space group. For every reflection of the asymmetric unit with ``d >= dmin_A``
    (``gemmi.make_miller_array``; systematic absences and ``F(000)`` excluded),
    ``gemmi.StructureFactorCalculatorX`` sums, by direct summation over all atoms and their
    symmetry images in the cell,
    ``F(h) = sum_j occ_j f_j(s) exp(-B_j s^2 / 4) exp(2 pi i h.x_j)`` with ``s = 1/d``,
    ``f_j`` the International Tables (IT92) X-ray form factor of the atom's element (no
    anomalous f', f''; hydrogens as listed), and the anisotropic ADP instead of ``B_j`` where
    the model has one. No bulk solvent, no scaling. Each ``|F|`` is then copied to its
    symmetry equivalents and Friedel mates as for data files; systematically absent reflections
    within the limit are set to 0; the others, ``F(000)`` included, keep ``default_F``.

    The cost grows as atoms x symmetry operators x reflections (about 50 ns each: some
    seconds for a small protein to 2 Angstrom).

    Parameters
    ----------
    path : str or os.PathLike
        PDB or mmCIF model (recognised by content), with a unit cell and space group.
    dmin_A : float
        Resolution limit in Angstrom, > 0.
    default_F : float
        F of the cells outside the limit (and of F(000)).

    Returns
    -------
    ReflectionTable
        ``F[h - h_min, k - k_min, l - l_min]`` in electrons (float64).

    Raises
    ------
    InputFileError
        For an unreadable file, no atoms, no unit cell, an unknown space group, or a bad
        ``dmin_A``.
    """
    dmin_A = _resolution(path, dmin_A)
    gemmi = _gemmi(path)
    _, is_cif = _sniff(path)
    form = gemmi.CoorFormat.Mmcif if is_cif else gemmi.CoorFormat.Pdb
    with _gemmi_errors(path, "cannot read model"):
        structure = gemmi.read_structure(os.fspath(path), format=form)
    model, space_group, warnings = _usable_model(path, structure)
    cell = structure.cell
    _check_grid_size(path, cell, dmin_A)
    with _gemmi_errors(path, "cannot compute structure factors"):
        structure.setup_cell_images()
        asu = np.asarray(gemmi.make_miller_array(cell, space_group, dmin_A), np.int64)
        calculator = gemmi.StructureFactorCalculatorX(cell)
        F = np.array([abs(calculator.calculate_sf_from_model(model, h)) for h in asu.tolist()],
                     dtype=np.float64)
        absent = _absent_reflections(gemmi, cell, space_group, dmin_A)
    if not np.isfinite(F).all():
        raise InputFileError(path, "the model gives structure factors that are not finite "
                             "numbers: check its coordinates, occupancies and B factors")
    if len(asu) == 0:
        raise InputFileError(path, f"no reflection with d >= {dmin_A:g} A in this cell")
    expansion = _P1Expansion(path, _rotations(space_group), friedel=True)
    sources = [(asu, F)] + ([(absent, np.zeros(len(absent)))] if len(absent) else [])
    placed, grid, _ = expansion.run(sources)
    n_atoms = model.count_atom_sites()
    source = (f"model: {n_atoms} atoms in {space_group.hm}, |F| of {len(asu)} reflections to "
              f"{dmin_A:g} A (IT92 X-ray form factors, direct summation), expanded to "
              f"{int(placed.sum())} in P1")
    return _finish(expansion.limits, grid, placed, default_F, warnings, _cell_tuple(cell),
                   space_group.hm, source)


def _check_grid_size(path: str | os.PathLike, cell, dmin_A: float) -> None:
    """Refuse a resolution whose P1 grid would not fit, before anything is computed.

    Along each axis |h| reaches 1 / (dmin |a*|) at most.
    """
    lengths = [cell.reciprocal().a, cell.reciprocal().b, cell.reciprocal().c]
    cells = math.prod(2.0 / (dmin_A * length) + 1.0 for length in lengths)
    if not cells <= MAX_GRID_CELLS:
        raise InputFileError(path, f"structure factors to {dmin_A:g} A would fill a grid of "
                             f"{cells:.3g} reflections, more than {MAX_GRID_CELLS:.3g}: give a "
                             "larger resolution limit")


def _resolution(path: str | os.PathLike, dmin_A) -> float:
    """``dmin_A`` as a positive finite float, or an error."""
    try:
        value = float(dmin_A)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise InputFileError(
            path, f"resolution limit dmin must be a positive number of Angstrom, got {dmin_A!r}"
        )
    return value


def _usable_model(path: str | os.PathLike, structure):
    """The first model and the space group, or an error saying what is missing."""
    if len(structure) == 0 or structure[0].count_atom_sites() == 0:
        raise InputFileError(path, "no atoms in the model")
    if not structure.cell.is_crystal():
        raise InputFileError(path, "no unit cell (CRYST1 record or _cell items) in the model")
    space_group = structure.find_spacegroup()
    if space_group is None:
        name = structure.spacegroup_hm or "none given"
        raise InputFileError(path, f"unknown space group ({name}) in the model")
    warnings = []
    if len(structure) > 1:
        warnings.append(f"{os.fspath(path)}: the file holds {len(structure)} models; "
                        "structure factors are computed from the first")
    return structure[0], space_group, warnings


def _absent_reflections(gemmi, cell, space_group, dmin_A: float) -> np.ndarray:
    """Miller indices (n, 3) within the limit that the space group makes systematically absent."""
    everything = np.asarray(
        gemmi.make_miller_array(cell, gemmi.SpaceGroup("P 1"), dmin_A, unique=False), np.int64
    )
    if len(everything) == 0:
        return everything.reshape(0, 3)
    absent = np.asarray(space_group.operations().systematic_absences(everything), dtype=bool)
    return everything[absent]


# ---------------------------------------------------------------------------------------------
# Writing nanoBragg's text format


def write_hkl_text(
    table_or_path: HKLTable | str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    column: str | None = None,
    dmin_A: float | None = None,
    default_F: float | None = None,
) -> int:
    """Write structure factors as nanoBragg's text file, ``h k l F`` per line, atomically.

    Only the reflections that were set are written, in grid order (h, then k, then l
    increasing); each F is the shortest decimal that reads back to the same float64, so
    :func:`torchbragg.io.hkl.read_hkl` returns the same values. The C program reads the file.

    Parameters
    ----------
    table_or_path : HKLTable or str or os.PathLike
        A table, or a file for :func:`read_structure_factors` (with ``column`` and
        ``dmin_A``).
    out_path : str or os.PathLike
        Destination text file.
    column, dmin_A : optional
        Passed to :func:`read_structure_factors` when a file is given.
    default_F : float, optional
        For a plain :class:`HKLTable` (which does not record the cells that were set): skip
        cells holding this value. None writes every cell. A :class:`ReflectionTable` writes
        the cells it set, whatever this is.

    Returns
    -------
    int
        Number of reflections written.

    Raises
    ------
    InputFileError
        When the input file cannot be read.
    OSError
        When the output cannot be written (``cannot write <out_path>: <reason>``).
    """
    if isinstance(table_or_path, HKLTable):
        table = table_or_path
    else:
        table = read_structure_factors(table_or_path, column=column, dmin_A=dmin_A)
    written = _written_cells(table, default_F)
    write_atomic(out_path, _text_chunks(table, written))
    return int(written.sum())


def _written_cells(table: HKLTable, default_F: float | None) -> np.ndarray:
    """Boolean mask, shape like ``table.F``, of the cells to write."""
    placed = getattr(table, "placed", None)
    if placed is not None:
        return placed
    if default_F is None:
        return np.ones(table.F.shape, dtype=bool)
    return table.F != default_F


def _text_chunks(table: HKLTable, written: np.ndarray) -> Iterator[bytes]:
    """The text lines of the written cells, in blocks."""
    hkl = np.argwhere(written) + np.array([table.h_min, table.k_min, table.l_min])
    F = table.F[written]
    for start in range(0, len(F), _WRITE_LINES):
        rows = zip(hkl[start : start + _WRITE_LINES].tolist(),
                   F[start : start + _WRITE_LINES].tolist(), strict=True)
        yield "".join(f"{h} {k} {l} {value!r}\n" for (h, k, l), value in rows).encode("ascii")
