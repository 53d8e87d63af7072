"""End-to-end gradients of the rendered image against central finite differences.

The scene is small (32 x 32 pixels) and smooth in every parameter tested: with ``-default_F``
alone F_cell is constant, so nearest-index rounding (ceil(h - 0.5)) causes no jumps. A misset
and an offset beam centre break the symmetry; the offset puts the direct beam exactly on pixel
(slow 13, fast 21), where sincg's argument is exactly 0.
"""

import itertools

import numpy as np
import pytest
import torch
from torch.autograd import gradcheck
from torch.func import functional_call

from torchbragg.cli.parse import parse_args
from torchbragg.precedence import resolve
from torchbragg.simulator import Simulator

F64 = torch.float64
SCENE = ("-cell 100 100 100 90 90 90 -default_F 100 -lambda 6.2 -N 5 -distance 100 "
         "-pixel 0.1 -detpixels 32 -oversample 1 -misset 5 3 7 -Xbeam 1.3 -Ybeam 2.1")
ON_BEAM_PIXEL = (13, 21)  # (slow, fast): Sbeam = Xbeam + pixel/2, Fbeam = Ybeam + pixel/2


def config_for(args, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # resolve() may write Fdump.bin
    return resolve(parse_args(args.split()).state).config


@pytest.fixture
def scene(monkeypatch, tmp_path):
    return config_for(SCENE, monkeypatch, tmp_path)


def total(sim):
    return sim().sum()


def autograd_gradient(sim, param, objective=total):
    param.requires_grad_(True)
    try:
        (grad,) = torch.autograd.grad(objective(sim), param)
    finally:
        param.requires_grad_(False)
    return grad.reshape(-1)


def central_difference(sim, param, index, step, objective=total):
    """d objective / d param[index], perturbing the parameter in place."""
    with torch.no_grad():
        flat = param.view(-1)
        original = flat[index].item()
        flat[index] = original + step
        up = objective(sim).item()
        flat[index] = original - step
        down = objective(sim).item()
        flat[index] = original
    return (up - down) / (2.0 * step)


def assert_matches_finite_differences(sim, param, indices, rel_step, rtol, abs_step=None):
    grad = autograd_gradient(sim, param)
    assert torch.isfinite(grad).all()
    for i in indices:
        value = param.view(-1)[i].item()
        step = abs_step if abs_step is not None else rel_step * abs(value)
        fd = central_difference(sim, param, i, step)
        assert grad[i].item() == pytest.approx(fd, rel=rtol), f"index {i}"
        assert fd != 0.0


# ---------------------------------------------------------------------------------------------
# the required checks: distance and cell
# ---------------------------------------------------------------------------------------------


def test_gradient_wrt_detector_distance_matches_finite_differences(scene):
    sim = Simulator(scene)
    assert_matches_finite_differences(sim, sim.detector.distance_m, [0], 1e-6, 1e-6)


def test_gradient_wrt_cell_matches_finite_differences(scene):
    sim = Simulator(scene)
    # lengths (Å) and angles (radians)
    assert_matches_finite_differences(sim, sim.crystal.cell, range(6), 1e-6, 1e-5)


def test_distance_gradient_matches_finite_differences_of_rebuilt_simulations(monkeypatch,
                                                                             tmp_path):
    # the same derivative, with the finite difference taken by re-parsing the command line
    sim = Simulator(config_for(SCENE, monkeypatch, tmp_path))
    grad = autograd_gradient(sim, sim.detector.distance_m).item()  # per metre
    d_mm = 1e-4
    sums = []
    for distance in (100 + d_mm, 100 - d_mm):
        args = SCENE.replace("-distance 100", f"-distance {distance!r}")
        sums.append(Simulator(config_for(args, monkeypatch, tmp_path))().sum().item())
    fd = (sums[0] - sums[1]) / (2 * d_mm * 1e-3)
    assert grad == pytest.approx(fd, rel=1e-6)


# ---------------------------------------------------------------------------------------------
# other refinable parameters
# ---------------------------------------------------------------------------------------------


def test_gradient_wrt_misset_matches_finite_differences(scene):
    sim = Simulator(scene)
    assert_matches_finite_differences(sim, sim.crystal.misset_rad, range(3), None, 1e-5,
                                      abs_step=1e-5)


def test_gradient_wrt_wavelength_matches_finite_differences(scene):
    sim = Simulator(scene)
    assert_matches_finite_differences(sim, sim.beam.wavelengths_m, [0], 1e-6, 1e-6)


def test_gradient_wrt_continuous_crystal_size_matches_finite_differences(scene):
    sim = Simulator(scene)
    assert_matches_finite_differences(sim, sim.crystal.n_cells, range(3), 1e-6, 1e-6)


def test_gradient_wrt_fluence_is_image_over_fluence(scene):
    sim = Simulator(scene)
    assert_matches_finite_differences(sim, sim.beam.fluence_per_m2, [0], 1e-6, 1e-8)
    # the image is proportional to the fluence
    grad = autograd_gradient(sim, sim.beam.fluence_per_m2).item()
    assert grad == pytest.approx(total(sim).item() / sim.beam.fluence_per_m2.item(), rel=1e-12)


@pytest.mark.parametrize(
    ("module", "name", "indices", "abs_step"),
    [
        ("detector", "beam_fs_m", [0, 1], 1e-8),
        ("detector", "rotations_rad", [0, 1, 2], 1e-6),
        ("detector", "twotheta_rad", [0], 1e-6),
        ("detector", "pixel_size_m", [0], 1e-10),
        ("crystal", "phi0_rad", [0], 1e-6),
        ("beam", "polarization", [0], 1e-3),
    ],
)
def test_gradient_wrt_other_parameters_matches_finite_differences(module, name, indices,
                                                                  abs_step, monkeypatch,
                                                                  tmp_path):
    sim = Simulator(config_for(f"{SCENE} -polar 0.6", monkeypatch, tmp_path))
    param = getattr(getattr(sim, module), name)
    assert_matches_finite_differences(sim, param, indices, None, 1e-5, abs_step=abs_step)


@pytest.mark.parametrize("shape_flag", ["-round_xtal", "-gauss_xtal"])
def test_gradients_for_smooth_spot_shapes_match_finite_differences(shape_flag, monkeypatch,
                                                                   tmp_path):
    # with lambda 6.2 every pixel stays within |h| < 0.5 of the origin, so the spot shapes,
    # which use h - h0, are smooth here
    sim = Simulator(config_for(f"{SCENE} {shape_flag}", monkeypatch, tmp_path))
    assert_matches_finite_differences(sim, sim.crystal.n_cells, range(3), 1e-6, 1e-5)
    assert_matches_finite_differences(sim, sim.detector.distance_m, [0], 1e-6, 1e-5)
    if shape_flag == "-round_xtal":
        assert_matches_finite_differences(sim, sim.crystal.cell, range(3), 1e-6, 1e-5)
    else:
        # the gaussian spot measures |h a* + k b* + l c*| = |S| around the origin, which does
        # not depend on the cell at all
        grad = autograd_gradient(sim, sim.crystal.cell)
        torch.testing.assert_close(grad, torch.zeros(6, dtype=F64), rtol=0, atol=1e-9)


def test_gradient_wrt_structure_factor_grid_matches_finite_differences(monkeypatch, tmp_path):
    rng = np.random.default_rng(0)
    lines = [f"{h} {k} {l} {rng.uniform(10, 100):.2f}"
             for h, k, l in itertools.product(range(-3, 4), repeat=3)]
    (tmp_path / "tiny.hkl").write_text("\n".join(lines) + "\n")
    args = ("-cell 20 20 20 90 90 90 -hkl tiny.hkl -default_F 0 -lambda 1 -N 3 -distance 50 "
            "-pixel 0.5 -detpixels 24 -oversample 1 -misset 5 3 7 -nointerpolate")
    sim = Simulator(config_for(args, monkeypatch, tmp_path))
    grid = sim.structure_factors.grid
    assert grid.shape == (7, 7, 7)
    grad = autograd_gradient(sim, grid)
    assert torch.isfinite(grad).all()
    touched = torch.nonzero(grad).reshape(-1)
    assert len(touched) > 10  # several reflections reach the detector
    # the sum is quadratic in each F: d sum / dF = 2 sum / F over that F's pixels
    for i in torch.argsort(grad.abs(), descending=True)[:4].tolist():
        fd = central_difference(sim, grid, i, 1e-3)
        assert grad[i].item() == pytest.approx(fd, rel=1e-7)
    # reflections that never reach the detector have zero gradient, not NaN
    untouched = torch.ones_like(grad, dtype=torch.bool)
    untouched[touched] = False
    assert (grad[untouched] == 0).all()


# ---------------------------------------------------------------------------------------------
# gradcheck and NaN safety
# ---------------------------------------------------------------------------------------------


def test_gradcheck_tiny_render_wrt_distance_and_misset(monkeypatch, tmp_path):
    args = SCENE.replace("-detpixels 32", "-detpixels 4").replace("-Xbeam 1.3 -Ybeam 2.1", "")
    sim = Simulator(config_for(args, monkeypatch, tmp_path))

    def render(distance, misset):
        return functional_call(sim, {"detector.distance_m": distance,
                                     "crystal.misset_rad": misset}, ())

    distance = sim.detector.distance_m.detach().clone().requires_grad_(True)
    misset = sim.crystal.misset_rad.detach().clone().requires_grad_(True)
    assert render(distance, misset).shape == (4, 4)
    assert gradcheck(render, (distance, misset))


def test_the_scene_has_a_pixel_exactly_on_the_beam(scene):
    sim = Simulator(scene)
    frame = sim.detector.frame(sim.beam.direction)
    slow, fast = ON_BEAM_PIXEL
    pos = sim.detector.subpixel_positions(frame, sim.beam.direction, torch.tensor([fast]),
                                          torch.tensor([slow]), 1, torch.zeros(1, dtype=F64))
    assert pos[0, 0, 0, 1].item() == 0.0 and pos[0, 0, 0, 2].item() == 0.0
    image = sim()
    assert image[slow, fast] == image.max()


@pytest.mark.parametrize("extra", ["", "-polar 0.9", "-round_xtal"])
def test_no_nan_gradients_anywhere_including_the_on_beam_pixel(extra, monkeypatch, tmp_path):
    sim = Simulator(config_for(f"{SCENE} {extra}", monkeypatch, tmp_path))
    params = dict(sim.named_parameters())
    for p in params.values():
        p.requires_grad_(True)
    image = sim()
    for objective in (image.sum(), image[ON_BEAM_PIXEL]):
        grads = torch.autograd.grad(objective, list(params.values()), allow_unused=True,
                                    retain_graph=True)
        used = {name: g for name, g in zip(params, grads, strict=True) if g is not None}
        assert {"detector.distance_m", "crystal.cell", "crystal.misset_rad", "crystal.n_cells",
                "beam.wavelengths_m", "beam.fluence_per_m2"} <= set(used)
        for name, g in used.items():
            assert torch.isfinite(g).all(), name


def test_float32_gradient_in_cell_count_matches_float64(tmp_path, monkeypatch):
    # lambda 1 A reaches reflections with h0 != 0, where float32 and float64 (both working
    # from the reduced phase) must agree on the derivative in N
    monkeypatch.chdir(tmp_path)
    args = ("-cell 70 80 90 75 85 95 -default_F 10 -lambda 1 -N 5 -distance 100 -pixel 0.1 "
            "-detpixels 48 -oversample 1").split()
    config = resolve(parse_args(args).state).config
    grads = []
    for dtype in (torch.float64, torch.float32):
        sim = Simulator(config, dtype=dtype)
        sim.crystal.n_cells.requires_grad_(True)
        sim().sum().backward()
        grads.append(sim.crystal.n_cells.grad.clone())
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-3, atol=0)
