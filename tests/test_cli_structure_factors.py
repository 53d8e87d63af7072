"""-hkl takes MTZ, mmCIF and model files by content, with --hkl-column and --model-dmin."""

from __future__ import annotations

import gemmi
import numpy as np
import pytest

from golden_cases import run_main

OK = ["-cell", "20", "30", "40", "90", "90", "90", "-lambda", "1", "-N", "5", "-distance",
      "100", "-pixel", "0.5", "-detpixels", "24", "-noprogress", "-nonoise", "-nopgm",
      "-floatfile", "f.bin"]
MODEL = """\
CRYST1   20.000   30.000   40.000  90.00  90.00  90.00 P 1           1
ATOM      1  N   GLY A   1       1.000   2.000   3.000  1.00 10.00           N
ATOM      2  CA  GLY A   1       2.400   2.100   3.200  1.00 12.00           C
HETATM    3  O   HOH A   2       5.000   6.000   1.000  1.00 20.00           O
END
"""


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _mtz(path, columns: dict[str, float]) -> None:
    """A P1 MTZ with one reflection of each Friedel pair up to |h|,|k|,|l| <= 2, constant F."""
    box = np.array(np.meshgrid(*[np.arange(-2, 3)] * 3, indexing="ij")).reshape(3, -1).T
    first = np.array([next((i for i in row if i), 0) for row in box])
    half = box[first >= 0]
    mtz = gemmi.Mtz(with_base=True)
    mtz.spacegroup = gemmi.SpaceGroup("P 1")
    mtz.set_cell_for_all(gemmi.UnitCell(20, 30, 40, 90, 90, 90))
    mtz.add_dataset("crystal")
    for label in columns:
        mtz.add_column(label, "F")
    values = np.tile(np.array(list(columns.values()), dtype=np.float32), (len(half), 1))
    mtz.set_data(np.column_stack([half.astype(np.float32), values]))
    mtz.write_to_file(str(path))


def _image(workdir) -> np.ndarray:
    return np.fromfile(workdir / "f.bin", dtype=np.float32)


def test_mtz_column_chosen_or_named(workdir):
    _mtz(workdir / "x.mtz", {"FP": 10.0, "FC": 20.0})
    result = run_main(OK + ["-hkl", "x.mtz"])
    assert result.status == 0, result.stderr
    chosen = _image(workdir)
    assert "FP" in result.stderr  # which column was read, among the others
    assert run_main(OK + ["-hkl", "x.mtz", "--hkl-column", "FC"]).status == 0
    named = _image(workdir)
    assert chosen.max() > 0
    np.testing.assert_allclose(named, 4 * chosen, rtol=1e-6)  # F doubled: I x 4
    bad = run_main(OK + ["-hkl", "x.mtz", "--hkl-column=FX"])
    assert bad.status == 2
    [line] = bad.stderr.splitlines()
    assert "FX" in line and "x.mtz" in line


def test_model_rendered_to_the_detector_corner_or_a_given_resolution(workdir):
    (workdir / "m.pdb").write_text(MODEL)
    result = run_main(OK + ["-hkl", "m.pdb"])
    assert result.status == 0, result.stderr
    assert "computing structure factors of the model to" in result.stdout
    assert _image(workdir).max() > 0
    assert run_main(OK + ["-hkl", "m.pdb", "--model-dmin", "1e9"]).status == 2  # no reflection
    bad = run_main(OK + ["-hkl", "m.pdb", "--model-dmin", "-1"])
    assert bad.status == 2 and "--model-dmin" in bad.stderr


@pytest.mark.parametrize(("extra", "warned"), [([], False), (["-twotheta", "20"], True),
                                                (["-adxv"], True), (["-xds"], False)])
def test_cbf_warns_when_its_header_cannot_hold_the_geometry(workdir, extra, warned):
    argv = ["-cell", "100", "100", "100", "90", "90", "90", "-default_F", "100", "-lambda", "6.2",
            "-N", "5", "-distance", "100", "-pixel", "0.1", "-detpixels", "24", "-noprogress",
            "-nonoise", "-nopgm", "--cbf", "i.cbf", *extra]
    result = run_main(argv)
    assert result.status == 0, result.stderr
    assert ("cannot describe this detector" in result.stderr) == warned, result.stderr
    assert (workdir / "i.cbf").exists()


def test_model_resolution_covers_every_step(workdir):
    """By default F reach past the detector corner by the rounding and interpolation margins:
    the image equals one computed from F to a much finer resolution."""
    (workdir / "m.pdb").write_text(MODEL)
    for extra in (["-N", "1"], ["-N", "3", "-curved_det", "-nointerpolate"]):
        base = OK[:-1] + ["a.bin", "-pixel", "0.5", "-detpixels", "128", "-hkl", "m.pdb", *extra]
        assert run_main(base).status == 0
        fine = base[:-len(extra)] + extra + ["--model-dmin", "1.0"]
        fine[fine.index("a.bin")] = "b.bin"
        assert run_main(fine).status == 0
        a = np.fromfile(workdir / "a.bin", np.float32)
        b = np.fromfile(workdir / "b.bin", np.float32)
        assert b.max() > 0
        np.testing.assert_array_equal(a, b)


def test_reflection_file_checks(workdir):
    (workdir / "m.pdb").write_text(MODEL)
    (workdir / "x.hkl").write_text("1 0 0 10\n")
    other_cell = run_main(["-cell", "20", "31", "40", "90", "90", "90"] + OK[7:]
                          + ["-hkl", "m.pdb"])
    assert other_cell.status == 0
    assert "has the cell 20 30 40 90 90 90 but the crystal's is 20 31 40 90 90 90" in \
        other_cell.stderr
    text_dmin = run_main(OK + ["-hkl", "x.hkl", "--model-dmin", "2"])
    assert text_dmin.status == 2 and "--model-dmin applies to a model" in text_dmin.stderr
    import gzip

    (workdir / "m.pdb.gz").write_bytes(gzip.compress(MODEL.encode()))
    zipped = run_main(OK + ["-hkl", "m.pdb.gz"])
    assert zipped.status == 2 and "gzip-compressed" in zipped.stderr
    bad = MODEL.replace("   1.000   2.000   3.000", "     nan   2.000   3.000")
    (workdir / "nan.pdb").write_text(bad)
    nan_model = run_main(OK + ["-hkl", "nan.pdb"])
    assert nan_model.status == 2 and "not finite" in nan_model.stderr
    huge = run_main(OK + ["-hkl", "m.pdb", "--model-dmin", "0.01"])
    assert huge.status == 2 and "give a larger resolution limit" in huge.stderr


@pytest.mark.parametrize("option", [["--hkl-column", "F"], ["--model-dmin", "2"]])
def test_structure_factor_options_need_an_hkl_file(workdir, option):
    result = run_main(OK + ["-default_F", "10"] + option)
    assert result.status == 2
    assert f"{option[0]} applies to an -hkl file" in result.stderr
