"""Loops of the C ``noisify`` program as plain Python kernels, compiled by numba on demand.

Every kernel reproduces the C program's arithmetic bit for bit: pixels are C floats
(``np.float32``), sums and products double, and each C ``float`` store is an explicit
``np.float32`` conversion. The random numbers come from :mod:`torchbragg.rng_kernels` (the same
``ran1``/``gaussdev``/``poidev`` recipes as nanoBragg; their state arrays are shared between
streams exactly as the C function-static variables are).

Images are flat ``(pixels,)`` arrays in file order (fast index fastest). :func:`compiled`
returns the numba form of a kernel; the point-spread scatter runs in parallel over bands of
output rows, each band receiving its contributions in the C program's order.
"""

from __future__ import annotations

import math
import types

import numpy as np

from torchbragg import rng_kernels

# PSF shapes, as integer codes the compiled kernels compare.
GAUSS = 1
FIBER = 2

# ln 16: a Gaussian of full width at half maximum w falls as exp(-ln16 (r/w)**2).
_LOG16 = math.log(16.0)
_LOG2 = math.log(2.0)
# Whole photon counts below this have their PSF radius and tail looked up, not recomputed.
_TABLE = 65536


def _cast_uint32(value):
    # C cast double -> unsigned int as x86-64 gcc compiles it: truncate into a 64-bit
    # integer (NaN and out-of-range give INT64_MIN) and keep the low 32 bits.
    if not (value > -9.2e18 and value < 9.2e18):
        return np.uint32(0)
    return np.uint32(np.int64(value) & 0xFFFFFFFF)


def _shot_noise(photons, flicker, calibration, seed, calib_seed, table, spare, cache, out):
    # Per pixel, in file order: flicker (seed stream), calibration (calib stream),
    # Poisson (seed stream). Returns the double sum of the Poisson deviates.
    total = 0.0
    for i in range(photons.shape[0]):
        mean = np.float64(photons[i])
        if flicker > 0.0:
            mean *= 1.0 + flicker * np.float64(_gaussdev(seed, table, spare))
        if calibration > 0.0:
            mean *= 1.0 + calibration * np.float64(_gaussdev(calib_seed, table, spare))
        deviate = _poidev(np.float32(mean), seed, table, spare, cache)
        out[i] = deviate
        total += np.float64(deviate)
    return total


def _to_adu(photons, gain, offset, readout, bits, seed, table, spare, out16, out32):
    # Photons -> ADC units with optional read-out noise, clipped and cast as C does.
    # Returns the double sum of the input photons and the overloads for `bits`.
    total = 0.0
    overloads = 0
    for i in range(photons.shape[0]):
        total += np.float64(photons[i])
        adu = np.float64(photons[i]) * gain + offset
        if readout > 0.0:
            adu += readout * np.float64(_gaussdev(seed, table, spare))
        if adu > 2147483647.0:
            adu = 2147483647.0
            if bits == 32:
                overloads += 1
        out32[i] = _cast_uint32(adu)
        if adu > 65535.0:
            adu = 65535.0
            if bits == 16:
                overloads += 1
        out16[i] = _to_uint16(adu)
    return total, overloads


def _gauss_cdf2(x, y):
    # Integral of a unit-FWHM, unit-volume 2-D Gaussian from the origin to (x, y), times 4.
    return 0.125 * (math.erf(2.0 * x * math.sqrt(_LOG2)) * math.erf(y * math.sqrt(_LOG16))
                    * math.sqrt(_LOG16 / _LOG2))


def _gauss_pixel(x, y, pix):
    # Unit-FWHM Gaussian integrated over the square pixel of side `pix` centred at (x, y).
    half = pix / 2.0
    return (_gauss_cdf2(x + half, y + half) - _gauss_cdf2(x + half, y - half)
            - _gauss_cdf2(x - half, y + half) + _gauss_cdf2(x - half, y - half))


def _fiber_cdf2(x, y, g):
    # Integral of the fibre PSF g/(2 pi (g^2 + r^2)^(3/2)) from the origin to (x, y).
    return math.atan((x * y) / (g * math.sqrt(g * g + x * x + y * y))) / 2.0 / math.pi


