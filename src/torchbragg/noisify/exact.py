"""Detector effects exactly as the C ``noisify`` program applies them (numpy + numba, no torch).

These functions reproduce ``noisify.c`` bit for bit: the same random streams (nanoBragg's
``ran1``/``gaussdev``/``poidev``, with their shared function-static state), the same float32
stores, the same order of floating-point sums. The command line
(:mod:`torchbragg.noisify.cli`) is built from them; for a fast, differentiable version of the
same physics see :mod:`torchbragg.noisify.effects`.

Images are numpy arrays of shape ``(slow, fast)`` (``(ypixels, xpixels)``) in photons per
pixel, float32 as the C program stores them.

The pipeline, per pixel, in file order (fast index fastest):

1. photons = ``fluence * r_e**2 * scale * value`` (:func:`photon_image`);
2. noiseless integers: ``photons * gain + adc_offset``, clipped, cast (:func:`adu_image`);
3. shot noise: mean ``photons * (1 + flicker * N(0,1)) * (1 + calibration * N(0,1))``, then a
   Poisson deviate (:func:`shot_noise`);
4. point spread: every photon spreads over neighbouring pixels (:func:`apply_psf`);
5. ``photons * gain + adc_offset + readout * N(0,1)``, clipped, cast (:func:`adu_image`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from torchbragg.io.images import format_c_g
from torchbragg.noisify import kernels
from torchbragg.rng import Ran1, SharedState

__all__ = [
    "DEFAULT_FLUENCE",
    "FIBER_G_PER_FWHM",
    "R_E_SQR",
    "ADUImage",
    "NoiseStreams",
    "PSFResult",
    "adu_image",
    "apply_psf",
    "auto_kernel_radius",
    "photon_image",
    "psf_kernel",
    "shot_noise",
]

#: Thomson cross section r_e**2, m**2, as the C program writes it.
R_E_SQR = 7.94079248018965e-30
#: Default fluence, photons/m**2: with it ``fluence * r_e**2`` is (almost exactly) 1.
DEFAULT_FLUENCE = 125932015286227086360700780544.0
#: Fibre PSF: ``g = FIBER_G_PER_FWHM * fwhm``, i.e. fwhm = 2 g sqrt(2**(2/3) - 1).
FIBER_G_PER_FWHM = 0.652383013252053
# Spread photons are cut where they fall below (shot noise of the pixel) / 10.
_PHOTONLOSS_FACTOR = 10.0

_KINDS = {"gauss": kernels.GAUSS, "fiber": kernels.FIBER}


def _as_float32_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D image (slow, fast), got shape {image.shape}")
    with np.errstate(over="ignore", invalid="ignore"):
        return np.ascontiguousarray(image, dtype=np.float32)


def _kind_code(kind: str) -> int:
    try:
        return _KINDS[kind]
    except KeyError:
        raise ValueError(f"PSF kind must be 'gauss' or 'fiber', got {kind!r}") from None


def photon_image(float_image: np.ndarray, scale: float = 1.0,
                 fluence: float = DEFAULT_FLUENCE) -> np.ndarray:
    """Put the input image on the photons-per-pixel scale, as the C program does.

    Parameters
    ----------
    float_image : numpy.ndarray, shape (slow, fast)
        Input pixel values (rounded to float32 first).
    scale : float
        ``-scale``, dimensionless.
    fluence : float
        ``-fluence``, photons/m**2; the default makes ``fluence * r_e**2`` one.

    Returns
    -------
    numpy.ndarray, float32, shape (slow, fast)
        ``(fluence * r_e**2) * scale * value`` computed in double, stored as float.
    """
    values = _as_float32_image(float_image)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.multiply(values, (fluence * R_E_SQR) * scale, dtype=np.float64).astype(
            np.float32)


@dataclass(frozen=True)
class ADUImage:
    """Integer pixels from :func:`adu_image`.

    Attributes
    ----------
    pixels16, pixels32 : numpy.ndarray, uint16 / uint32, shape (slow, fast)
        The 16-bit and 32-bit casts of the clipped ADC values (``-bits`` picks one).
    photons : float
        Sum of the input photons, in double, in file order.
    overloads : int
        Pixels clipped for the chosen ``bits`` (noise images only).
    """

    pixels16: np.ndarray
    pixels32: np.ndarray
    photons: float = 0.0
    overloads: int = 0

    def pixels(self, bits: int) -> np.ndarray:
        """The pixels to write for ``-bits`` 16 or 32."""
        return self.pixels16 if bits == 16 else self.pixels32


class NoiseStreams:
    """The C program's two random streams: ``-seed`` (shot, flicker, read-out) and ``-calib_seed``.

    Both are ``ran1`` streams sharing one table, one spare Gaussian deviate and one Poisson
    cache (function-static variables in C), so the order of draws matters exactly as in C.

    Parameters
    ----------
    seed : int
        C ``idum`` of the noise stream (``-seed N`` gives ``-N``).
    calib_seed : int
        C ``idum`` of the calibration stream (``-calib_seed N`` gives ``-N``; default
        123456789, a positive ``idum``, which the first draw turns into 1).
    """

    def __init__(self, seed: int, calib_seed: int = 123456789) -> None:
        shared = SharedState()
        self.noise = Ran1(int(seed), shared)
        self.calibration = Ran1(int(calib_seed), shared)
        self.shared = shared


def shot_noise(photons: np.ndarray, streams: NoiseStreams, flicker: float = 0.0,
               calibration: float = 0.0) -> tuple[np.ndarray, float]:
    """Draw the photons each pixel records: flicker, calibration error, then Poisson.

    Parameters
    ----------
    photons : numpy.ndarray, shape (slow, fast)
        Expected photons per pixel (float32).
    streams : NoiseStreams
        Random streams, advanced in place.
    flicker : float
        Fractional rms of the source intensity (``-flicker``); one Gaussian factor per pixel
        from the noise stream when > 0.
    calibration : float
        Fractional rms of the per-pixel gain error (``-calibration``); one Gaussian factor per
        pixel from the calibration stream when > 0.

    Returns
    -------
    counts : numpy.ndarray, float32, shape (slow, fast)
        Poisson deviates (whole numbers below 1e6 photons).
    total : float
        Their sum (double, file order), printed as ``"%.0f photons on noise image ..."``.
    """
    values = _as_float32_image(photons)
    out = np.empty(values.size, dtype=np.float32)
    shared = streams.shared
    total = kernels.compiled("_shot_noise")(
        values.reshape(-1), float(flicker), float(calibration), streams.noise._idum,
        streams.calibration._idum, shared.table, shared.gauss_spare, shared.poisson_cache, out)
    return out.reshape(values.shape), float(total)


def adu_image(photons: np.ndarray, gain: float = 1.0, adc_offset: float = 40.0,
              readout: float = 0.0, bits: int = 16,
              streams: NoiseStreams | None = None) -> ADUImage:
    """Convert photons to integer ADC units, as the C program writes its SMV images.

    ``adu = photons * gain + adc_offset (+ readout * N(0,1))`` in double, clipped at
    2147483647 and (for the 16-bit pixels) 65535, then cast as x86-64 C casts: truncation,
    with negative values wrapping around (-1.5 gives 65535) and NaN giving 0.

    Parameters
    ----------
    photons : numpy.ndarray, shape (slow, fast)
        Photons per pixel (float32).
    gain : float
        ``-gain``, ADU per photon.
    adc_offset : float
        ``-adc``, ADU added to every pixel.
    readout : float
        ``-readout_noise``, rms ADU; drawn from ``streams.noise`` when > 0.
    bits : int
        16 or 32: which pixels the overloads are counted for.
    streams : NoiseStreams, optional
        Needed when ``readout > 0``.

    Returns
    -------
    ADUImage
        Both casts, the photon sum and the overload count.
    """
    values = _as_float32_image(photons)
    flat = values.reshape(-1)
    out16 = np.empty(flat.size, dtype=np.uint16)
    out32 = np.empty(flat.size, dtype=np.uint32)
    if readout > 0.0 and streams is None:
        raise ValueError("read-out noise needs random streams")
    if streams is None:
        streams = NoiseStreams(-1)
    shared = streams.shared
    total, overloads = kernels.compiled("_to_adu")(
        flat, float(gain), float(adc_offset), float(readout), int(bits), streams.noise._idum,
        shared.table, shared.gauss_spare, out16, out32)
    return ADUImage(out16.reshape(values.shape), out32.reshape(values.shape), float(total),
                    int(overloads))


def psf_kernel(kind: str, fwhm_pixels: float, radius: int) -> np.ndarray:
    """The C program's PSF kernel: the PSF integrated over each pixel of a disc.

    Parameters
    ----------
    kind : {"gauss", "fiber"}
        Gaussian of full width ``fwhm_pixels``, or the fibre-optic PSF
        ``g / (2 pi (g**2 + r**2)**1.5)`` with ``g = 0.652383 fwhm_pixels`` (same FWHM).
    fwhm_pixels : float
        Full width at half maximum, pixels.
    radius : int
        Kernel radius, pixels; entries with ``dx**2 + dy**2 > radius**2`` are 0.

    Returns
    -------
    numpy.ndarray, float64, shape (2 radius + 1, 2 radius + 1)
        ``kernel[dy + radius, dx + radius]``: fraction of a pixel's photons landing at offset
        (dx, dy). Sums to a little less than 1 (the tail beyond ``radius`` is missing).
    """
    radius = int(radius)
    kernel = np.zeros((2 * radius + 1, 2 * radius + 1), dtype=np.float64)
    fwhm = float(fwhm_pixels)
    kernels.compiled("_psf_kernel")(_kind_code(kind), fwhm, fwhm * FIBER_G_PER_FWHM, radius,
                                    kernel)
    return kernel


def auto_kernel_radius(kind: str, fwhm_pixels: float, max_photons: float) -> int:
    """Kernel radius the C program picks from the brightest pixel (before clipping).

    The radius is where the brightest pixel's spread photons fall below a tenth of its shot
    noise: for a Gaussian ``1 + ceil(sqrt(-ln(n/I) / ln 16) fwhm)``, for the fibre PSF
    ``1 + ceil(g I / n)``, with ``n = sqrt(I) / 10``. (Below 0.01 photons, where the C
    program takes the square root of a negative number, the radius is 1.)

    Parameters
    ----------
    kind : {"gauss", "fiber"}
        PSF shape.
    fwhm_pixels : float
        Full width at half maximum, pixels.
    max_photons : float
        Largest pixel value, photons (> 0).

    Returns
    -------
    int
        Radius in pixels (>= 1), before the limit to the image size.
    """
    fwhm = float(fwhm_pixels)
    value = float(max_photons)
    lost = math.sqrt(value) / _PHOTONLOSS_FACTOR
    if _kind_code(kind) == kernels.GAUSS:
        # the C expression (/ ln 4 / 2, not / ln 16 as for single pixels)
        arg = -math.log(lost / value) / math.log(4) / 2 if math.isfinite(value) else 0.0
        reach = math.sqrt(arg) * fwhm if arg >= 0.0 else 0.0
    else:
        reach = fwhm * FIBER_G_PER_FWHM * (value / lost) if math.isfinite(value) else math.inf
    wanted = 1.0 + math.ceil(reach) if math.isfinite(reach) else math.inf
    return max(1, int(min(wanted, 2.0**31 - 1)))


@dataclass
class PSFResult:
    """Output of :func:`apply_psf`.

    Attributes
    ----------
    image : numpy.ndarray, float32, shape (slow, fast)
        The blurred photons.
    lines : list of str
        What the C ``apply_psf`` prints, in order.
    radius : int
        Kernel radius used, pixels (0 when nothing was rendered).
    lost_photons : float
        Photons cut off beyond each pixel's radius and added back uniformly.
    """

    image: np.ndarray
    lines: list[str] = field(default_factory=list)
    radius: int = 0
    lost_photons: float = 0.0


def apply_psf(photons: np.ndarray, kind: str, fwhm_pixels: float, radius: int = 0,
              threads: int | None = None) -> PSFResult:
    """Spread each pixel's photons over its neighbours, exactly as the C ``apply_psf``.

    Every pixel with photons > 0 spreads them with the :func:`psf_kernel` truncated at its own
    radius: ``radius`` if given, else the radius where its spread photons fall below a tenth
    of its shot noise (bright pixels reach further). The photons cut off beyond that radius
    (analytic tail) are summed and added back evenly to every pixel. Photons spread past the
    left, top and bottom edges are lost; past the right edge (one column beyond it) they land
    in column 0 of the next row, as in C. Sums are float32, in the C order.

    Parameters
    ----------
    photons : numpy.ndarray, shape (slow, fast)
        Photons per pixel (float32).
    kind : {"gauss", "fiber"}
        PSF shape (see :func:`psf_kernel`).
    fwhm_pixels : float
        Full width at half maximum, pixels.
    radius : int
        ``-psf_radius``: rendering radius in pixels, or 0 (or less) to choose automatically.
    threads : int, optional
        Threads for the scatter (numba's default: all cores).

    Returns
    -------
    PSFResult
        Blurred image, the lines the C program prints, the radius and the lost photons.
    """
    values = _as_float32_image(photons)
    code = _kind_code(kind)
    fwhm = float(fwhm_pixels)
    ypixels, xpixels = values.shape
    result = PSFResult(values)
    if values.size == 0:
        result.lines.append("ERROR: apply_psf image has zero size")
        return result
    if not fwhm > 0.0:
        result.lines.append("WARNING: apply_psf function has zero size")
        return result
    max_width = max(xpixels, ypixels)
    kernel_radius = int(radius)
    if kernel_radius <= 0:
        kernel_radius = _auto_radius_lines(values, kind, fwhm, result.lines)
        if kernel_radius == 0:
            result.image = np.zeros_like(values)
            return result
    kernel_radius = min(kernel_radius, max_width)
    flat = values.reshape(-1)
    radii = np.empty(flat.size, dtype=np.int64)
    g = fwhm * FIBER_G_PER_FWHM
    lost = kernels.compiled("_psf_radii")(flat, code, fwhm, g, max(int(radius), 0), max_width,
                                          radii)
    kernel_t = np.ascontiguousarray(psf_kernel(kind, fwhm, kernel_radius).T)
    out = np.zeros(flat.size, dtype=np.float32)
    _scatter(flat, radii, kernel_t, kernel_radius, xpixels, ypixels, out, threads)
    result.lines.append(f"adding back {format_c_g(lost)} lost photons")
    kernels.compiled("_add_uniform")(out, lost / flat.size)
    result.image = out.reshape(values.shape)
    result.radius = kernel_radius
    result.lost_photons = float(lost)
    return result


def _auto_radius_lines(values: np.ndarray, kind: str, fwhm: float, lines: list[str]) -> int:
    """Pick the kernel radius from the brightest pixel, printing as C does; 0: no photons."""
    # C keeps the largest value above 0 (NaN never compares larger)
    max_photons = max(float(np.max(np.where(np.isnan(values), 0.0, values))), 0.0)
    lines.append(f"  maximum input photon/pixel: {format_c_g(max_photons)}")
    if not max_photons > 0.0:
        lines.append("WARNING: no photons, PSF skipped")
        return 0
    chosen = auto_kernel_radius(kind, fwhm, max_photons)
    lines.append(f"  auto-selected psf_radius = {chosen} pixels")
    return chosen


def _scatter(flat, radii, kernel_t, kernel_radius, xpixels, ypixels, out, threads) -> None:
    """Run the banded parallel scatter with ``threads`` threads (numba's count by default)."""
    import numba

    count = numba.get_num_threads() if threads is None else max(1, int(threads))
    band_rows = max(1, -(-ypixels // (4 * count)))
    scatter = kernels.compiled("_psf_scatter")
    previous = numba.get_num_threads()
    numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))
    try:
        scatter(flat, radii, kernel_t, kernel_radius, xpixels, ypixels, band_rows, out)
    finally:
        numba.set_num_threads(previous)
