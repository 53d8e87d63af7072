"""Structure factors from MTZ, mmCIF structure-factor files and atomic models (via gemmi)."""

import math
import sys

import numpy as np
import pytest

from torchbragg.io.errors import InputFileError
from torchbragg.io.hkl import HKLTable, read_hkl
from torchbragg.io.reflections import (
    ReflectionTable,
    file_kind,
    model_structure_factors,
    read_mtz,
    read_sf_mmcif,
    read_structure_factors,
    write_hkl_text,
)

gemmi = pytest.importorskip("gemmi")


# ----------------------------------------------------------------------------------------------
# helpers: small files written with gemmi itself


def write_mtz(path, rows, columns, space_group="P 1", cell=(20, 30, 40, 90, 90, 90)):
    """An MTZ file: columns [(label, type), ...] after H K L; rows (n, 3 + len(columns))."""
    mtz = gemmi.Mtz(with_base=True)
    mtz.spacegroup = gemmi.SpaceGroup(space_group)
    mtz.set_cell_for_all(gemmi.UnitCell(*cell))
    mtz.add_dataset("crystal")
    for label, kind in columns:
        mtz.add_column(label, kind)
    mtz.set_data(np.asarray(rows, dtype=np.float32).reshape(-1, 3 + len(columns)))
    mtz.write_to_file(str(path))
    return path


def F_at(table, h, k, l):
    return table.F[h - table.h_min, k - table.k_min, l - table.l_min]


def set_hkls(table):
    """The (h, k, l) the table set, as a set of tuples."""
    lows = np.array([table.h_min, table.k_min, table.l_min])
    return {tuple(int(i) for i in row) for row in np.argwhere(table.placed) + lows}


def friedel_half(limit):
    """One (h, k, l) of each Friedel pair with |h|, |k|, |l| <= limit, and (0, 0, 0)."""
    box = np.array(np.meshgrid(*[np.arange(-limit, limit + 1)] * 3, indexing="ij")).reshape(3, -1).T
    first = np.array([next((i for i in row if i), 0) for row in box])
    return box[first >= 0]


def assert_one_clear_line(error, path):
    text = str(error)
    assert "\n" not in text and "Traceback" not in text
    assert text.startswith(str(path))


PDB_P1 = """\
CRYST1   12.000   14.000   16.000  90.00  95.00 100.00 P 1           1
ATOM      1  N   GLY A   1       1.000   2.000   3.000  1.00 10.00           N
ATOM      2  CA  GLY A   1       2.400   2.100   3.200  1.00 12.00           C
HETATM    3  O   HOH A   2       5.000   6.000   1.000  0.50 20.00           O
HETATM    4 FE   FE  A   3       8.000   3.000   7.000  1.00 15.00          FE
END
"""

PDB_P21 = PDB_P1.replace("P 1          ", "P 1 21 1     ").replace(" 95.00 100.00", " 95.00  90.00")


# ----------------------------------------------------------------------------------------------
# recognising files


def test_file_kind_by_content(tmp_path, write_text):
    mtz = write_mtz(tmp_path / "data.hkl", [[1, 2, 3, 10]], [("F", "F")])
    assert file_kind(mtz) == "mtz"  # content, not name
    assert file_kind(write_text("a.mtz", "1 2 3 10.5\n")) == "text"
    assert file_kind(write_text("b.txt", "# comment\n\n  -1 2 3 4\n")) == "text"
    assert file_kind(write_text("c.x", "data_x\n_cell.length_a 10\nloop_\n_refln.index_h\n1\n")) \
        == "sf-mmcif"
    assert file_kind(write_text("d.x", "data_x\nloop_\n_atom_site.id\n1\n")) == "model"
    assert file_kind(write_text("e.x", PDB_P1)) == "model"
    # a record found after a long header, past the first block read
    long_header = "REMARK   3 " + "x" * 60 + "\n"
    assert file_kind(write_text("f.x", long_header * 30000 + PDB_P1)) == "model"
    # _reflns (statistics in a model file) is not _refln
    assert file_kind(write_text("g.x", "data_x\n_reflns.d_resolution_high 2\n")) == "text"
    assert file_kind(write_text("h.x", "")) == "text"


# ----------------------------------------------------------------------------------------------
# MTZ