def _fiber_pixel(x, y, g):
    # Fibre PSF integrated over the unit pixel centred at (x, y).
    return (_fiber_cdf2(x + 0.5, y + 0.5, g) - _fiber_cdf2(x + 0.5, y - 0.5, g)
            - _fiber_cdf2(x - 0.5, y + 0.5, g) + _fiber_cdf2(x - 0.5, y - 0.5, g))


def _psf_kernel(kind, fwhm, g, radius, kernel):
    # Fill kernel[(2r+1), (2r+1)] (zeros outside the disc of `radius`) with the PSF
    # integrated over each pixel; row = dy + r, column = dx + r.
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dx * dx + dy * dy > radius * radius:
                continue
            if kind == GAUSS:
                kernel[radius + dy, radius + dx] = _gauss_pixel(dx / fwhm, dy / fwhm, 1.0 / fwhm)
            else:
                kernel[radius + dy, radius + dx] = _fiber_pixel(np.float64(dx), np.float64(dy), g)


def _pixel_radius(kind, value, fwhm, g):
    # Radius (pixels) beyond which this pixel's spread photons fall below a tenth of its
    # shot noise, as the C auto-selection computes it. A pixel dimmer than 0.01 photons
    # (noise/10 > signal) gets 1: the C program takes sqrt of a negative number there.
    lost = math.sqrt(value) / 10.0
    if kind == GAUSS:
        arg = -math.log(lost / value) / _LOG16
        if not arg >= 0.0:
            return 1.0
        return 1.0 + math.ceil(math.sqrt(arg) * fwhm)
    return 1.0 + math.ceil(g * (value / lost))


def _tail(kind, value, radius, fwhm, g):
    # Photons of this pixel falling beyond `radius` (analytic, continuous PSF).
    if kind == GAUSS:
        rsq = np.float64(radius) / fwhm
        rsq = rsq * rsq
        return value * math.exp(-_LOG16 * rsq)
    return value * g / math.sqrt(g * g + np.float64(radius * radius))


def _psf_radii(image, kind, fwhm, g, user_radius, max_radius, radii):
    # Per source pixel: its rendering radius (0 = not spread: value <= 0 or NaN) and,
    # summed in file order, the photons its truncated PSF loses. Both depend on the value
    # only, so whole photon counts (the usual case after shot noise) are looked up in a
    # table filled on first use.
    cached_radius = np.full(_TABLE, -1, dtype=np.int64)
    cached_lost = np.zeros(_TABLE, dtype=np.float64)
    total_lost = 0.0
    for i in range(image.shape[0]):
        value = np.float64(image[i])
        if not value > 0.0:
            radii[i] = 0
            continue
        slot = int(value) if value < _TABLE and value == int(value) else -1
        if slot >= 0 and cached_radius[slot] >= 0:
            radii[i] = cached_radius[slot]
            total_lost += cached_lost[slot]
            continue
        if user_radius != 0:
            radius = user_radius
        else:
            wanted = _pixel_radius(kind, value, fwhm, g)
            radius = int(wanted) if wanted <= max_radius else max_radius  # (NaN: inf pixel)
        radius = max(1, min(radius, max_radius))
        lost = _tail(kind, value, radius, fwhm, g)
        if slot >= 0:
            cached_radius[slot] = radius
            cached_lost[slot] = lost
        radii[i] = radius
        total_lost += lost
    return total_lost


def _isqrt(n):
    # Largest integer whose square is <= n (n >= 0).
    root = int(math.sqrt(np.float64(n)))
    while root * root > n:
        root -= 1
    while (root + 1) * (root + 1) <= n:
        root += 1
    return root


