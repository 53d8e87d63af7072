"""gradcheck (float64) of the image with respect to every named parameter.

Each parameter is checked in the optimiser's coordinates (value = start + x * typical step),
on a weighted image sum, at ordinary points and at the singular ones: h exactly whole, a cubic
cell with no misset and the beam on a pixel centre, zero mosaic spread, two-theta 0, tricubic
interpolation on.
"""

from __future__ import annotations

import pytest
import torch

import torchbragg as tb
from test_experiment import rich


def check(exp: tb.Experiment, name: str, pixels: torch.Tensor | None = None) -> None:
    """gradcheck of a random weighting of the image as a function of x for ``name``."""
    start = exp.get(name)
    step = exp.spec(name).typical_step(start)
    with torch.no_grad():
        ref = exp.render(pixels=pixels)
    weights = torch.rand(ref.shape, generator=torch.Generator().manual_seed(3),
                         dtype=torch.float64) / ref.sum()

    def weighted(x: torch.Tensor) -> torch.Tensor:
        image = exp.render({name: start + x.reshape(start.shape) * step}, pixels=pixels)
        return (image * weights).sum()

    x = torch.zeros(start.numel(), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(weighted, (x,), eps=1e-5, atol=1e-9, rtol=1e-4,
                                    fast_mode=start.numel() > 6)
    # and not trivially: the gradient is not zero
    weighted(x).backward()
    assert float(x.grad.abs().max()) > 0, name


RICH = rich()


@pytest.mark.parametrize("name", RICH.parameter_names())
def test_gradient_of_every_parameter(name):
    check(RICH, name)


def on_pixel_centre() -> tb.Experiment:
    """Cubic cell, no misset, beam on the centre of pixel (8, 8): h is 0 there.

    MOSFLM puts the beam spot half a pixel past (X, Y): (0.8 + 0.05) mm is pixel 8's centre.
    """
    return tb.Experiment(detector=tb.detector(pixels=17, pixel_size_mm=0.1, distance_mm=100,
                                              beam_center_mm=(0.8, 0.8)),
                         crystal=tb.crystal(cell=(100, 100, 100, 90, 90, 90), n_cells=5),
                         beam=tb.beam(wavelength_A=1.0),
                         structure_factors=tb.structure_factors(default_F=100))


def test_beam_on_a_pixel_centre_gives_whole_h():
    exp = on_pixel_centre()
    ctx = exp.simulator.renderer().context()
    frame = ctx.frame
    position = frame.pix0 + 8.5e-4 * frame.fdet + 8.5e-4 * frame.sdet
    diffracted = position / position.norm()
    hkl = (diffracted - ctx.incident[0]) / ctx.wavelengths[0] @ ctx.orient.lattice_m[0].T
    assert float(hkl.abs().max()) < 1e-12


@pytest.mark.parametrize("name", ["detector.distance_mm", "detector.beam_fs_mm",
                                  "detector.rotations_deg", "detector.twotheta_deg",
                                  "crystal.cell_A", "crystal.misset_deg", "crystal.n_cells",
                                  "beam.wavelength_A"])
def test_gradients_at_the_singular_point(name):
    exp = on_pixel_centre()
    pixels = torch.zeros(exp.shape, dtype=torch.bool)
    pixels[6:11, 6:11] = True  # around the pixel where h = 0 exactly
    check(exp, name, pixels)


def test_gradient_at_zero_mosaic_spread():
    exp = tb.Experiment(detector=tb.detector(pixels=16, pixel_size_mm=1.0, distance_mm=60),
                        crystal=tb.crystal(cell=(30, 30, 30, 90, 90, 90), n_cells=6,
                                           misset_deg=(5, 10, 15), mosaic_spread_deg=0,
                                           mosaic_domains=4),
                        beam=tb.beam(wavelength_A=1.0),
                        structure_factors=tb.structure_factors(default_F=10))
    assert float(exp.get("crystal.mosaic_spread_deg")) == 0.0
    check(exp, "crystal.mosaic_spread_deg")


@pytest.mark.parametrize("name", ["structure_factors.F", "crystal.cell_A", "crystal.n_cells"])
def test_gradients_with_tricubic_interpolation(name):
    F = 10 + 90 * torch.rand((9, 9, 9), generator=torch.Generator().manual_seed(2),
                             dtype=torch.float64)
    exp = tb.Experiment(detector=tb.detector(pixels=10, pixel_size_mm=1.0, distance_mm=80),
                        crystal=tb.crystal(cell=(30, 30, 30, 90, 90, 90), n_cells=2,
                                           misset_deg=(5, 10, 15)),
                        beam=tb.beam(wavelength_A=1.0),
                        structure_factors=tb.structure_factors(F.numpy(), hkl_min=(-4, -4, -4),
                                                               interpolate=True))
    assert exp.simulator.structure_factors.interpolate
    check(exp, name)


@pytest.mark.parametrize("name", ["detector.close_fs_mm", "detector.twotheta_deg",
                                  "detector.rotations_deg"])
def test_gradients_pivoting_about_the_sample(name):
    exp = tb.Experiment(detector=tb.detector(pixels=12, pixel_size_mm=1.0, distance_mm=70,
                                             convention="xds", twotheta_deg=0),
                        crystal=tb.crystal(cell=(30, 31, 32, 90, 90, 90), n_cells=5,
                                           misset_deg=(5, 10, 15)),
                        beam=tb.beam(wavelength_A=1.0),
                        structure_factors=tb.structure_factors(default_F=10))
    assert exp.simulator.detector.pivot == "sample"
    check(exp, name)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_gradients_equal_cpu():
    cpu, gpu = rich(), rich().to("cuda")
    for name in cpu.parameter_names():
        grads = []
        for exp in (cpu, gpu):
            value = exp.get(name).requires_grad_(True)
            image = exp.render({name: value})
            (image * image.detach()).sum().backward()
            grads.append(value.grad.cpu())
        scale = grads[0].abs().max()
        assert float((grads[1] - grads[0]).abs().max()) <= 1e-9 * float(scale), name