def test_p1_mtz_equals_text_with_both_mates(tmp_path, write_text):
    rng = np.random.default_rng(1)
    half = friedel_half(3)
    F = rng.integers(1, 100_000, len(half)) / 100  # decimals such as 123.45
    F[5] = np.nan  # missing in the MTZ, absent from the text file
    write_mtz(tmp_path / "p1.mtz", np.column_stack([half, F]), [("FP", "F")])
    lines = [f"{h} {k} {l} {f!r}\n" for (h, k, l), f in zip(half.tolist(), F.tolist(),
                                                              strict=True) if not math.isnan(f)]
    lines += [f"{-h} {-k} {-l} {f!r}\n" for (h, k, l), f in zip(half.tolist(), F.tolist(),
                                                                strict=True)
              if not math.isnan(f) and (h, k, l) != (0, 0, 0)]
    text = write_text("p1.hkl", "".join(lines))
    for default_F in (0.0, 7.5):
        from_mtz = read_mtz(tmp_path / "p1.mtz", default_F=default_F)
        from_text = read_hkl(text, default_F=default_F)
        assert isinstance(from_mtz, ReflectionTable) and isinstance(from_mtz, HKLTable)
        assert from_mtz.ranges == from_text.ranges == (-3, 3, -3, 3, -3, 3)
        assert np.array_equal(from_mtz.F, from_text.F)
        assert from_mtz.n_entries == from_text.n_entries == len(lines) == 7**3 - 2
        assert from_mtz.warnings == []
        assert from_mtz.cell == (20, 30, 40, 90, 90, 90)
        assert from_mtz.space_group == "P 1"


@pytest.mark.parametrize("space_group", ["P 21 21 21", "P 31 2 1", "C 1 2 1", "P 4/m"])
def test_mtz_expands_to_symmetry_equivalents_and_friedel_mates(tmp_path, space_group):
    sg = gemmi.SpaceGroup(space_group)
    cell = gemmi.UnitCell(20, 20, 30, 90, 90, 120) if "3" in space_group else \
        gemmi.UnitCell(20, 20 if "4" in space_group else 25, 30, 90, 90, 90)
    asu = gemmi.make_miller_array(cell, sg, 4.0)  # one of each set of equivalents
    F = np.arange(1, len(asu) + 1, dtype=np.float64)
    path = write_mtz(tmp_path / "sg.mtz", np.column_stack([asu, F]), [("F", "F")],
                     space_group, cell.parameters)
    table = read_mtz(path, default_F=-1.0)

    # the expected set: gemmi's own P1 expansion, plus Friedel mates
    expanded = gemmi.read_mtz_file(str(path))
    expanded.expand_to_p1()
    rows = np.asarray(expanded.array)
    expected = {}
    for h, k, l, f in rows.tolist():
        expected[(int(h), int(k), int(l))] = f
        expected[(-int(h), -int(k), -int(l))] = f
    assert set_hkls(table) == set(expected)
    assert table.n_entries == len(expected)
    for hkl, f in expected.items():
        assert F_at(table, *hkl) == f
    assert (table.F[~table.placed] == -1.0).all()
    assert table.warnings == []
    # equivalents found directly with the space-group operations
    for op in sg.operations().sym_ops:
        for (h, k, l), f in zip(asu.tolist(), F, strict=True):
            mate = op.apply_to_hkl([h, k, l])
            assert F_at(table, *mate) == f
            assert F_at(table, *(-i for i in mate)) == f


def test_anomalous_pairs_stay_apart(tmp_path):
    rows = [[1, 2, 3, 10.0, 12.0], [2, 1, 1, 20.0, np.nan], [0, 2, 0, 5.0, 5.0]]
    path = write_mtz(tmp_path / "anom.mtz", rows, [("F(+)", "G"), ("F(-)", "G")],
                     "P 1 21 1", (20, 25, 30, 90, 100, 90))
    table = read_mtz(path, default_F=0.5)
    # F(+) at h and its equivalent (-h, k, -l); F(-) at -h and (h, -k, l)
    assert F_at(table, 1, 2, 3) == F_at(table, -1, 2, -3) == 10.0
    assert F_at(table, -1, -2, -3) == F_at(table, 1, -2, 3) == 12.0
    assert F_at(table, 2, 1, 1) == F_at(table, -2, 1, -1) == 20.0
    assert F_at(table, -2, -1, -1) == F_at(table, 2, -1, 1) == 0.5  # F(-) missing
    assert F_at(table, 0, 2, 0) == F_at(table, 0, -2, 0) == 5.0
    assert table.n_entries == 4 + 2 + 2
    assert table.warnings == []
    assert "F(+)/F(-) apart" in table.source
    # no F(-) at all: only the F(+) cells are set
    no_minus = write_mtz(tmp_path / "plus.mtz", [[1, 2, 3, 10.0, np.nan]],
                         [("F(+)", "G"), ("F(-)", "G")], "P 1 21 1", (20, 25, 30, 90, 100, 90))
    assert set_hkls(read_mtz(no_minus)) == {(1, 2, 3), (-1, 2, -3)}
    # naming either column of the pair takes the pair
    for name in ("F(+)", "F(-)"):
        assert np.array_equal(read_mtz(path, column=name, default_F=0.5).F, table.F)


