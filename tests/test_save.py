"""Experiment.save writes the command line's formats from Python, with the same pixels."""

from __future__ import annotations

import fabio
import gemmi
import h5py
import numpy as np
import pytest

import torchbragg as tb
from golden_cases import run_main
from torchbragg.io.smv import read_smv

ARGS = ("-cell 100 100 100 90 90 90 -default_F 100 -lambda 6.2 -N 5 -distance 100 -pixel 0.1 "
        "-detpixels 32 -Xbeam 1.7 -Ybeam 1.5")


@pytest.fixture(scope="module")
def experiment():
    return tb.Experiment.from_args(ARGS, kernel="reference")


@pytest.fixture(scope="module")
def command_line_outputs(tmp_path_factory):
    """The same run through the command line: float, SMV, CBF and NeXus files."""
    folder = tmp_path_factory.mktemp("cli")
    old = __import__("os").getcwd()
    __import__("os").chdir(folder)
    try:
        result = run_main(ARGS.split() + ["-nonoise", "-noprogress", "-floatfile", "f.bin",
                                          "-intfile", "i.img", "-pgmfile", "g.pgm",
                                          "--cbf", "i.cbf", "--nexus", "i.nxs"])
    finally:
        __import__("os").chdir(old)
    assert result.status == 0, result.stderr
    return folder


def test_every_format_matches_the_command_line(experiment, command_line_outputs, tmp_path):
    image = experiment.render()
    cli = command_line_outputs
    assert experiment.save(tmp_path / "f.bin", image) == "float"
    assert (tmp_path / "f.bin").read_bytes() == (cli / "f.bin").read_bytes()
    assert experiment.save(tmp_path / "i.img", image) == "smv"
    assert (tmp_path / "i.img").read_bytes() == (cli / "i.img").read_bytes()
    assert experiment.save(tmp_path / "g.pgm", image) == "pgm"
    assert (tmp_path / "g.pgm").read_bytes() == (cli / "g.pgm").read_bytes()
    experiment.save(tmp_path / "i.cbf", image)
    np.testing.assert_array_equal(fabio.open(str(tmp_path / "i.cbf")).data,
                                  fabio.open(str(cli / "i.cbf")).data)
    np.testing.assert_array_equal(fabio.open(str(tmp_path / "i.cbf")).data,
                                  read_smv(cli / "i.img").pixels)
    experiment.save(tmp_path / "i.nxs", image)
    with h5py.File(tmp_path / "i.nxs") as mine, h5py.File(cli / "i.nxs") as theirs:
        np.testing.assert_array_equal(mine["/entry/data/data"][0], theirs["/entry/data/data"][0])
    assert experiment.save(tmp_path / "p.png", image, rings_A=[3.0]) == "png"
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_scale_and_unknown_format(experiment, tmp_path):
    image = experiment.render()
    experiment.save(tmp_path / "s.img", image, scale=2.0, adc=0.0)
    expected = np.floor(np.clip(image.numpy().astype(np.float32) * 2.0, 0, 65535) + 0.5)
    np.testing.assert_array_equal(read_smv(tmp_path / "s.img").pixels, expected)
    with pytest.raises(ValueError, match="format"):
        experiment.save(tmp_path / "x.tiff", image)
    with pytest.raises(ValueError, match="shape"):
        experiment.save(tmp_path / "x.bin", image[:4])


def test_structure_factors_from_an_mtz_in_python(tmp_path):
    mtz = gemmi.Mtz(with_base=True)
    mtz.spacegroup = gemmi.SpaceGroup("P 1")
    mtz.set_cell_for_all(gemmi.UnitCell(100, 100, 100, 90, 90, 90))
    mtz.add_dataset("crystal")
    mtz.add_column("FP", "F")
    mtz.add_column("FC", "F")
    mtz.set_data(np.array([[0, 0, 1, 5, 50], [1, 0, 0, 6, 60], [1, 1, 0, 7, 70]], np.float32))
    mtz.write_to_file(str(tmp_path / "x.mtz"))
    parts = [tb.detector(distance_mm=100, pixel_size_mm=0.2, pixels=64),
             tb.crystal(cell=(100, 100, 100, 90, 90, 90), n_cells=5),
             tb.beam(wavelength_A=6.2)]
    with pytest.warns(UserWarning, match="using amplitude column FP; the file also has FC"):
        chosen = tb.Experiment(*parts, tb.structure_factors(hkl_file=tmp_path / "x.mtz"))
    named = tb.Experiment(*parts, tb.structure_factors(hkl_file=tmp_path / "x.mtz", column="FC"))
    a, b = chosen.render(), named.render()
    assert float(a.max()) > 0
    np.testing.assert_allclose(b.numpy(), 100 * a.numpy(), rtol=1e-9)
    with pytest.raises(ValueError, match="hkl_file"):
        tb.structure_factors(column="FC")
