"""Shot spectra: the Gaussian envelope, SASE spikes, equal-weight wavelengths."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from torchbragg.spectrum import (
    FWHM_PER_SIGMA,
    Spectrum,
    equal_weight_wavelengths,
    gaussian_spectrum,
    sase_spectrum,
)


def test_gaussian_quantiles_are_the_normal_distribution_s():
    spectrum = gaussian_spectrum(1.0, 0.5, bins=4096)
    assert spectrum.intensity.sum() == pytest.approx(1.0)
    waves = equal_weight_wavelengths(spectrum, 10)
    sigma = 0.005 / FWHM_PER_SIGMA
    expected = 1.0 + sigma * np.array([NormalDist().inv_cdf((k + 0.5) / 10) for k in range(10)])
    # the grid spreads each bin's weight over the bin: within a fraction of a bin
    step = spectrum.wavelength_A[1] - spectrum.wavelength_A[0]
    np.testing.assert_allclose(waves, expected, atol=0.1 * step)


def test_quantiles_of_a_box_are_evenly_spaced():
    box = Spectrum(np.array([1.0, 2.0, 3.0, 4.0]), np.full(4, 0.25))
    np.testing.assert_allclose(equal_weight_wavelengths(box, 4), [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(equal_weight_wavelengths(box, 1), [2.5])


def test_sase_spikes_and_their_average():
    bandwidth, spike = 0.4, 0.02
    shots = [sase_spectrum(np.random.default_rng(k), 1.0, bandwidth, spike, 1024)
             for k in range(400)]
    one = shots[0].intensity
    # spiky: local maxima well above the envelope's count of one, roughly bandwidth / spike
    peaks = np.sum((one[1:-1] > one[:-2]) & (one[1:-1] > one[2:]) & (one[1:-1] > 0.2 * one.max()))
    assert 5 <= peaks <= 60
    # averaged over shots: the envelope widened by one spike (widths add in quadrature)
    mean = np.mean([s.intensity for s in shots], axis=0)
    offsets = shots[0].wavelength_A - 1.0
    sigma = math.sqrt(np.sum(mean * offsets ** 2) / np.sum(mean))
    expected = math.hypot(bandwidth, spike) / 100 / FWHM_PER_SIGMA
    assert sigma == pytest.approx(expected, rel=0.05)
    # every spectrum is positive, normalised and reproducible from its generator
    again = sase_spectrum(np.random.default_rng(0), 1.0, bandwidth, spike, 1024)
    assert np.array_equal(again.intensity, one) and np.all(one >= 0)
    assert one.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("call, message", [
    (lambda: gaussian_spectrum(0.0, 1.0), "centre wavelength must be positive"),
    (lambda: gaussian_spectrum(1.0, -1.0), "bandwidth must be positive"),
    (lambda: gaussian_spectrum(1.0, 60.0), "reaches zero wavelength"),
    (lambda: gaussian_spectrum(1.0, 1.0, bins=4), "at least 8 bins"),
    (lambda: sase_spectrum(np.random.default_rng(0), 1.0, 1.0, 0.001, 64), "fewer than 3"),
    (lambda: sase_spectrum(np.random.default_rng(0), 1.0, 1.0, 3.0, 64), "exceeds twice"),
    (lambda: equal_weight_wavelengths(gaussian_spectrum(1.0, 1.0), 0), "at least one"),
])
def test_bad_spectra(call, message):
    with pytest.raises(ValueError, match=message):
        call()