def test_mean_amplitude_preferred_to_anomalous_pair(tmp_path):
    rows = [[1, 2, 3, 11.0, 10.0, 12.0]]
    path = write_mtz(tmp_path / "both.mtz", rows, [("F", "F"), ("F(+)", "G"), ("F(-)", "G")])
    table = read_mtz(path)
    assert F_at(table, 1, 2, 3) == F_at(table, -1, -2, -3) == 11.0
    assert table.warnings == [f"{path}: using amplitude column F; the file also has F(+), F(-) "
                              "(name a column to use another)"]
    anomalous = read_mtz(path, column="F(+)")
    assert (F_at(anomalous, 1, 2, 3), F_at(anomalous, -1, -2, -3)) == (10.0, 12.0)


def test_column_chosen_automatically_and_by_name(tmp_path):
    columns = [("FC", "F"), ("SIGFP", "Q"), ("FP", "F"), ("I", "J")]
    path = write_mtz(tmp_path / "cols.mtz", [[1, 0, 0, 3.0, 0.5, 4.0, 16.0]], columns)
    auto = read_mtz(path)
    assert F_at(auto, 1, 0, 0) == 4.0  # FP: a usual name for observed data
    assert auto.warnings == [f"{path}: using amplitude column FP; the file also has FC (name a "
                             "column to use another)"]
    assert F_at(read_mtz(path, column="FC"), 1, 0, 0) == 3.0
    assert F_at(read_mtz(path, column="fc"), 1, 0, 0) == 3.0  # case ignored when unambiguous
    assert read_mtz(path, column="FC").warnings == []

    with pytest.raises(InputFileError) as caught:
        read_mtz(path, column="FOBS")
    assert str(caught.value) == f"{path}: no column 'FOBS'; amplitude columns: FC, FP"
    with pytest.raises(InputFileError) as caught:
        read_mtz(path, column="SIGFP")
    assert str(caught.value) == (f"{path}: column SIGFP is not an amplitude column (MTZ type Q, "
                                 "standard deviation); amplitude columns: FC, FP")


def test_single_amplitude_column_needs_no_usual_name(tmp_path):
    path = write_mtz(tmp_path / "one.mtz", [[1, 0, 0, 3.0]], [("FMODEL_X", "F")])
    assert F_at(read_mtz(path), 1, 0, 0) == 3.0


def test_intensities_only_or_ambiguous_columns_are_errors(tmp_path):
    path = write_mtz(tmp_path / "i.mtz", [[1, 0, 0, 9.0, 1.0]], [("IMEAN", "J"), ("SIGIMEAN", "Q")])
    with pytest.raises(InputFileError) as caught:
        read_mtz(path)
    assert str(caught.value) == (f"{path}: no amplitude column, only intensities (IMEAN); "
                                 "convert them to amplitudes first (for example with ctruncate)")
    path = write_mtz(tmp_path / "two.mtz", [[1, 0, 0, 1.0, 2.0]], [("FA", "F"), ("FB", "F")])
    with pytest.raises(InputFileError, match=r"several amplitude columns \(FA, FB\)"):
        read_mtz(path)
    path = write_mtz(tmp_path / "none.mtz", [[1, 0, 0, 1.0]], [("PHI", "P")])
    with pytest.raises(InputFileError, match="no amplitude column among H, K, L, PHI"):
        read_mtz(path)


