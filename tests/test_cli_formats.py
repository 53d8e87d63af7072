"""--cbf, --nexus and --png on the command line: the same integers and geometry as the SMV
image, one ``writing`` line each, unchanged stdout without them, one-line errors before
rendering.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from golden_cases import run_main
from torchbragg.io import smv

fabio = pytest.importorskip("fabio")
h5py = pytest.importorskip("h5py")
nxmx = pytest.importorskip("nxmx")
pytest.importorskip("matplotlib")
from fabio.cbfimage import PilatusHeader  # noqa: E402

OK = ["-lambda", "1.2", "-N", "5", "-distance", "80", "-pixel", "0.1", "-detpixels", "32",
      "-cell", "40", "40", "40", "90", "90", "90", "-default_F", "100", "-noprogress",
      "-nonoise", "-nopgm", "-phi", "10", "-osc", "0.5", "-exposure", "0.25",
      "-floatfile", "f.bin", "-intfile", "i.img"]
FORMATS = ["--cbf", "i.cbf", "--nexus", "i.nxs", "--png", "i.png", "--png-rings", "5,2.5"]
NEW_LINES = ["writing i.cbf as 4-byte integers (miniCBF, byte-offset compressed)",
             "writing i.nxs as 4-byte integers (NeXus/NXmx HDF5, ",
             "writing i.png as a PNG preview (log scale)"]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def smv_header(path) -> dict[str, float]:
    header = smv.read_smv(path).header
    return {key: float(value) for key, value in header.items()
            if key not in ("BYTE_ORDER", "TYPE", "DIALS_ORIGIN", "BEAMLINE")}


def test_formats_hold_the_smv_integers_and_geometry(workdir):
    result = run_main(OK + ["-Xbeam", "1.5", "-Ybeam", "2.0"] + FORMATS)
    assert result.status == 0, result.stderr
    assert result.stderr == ""
    ints = smv.read_smv("i.img").pixels
    head = smv_header("i.img")
    pixel_mm = head["PIXEL_SIZE"]
    # MOSFLM: Fbeam = Ybeam + half a pixel, Sbeam = Xbeam + half a pixel
    beam_px = (20.5, 15.5)
    assert (head["DENZO_Y_BEAM"] / pixel_mm, head["DENZO_X_BEAM"] / pixel_mm) == \
        pytest.approx(beam_px)

    cbf = fabio.open("i.cbf")
    np.testing.assert_array_equal(cbf.data, ints)
    keys = PilatusHeader(cbf.header["_array_data.header_contents"])
    assert keys["Pixel_size"] == pytest.approx((pixel_mm / 1000, pixel_mm / 1000))
    assert keys["Detector_distance"] * 1000 == pytest.approx(head["DISTANCE"])
    assert keys["Wavelength"] == pytest.approx(head["WAVELENGTH"])
    assert keys["Beam_xy"] == pytest.approx(beam_px)
    assert keys["Start_angle"] == pytest.approx(head["OSC_START"]) == pytest.approx(10.0)
    assert keys["Angle_increment"] == pytest.approx(head["OSC_RANGE"]) == pytest.approx(0.5)
    assert keys["Exposure_time"] == pytest.approx(0.25)

    with h5py.File("i.nxs", "r") as handle:
        entry = nxmx.NXmx(handle).entries[0]
        detector = entry.instruments[0].detectors[0]
        np.testing.assert_array_equal(entry.data[0]["data"][0], ints)
        assert detector.distance.to("mm").magnitude == pytest.approx(head["DISTANCE"])
        assert (detector.beam_center_x.magnitude, detector.beam_center_y.magnitude) == \
            pytest.approx(beam_px)
        wavelength = entry.instruments[0].beams[0].incident_wavelength
        assert wavelength.to("angstrom").magnitude == pytest.approx(head["WAVELENGTH"])
        pixel = detector.modules[0].fast_pixel_direction[()].to("mm").magnitude
        assert pixel == pytest.approx([pixel_mm])

    assert (workdir / "i.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stdout_is_unchanged_but_for_one_line_per_format(workdir):
    plain = run_main(OK)
    extra = run_main(OK + FORMATS)
    assert plain.status == extra.status == 0, extra.stderr
    added = extra.stdout.splitlines()[len(plain.stdout.splitlines()):]
    assert extra.stdout.startswith(plain.stdout)
    assert len(added) == 3
    for line, start in zip(added, NEW_LINES, strict=True):
        assert line.startswith(start), line


@pytest.mark.parametrize("geometry", [["-mosflm"], ["-xds"], ["-dials"], ["-adxv"],
                                      ["-detector_rotx", "3", "-detector_roty", "-2"],
                                      ["-twotheta", "5"]],
                         ids=["mosflm", "xds", "dials", "adxv", "rotated", "twotheta"])
def test_nexus_beam_meets_the_detector_at_the_beam_centre(workdir, geometry):
    result = run_main(OK + geometry + ["--nexus", "g.nxs", "--nexus-compression", "gzip"])
    assert result.status == 0, result.stderr
    assert "(NeXus/NXmx HDF5, gzip compression)" in result.stdout
    with h5py.File("g.nxs", "r") as handle:
        detector = nxmx.NXmx(handle).entries[0].instruments[0].detectors[0]
        module = detector.modules[0]
        chain = nxmx.get_dependency_chain(module.fast_pixel_direction.depends_on)
        origin = nxmx.get_cumulative_transformation(chain)[0, :3, 3]
        fast, slow = module.fast_pixel_direction.vector, module.slow_pixel_direction.vector
        pixel = module.fast_pixel_direction[()].to("mm").magnitude[0]
        spot = origin + pixel * (detector.beam_center_x.magnitude * fast
                                 + detector.beam_center_y.magnitude * slow)
        # McStas: the beam runs along +z from the sample; it meets the plane at distance
        np.testing.assert_allclose(spot[:2], [0.0, 0.0], atol=1e-9)
        assert spot[2] == pytest.approx(detector.distance.to("mm").magnitude)
        centre = (detector.beam_center_x.magnitude, detector.beam_center_y.magnitude)
    if "-twotheta" not in geometry:  # nanoBragg measures the swung detector's otherwise
        head = smv_header("i.img")
        assert centre == pytest.approx((head["DENZO_Y_BEAM"] / head["PIXEL_SIZE"],
                                        head["DENZO_X_BEAM"] / head["PIXEL_SIZE"]), rel=1e-5)


@pytest.mark.parametrize(("extra", "words"), [
    (["--cbf", "nowhere/i.cbf"], ["cannot write nowhere/i.cbf", "does not exist"]),
    (["--nexus", "."], ["cannot write .: it is a folder"]),
    (["--png", "p.png", "--png-rings", "3,x"], ["--png-rings", "got '3,x'"]),
    (["--png-rings", "3"], ["--png-rings", "--png FILE"]),
    (["--nexus", "n.nxs", "--nexus-compression", "zip"], ["--nexus-compression", "'zip'"]),
    (["--nexus-compression", "gzip"], ["--nexus FILE"]),
    (["--cbf"], ["--cbf", "expected a value"]),
])
def test_bad_options_are_one_error_line_before_rendering(workdir, extra, words):
    result = run_main(OK + extra)
    assert result.status == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("torchbragg: error:"), lines
    assert all(w in lines[0] for w in words), lines[0]
    assert not (workdir / "f.bin").exists()


@pytest.mark.parametrize(("module", "option", "words"), [
    ("h5py", ["--nexus", "n.nxs"], ["--nexus needs h5py", 'pip install "torchbragg[formats]"']),
    ("matplotlib", ["--png", "p.png"], ["--png needs matplotlib", "torchbragg[formats]"]),
    ("hdf5plugin", ["--nexus", "n.nxs", "--nexus-compression", "bslz4"],
     ["bslz4 needs hdf5plugin", "torchbragg[formats]"]),
])
def test_missing_package_is_one_error_line_before_rendering(workdir, monkeypatch, module,
                                                            option, words):
    monkeypatch.setitem(sys.modules, module, None)
    if module == "matplotlib":
        for name in [m for m in sys.modules if m.startswith("matplotlib.")]:
            monkeypatch.setitem(sys.modules, name, None)
    result = run_main(OK + option)
    assert result.status == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and all(w in lines[0] for w in words), lines
    assert not (workdir / "f.bin").exists()


def test_nexus_without_hdf5plugin_falls_back_to_gzip(workdir, monkeypatch):
    monkeypatch.setitem(sys.modules, "hdf5plugin", None)
    result = run_main(OK + ["--nexus", "n.nxs"])
    assert result.status == 0, result.stderr
    assert "writing n.nxs as 4-byte integers (NeXus/NXmx HDF5, gzip compression)" in \
        result.stdout


def test_usage_lists_the_format_options(workdir):
    result = run_main(["--help"])
    for option in ("--cbf FILE", "--nexus FILE", "--nexus-compression", "--png FILE",
                   "--png-rings"):
        assert option in result.stdout
