"""NeXus/NXmx output: h5py and the nxmx reader get the image and the geometry back."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from torchbragg.io.image_geometry import ImageGeometry
from torchbragg.io.nexus import choose_compression, mcstas_basis, write_nexus

h5py = pytest.importorskip("h5py")
nxmx = pytest.importorskip("nxmx")

GEOMETRY = ImageGeometry.simple(48, 40, pixel_size_mm=0.075, distance_mm=180.0,
                                wavelength_A=1.2, beam_center_fast_px=21.5,
                                beam_center_slow_px=17.25, exposure_s=0.05,
                                phi_start_deg=30.0, phi_increment_deg=0.25, thickness_mm=0.32)


def counts(seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 65536, size=GEOMETRY.shape).astype(np.uint16)


def read(path):
    """(handle, entry, detector, module) of a written file; close the handle after use."""
    handle = h5py.File(path, "r")
    entry = nxmx.NXmx(handle).entries[0]
    detector = entry.instruments[0].detectors[0]
    return handle, entry, detector, detector.modules[0]


def origin_and_axes(module):
    """The panel origin (mm, McStas) and fast/slow unit vectors, as dxtbx computes them."""
    chain = nxmx.get_dependency_chain(module.fast_pixel_direction.depends_on)
    origin = nxmx.get_cumulative_transformation(chain)[0, :3, 3]
    return origin, module.fast_pixel_direction.vector, module.slow_pixel_direction.vector


@pytest.mark.parametrize("compression", ["auto", "gzip", "none", "bslz4"])
def test_nxmx_reads_image_and_geometry(tmp_path, compression):
    if compression == "bslz4":
        pytest.importorskip("hdf5plugin")
    pixels = counts()
    path = tmp_path / "frame.nxs"
    write_nexus(path, pixels, GEOMETRY, compression=compression)
    handle, entry, detector, module = read(path)
    with handle:
        assert entry.definition == "NXmx"
        data = entry.data[0]
        frames = data[data.signal]
        assert frames.shape == (1, 40, 48) and frames.dtype == np.int32
        np.testing.assert_array_equal(frames[0], pixels)
        np.testing.assert_array_equal(detector.data[0], pixels)
        beam = entry.instruments[0].beams[0]
        assert beam.incident_wavelength.to("angstrom").magnitude == pytest.approx(1.2)
        assert detector.distance.to("mm").magnitude == pytest.approx(180.0)
        assert detector.beam_center_x.magnitude == pytest.approx(21.5)
        assert detector.beam_center_y.magnitude == pytest.approx(17.25)
        assert detector.count_time.to("s").magnitude == pytest.approx(0.05)
        assert detector.sensor_material == "Silicon"
        assert detector.sensor_thickness.to("mm").magnitude == pytest.approx(0.32)
        assert detector.saturation_value == 65535
        assert module.fast_pixel_direction[()].to("mm").magnitude == pytest.approx([0.075])
        assert module.slow_pixel_direction[()].to("mm").magnitude == pytest.approx([0.075])
        np.testing.assert_array_equal(module.data_size, [40, 48])
        expected = {"bslz4": "32008", "gzip": "gzip", "none": None}[choose_compression(
            compression)]
        filters = handle["/entry/instrument/detector/data"]._filters
        assert (expected in filters) if expected else not filters


def test_direct_beam_hits_the_beam_centre(tmp_path):
    write_nexus(tmp_path / "f.nxs", counts(), GEOMETRY)
    handle, _, detector, module = read(tmp_path / "f.nxs")
    with handle:
        origin, fast, slow = origin_and_axes(module)
        assert detector.depends_on.path == "/entry/instrument/detector/transformations/detector_z"
    # McStas: beam along +z; MOSFLM's fast axis (+z) is -x, its slow axis (-y) is -y
    np.testing.assert_allclose(fast, [-1, 0, 0], atol=1e-15)
    np.testing.assert_allclose(slow, [0, -1, 0], atol=1e-15)
    spot = origin + 0.075 * (21.5 * fast + 17.25 * slow)
    np.testing.assert_allclose(spot, [0.0, 0.0, 180.0], atol=1e-12)


def test_direct_beam_of_an_untilted_detector_is_the_beam_centre():
    assert GEOMETRY.direct_beam() == pytest.approx((21.5, 17.25, 180.0))


def test_scan_axis_start_and_increment(tmp_path):
    write_nexus(tmp_path / "f.nxs", counts(), GEOMETRY)
    with h5py.File(tmp_path / "f.nxs", "r") as handle:
        sample = nxmx.NXmx(handle).entries[0].samples[0]
        axes = nxmx.get_rotation_axes(nxmx.get_dependency_chain(sample.depends_on))
        np.testing.assert_allclose(axes.axes, [[-1.0, 0.0, 0.0]], atol=1e-15)
        assert axes.angles == pytest.approx([30.0])
        phi = sample.depends_on
        assert phi.end[0].to("deg").magnitude == pytest.approx(30.25)
        assert phi.increment_set.to("deg").magnitude == pytest.approx(0.25)


def test_mosflm_frame_matches_nanobraggs_dials_conversion():
    basis = mcstas_basis((1, 0, 0), (0, 0, 1))
    # nanoBragg's DIALS origin is (z, y, -x); McStas is DIALS turned about y: (-z, y, x)
    np.testing.assert_array_equal(basis, [[0, 0, -1], [0, 1, 0], [1, 0, 0]])


@pytest.mark.parametrize(("beam", "spindle"), [((0, 0, 1), (1, 0, 0)), ((0, 0, 1), (0, 1, 0)),
                                               ((1, 0, 0), (1, 0, 0)), ((0.6, 0.8, 0), (0, 0, 1))])
def test_basis_is_a_rotation_with_the_beam_along_z(beam, spindle):
    basis = mcstas_basis(beam, spindle)
    np.testing.assert_allclose(basis @ basis.T, np.eye(3), atol=1e-15)
    assert np.linalg.det(basis) == pytest.approx(1.0)
    np.testing.assert_allclose(basis @ np.asarray(beam, dtype=float), [0, 0, 1], atol=1e-15)


def test_float_images_are_float32(tmp_path):
    photons = np.random.default_rng(4).random(GEOMETRY.shape) * 1e3
    write_nexus(tmp_path / "f.nxs", photons, GEOMETRY, compression="gzip")
    with h5py.File(tmp_path / "f.nxs", "r") as handle:
        data = handle["/entry/data/data"]
        assert data.dtype == np.float32 and "saturation_value" not in handle[
            "/entry/instrument/detector"]
        np.testing.assert_array_equal(data[0], photons.astype(np.float32))


def test_auto_falls_back_to_gzip_without_hdf5plugin(monkeypatch):
    monkeypatch.setitem(sys.modules, "hdf5plugin", None)
    assert choose_compression("auto") == "gzip"
    with pytest.raises(ImportError, match=r"torchbragg\[formats\]"):
        choose_compression("bslz4")


def test_missing_h5py_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match=r'pip install "torchbragg\[formats\]"'):
        write_nexus(tmp_path / "f.nxs", counts(), GEOMETRY)


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="compression"):
        write_nexus(tmp_path / "f.nxs", counts(), GEOMETRY, compression="zip")
    with pytest.raises(ValueError, match="32-bit"):
        write_nexus(tmp_path / "f.nxs", counts().astype(np.int64) + 2**31, GEOMETRY)
    with pytest.raises(ValueError, match="differs"):
        write_nexus(tmp_path / "f.nxs", counts().T, GEOMETRY)
    with pytest.raises(OSError, match=r"cannot write .*missing/f\.nxs"):
        write_nexus(tmp_path / "missing" / "f.nxs", counts(), GEOMETRY)
    assert list(tmp_path.iterdir()) == []