def _scatter_band(image, radii, kernel_t, kr, xpixels, ypixels, row0, row1, out):
    # Spread every source pixel into output rows [row0, row1), sources in file order and
    # offsets in the C loop order (dx outer, dy inner), so that each output pixel sums its
    # contributions in exactly the C sequence. Column x == xpixels is where the C bounds
    # test lets a contribution through: it lands in column 0 of the next row.
    # kernel_t is the kernel transposed (row = dx + kr), so that the dy loop reads it in order.
    first = max(0, row0 - kr - 1)
    last = min(ypixels - 1, row1 - 1 + kr)
    for y0 in range(first, last + 1):
        for x0 in range(xpixels):
            i = y0 * xpixels + x0
            r = radii[i]
            if r == 0 or y0 + r + 1 < row0 or y0 - r > row1 - 1:
                continue
            value = np.float64(image[i])
            for dx in range(max(-r, -kr, -x0), min(r, kr, xpixels - x0) + 1):
                x = x0 + dx
                # offsets inside the disc dx**2 + dy**2 <= r**2, rows inside this band
                reach = _isqrt(r * r - dx * dx)
                if x == xpixels:
                    dy_lo, dy_hi, shift = row0 - 1 - y0, row1 - 2 - y0, 1
                else:
                    dy_lo, dy_hi, shift = row0 - y0, row1 - 1 - y0, 0
                dy_lo = max(dy_lo, -reach, -y0, -kr)
                dy_hi = min(dy_hi, reach, kr)
                column = (x - xpixels * shift) + (y0 + shift) * xpixels
                for dy in range(dy_lo, dy_hi + 1):
                    weight = kernel_t[kr + dx, kr + dy]
                    if weight != 0.0:
                        j = column + dy * xpixels
                        out[j] = np.float32(np.float64(out[j]) + value * weight)


def _psf_scatter(image, radii, kernel_t, kr, xpixels, ypixels, band_rows, out):
    # Bands of output rows are independent: run them in parallel.
    bands = (ypixels + band_rows - 1) // band_rows
    for band in prange(bands):
        row0 = band * band_rows
        row1 = min(ypixels, row0 + band_rows)
        _scatter_band(image, radii, kernel_t, kr, xpixels, ypixels, row0, row1, out)


def _add_uniform(out, value):
    # out[i] += value in double, stored as float (the C add-back of lost photons).
    for i in range(out.shape[0]):
        out[i] = np.float32(np.float64(out[i]) + value)


_OWN = ("_cast_uint32", "_shot_noise", "_to_adu", "_gauss_cdf2", "_gauss_pixel", "_fiber_cdf2",
        "_fiber_pixel", "_psf_kernel", "_pixel_radius", "_tail", "_psf_radii", "_isqrt",
        "_scatter_band", "_add_uniform")
_PARALLEL = ("_psf_scatter",)
# The generators, inlined into the loops that call them (about 1.5x faster than calls).
_FROM_RNG = ("_trunc_div", "_park_miller", "_ran1", "_gammln", "_gaussdev", "_poidev_small",
             "_poidev_rejection", "_poidev", "_to_uint16")
_COMPILED: dict = {}


def _rng_digest() -> str:
    """Return a digest of the generators' source, a part of the cached kernels' names.

    numba's disk cache watches only this file; with the digest in their names, kernels built
    from an older :mod:`torchbragg.rng_kernels` are never served.
    """
    import hashlib
    import inspect

    return hashlib.sha256(inspect.getsource(rng_kernels).encode()).hexdigest()[:12]


def compiled(name: str):
    """Return the numba-compiled kernel ``name`` (numba is imported on the first call).

    Each kernel is compiled from a copy of its code whose globals name the compiled forms of
    the other kernels; the :mod:`torchbragg.rng_kernels` generators are inlined. numba caches
    the kernels on disk. ``_psf_scatter`` is compiled with ``parallel=True``.
    """
    if not _COMPILED:
        import numba

        namespace = dict(vars(rng_kernels))
        namespace.update(globals())
        for kernel in _FROM_RNG:
            code = getattr(rng_kernels, kernel).__code__
            namespace[kernel] = numba.njit(inline="always")(
                types.FunctionType(code, namespace, kernel))
        namespace["prange"] = numba.prange
        digest = _rng_digest()
        for kernel in _OWN + _PARALLEL:
            function = types.FunctionType(globals()[kernel].__code__, namespace, kernel)
            function.__qualname__ = f"{kernel}_{digest}"
            njit = numba.njit(cache=True, parallel=kernel in _PARALLEL, error_model="numpy")
            namespace[kernel] = njit(function)
        _COMPILED.update({kernel: namespace[kernel] for kernel in _OWN + _PARALLEL})
    return _COMPILED[name]


def prange(n):
    """Plain ``range``; the compiled kernels use ``numba.prange`` instead."""
    return range(n)


# The plain-Python forms (for reading and debugging) call the plain generators.
_gaussdev = rng_kernels._gaussdev
_poidev = rng_kernels._poidev
_to_uint16 = rng_kernels._to_uint16
