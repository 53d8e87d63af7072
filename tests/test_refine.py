"""Losses, masks, refinement and standard errors."""

from __future__ import annotations

import math

import pytest
import torch

import torchbragg as tb
from torchbragg.experiment import ExperimentError
from torchbragg.refine import least_squares, near_spots, poisson_nll, refine, standard_errors


def still(**crystal) -> tb.Experiment:
    return tb.Experiment(
        detector=tb.detector(pixels=48, pixel_size_mm=0.3, distance_mm=80),
        crystal=tb.crystal(**{"cell": (60, 60, 60, 90, 90, 90), "n_cells": 6,
                              "misset_deg": (12, 27, 5), "shape": "gauss", **crystal}),
        beam=tb.beam(wavelength_A=1.3, fluence_per_m2=3e27),
        structure_factors=tb.structure_factors(default_F=100),
        sampling=tb.sampling(oversample=1))


def test_losses():
    model = torch.tensor([[1.0, 2.0], [0.0, 4.0]], dtype=torch.float64)
    observed = torch.tensor([[0.0, 3.0], [0.0, 1.0]], dtype=torch.float64)
    expected = (1 - 0) + (2 - 3 * math.log(2)) + 0 + (4 - math.log(4))
    assert float(poisson_nll(model, observed)) == pytest.approx(expected, rel=1e-15)
    mask = torch.tensor([[True, False], [False, True]])
    assert float(poisson_nll(model, observed, mask)) == pytest.approx(1 + 4 - math.log(4))
    assert float(least_squares(model, observed)) == pytest.approx(0.5 * (1 + 1 + 0 + 9))
    weights = torch.tensor([[2.0, 1.0], [1.0, 0.5]], dtype=torch.float64)
    assert float(least_squares(model, observed, mask, weights)) == pytest.approx(
        0.5 * (2 * 1 + 0.5 * 9))
    with pytest.raises(ValueError, match="observed image is"):
        poisson_nll(model, observed[0])


def test_near_spots_grows_bright_pixels():
    image = torch.zeros(9, 9)
    image[4, 4] = 10.0
    image[0, 0] = 0.05  # below 1 % of the maximum
    mask = near_spots(image, 0.01, 1)
    assert int(mask.sum()) == 9 and bool(mask[3:6, 3:6].all())


def test_fluence_refines_to_its_closed_form_with_its_poisson_error():
    exp = still()
    torch.manual_seed(0)
    with torch.no_grad():
        observed = torch.poisson(exp.render())
    f0 = float(exp.get("beam.fluence_per_m2"))
    exp.set("beam.fluence_per_m2", 0.8 * f0)
    with torch.no_grad():
        start = exp.render()
    result = refine(exp, observed, ["beam.fluence_per_m2"])
    # the image is proportional to the fluence: the maximum likelihood scales the start by
    # observed / predicted photons, and the error is fluence / sqrt(photons)
    best = 0.8 * f0 * float(observed.sum() / start.sum())
    assert result.converged
    assert float(result.values["beam.fluence_per_m2"]) == pytest.approx(best, rel=1e-9)
    err = float(result.standard_errors["beam.fluence_per_m2"])
    assert err == pytest.approx(best / math.sqrt(float(observed.sum())), rel=1e-6)
    assert float(exp.get("beam.fluence_per_m2")) == pytest.approx(best, rel=1e-9)


def test_geometry_and_orientation_come_back_within_their_errors():
    exp = still()
    names = ["detector.distance_mm", "detector.beam_fs_mm", "crystal.misset_deg"]
    truth = {n: exp.get(n) for n in names}
    torch.manual_seed(1)
    with torch.no_grad():
        observed = torch.poisson(exp.render())
    pixels = near_spots(observed, 0.05, 3)
    exp.set("detector.distance_mm", truth["detector.distance_mm"] + 0.3)
    exp.set("detector.beam_fs_mm", truth["detector.beam_fs_mm"] + 0.05)
    exp.set("crystal.misset_deg", truth["crystal.misset_deg"] - 0.05)
    result = refine(exp, observed, names, pixels=pixels)
    assert result.converged and result.loss < result.start_loss
    for name in names:
        miss = (result.values[name] - truth[name]).abs()
        assert bool((miss < 3 * result.standard_errors[name]).all()), name
        assert bool((result.standard_errors[name] > 0).all())
    assert "detector.beam_fs_mm[1]" in result.table(truth)


def test_standard_errors_of_least_squares_scale_with_the_residuals():
    exp = still()
    with torch.no_grad():
        clean = exp.render()
    noisy = clean + 0.01 * clean.max() * torch.randn(clean.shape, dtype=torch.float64,
                                                     generator=torch.Generator().manual_seed(4))
    names = ["detector.distance_mm"]
    _, small = standard_errors(exp, clean + 0.5 * (noisy - clean), names, loss="least_squares")
    _, large = standard_errors(exp, noisy, names, loss="least_squares")
    ratio = float(large[names[0]] / small[names[0]])
    assert ratio == pytest.approx(2.0, rel=0.05)


def test_several_images_share_parameters_and_mismatches_are_errors():
    a, b = still(phi0_deg=0), still(phi0_deg=10)
    with torch.no_grad():
        images = [a.render(), b.render()]
    with pytest.raises(ExperimentError, match="2 experiments but 1 images"):
        refine([a, b], images[:1], ["beam.fluence_per_m2"])
    with pytest.raises(ExperimentError, match="nothing to refine"):
        refine(a, images[0], [])
    for e in (a, b):
        e.set("beam.fluence_per_m2", 0.5 * float(e.get("beam.fluence_per_m2")))
    result = refine([a, b], images, ["beam.fluence_per_m2"], errors=False)
    assert float(result.values["beam.fluence_per_m2"]) == pytest.approx(3e27, rel=1e-9)
    assert float(b.get("beam.fluence_per_m2")) == pytest.approx(3e27, rel=1e-9)
