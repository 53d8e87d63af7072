"""The C program's random generators as plain Python kernels, compiled by numba on demand.

The kernels work on raw state arrays (``idum`` (1,) int64, ``table`` (33,) int64, spare and
cache arrays, see :class:`torchbragg.rng.SharedState`) and reproduce C float (binary32)
rounding with explicit ``np.float32`` conversions wherever the C code stores or computes in
float. Written in the subset of Python that numba compiles, they run unchanged in plain
Python too: :mod:`torchbragg.rng` draws the few numbers that set up mosaic domains and a
random misset that way, and compiles them (:func:`compiled`) only for bulk work (noise
images, long sequences), so that numba is imported only when it pays.
"""

from __future__ import annotations

import math
import types

import numpy as np

# Park-Miller constants: IM = IA * IQ + IR lets Schrage's method avoid 64-bit overflow.
_IA = 16807
_IM = 2147483647
_AM = 1.0 / _IM
_IQ = 127773
_IR = 2836
_NTAB = 32
_NDIV = 1 + (_IM - 1) // _NTAB
# ran1 never returns more than RNMX; the comparison is made in double, the value is float.
_RNMX = 1.0 - 1.2e-7
_RNMX_F32 = np.float32(_RNMX)

# Largest photon count an unsigned 16-bit pixel holds.
_PIXEL_MAX = 65535.0


def _trunc_div(a, b):
    # C integer division truncates toward zero; b is positive here.
    q = a // b
    if q < 0 and q * b != a:
        q += 1
    return q


def _park_miller(x):
    # x <- 16807 x mod (2**31 - 1) without overflow (Schrage).
    k = _trunc_div(x, _IQ)
    x = _IA * (x - k * _IQ) - _IR * k
    if x < 0:
        x += _IM
    return x


def _ran1(idum, table):
    # Reload the shuffle table when the stream is new (idum <= 0) or no table exists.
    if idum[0] <= 0 or table[0] == 0:
        if -idum[0] < 1:
            idum[0] = 1
        else:
            idum[0] = -idum[0]
        # Eight warm-up steps, then the table is filled from its last slot down.
        for j in range(_NTAB + 7, -1, -1):
            idum[0] = _park_miller(idum[0])
            if j < _NTAB:
                table[1 + j] = idum[0]
        table[0] = table[1]
    idum[0] = _park_miller(idum[0])
    # The previous output picks the slot; the slot's value is returned and replaced.
    j = table[0] // _NDIV
    table[0] = table[1 + j]
    table[1 + j] = idum[0]
    temp = np.float32(_AM * table[0])
    if temp > _RNMX:
        return _RNMX_F32
    return temp


def _ran1_fill(idum, table, out):
    for i in range(out.shape[0]):
        out[i] = _ran1(idum, table)


def _gammln(xx):
    # Lanczos series for ln Gamma(xx); the argument and the result are C floats.
    x = np.float64(np.float32(xx))
    y = x
    tmp = x + 5.5
    tmp -= (x + 0.5) * math.log(tmp)
    ser = 1.000000000190015
    y += 1.0
    ser += 76.18009172947146 / y
    y += 1.0
    ser += -86.50532032941677 / y
    y += 1.0
    ser += 24.01409824083091 / y
    y += 1.0
    ser += -1.231739572450155 / y
    y += 1.0
    ser += 0.1208650973866179e-2 / y
    y += 1.0
    ser += -0.5395239384953e-5 / y
    return np.float32(-tmp + math.log(2.5066282746310005 * ser / x))


def _gaussdev(idum, table, spare):
    # Polar Box-Muller: two uniforms in the unit disc give two normal deviates;
    # the second one is kept for the next call.
    if spare[0] != 0.0:
        spare[0] = 0.0
        return np.float32(spare[1])
    while True:
        v1 = np.float32(2.0 * np.float64(_ran1(idum, table)) - 1.0)
        v2 = np.float32(2.0 * np.float64(_ran1(idum, table)) - 1.0)
        rsq = np.float32(
            np.float64(np.float32(np.float64(v1) * v1)) + np.float32(np.float64(v2) * v2)
        )
        if not (rsq >= 1.0 or rsq == 0.0):
            break
    fac = np.float32(math.sqrt(-2.0 * math.log(np.float64(rsq)) / np.float64(rsq)))
    spare[1] = np.float32(np.float64(v1) * fac)
    spare[0] = 1.0
    return np.float32(np.float64(v2) * fac)


