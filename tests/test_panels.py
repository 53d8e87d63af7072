"""Multi-panel detectors: split detectors, CrystFEL geometry files, bad files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import torchbragg as tb
from torchbragg.io.errors import InputFileError
from torchbragg.panels import (
    MOSFLM_FROM_CRYSTFEL,
    MultiPanelDetector,
    Panel,
    crystfel_to_lab,
    read_crystfel_geom,
    render_panels,
    single_panel,
    split_detector,
)

# Panels are rendered by a simulator of their own, whose pixel positions are computed as
# pix0' + (s' + 0.5) p sdet with pix0' = pix0 + k p sdet; the single detector adds the same
# terms in another order, so positions agree to rounding (about 1e-16 relative), not bit for
# bit. Intensities then agree to about 1e-15 relative, except near the zeros of the lattice
# factor, where a relative error of a few 1e-13 was seen: hence rtol 1e-12 with an absolute
# floor of 1e-12 times the image's brightest pixel.
RTOL = 1e-12


def assert_same(image: torch.Tensor, reference: torch.Tensor) -> None:
    torch.testing.assert_close(image, reference, rtol=RTOL,
                               atol=RTOL * float(reference.abs().max()))


def experiment(**detector) -> tb.Experiment:
    return tb.Experiment(detector=tb.detector(**detector),
                         crystal=tb.crystal(cell=(100, 100, 100, 90, 90, 90), n_cells=5,
                                            misset_deg=(5, 3, 1)),
                         beam=tb.beam(wavelength_A=6.2),
                         structure_factors=tb.structure_factors(default_F=100),
                         kernel="reference")


@pytest.fixture(scope="module")
def split_case():
    exp = experiment(pixels=(48, 40), pixel_size_mm=0.5, distance_mm=100,
                     rotations_deg=(1, 2, 3))
    with torch.no_grad():
        return exp, exp.render()


@pytest.mark.parametrize("fast_parts, slow_parts", [(1, 2), (2, 1)])
def test_halves_render_the_single_panel_image(split_case, fast_parts, slow_parts):
    exp, whole = split_case
    assert whole.sum() > 0
    panels = split_detector(exp.config, fast_parts, slow_parts)
    with torch.no_grad():
        images = render_panels(exp, panels)
    assert list(images) == panels.names and len(panels) == 2
    nf, ns = 48 // fast_parts, 40 // slow_parts
    for i in range(slow_parts):
        for j in range(fast_parts):
            image = images[f"s{i}f{j}"]
            assert image.shape == (ns, nf)
            part = whole[i * ns:(i + 1) * ns, j * nf:(j + 1) * nf]
            assert_same(image, part)
    assert sum(float(im.sum()) for im in images.values()) > 0


def test_gradients_flow_through_shared_parameters(split_case):
    exp, _ = split_case
    panels = split_detector(exp.config, 1, 2)
    n = torch.tensor([5.0, 5.0, 5.0], dtype=torch.float64, requires_grad=True)
    images = render_panels(exp, panels, values={"crystal.n_cells": n})
    sum(im.sum() for im in images.values()).backward()
    assert n.grad is not None and torch.isfinite(n.grad).all() and (n.grad != 0).any()


def test_crystfel_frame_mapping():
    assert np.array_equal(crystfel_to_lab(), MOSFLM_FROM_CRYSTFEL)
    assert np.isclose(np.linalg.det(MOSFLM_FROM_CRYSTFEL), 1.0)
    # the beam (CrystFEL +z) runs along MOSFLM's +x
    assert np.array_equal(MOSFLM_FROM_CRYSTFEL @ [0, 0, 1], [1, 0, 0])


def _geom_text(corner_xy, fs, ss, clen_m, res, n=32) -> str:
    """Four n x n panels: the quadrants of one 2n x 2n panel with its first corner at
    ``corner_xy`` (pixels) and fast/slow directions ``fs``/``ss`` (CrystFEL, in-plane)."""
    lines = ["; four quadrants", f"res = {res!r}", f"clen = {clen_m!r}",
             "photon_energy = 2000", "adu_per_eV = 1", ""]
    for i in range(2):
        for j in range(2):
            name = f"q{i}{j}"
            cx = float(corner_xy[0] + j * n * fs[0] + i * n * ss[0])
            cy = float(corner_xy[1] + j * n * fs[1] + i * n * ss[1])
            lines += [f"{name}/min_fs = {j * n}", f"{name}/max_fs = {j * n + n - 1}",
                      f"{name}/min_ss = {i * n}", f"{name}/max_ss = {i * n + n - 1}",
                      f"{name}/fs = {fs[0]:+.1f}x {fs[1]:+.1f}y",
                      f"{name}/ss = {ss[0]:+.1f}x {ss[1]:+.1f}y",
                      f"{name}/corner_x = {cx!r}", f"{name}/corner_y = {cy!r}",
                      f"{name}/coffset = 0.0", ""]
    lines += ["rigid_group_all = q00,q01,q10,q11", "rigid_group_collection_det = all", ""]
    return "\n".join(lines)


def test_crystfel_quadrants_render_like_one_panel(tmp_path):
    res = 5000.0  # 0.2 mm pixels
    exp = experiment(pixels=64, pixel_size_mm=0.2, distance_mm=100)
    whole_panel = single_panel(exp.config)
    corner = MOSFLM_FROM_CRYSTFEL.T @ np.asarray(whole_panel.origin_mm) * 1e-3  # metres
    fs = MOSFLM_FROM_CRYSTFEL.T @ whole_panel.fast
    ss = MOSFLM_FROM_CRYSTFEL.T @ whole_panel.slow
    assert np.allclose(fs, [-1, 0, 0]) and np.allclose(ss, [0, -1, 0])
    path = tmp_path / "quad.geom"
    path.write_text(_geom_text(corner[:2] * res, fs, ss, float(corner[2]), res))
    det = read_crystfel_geom(path)
    assert det.names == ["q00", "q01", "q10", "q11"] and det.photon_energy_eV == 2000.0
    assert all(p.fpixels == p.spixels == 32 and p.pixel_size_mm == 0.2 for p in det)
    with torch.no_grad():
        whole = exp.render()
        images = render_panels(exp, det)
    assert sum(float(im.sum()) for im in images.values()) > 0
    for i in range(2):
        for j in range(2):
            part = whole[i * 32:(i + 1) * 32, j * 32:(j + 1) * 32]
            assert_same(images[f"q{i}{j}"], part)


def test_crystfel_panels_around_the_beam_have_spots(tmp_path):
    # four panels of 32 x 32, fs = +x, ss = +y, around the beam at clen 0.1 m
    path = tmp_path / "four.geom"
    path.write_text(_geom_text((-32.0, -32.0), (1.0, 0.0), (0.0, 1.0), 0.1, 5000.0))
    det = read_crystfel_geom(path)
    p = det["q00"]
    assert np.allclose(p.origin_mm, [100.0, -6.4, 6.4])  # CrystFEL (-6.4, -6.4, 100) mm
    assert np.allclose(p.fast, [0, 0, -1]) and np.allclose(p.slow, [0, 1, 0])
    assert np.allclose(p.normal, [1, 0, 0])  # facing the sample, along the beam
    exp = experiment(pixels=16, distance_mm=50)
    with torch.no_grad():
        images = render_panels(exp, det)
    for image in images.values():
        assert image.shape == (32, 32) and torch.isfinite(image).all()
        # a Bragg spot: the brightest pixel stands far above the panel's median
        assert image.max() > 100 * image.median()


def test_panel_checks_its_values():
    with pytest.raises(ValueError, match="unit vector"):
        Panel("a", 2, 2, 0.1, (0, 0, 100), (0, 0, 2), (0, 1, 0))
    with pytest.raises(ValueError, match="positive"):
        Panel("a", 0, 2, 0.1, (0, 0, 100), (0, 0, 1), (0, 1, 0))
    p = Panel("a", 2, 2, 0.1, (0, 0, 100), (0, 0, 1), (0, 1, 0))
    with pytest.raises(ValueError, match="unique"):
        MultiPanelDetector((p, p))


GOOD = ["res = 5000", "clen = 0.1", "p0/min_fs = 0", "p0/max_fs = 31", "p0/min_ss = 0",
        "p0/max_ss = 31", "p0/fs = +1.0x -0.0y", "p0/ss = 0.0x +1.0y", "p0/corner_x = -16",
        "p0/corner_y = -16"]


@pytest.mark.parametrize("index, line, message", [
    (4, "p0/max_fs 31", "expected 'key = value'"),
    (5, "p0/max_ss = 3x1", "p0/max_ss: expected a number"),
    (6, "p0/fs = +1.0q", "p0/fs: expected a direction"),
    (8, "p0/corner_x = ", "expected 'key = value'"),
    (1, "clen = /LCLS/detector_1/EncoderValue", "clen is read from the image header"),
    (4, "p0/min_ss = 1.5", "expected a pixel index"),
])
def test_malformed_geom_names_file_and_line(tmp_path, index, line, message):
    lines = list(GOOD)
    lines[index] = line
    path = tmp_path / "bad.geom"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputFileError, match=message) as err:
        read_crystfel_geom(path)
    assert str(err.value).startswith(f"{path} line {index + 1}: ")


def test_geom_missing_keys_and_header_clen(tmp_path):
    path = tmp_path / "short.geom"
    path.write_text("\n".join(GOOD[:2] + GOOD[3:]) + "\n")  # no p0/min_fs
    with pytest.raises(InputFileError, match="panel p0 lacks min_fs") as err:
        read_crystfel_geom(path)
    assert str(err.value).startswith(str(path))
    path.write_text("\n".join(GOOD[1:]) + "\n")  # no res
    with pytest.raises(InputFileError, match="lacks res"):
        read_crystfel_geom(path)
    path.write_text("res = 5000\n")
    with pytest.raises(InputFileError, match="no panels"):
        read_crystfel_geom(path)
    lines = list(GOOD)
    lines[1] = "clen = /LCLS/detector_1/EncoderValue"
    path.write_text("\n".join(lines) + "\n")
    assert read_crystfel_geom(path, clen_m=0.2)["p0"].origin_mm[0] == pytest.approx(200.0)
    with pytest.raises(InputFileError, match="cannot read"):
        read_crystfel_geom(tmp_path / "absent.geom")


def test_mirrored_panels_face_the_sample_and_mirror_the_image(tmp_path):
    """fs/ss paired the other way round: same pixels in reversed rows, never negative."""
    plain, mirrored = tmp_path / "plain.geom", tmp_path / "mirrored.geom"
    plain.write_text(_geom_text((-32.0, -32.0), (1.0, 0.0), (0.0, 1.0), 0.1, 5000.0))
    mirrored.write_text(_geom_text((-32.0, 32.0), (1.0, 0.0), (0.0, -1.0), 0.1, 5000.0))
    exp = experiment(pixels=16, distance_mm=50)
    with torch.no_grad():
        a = render_panels(exp, read_crystfel_geom(plain))
        b = render_panels(exp, read_crystfel_geom(mirrored))
    assert read_crystfel_geom(mirrored)["q00"].normal == (1.0, 0.0, 0.0)
    for i in range(2):  # the mirrored file's q{i}{j} covers the plain q{1-i}{j}, rows reversed
        for j in range(2):
            assert float(b[f"q{i}{j}"].min()) >= 0
            assert_same(b[f"q{i}{j}"], torch.flip(a[f"q{1 - i}{j}"], [0]))


@pytest.mark.parametrize(("clen", "origin_x_mm"), [("0.1", 100.0), ("0.1 m", 100.0),
                                                   ("100 mm", 100.0), ("250mm", None)])
def test_clen_with_units(tmp_path, clen, origin_x_mm):
    path = tmp_path / "c.geom"
    path.write_text(_geom_text((-32.0, -32.0), (1.0, 0.0), (0.0, 1.0), 0.1, 5000.0)
                    .replace("clen = 0.1", f"clen = {clen}"))
    if origin_x_mm is None:  # not a length: a header path, which needs clen_m
        with pytest.raises(InputFileError, match="clen_m"):
            read_crystfel_geom(path)
        return
    assert read_crystfel_geom(path)["q00"].origin_mm[0] == pytest.approx(origin_x_mm)


def test_geom_steps_must_be_one_pixel_and_panels_face_the_beam(tmp_path):
    path = tmp_path / "s.geom"
    path.write_text(_geom_text((-32.0, -32.0), (2.0, 0.0), (0.0, 1.0), 0.1, 5000.0))
    with pytest.raises(InputFileError, match="q00/fs has length 2"):
        read_crystfel_geom(path)
    path.write_text(_geom_text((-32.0, -32.0), (1.0, 0.0), (0.0, 1.0), 0.1, 5000.0))
    xds = tb.Experiment(detector=tb.detector(pixels=16, convention="xds"),
                        crystal=tb.crystal(cell=(100, 100, 100, 90, 90, 90), n_cells=5),
                        beam=tb.beam(wavelength_A=6.2),
                        structure_factors=tb.structure_factors(default_F=100),
                        kernel="reference")
    with pytest.raises(ValueError, match="edge-on to the beam"):
        render_panels(xds, read_crystfel_geom(path))