def test_inconsistent_mates_keep_listed_values_and_warn(tmp_path):
    rows = [[1, 2, 3, 10.0], [-1, -2, -3, 11.0], [2, 0, 0, 4.0], [2, 0, 0, 5.0]]
    path = write_mtz(tmp_path / "both_mates.mtz", rows, [("F", "F")])
    table = read_mtz(path)
    assert F_at(table, 1, 2, 3) == 10.0 and F_at(table, -1, -2, -3) == 11.0
    assert F_at(table, 2, 0, 0) == F_at(table, -2, 0, 0) == 5.0  # a repeat: the last wins
    assert len(table.warnings) == 1
    assert table.warnings[0].startswith(f"{path}: 3 reflections are given different F")


def test_missing_value_flag_and_no_values(tmp_path):
    path = write_mtz(tmp_path / "valm.mtz", [[1, 0, 0, -999.0], [0, 1, 0, 2.0]], [("F", "F")])
    mtz = gemmi.read_mtz_file(str(path))
    mtz.valm = -999.0
    mtz.write_to_file(str(path))
    table = read_mtz(path)
    assert set_hkls(table) == {(0, 1, 0), (0, -1, 0)}
    path = write_mtz(tmp_path / "empty.mtz", [[1, 0, 0, np.nan]], [("F", "F")])
    with pytest.raises(InputFileError, match="no reflection has a value in F"):
        read_mtz(path)


# ----------------------------------------------------------------------------------------------
# mmCIF structure factors


def test_sf_mmcif_round_trip_through_gemmi(tmp_path):
    rng = np.random.default_rng(2)
    cell = gemmi.UnitCell(30, 40, 50, 90, 90, 90)
    asu = gemmi.make_miller_array(cell, gemmi.SpaceGroup("P 21 21 21"), 5.0)
    F = rng.integers(1, 10_000, len(asu)) / 10
    sigma = np.ones(len(asu))
    mtz_path = write_mtz(tmp_path / "x.mtz", np.column_stack([asu, F, sigma]),
                         [("FP", "F"), ("SIGFP", "Q")], "P 21 21 21", cell.parameters)
    cif_text = gemmi.MtzToCif().write_cif_to_string(gemmi.read_mtz_file(str(mtz_path)))
    cif_path = tmp_path / "x-sf.cif"
    cif_path.write_text(cif_text)
    assert "_refln.F_meas_au" in cif_text
    assert file_kind(cif_path) == "sf-mmcif"
    from_cif = read_sf_mmcif(cif_path, default_F=2.0)
    from_mtz = read_mtz(mtz_path, default_F=2.0)
    assert from_cif.ranges == from_mtz.ranges
    assert np.array_equal(from_cif.F, from_mtz.F)
    assert from_cif.n_entries == from_mtz.n_entries
    assert from_cif.space_group == "P 21 21 21"
    assert from_cif.cell == (30, 40, 50, 90, 90, 90)
    assert np.array_equal(read_structure_factors(cif_path, 2.0).F, from_mtz.F)


SF_CIF = """\
data_first
_cell.length_a 10
loop_
_refln.index_h
_refln.index_k
_refln.index_l
_refln.intensity_meas
1 0 0 4.0

data_second
_cell.length_a 10
_cell.length_b 10
_cell.length_c 10
_cell.angle_alpha 90
_cell.angle_beta 90
_cell.angle_gamma 90
_symmetry.space_group_name_H-M 'P 1'
loop_
_refln.index_h
_refln.index_k
_refln.index_l
_refln.F_calc
_refln.pdbx_F_plus
_refln.pdbx_F_minus
_refln.F_meas_sigma_au
1 0 0 3.5 4.0 5.0 0.1
0 1 0 2.5 ? 6.0 0.1
"""


def test_sf_mmcif_blocks_and_columns(write_text):
    path = write_text("two-blocks.cif", SF_CIF)
    table = read_sf_mmcif(path)  # the first block with an amplitude
    assert F_at(table, 1, 0, 0) == F_at(table, -1, 0, 0) == 3.5
    assert table.warnings == [f"{path}: using amplitude column F_calc; the file also has "
                              "pdbx_F_plus, pdbx_F_minus (name a column to use another)"]
    anomalous = read_sf_mmcif(path, column="_refln.pdbx_F_minus")
    assert F_at(anomalous, 1, 0, 0) == 4.0 and F_at(anomalous, -1, 0, 0) == 5.0
    assert F_at(anomalous, 0, -1, 0) == 6.0  # F(+) of 0 1 0 is missing: that cell is not set
    assert set_hkls(anomalous) == {(1, 0, 0), (-1, 0, 0), (0, -1, 0)}
    with pytest.raises(InputFileError, match="not an amplitude column .intensity."):
        read_sf_mmcif(path, column="intensity_meas")
    with pytest.raises(InputFileError) as caught:
        read_sf_mmcif(path, column="F_meas_au")
    assert str(caught.value) == f"{path}: no _refln.F_meas_au in any data block"


