"""Detector effects of ``noisify`` as PyTorch operations: fast, on any device, differentiable.

The physics is that of the C program (see :mod:`torchbragg.noisify.exact` for the bit-exact
version): photons per pixel are optionally modulated by beam flicker and a static per-pixel
calibration error, drawn from a Poisson distribution, spread by a point spread function,
converted to ADC units with a gain and an offset, and given Gaussian read-out noise.

Differences from the C recipe, where exactness is not needed:

* random numbers come from torch generators (``torch.poisson``, ``torch.randn``), not from the
  C ``ran1`` streams;
* the PSF uses one kernel radius for every pixel (``radius``, or the C program's choice for the
  brightest pixel) and a convolution (direct, or FFT for large kernels), so dim pixels keep
  more of their tail than in C (the C program cuts each pixel's PSF where it falls below a
  tenth of that pixel's shot noise, then adds the cut photons back evenly); photons leaving
  the image are lost at every edge (C wraps the right edge into the next row's column 0).

Everything is differentiable with torch autograd where the physics is continuous: the PSF
with respect to its width and the image, :func:`to_adu` with respect to gain and offset.

Images are tensors of shape ``(..., slow, fast)`` in photons per pixel.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

from torchbragg.noisify.exact import (
    DEFAULT_FLUENCE,
    FIBER_G_PER_FWHM,
    R_E_SQR,
    auto_kernel_radius,
)

__all__ = [
    "apply_psf",
    "auto_psf_radius",
    "detector_image",
    "gaussian_factor",
    "photons_from_image",
    "poisson_noise",
    "psf_kernel",
    "psf_tail_fraction",
    "quantize",
    "readout_noise",
    "to_adu",
]

Kind = Literal["gauss", "fiber"]
# Kernels up to this width are applied directly (float32 and lower, or on a GPU), wider ones
# (and float64 ones on the CPU, where direct convolution is slow) by FFT.
_DIRECT_UP_TO = {"cpu": 7, "cuda": 25}


def _check_kind(kind: str) -> None:
    if kind not in ("gauss", "fiber"):
        raise ValueError(f"PSF kind must be 'gauss' or 'fiber', got {kind!r}")


def _as_tensor(value, like: torch.Tensor | None = None, dtype=None, device=None) -> torch.Tensor:
    """``value`` as a floating tensor (kept as is, with its graph, when it already is one)."""
    if like is not None:
        dtype = dtype or (like.dtype if like.is_floating_point() else torch.float64)
        device = device or like.device
    if isinstance(value, torch.Tensor):
        return value.to(dtype=dtype or value.dtype, device=device or value.device)
    return torch.as_tensor(float(value), dtype=dtype or torch.float64, device=device)


def photons_from_image(image: torch.Tensor, scale: float | torch.Tensor = 1.0,
                       fluence: float = DEFAULT_FLUENCE) -> torch.Tensor:
    """Put an input image on the photons-per-pixel scale: ``fluence * r_e**2 * scale * image``.

    Parameters
    ----------
    image : torch.Tensor, shape (..., slow, fast)
        Input pixel values (the ``-floatfile`` image).
    scale : float or torch.Tensor
        ``-scale``, dimensionless.
    fluence : float
        ``-fluence``, photons/m**2 (the default makes ``fluence * r_e**2`` one).

    Returns
    -------
    torch.Tensor, same shape
        Photons per pixel.
    """
    return image * (fluence * R_E_SQR) * scale


def psf_tail_fraction(kind: Kind, fwhm_px: float | torch.Tensor,
                      radius: int) -> torch.Tensor:
    """Fraction of a pixel's photons the continuous PSF puts beyond ``radius`` pixels.

    Gaussian: ``exp(-ln16 (radius / fwhm)**2)``; fibre: ``g / sqrt(g**2 + radius**2)`` with
    ``g = 0.652383 fwhm``.

    Parameters
    ----------
    kind : {"gauss", "fiber"}
        PSF shape.
    fwhm_px : float or torch.Tensor
        Full width at half maximum, pixels (differentiable).
    radius : int
        Radius, pixels.

    Returns
    -------
    torch.Tensor, scalar
        The fraction, in [0, 1].
    """
    _check_kind(kind)
    fwhm = _as_tensor(fwhm_px)
    if kind == "gauss":
        return torch.exp(-math.log(16.0) * (radius / fwhm) ** 2)
    g = FIBER_G_PER_FWHM * fwhm
    return g / torch.sqrt(g * g + float(radius) ** 2)


def psf_kernel(kind: Kind, fwhm_px: float | torch.Tensor, radius: int, *,
               dtype: torch.dtype | None = None,
               device: torch.device | str | None = None) -> torch.Tensor:
    """The PSF integrated over each pixel of a disc of ``radius`` pixels, as ``noisify`` builds it.

    Gaussian: a 2-D Gaussian of full width at half maximum ``fwhm_px``, whose pixel integrals
    factor into ``a(dx) a(dy)`` with ``a(d) = (erf(c (d + 1/2)) - erf(c (d - 1/2))) / 2`` and
    ``c = sqrt(ln 16) / fwhm``. Fibre optic: ``g / (2 pi (g**2 + r**2)**1.5)`` (the light of a
    point seen through a slab of thickness ``g``; ``g = 0.652383 fwhm`` gives the same FWHM),
    whose integral over ``[0, x] x [0, y]`` is ``atan(x y / (g sqrt(g**2 + x**2 + y**2))) / 2pi``.

    Parameters
    ----------
    kind : {"gauss", "fiber"}
        PSF shape.
    fwhm_px : float or torch.Tensor
        Full width at half maximum, pixels (> 0); a tensor keeps its autograd graph.
    radius : int
        Kernel radius, pixels; entries with ``dx**2 + dy**2 > radius**2`` are 0.
    dtype, device : optional
        Of the result (default: those of ``fwhm_px`` if a tensor, else float64 on the CPU).

    Returns
    -------
    torch.Tensor, shape (2 radius + 1, 2 radius + 1)
        ``kernel[dy + radius, dx + radius]``: fraction of a pixel's photons landing at offset
        ``(dx, dy)``; sums to ``1 - psf_tail_fraction`` approximately.
    """
    _check_kind(kind)
    fwhm = _as_tensor(fwhm_px, dtype=dtype, device=device)
    radius = int(radius)
    offsets = torch.arange(-radius, radius + 1, dtype=fwhm.dtype, device=fwhm.device)
    if kind == "gauss":
        c = math.sqrt(math.log(16.0)) / fwhm
        edges = torch.erf(c * (offsets + 0.5)) - torch.erf(c * (offsets - 0.5))
        kernel = 0.25 * edges[:, None] * edges[None, :]
    else:
        g = FIBER_G_PER_FWHM * fwhm
        corners = torch.arange(-radius - 0.5, radius + 1.0, 1.0, dtype=fwhm.dtype,
                               device=fwhm.device)
        x, y = corners[None, :], corners[:, None]
        cdf = torch.atan(x * y / (g * torch.sqrt(g * g + x * x + y * y))) / (2.0 * math.pi)
        kernel = cdf[1:, 1:] - cdf[1:, :-1] - cdf[:-1, 1:] + cdf[:-1, :-1]
    inside = offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius * radius
    return torch.where(inside, kernel, torch.zeros((), dtype=kernel.dtype, device=kernel.device))


def auto_psf_radius(kind: Kind, fwhm_px: float, max_photons: float,
                    max_width: int | None = None) -> int:
    """Return the kernel radius ``noisify`` chooses.

    That is where the brightest pixel's spread photons fall below a tenth of its shot noise
    (see :func:`torchbragg.noisify.exact.auto_kernel_radius`).

    Parameters
    ----------
    kind : {"gauss", "fiber"}
        PSF shape.
    fwhm_px : float
        Full width at half maximum, pixels.
    max_photons : float
        Brightest pixel, photons (<= 0 gives 1).
    max_width : int, optional
        Upper limit (the C program uses the larger image dimension).

    Returns
    -------
    int
        Radius, pixels (>= 1).
    """
    radius = auto_kernel_radius(kind, float(fwhm_px), float(max_photons)) \
        if max_photons > 0 else 1
    return radius if max_width is None else max(1, min(radius, int(max_width)))


def _convolve(image: torch.Tensor, kernel: torch.Tensor, method: str) -> torch.Tensor:
    """Zero-padded 2-D convolution of ``(..., S, F)`` images with a ``(K, K)`` kernel, same size."""
    shape = image.shape
    flat = image.reshape(-1, 1, shape[-2], shape[-1])
    width = kernel.shape[-1]
    radius = width // 2
    if method == "auto":
        limit = _DIRECT_UP_TO.get(image.device.type, 7)
        slow_direct = image.device.type == "cpu" and image.dtype == torch.float64
        method = "direct" if width <= limit and not slow_direct else "fft"
    if method == "direct":
        # conv2d correlates; flipping makes it the convolution out[y] = sum in[y - d] k[d]
        weight = kernel.flip(-1, -2).reshape(1, 1, width, width).to(flat.dtype)
        out = F.conv2d(flat, weight, padding=radius)
    elif method == "fft":
        size = (shape[-2] + width - 1, shape[-1] + width - 1)
        spectrum = torch.fft.rfft2(flat, s=size) * torch.fft.rfft2(kernel.to(flat.dtype), s=size)
        full = torch.fft.irfft2(spectrum, s=size)
        out = full[..., radius:radius + shape[-2], radius:radius + shape[-1]]
    else:
        raise ValueError(f"method must be 'auto', 'direct' or 'fft', got {method!r}")
    return out.reshape(shape)


def apply_psf(image: torch.Tensor, kind: Kind, fwhm_px: float | torch.Tensor,
              radius: int | None = None, *,
              add_back: Literal["tail", "all", "none"] = "tail",
              method: Literal["auto", "direct", "fft"] = "auto") -> torch.Tensor:
    """Blur an image with ``noisify``'s point spread function.

    Pixels <= 0 spread nothing (as in C). Photons spread beyond the image are lost.

    Parameters
    ----------
    image : torch.Tensor, shape (..., slow, fast)
        Photons per pixel.
    kind : {"gauss", "fiber"}
        PSF shape (see :func:`psf_kernel`).
    fwhm_px : float or torch.Tensor
        Full width at half maximum, pixels (the ``-psf_fwhm`` in um over the pixel size);
        differentiable.
    radius : int, optional
        Kernel radius, pixels; by default the C program's choice for the brightest pixel
        (:func:`auto_psf_radius`), limited to the larger image dimension.
    add_back : {"tail", "all", "none"}
        Photons to spread evenly over the image afterwards: ``"tail"``, as ``noisify``, the
        analytic PSF tail beyond ``radius`` (the result then equals the C program's with
        ``-psf_radius radius`` except at the right edge and in float rounding); ``"all"``
        everything the blurred image lacks, edges included, so the total is conserved
        exactly; ``"none"``.
    method : {"auto", "direct", "fft"}
        Convolution algorithm (``"auto"``: direct for narrow kernels, 7 pixels on the CPU
        (float32) and 25 on a GPU, else FFT).

    Returns
    -------
    torch.Tensor, same shape and dtype as ``image``
        Blurred photons per pixel.
    """
    _check_kind(kind)
    if add_back not in ("tail", "all", "none"):
        raise ValueError(f"add_back must be 'tail', 'all' or 'none', got {add_back!r}")
    fwhm = _as_tensor(fwhm_px, like=image)
    if not float(fwhm.detach()) > 0:
        raise ValueError(f"PSF width must be positive, got {float(fwhm.detach())}")
    sources = torch.where(image > 0, image, torch.zeros((), dtype=image.dtype,
                                                        device=image.device))
    max_width = max(image.shape[-2], image.shape[-1])
    if radius is None:
        brightest = float(sources.detach().max()) if sources.numel() else 0.0
        radius = auto_psf_radius(kind, float(fwhm.detach()), brightest, max_width)
    radius = max(1, min(int(radius), max_width))
    kernel = psf_kernel(kind, fwhm, radius)
    blurred = _convolve(sources, kernel, method)
    pixels = image.shape[-2] * image.shape[-1]
    per_image = (-2, -1)
    if add_back == "tail":
        lost = sources.sum(dim=per_image, keepdim=True) * psf_tail_fraction(kind, fwhm, radius)
    elif add_back == "all":
        lost = sources.sum(dim=per_image, keepdim=True) - blurred.sum(dim=per_image,
                                                                      keepdim=True)
    else:
        return blurred
    return blurred + lost / pixels


def to_adu(photons: torch.Tensor, gain: float | torch.Tensor = 1.0,
           adc_offset: float | torch.Tensor = 40.0) -> torch.Tensor:
    """Convert photons to ADC units: ``photons * gain + adc_offset`` (differentiable).

    Parameters
    ----------
    photons : torch.Tensor
        Photons per pixel.
    gain : float or torch.Tensor
        ADU per photon (``-gain``).
    adc_offset : float or torch.Tensor
        ADU added to every pixel (``-adc``).

    Returns
    -------
    torch.Tensor
        Pixel values in ADU, before read-out noise and integer conversion.
    """
    return photons * gain + adc_offset


def poisson_noise(photons: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw photon counts with the given means (photon shot noise); means <= 0 give 0.

    Parameters
    ----------
    photons : torch.Tensor
        Expected photons per pixel.
    generator : torch.Generator, optional
        Random generator on the tensor's device.

    Returns
    -------
    torch.Tensor, same shape and dtype
        Whole photon counts (no gradient).
    """
    rates = photons.detach().clamp_min(0)
    return torch.poisson(rates, generator=generator)


