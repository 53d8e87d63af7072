"""Bragg + water background + detector effects from Python, differentiable end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import torchbragg as tb
from torchbragg.composite import AmorphousSample, DetectorResponse, render_composite

WATER = Path(__file__).parent / "data" / "golden" / "inputs" / "water.stol"
ARGS = ("-cell 70 80 90 75 85 95 -default_F 10 -lambda 1 -N 5 -distance 80 -pixel 0.3 "
        "-detpixels 40 -misset 10 -20 30")


@pytest.fixture(scope="module")
def experiment():
    return tb.Experiment.from_args(ARGS, kernel="reference")


def _image(experiment, thickness_mm, fwhm_px):
    sample = AmorphousSample(WATER, thickness_mm=thickness_mm)
    response = DetectorResponse(psf="gauss", psf_fwhm_px=fwhm_px, psf_radius=4, gain=2.0)
    return render_composite(experiment, sample, response)


def test_parts_add_up(experiment):
    bragg = render_composite(experiment)
    with_water = render_composite(experiment, AmorphousSample(WATER, thickness_mm=0.1))
    water = with_water - bragg
    assert float(water.min()) > 0  # diffuse scattering reaches every pixel
    thicker = render_composite(experiment, AmorphousSample(WATER, thickness_mm=0.2)) - bragg
    torch.testing.assert_close(thicker, 2 * water, rtol=1e-12, atol=0)  # molecules x 2
    adu = render_composite(experiment, AmorphousSample(WATER),
                           DetectorResponse(gain=2.0, adc_offset=40.0))
    torch.testing.assert_close(adu, 2 * with_water + 40, rtol=1e-12, atol=0)


def test_gradients_match_finite_differences(experiment):
    thickness = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
    fwhm = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    weights = torch.linspace(0.5, 1.5, 40 * 40, dtype=torch.float64).reshape(40, 40)

    def loss(t, w):
        return (weights * _image(experiment, t, w)).sum()

    loss(thickness, fwhm).backward()
    with torch.no_grad():
        for name, grad, at, step in (("thickness", thickness.grad, (0.1, 1.5), (1e-4, 0)),
                                     ("fwhm", fwhm.grad, (0.1, 1.5), (0, 1e-4))):
            up = loss(torch.tensor(at[0] + step[0], dtype=torch.float64),
                      torch.tensor(at[1] + step[1], dtype=torch.float64))
            down = loss(torch.tensor(at[0] - step[0], dtype=torch.float64),
                        torch.tensor(at[1] - step[1], dtype=torch.float64))
            numeric = (up - down) / (2 * max(step))
            assert float(grad) != 0, name
            torch.testing.assert_close(grad, numeric, rtol=1e-6, atol=0, msg=name)


@pytest.mark.parametrize(("make", "words"), [
    (lambda: AmorphousSample(WATER, thickness_mm=-0.1), "thickness_mm must not be negative"),
    (lambda: AmorphousSample(WATER, molecular_weight=0), "molecular_weight must be positive"),
    (lambda: DetectorResponse(psf="gauss", psf_fwhm_px=-1), "psf_fwhm_px must not be"),
    (lambda: DetectorResponse(psf="square"), "psf must be"),
    (lambda: DetectorResponse(gain=float("nan")), "gain must be positive"),
])
def test_impossible_values_are_refused(make, words):
    with pytest.raises(ValueError, match=words):
        make()