def test_sf_mmcif_without_space_group(write_text):
    text = SF_CIF.split("data_second")[1].replace("_symmetry.space_group_name_H-M 'P 1'\n", "")
    path = write_text("nosg.cif", "data_second" + text)
    with pytest.raises(InputFileError, match="no space group"):
        read_sf_mmcif(path)


# ----------------------------------------------------------------------------------------------
# atomic models


def test_model_matches_gemmi_direct_summation(write_text):
    path = write_text("tiny.pdb", PDB_P1)
    table = model_structure_factors(path, dmin_A=2.0, default_F=-1.0)
    structure = gemmi.read_structure(str(path))
    calculator = gemmi.StructureFactorCalculatorX(structure.cell)
    for hkl in ([1, 0, 0], [1, 2, 3], [-1, -2, -3], [3, -4, 5], [-3, 4, -5], [0, 0, 7], [5, 1, -2]):
        expected = abs(calculator.calculate_sf_from_model(structure[0], hkl))
        assert F_at(table, *hkl) == pytest.approx(expected, rel=1e-6)
    # only reflections within the limit are set; F(000) is not
    assert F_at(table, 0, 0, 0) == -1.0
    d = np.array([structure.cell.calculate_d(list(hkl)) for hkl in set_hkls(table)])
    assert d.min() >= 2.0
    assert table.n_entries == len(gemmi.make_miller_array(
        structure.cell, gemmi.SpaceGroup("P 1"), 2.0, unique=False))
    assert table.cell == pytest.approx((12, 14, 16, 90, 95, 100))


def test_model_single_atom_gives_form_factor(write_text):
    # one carbon at the origin with B = 0: |F(h)| is the IT92 form factor at sin(theta)/lambda
    pdb = ("CRYST1   10.000   10.000   10.000  90.00  90.00  90.00 P 1           1\n"
           "ATOM      1  C   GLY A   1       0.000   0.000   0.000  1.00  0.00           C\n")
    table = model_structure_factors(write_text("c.pdb", pdb), dmin_A=3.0)
    for hkl in ((1, 0, 0), (1, 1, 0), (2, 1, -1), (0, 0, -3)):
        stol2 = sum(i * i for i in hkl) / 100 / 4
        expected = gemmi.Element("C").it92.calculate_sf(stol2)
        assert F_at(table, *hkl) == pytest.approx(expected, rel=1e-6)


def test_model_symmetry_expansion_and_absences(write_text):
    path = write_text("p21.pdb", PDB_P21)
    table = model_structure_factors(path, dmin_A=2.5)
    structure = gemmi.read_structure(str(path))  # symmetry images included by gemmi
    calculator = gemmi.StructureFactorCalculatorX(structure.cell)
    for hkl in ([1, 2, 3], [-1, 2, -3], [1, -2, 3], [-1, -2, -3], [2, 3, -1], [-2, 3, 1]):
        expected = abs(calculator.calculate_sf_from_model(structure[0], hkl))
        assert F_at(table, *hkl) == pytest.approx(expected, rel=1e-6)
    for k in (1, 3, -3):  # 0 k 0 with k odd: systematically absent in P 1 21 1
        assert F_at(table, 0, k, 0) == 0.0 and (0, k, 0) in set_hkls(table)
    assert table.space_group == "P 1 21 1"
    # the same model as mmCIF gives the same table
    structure.setup_entities()
    cif = path.with_suffix(".cif")
    structure.make_mmcif_document().write_file(str(cif))
    assert file_kind(cif) == "model"
    assert np.array_equal(read_structure_factors(cif, dmin_A=2.5).F, table.F)


# ----------------------------------------------------------------------------------------------
# bad files: one clear line each


