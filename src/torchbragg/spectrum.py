"""X-ray spectra of single shots, and the equal-weight wavelengths that render them.

An XFEL pulse from self-amplified spontaneous emission (SASE) has a spiky spectrum that is new
every shot: chaotic light whose envelope is set by the amplifier's bandwidth and whose spikes
are as narrow as the pulse is long. :func:`sase_spectrum` draws one such spectrum: a complex
field with a random phase and amplitude in every bin under the envelope (Gaussian, FWHM
``bandwidth``), smoothed over the width of one spike, squared. On average over shots its
intensity is the envelope convolved with one spike's shape (standard deviations adding in
quadrature; slightly wider again when every shot is normalised to the same total). A
smooth Gaussian spectrum (a monochromator's, or the SASE envelope) is
:func:`gaussian_spectrum`.

nanoBragg weighs every source alike (it ignores a source file's weights), so a spectrum is
rendered through sources at :func:`equal_weight_wavelengths`: ``n`` wavelengths at the
quantiles ``(k + 1/2) / n`` of the spectrum, each carrying ``1/n`` of the photons. The image
tends to the spectrum-weighted one as ``n`` grows.

Wavelength offsets are fractions of the centre wavelength; percentages at the boundary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Spectrum", "equal_weight_wavelengths", "gaussian_spectrum", "sase_spectrum"]

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
SPAN_FWHM = 2.0  # the grid reaches this many envelope FWHM either side of the centre


@dataclass(frozen=True)
class Spectrum:
    """Intensity on a grid of wavelengths.

    Attributes
    ----------
    wavelength_A : numpy.ndarray, shape (bins,)
        Increasing wavelengths (Å), evenly spaced.
    intensity : numpy.ndarray, shape (bins,)
        Relative intensity per bin, summing to 1.
    """

    wavelength_A: np.ndarray
    intensity: np.ndarray


def _grid(centre_A: float, bandwidth_percent: float, bins: int) -> np.ndarray:
    """(bins,) fractional offsets spanning SPAN_FWHM envelope FWHMs either side of 0."""
    if not (centre_A > 0 and math.isfinite(centre_A)):
        raise ValueError(f"the centre wavelength must be positive, got {centre_A:g} A")
    if not (bandwidth_percent > 0 and math.isfinite(bandwidth_percent)):
        raise ValueError(f"the bandwidth must be positive, got {bandwidth_percent:g} %")
    if bins < 8:
        raise ValueError(f"a spectrum needs at least 8 bins, got {bins}")
    half = SPAN_FWHM * bandwidth_percent / 100.0
    if half >= 1.0:
        raise ValueError(f"a bandwidth of {bandwidth_percent:g} % reaches zero wavelength")
    return np.linspace(-half, half, bins)


def _envelope(offsets: np.ndarray, bandwidth_percent: float) -> np.ndarray:
    """Gaussian envelope with FWHM ``bandwidth_percent`` at fractional ``offsets``."""
    sigma = bandwidth_percent / 100.0 / FWHM_PER_SIGMA
    return np.exp(-0.5 * (offsets / sigma) ** 2)


def gaussian_spectrum(centre_A: float, bandwidth_percent: float, bins: int = 512) -> Spectrum:
    """A smooth Gaussian spectrum around ``centre_A`` with FWHM ``bandwidth_percent``."""
    offsets = _grid(centre_A, bandwidth_percent, bins)
    intensity = _envelope(offsets, bandwidth_percent)
    return Spectrum(centre_A * (1.0 + offsets), intensity / intensity.sum())


def sase_spectrum(rng: np.random.Generator, centre_A: float, bandwidth_percent: float,
                  spike_fwhm_percent: float, bins: int = 512) -> Spectrum:
    """One shot's spiky SASE spectrum, drawn from ``rng``.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws 2 * bins normal numbers (real and imaginary parts of the field).
    centre_A : float
        Centre of the envelope (Å).
    bandwidth_percent : float
        FWHM of the Gaussian envelope, percent of ``centre_A``.
    spike_fwhm_percent : float
        FWHM of one spike (percent); about the envelope's width over the number of spikes.
        It must span at least three bins.
    bins : int
        Grid points over +-2 envelope FWHM.
    """
    offsets = _grid(centre_A, bandwidth_percent, bins)
    step = offsets[1] - offsets[0]
    spike = spike_fwhm_percent / 100.0
    if not (math.isfinite(spike) and spike >= 3.0 * step):
        raise ValueError(f"a spike FWHM of {spike_fwhm_percent:g} % spans fewer than 3 of the "
                         f"{bins} bins (at least {300.0 * step:.3g} %): give more bins")
    if spike > 2.0 * bandwidth_percent / 100.0:
        raise ValueError(f"the spike FWHM ({spike_fwhm_percent:g} %) exceeds twice the "
                         f"bandwidth ({bandwidth_percent:g} %)")
    # chaotic light: a random complex amplitude in every bin under the envelope ...
    noise = rng.standard_normal(bins) + 1j * rng.standard_normal(bins)
    field = np.sqrt(_envelope(offsets, bandwidth_percent)) * noise
    # ... correlated over one spike: an amplitude kernel whose square has FWHM `spike`
    sigma = spike / FWHM_PER_SIGMA * math.sqrt(2.0)
    reach = int(math.ceil(4.0 * sigma / step))
    kernel = np.exp(-0.5 * (np.arange(-reach, reach + 1) * step / sigma) ** 2)
    intensity = np.abs(np.convolve(field, kernel, mode="same")) ** 2
    return Spectrum(centre_A * (1.0 + offsets), intensity / intensity.sum())


def equal_weight_wavelengths(spectrum: Spectrum, n: int) -> np.ndarray:
    """(n,) increasing wavelengths (Å) at the spectrum's quantiles (k + 1/2) / n.

    Each bin's intensity is spread evenly over the bin (edges half-way between grid points),
    so the quantiles move smoothly with the spectrum.
    """
    if n < 1:
        raise ValueError(f"need at least one wavelength, got {n}")
    waves = np.asarray(spectrum.wavelength_A, dtype=np.float64)
    weight = np.asarray(spectrum.intensity, dtype=np.float64)
    half = (waves[1] - waves[0]) / 2.0
    edges = np.concatenate([[waves[0] - half], waves + half])
    cdf = np.concatenate([[0.0], np.cumsum(weight)])
    cdf /= cdf[-1]
    return np.interp((np.arange(n) + 0.5) / n, cdf, edges)