def _poidev_small(xm, idum, table, cache):
    # Direct method: count uniform deviates until their product drops below exp(-mean).
    if xm != cache[0]:
        cache[0] = xm
        cache[3] = np.float32(math.exp(-np.float64(xm)))
    g = np.float32(cache[3])
    em = np.float32(-1.0)
    t = np.float32(1.0)
    while True:
        em = np.float32(em + np.float32(1.0))
        t = np.float32(np.float64(t) * _ran1(idum, table))
        if not (t > g):
            break
    return em


def _poidev_rejection(xm, idum, table, cache):
    # Rejection from a Lorentzian comparison function scaled by 0.9 (mean >= 12).
    if xm != cache[0]:
        cache[0] = xm
        cache[1] = np.float32(math.sqrt(2.0 * np.float64(xm)))
        cache[2] = np.float32(math.log(np.float64(xm)))
        xlog = np.float32(np.float64(xm) * cache[2])
        cache[3] = np.float32(np.float64(xlog) - _gammln(np.float32(np.float64(xm) + 1.0)))
    sq = cache[1]
    alxm = cache[2]
    g = cache[3]
    while True:
        while True:
            y = np.float32(math.tan(math.pi * np.float64(_ran1(idum, table))))
            em = np.float32(np.float64(np.float32(sq * y)) + np.float64(xm))
            if not (em < 0.0):
                break
        em = np.float32(np.floor(np.float64(em)))
        # ln of the Poisson probability of em relative to the mean's, all in float.
        elog = np.float32(np.float64(em) * alxm)
        lnratio = np.float32(np.float64(elog) - _gammln(np.float32(np.float64(em) + 1.0)))
        lnratio = np.float32(np.float64(lnratio) - g)
        yy = np.float32(np.float64(y) * y)
        t = np.float32(0.9 * (1.0 + np.float64(yy)) * math.exp(np.float64(lnratio)))
        if not (_ran1(idum, table) > t):
            break
    return em


def _poidev(xm, idum, table, spare, cache):
    xm = np.float32(xm)
    if xm > 1.0e6:
        # Gaussian approximation for very large means.
        gauss = np.float64(_gaussdev(idum, table, spare))
        return np.float32(np.float64(xm) + math.sqrt(np.float64(xm)) * gauss)
    if xm < 12.0:
        return _poidev_small(xm, idum, table, cache)
    return _poidev_rejection(xm, idum, table, cache)


def _to_uint16(value):
    # C cast double -> unsigned short as x86-64 gcc compiles it: truncate to a 32-bit
    # int (NaN and out-of-range give 0x80000000) and keep the low 16 bits.
    if not (value > -2147483649.0 and value < 2147483648.0):
        return np.uint16(0)
    return np.uint16(np.int64(value) & 0xFFFF)


def _noise_kernel(image, fpixels, spixels, roi, adc_offset, idum, table, spare, cache, out):
    # Pixels in C order (slow outer, fast inner); those outside the inclusive ROI
    # draw nothing and keep 0.
    photons = 0.0
    overloads = 0
    idx = 0
    for spixel in range(spixels):
        for fpixel in range(fpixels):
            if fpixel < roi[0] or fpixel > roi[1] or spixel < roi[2] or spixel > roi[3]:
                idx += 1
                continue
            test = np.float64(_poidev(image[idx], idum, table, spare, cache))
            photons += test
            test += adc_offset
            if test > _PIXEL_MAX:
                test = _PIXEL_MAX
                overloads += 1
            out[idx] = _to_uint16(test)
            idx += 1
    return photons, overloads



def _powf_fill(x, y, out):
    # C powf on float32 values (compiled, it calls the C library's powf, as the C program).
    for i in range(x.shape[0]):
        out[i] = x[i] ** y


KERNELS = ("_trunc_div", "_park_miller", "_ran1", "_ran1_fill", "_gammln", "_gaussdev",
           "_poidev_small", "_poidev_rejection", "_poidev", "_to_uint16", "_noise_kernel",
           "_powf_fill")
_COMPILED: dict = {}


def compiled(name: str):
    """The numba-compiled form of kernel ``name`` (numba is imported on the first call).

    Each kernel is compiled from a copy of its code whose globals name the compiled forms of
    the others, so compiled kernels call compiled kernels; numba caches them on disk.
    """
    if not _COMPILED:
        import numba

        namespace = dict(globals())
        for kernel in KERNELS:
            code = globals()[kernel]
            namespace[kernel] = numba.njit(cache=True)(
                types.FunctionType(code.__code__, namespace, kernel))
        _COMPILED.update({kernel: namespace[kernel] for kernel in KERNELS})
    return _COMPILED[name]