def test_truncated_mtz(tmp_path):
    path = write_mtz(tmp_path / "whole.mtz", [[1, 2, 3, 10.0]], [("F", "F")])
    data = path.read_bytes()
    for size in (6, 100, len(data) // 2, len(data) - 80):
        cut = tmp_path / f"cut{size}.mtz"
        cut.write_bytes(data[:size])
        with pytest.raises(InputFileError) as caught:
            read_structure_factors(cut)
        assert_one_clear_line(caught.value, cut)
        assert "truncated" in str(caught.value)


def test_bad_files_give_one_line(tmp_path, write_text):
    cases = [
        (write_text("words.hkl", "hello world\n1 2 3 4\n"), {}, "expected 4 numbers"),
        (write_text("nocell.pdb", PDB_P1.split("\n", 1)[1]), {"dmin_A": 2},
         "no unit cell (CRYST1 record or _cell items)"),
        (write_text("noatoms.pdb", PDB_P1.split("\n", 1)[0] + "\nEND\n"), {"dmin_A": 2},
         "no atoms in the model"),
        (write_text("nodmin.pdb", PDB_P1), {}, "needs a resolution limit"),
        (write_text("baddmin.pdb", PDB_P1), {"dmin_A": 0.0}, "positive number"),
        (write_text("nandmin.pdb", PDB_P1), {"dmin_A": float("nan")}, "positive number"),
        (write_text("column.hkl", "1 2 3 4\n"), {"column": "F"}, "has no named columns"),
        (write_text("broken.cif", "data_x\nloop_\n_refln.index_h\n_refln.F_meas_au\n1 2 3\n"
                    "'unclosed\n"), {}, "cannot read mmCIF file"),
        (write_text("nolabel.cif", "data_x\nloop_\n_refln.index_h\n1\n"), {},
         "no amplitude column among index_h"),
        (tmp_path / "absent.mtz", {}, "cannot read file"),
    ]
    for path, options, message in cases:
        with pytest.raises(InputFileError) as caught:
            read_structure_factors(path, **options)
        assert_one_clear_line(caught.value, path)
        assert message in str(caught.value), (path, str(caught.value))


def test_gemmi_missing_is_explained(tmp_path, monkeypatch):
    path = write_mtz(tmp_path / "x.mtz", [[1, 2, 3, 10.0]], [("F", "F")])
    monkeypatch.setitem(sys.modules, "gemmi", None)  # import gemmi now raises ImportError
    with pytest.raises(InputFileError) as caught:
        read_structure_factors(path)
    assert str(caught.value) == (f'{path}: reading this file needs gemmi: pip install '
                                 '"torchbragg[formats]"')


# ----------------------------------------------------------------------------------------------
# text files and writing


@pytest.mark.parametrize("default_F", [0.0, -0.0, 3.0])
def test_text_files_read_as_read_hkl(write_text, default_F):
    path = write_text("t.hkl", "# c\n1 2 3 10.5\n-1 0 0 -2\n1 2 3 11\n")
    ours, theirs = read_structure_factors(path, default_F), read_hkl(path, default_F)
    assert ours.ranges == theirs.ranges
    assert np.array_equal(ours.F, theirs.F) and not np.signbit(ours.F).all()
    assert np.array_equal(np.signbit(ours.F), np.signbit(theirs.F))
    assert ours.n_entries == theirs.n_entries == 3
    assert ours.warnings == theirs.warnings and len(ours.warnings) == 2
    assert set_hkls(ours) == {(1, 2, 3), (-1, 0, 0)}


def test_write_hkl_text_writes_set_reflections_only(tmp_path, write_text):
    path = write_mtz(tmp_path / "w.mtz", [[1, 2, 3, 12.3], [0, 0, 1, 7.0]], [("F", "F")],
                     "P 21 21 21")
    table = read_mtz(path, default_F=1.0)
    out = tmp_path / "w.hkl"
    assert write_hkl_text(table, out) == 8 + 2
    lines = out.read_text().splitlines()
    assert lines[0] == "-1 -2 -3 12.3" and "0 0 -1 7.0" in lines and len(lines) == 10
    back = read_hkl(out, default_F=1.0)
    assert back.ranges == table.ranges and np.array_equal(back.F, table.F)
    assert back.n_entries == table.n_entries
    # straight from a file, and from a plain HKLTable
    assert write_hkl_text(path, tmp_path / "w2.hkl") == 10
    assert (tmp_path / "w2.hkl").read_text() == out.read_text()
    plain = HKLTable(0, 1, 0, 0, 0, 0, F=np.array([[[2.0]], [[0.25]]]), n_entries=2)
    assert write_hkl_text(plain, tmp_path / "p.hkl", default_F=2.0) == 1
    assert (tmp_path / "p.hkl").read_text() == "1 0 0 0.25\n"
    assert write_hkl_text(plain, tmp_path / "p.hkl") == 2


# ----------------------------------------------------------------------------------------------
# torchbragg-hkl


def test_converter_mtz_to_text(tmp_path, capsys):
    from torchbragg.cli.hkl_convert import main

    cell = gemmi.UnitCell(30, 30, 40, 90, 90, 90)
    asu = gemmi.make_miller_array(cell, gemmi.SpaceGroup("P 43 21 2"), 6.0)
    F = np.arange(len(asu)) / 4 + 0.1
    path = write_mtz(tmp_path / "in.mtz", np.column_stack([asu, F]), [("FP", "F")],
                     "P 43 21 2", cell.parameters)
    out = tmp_path / "out.hkl"
    assert main([str(path), str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.startswith(f"wrote {read_mtz(path).n_entries} reflections to {out}")
    for default_F in (0.0, 4.0):
        text, mtz = read_hkl(out, default_F), read_mtz(path, default_F=default_F)
        assert text.ranges == mtz.ranges and np.array_equal(text.F, mtz.F)
        assert text.n_entries == mtz.n_entries


def test_converter_model_and_bad_input(tmp_path, write_text, capsys):
    from torchbragg.cli.hkl_convert import main

    model = write_text("m.pdb", PDB_P21)
    assert main([str(model), str(tmp_path / "m.hkl"), "--dmin", "3"]) == 0
    assert read_hkl(tmp_path / "m.hkl").n_entries == model_structure_factors(model, 3).n_entries
    capsys.readouterr()
    bad = [
        ([str(model), str(tmp_path / "x.hkl")], f"{model}: an atomic model needs"),
        ([str(write_text("t.mtz", b"MTZ \x00\x00\x00")), "x"], "truncated MTZ"),
        ([str(model), "x", "--dmin", "-2"], "argument --dmin: must be a positive number"),
        ([str(model)], "the following arguments are required: OUT"),
        ([str(write_text("ok.hkl", "1 2 3 4\n")), str(tmp_path / "no" / "x.hkl")],
         "cannot write"),
    ]
    for argv, message in bad:
        assert main(argv) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        lines = captured.err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("torchbragg-hkl: error: ")
        assert message in lines[0]
    assert not (tmp_path / "x.hkl").exists()


def test_converter_entry_point_exits(tmp_path, monkeypatch):
    from torchbragg.cli.hkl_convert import main_exit

    monkeypatch.setattr(sys, "argv", ["torchbragg-hkl", str(tmp_path / "absent"), "x"])
    with pytest.raises(SystemExit) as caught:
        main_exit()
    assert caught.value.code == 2


# ----------------------------------------------------------------------------------------------
# end to end: -hkl with an MTZ renders as the text file does (needs -hkl wired to
# read_structure_factors; until then the text reader refuses the MTZ and the test skips)


def test_hkl_option_renders_mtz_as_text(tmp_path, write_text):
    import torchbragg

    half = friedel_half(2)
    F = 10 + np.arange(len(half)) / 4
    mtz = write_mtz(tmp_path / "x.mtz", np.column_stack([half, F]), [("F", "F")],
                    cell=(100, 100, 100, 90, 90, 90))
    # the text file written by hand: both mates of each pair with the pair's F
    text = tmp_path / "x.hkl"
    text.write_text("".join(f"{h} {k} {l} {f!r}\n{-h} {-k} {-l} {f!r}\n"
                            for (h, k, l), f in zip(half.tolist(), F.tolist(), strict=True)))
    command = ("-cell 100 100 100 90 90 90 -hkl {} -lambda 1 -N 5 -distance 100 -pixel 0.1 "
               "-detpixels 32 -default_F 0")
    from_mtz = torchbragg.Experiment.from_args(command.format(mtz), kernel="reference").render()
    from_text = torchbragg.Experiment.from_args(command.format(text), kernel="reference").render()
    assert float(from_text.max()) > 0
    assert np.array_equal(from_mtz.numpy(), from_text.numpy())
