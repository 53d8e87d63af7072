"""The Python experiment API: keywords, nanoBragg command lines, parameters by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import torchbragg as tb
from golden_cases import INPUTS
from torchbragg.experiment import ExperimentError
from torchbragg.io.hkl import read_hkl

CUBIC = dict(cell=(100, 100, 100, 90, 90, 90), n_cells=5)


def small(**crystal) -> tb.Experiment:
    return tb.Experiment(detector=tb.detector(pixels=32, distance_mm=100),
                         crystal=tb.crystal(**{**CUBIC, **crystal}),
                         beam=tb.beam(wavelength_A=6.2),
                         structure_factors=tb.structure_factors(default_F=100))


def test_keywords_give_the_command_lines_image(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exp = tb.Experiment(
        detector=tb.detector(pixels=(40, 30), pixel_size_mm=0.2, distance_mm=80,
                             beam_center_mm=(3.1, 4.2), rotations_deg=(1, 2, 3),
                             convention="mosflm"),
        crystal=tb.crystal(cell=(70, 80, 90, 88, 92, 95), misset_deg=(10, 20, 30),
                           n_cells=(4, 5, 6), mosaic_spread_deg=0.3, mosaic_domains=3),
        beam=tb.beam(wavelength_A=1.5, polarization=0.9),
        structure_factors=tb.structure_factors(default_F=50), sampling=tb.sampling(oversample=2))
    cmd = tb.Experiment.from_args(
        "-detpixels_f 40 -detpixels_s 30 -pixel 0.2 -distance 80 -Xbeam 3.1 -Ybeam 4.2 "
        "-detector_rotx 1 -detector_roty 2 -detector_rotz 3 -cell 70 80 90 88 92 95 "
        "-misset 10 20 30 -Na 4 -Nb 5 -Nc 6 -mosaic 0.3 -mosaic_dom 3 -lambda 1.5 -polar 0.9 "
        "-default_F 50 -oversample 2")
    a, b = exp.render(), cmd.render()
    assert a.shape == (30, 40)
    assert float(a.sum()) > 0
    assert torch.equal(a, b)


def test_the_whole_detector_is_rendered_by_default():
    image = small().render()
    assert image.shape == (32, 32)
    assert bool((image > 0).all())


def test_no_dump_file_is_read_or_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "Fdump.bin").write_bytes(b"stale")
    with pytest.raises(ExperimentError, match="structure factors"):
        tb.Experiment(crystal=tb.crystal(**CUBIC))
    exp = tb.Experiment.from_args(f"-cell 100 100 100 90 90 90 -hkl {INPUTS / 'cubic.hkl'} "
                                  "-N 3 -detpixels 8")
    assert exp.render().shape == (8, 8)
    assert (tmp_path / "Fdump.bin").read_bytes() == b"stale"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Fdump.bin"]


def test_structure_factors_from_a_mapping_equal_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    table = read_hkl(INPUTS / "cubic.hkl")
    h, k, l = np.nonzero(np.ones_like(table.F))
    mapping = {(int(a) + table.h_min, int(b) + table.k_min, int(c) + table.l_min):
               float(table.F[a, b, c]) for a, b, c in zip(h, k, l, strict=True)}
    det, xtal = tb.detector(pixels=24, distance_mm=50), tb.crystal(**CUBIC, misset_deg=(5, 6, 7))
    from_file = tb.Experiment(det, xtal, tb.beam(wavelength_A=2),
                              tb.structure_factors(hkl_file=INPUTS / "cubic.hkl"))
    from_map = tb.Experiment(det, xtal, tb.beam(wavelength_A=2), tb.structure_factors(mapping))
    assert torch.equal(from_file.render(), from_map.render())


def test_float32_and_moving():
    exp = small(misset_deg=(3, 4, 5))
    ref = exp.render()
    single = exp.to(dtype=torch.float32).render()
    assert single.dtype == torch.float64  # images are float64; the step sum was float32
    rel = ((single - ref).abs() / (ref.abs() + 1e-6 * ref.abs().max())).max()
    assert 0 < float(rel) < 1e-3
    assert exp.to("cpu") is exp


def test_pixel_subset_renders_only_those_pixels():
    exp = small(misset_deg=(3, 4, 5))
    full = exp.render()
    pixels = torch.zeros(32, 32, dtype=torch.bool)
    pixels[5:9, 10:20] = True
    part = exp.render(pixels=pixels)
    # (the compiled kernel's vector lanes may round the last bit differently)
    assert torch.allclose(part[pixels], full[pixels], rtol=1e-12, atol=0)
    assert bool((part[~pixels] == 0).all())


@pytest.mark.parametrize(("part", "message"), [
    (lambda: tb.detector(pixels=0), "pixels must be positive"),
    (lambda: tb.detector(convention="nonsense"), "convention must be one of"),
    (lambda: tb.crystal(shape="cube"), "shape must be one of"),
    (lambda: tb.crystal(n_cells=0.5), "n_cells must be at least 1"),
    (lambda: tb.beam(wavelength_A=-1), "wavelength_A must be positive"),
    (lambda: tb.structure_factors({}), "empty mapping"),
    (lambda: tb.structure_factors(np.ones((2, 2, 2))), "needs hkl_min"),
])
def test_bad_keywords_say_what_is_wrong(part, message):
    with pytest.raises(ValueError, match=message):
        part()


def test_wrong_part_and_incomplete_experiment():
    with pytest.raises(ExperimentError, match="crystal= takes"):
        tb.Experiment(crystal=tb.beam())
    with pytest.raises(ExperimentError, match="no unit cell"):
        tb.Experiment(structure_factors=tb.structure_factors(default_F=1))
    with pytest.raises(ExperimentError, match="unknown option|nearest"):
        tb.Experiment.from_args("-cell 100 100 100 90 90 90 -default_F 1 -distanse 100")


def test_parameters_that_do_not_apply_are_errors():
    exp = small()
    names = exp.parameter_names()
    assert "detector.distance_mm" in names and "crystal.mosaic_spread_deg" not in names
    for name, why in (("crystal.mosaic_spread_deg", "one mosaic domain"),
                      ("detector.close_fs_mm", "pivots about the beam"),
                      ("detector.thickness_um", "no thickness"),
                      ("beam.divergence_mrad", "no divergence"),
                      ("structure_factors.F", "no structure-factor grid"),
                      ("detector.distanse_mm", "unknown parameter")):
        with pytest.raises(ExperimentError, match=why):
            exp.get(name)
    xds = tb.Experiment.from_args("-cell 100 100 100 90 90 90 -default_F 1 -xds -detpixels 8")
    with pytest.raises(ExperimentError, match="refine detector.close_fs_mm"):
        xds.get("detector.beam_fs_mm")
    matrix = tb.Experiment.from_args(f"-mat {INPUTS / 'A.mat'} -default_F 1 -detpixels 8")
    with pytest.raises(ExperimentError, match="without cell constants"):
        matrix.get("crystal.cell_angles_deg")


def rich() -> tb.Experiment:
    """Every kind of parameter in play: divergence, dispersion, sensor, mosaic, F grid."""
    F = 10 + 90 * torch.rand((5, 5, 5), generator=torch.Generator().manual_seed(1),
                             dtype=torch.float64)
    return tb.Experiment(
        detector=tb.detector(pixels=12, pixel_size_mm=2.0, distance_mm=60,
                             thickness_um=300, thicksteps=2, attenuation_length_um=200),
        crystal=tb.crystal(cell=(30, 32, 34, 89, 91, 92), misset_deg=(10, 20, 30),
                           n_cells=(4, 4, 5), mosaic_spread_deg=0.5, mosaic_domains=3),
        beam=tb.beam(wavelength_A=1.2, polarization=0.8, divergence_mrad=(2, 3),
                     divergence_steps=(2, 2), dispersion_percent=1, dispersion_steps=2,
                     fluence_per_m2=1e24),
        structure_factors=tb.structure_factors(F.numpy(), hkl_min=(-2, -2, -2),
                                               default_F=10),
        sampling=tb.sampling(oversample=1))


def test_every_parameter_round_trips_and_renders_the_same_at_its_value():
    exp = rich()
    ref = exp.render()
    names = exp.parameter_names()
    assert len(names) >= 19
    for name in names:
        value = exp.get(name)
        exp.set(name, value)
        assert torch.allclose(exp.get(name), value, rtol=1e-14, atol=0), name
        # substituted (the differentiable formulas) at the same value: the same image
        image = exp.render({name: value.clone().requires_grad_(True)})
        rel = float(((image.detach() - ref).abs() / (ref.abs().max())).max())
        assert rel < 1e-12, (name, rel)


def test_a_changed_parameter_changes_the_image():
    exp = rich()
    ref = exp.render()
    for name in exp.parameter_names():
        value = exp.get(name)
        spec = exp.spec(name)
        moved = value + 20 * spec.typical_step(value)
        image = exp.render({name: moved})
        assert not torch.equal(image, ref), name


@pytest.mark.parametrize("kernel", ["fused", "reference"])
def test_each_render_sees_the_current_structure_factors(kernel):
    """The padded F grid is kept between renders: every change of F must still show."""
    exp = rich()
    exp.simulator.kernel = kernel
    F0 = exp.get("structure_factors.F")
    with torch.no_grad():
        ref = exp.render()
        # fresh tensors each call (their memory and ids may be reused)
        images = [exp.render({"structure_factors.F": F0 * s}) for s in (2.0, 3.0, 2.0, 3.0)]
        assert torch.equal(images[0], images[2]) and torch.equal(images[1], images[3])
        assert not torch.equal(images[0], images[1]) and not torch.equal(images[0], ref)
        exp.set("structure_factors.F", F0 * 3.0)
        assert torch.equal(exp.render(), images[1])
        exp.set("structure_factors.default_F", 20.0)
        changed = exp.render()
        assert not torch.equal(changed, images[1])
        exp.set("structure_factors.F", F0)
        exp.set("structure_factors.default_F", 10.0)
        assert torch.equal(exp.render(), ref)
    exp.simulator.to(torch.float32)
    with torch.no_grad():
        assert exp.render().dtype == torch.float32


@pytest.mark.slow
def test_the_compiled_kernel_sees_every_changed_parameter():
    """Set every parameter away from its configured value: both paths render the same."""
    fused, reference = rich(), rich()
    reference.simulator.kernel = "reference"
    fused.simulator.kernel = "fused"
    for name in fused.parameter_names():
        value = fused.get(name)
        moved = value + 5 * fused.spec(name).typical_step(value)
        fused.set(name, moved)
        reference.set(name, moved)
    a, b = fused.render(), reference.render()
    rel = float(((a - b).abs() / b.abs().max()).max())
    assert rel < 1e-12
    assert not torch.equal(b, rich().render())