def gaussian_factor(like: torch.Tensor, rms: float,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-pixel factors ``1 + rms * N(0, 1)``: beam flicker or calibration error.

    In ``noisify`` both are drawn per pixel: ``-flicker`` from the noise seed (different in
    every image), ``-calibration`` from its own seed (the same in every image: pass a
    generator seeded identically each time).

    Parameters
    ----------
    like : torch.Tensor
        Gives the shape, dtype and device.
    rms : float
        Fractional rms (0.03 for 3 %).
    generator : torch.Generator, optional
        Random generator on the tensor's device.

    Returns
    -------
    torch.Tensor, shape of ``like``
        The factors.
    """
    noise = torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)
    return 1.0 + rms * noise


def readout_noise(adu: torch.Tensor, rms: float,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Add Gaussian read-out noise of ``rms`` ADU to every pixel.

    Parameters
    ----------
    adu : torch.Tensor
        Pixel values, ADU.
    rms : float
        ``-readout_noise``, ADU.
    generator : torch.Generator, optional
        Random generator on the tensor's device.

    Returns
    -------
    torch.Tensor, same shape
        ``adu + rms * N(0, 1)``.
    """
    noise = torch.randn(adu.shape, generator=generator, dtype=adu.dtype, device=adu.device)
    return adu + rms * noise


def quantize(adu: torch.Tensor, bits: int = 16) -> tuple[torch.Tensor, int]:
    """Integer pixels as ``noisify`` writes them: clip, then cast as x86-64 C casts.

    Values above 65535 (16 bits) or 2147483647 (32 bits) are clipped and counted; the cast
    truncates, so negative values wrap around (-1.5 gives 65535) and NaN gives 0.

    Parameters
    ----------
    adu : torch.Tensor
        Pixel values, ADU.
    bits : {16, 32}
        Integer width.

    Returns
    -------
    pixels : torch.Tensor, int64, same shape
        The unsigned pixel values.
    overloads : int
        Clipped pixels.
    """
    if bits not in (16, 32):
        raise ValueError(f"bits must be 16 or 32, got {bits}")
    values = adu.detach().to(torch.float64)
    limit = 65535.0 if bits == 16 else 2147483647.0
    overloads = int((values > limit).sum())
    values = torch.where(values > limit, torch.full_like(values, limit), values)
    # 16 bits go through a 32-bit int, 32 bits through a 64-bit one; NaN and out-of-range
    # values become the most negative integer, whose low bits are 0
    span = 2.0**31 if bits == 16 else 2.0**63
    valid = (values > -span - 1.0) & (values < span)
    whole = torch.trunc(torch.where(valid, values, torch.zeros_like(values))).to(torch.int64)
    return whole & ((1 << bits) - 1), overloads


def detector_image(photons: torch.Tensor, *, gain: float | torch.Tensor = 1.0,
                   adc_offset: float | torch.Tensor = 40.0, readout: float = 0.0,
                   flicker: float = 0.0, calibration: float = 0.03,
                   psf: Kind | None = None, psf_fwhm_px: float | torch.Tensor = 0.0,
                   psf_radius: int | None = None, noise: bool = True,
                   generator: torch.Generator | None = None,
                   calibration_generator: torch.Generator | None = None) -> torch.Tensor:
    """``noisify``'s detector, torch-native: photons in, ADU out (before integer conversion).

    With ``noise``: flicker and calibration factors, Poisson counts, PSF, gain and offset,
    read-out noise (the C program's order). Without: PSF, gain and offset only, so the
    result is differentiable with respect to the image, the PSF width, gain and offset.

    Parameters
    ----------
    photons : torch.Tensor, shape (..., slow, fast)
        Expected photons per pixel (see :func:`photons_from_image`).
    gain, adc_offset : float or torch.Tensor
        ADU per photon and ADU offset.
    readout : float
        Read-out noise, rms ADU.
    flicker, calibration : float
        Fractional rms of the per-pixel source flicker and calibration error.
    psf : {"gauss", "fiber"} or None
        PSF shape; None (or ``psf_fwhm_px <= 0``) for none.
    psf_fwhm_px : float or torch.Tensor
        PSF full width at half maximum, pixels.
    psf_radius : int, optional
        PSF kernel radius, pixels (default: automatic, see :func:`apply_psf`).
    noise : bool
        False for the noiseless image (``-nonoise``).
    generator : torch.Generator, optional
        For flicker, shot and read-out noise.
    calibration_generator : torch.Generator, optional
        For the calibration error (seed it the same way for every image).

    Returns
    -------
    torch.Tensor, same shape
        Pixel values, ADU (see :func:`quantize` for the integers).
    """
    signal = photons
    if noise:
        if flicker > 0:
            signal = signal * gaussian_factor(signal, flicker, generator)
        if calibration > 0:
            signal = signal * gaussian_factor(signal, calibration, calibration_generator)
        signal = poisson_noise(signal, generator)
    width = psf_fwhm_px if isinstance(psf_fwhm_px, torch.Tensor) else float(psf_fwhm_px)
    if psf is not None and float(_as_tensor(width).detach()) > 0:
        signal = apply_psf(signal, psf, width, psf_radius)
    adu = to_adu(signal, gain, adc_offset)
    if noise and readout > 0:
        adu = readout_noise(adu, readout, generator)
    return adu
