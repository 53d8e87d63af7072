"""Image outputs: the raw float image, and the C program's conversions of it to integer pixels.

The C program keeps the rendered image as 32-bit floats (``float *floatimage``), so every
statistic and conversion below first rounds its input to float32, then works in double
precision exactly as the C code does. Pass the renderer's float64 pixels unchanged: the
rounding here reproduces the C results bit for bit.

Images are numpy arrays of shape ``(slow, fast)``; the slow index selects the row, and files
store the fast index fastest.

A region of interest ``roi`` is ``(fast_min, fast_max, slow_min, slow_max)`` in pixels, both
ends included, as given to ``-roi``; ``None`` means the whole image. Pixels outside it are never
rendered, and the C program leaves them 0 in every output.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ImageStatistics",
    "IntImage",
    "PGMImage",
    "auto_intfile_scale",
    "auto_pgm_scale",
    "format_c_g",
    "image_statistics",
    "int_image",
    "pgm_image",
    "roi_mask",
    "write_atomic",
    "write_float_image",
]

Roi = tuple[int, int, int, int]


@dataclass(frozen=True)
class ImageStatistics:
    """Pixel statistics the C program prints after rendering and uses for auto-scaling.

    Attributes
    ----------
    max_I : float
        Largest pixel value over the rendered (in-ROI, unmasked) pixels, or 0.0 when none is
        positive. Printed as ``"max_I = %g  at %g %g"`` with the position in metres.
    max_pixel : tuple of (int, int) or None
        ``(slow, fast)`` index of the first pixel, in rendering order, holding ``max_I``;
        None when no pixel is positive (the C program then prints position 0 0).
    mean, rms : float
        Mean and root-mean-square over the rendered pixels; ``rms`` divides the sum of
        squares by ``n - 1``. Printed as ``"mean= %g rms= %g rmsd= %g"``.
    rmsd : float
        Root-mean-square deviation from ``mean`` over all in-ROI pixels (masked pixels
        included, as zeros), dividing by ``n - 1``.
    """

    max_I: float
    max_pixel: tuple[int, int] | None
    mean: float
    rms: float
    rmsd: float


@dataclass(frozen=True)
class IntImage:
    """Pixels for ``-intfile``, with the scale used (printed as ``"intfile_scale = %g"``)."""

    pixels: np.ndarray
    scale: float


@dataclass(frozen=True)
class PGMImage:
    """Pixels for ``-pgmfile``, with the scale used (printed as ``"pgm_scale = %g"``)."""

    pixels: np.ndarray
    scale: float


def format_c_g(value: float) -> str:
    """Format a number as C's ``printf("%g")`` does with glibc.

    Python's ``%g`` matches glibc except for NaN, where glibc shows the sign bit (``-nan``).

    Parameters
    ----------
    value : float
        Number to format.

    Returns
    -------
    str
        Six significant digits, trailing zeros removed, e.g. ``"6.45"``, ``"1e-10"``, ``"-nan"``.
    """
    value = float(value)
    if math.isnan(value):
        return "-nan" if math.copysign(1.0, value) < 0 else "nan"
    return f"{value:g}"


def roi_mask(shape: tuple[int, int], roi: Roi | None) -> np.ndarray:
    """Return which pixels lie inside a region of interest.

    Parameters
    ----------
    shape : tuple of (int, int)
        Image shape ``(slow, fast)``.
    roi : tuple of (int, int, int, int) or None
        ``(fast_min, fast_max, slow_min, slow_max)``, inclusive; None for the whole image.

    Returns
    -------
    numpy.ndarray of bool, shape (slow, fast)
        True inside the region.
    """
    n_slow, n_fast = shape
    if roi is None:
        return np.ones(shape, dtype=bool)
    fast_min, fast_max, slow_min, slow_max = roi
    fast = np.arange(n_fast)
    slow = np.arange(n_slow)
    fast_in = (fast >= fast_min) & (fast <= fast_max)
    slow_in = (slow >= slow_min) & (slow <= slow_max)
    return slow_in[:, None] & fast_in[None, :]


def _as_c_float(image: np.ndarray) -> np.ndarray:
    """Round pixels to float32, as the C program stores them, checking they form a 2-D image."""
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D image (slow, fast), got shape {image.shape}")
    return image.astype(np.float32)


def _sequential_sum(values: np.ndarray, block: int = 1 << 16) -> float:
    """Sum float64 values one after another from the first, as a C loop does.

    Runs in blocks that stay in cache, each started from the running total, so the
    additions are exactly the C loop's.
    """
    total = 0.0
    buffer = np.empty(block + 1, dtype=np.float64)
    for start in range(0, values.size, block):
        chunk = values[start:start + block]
        buffer[0] = total
        buffer[1:chunk.size + 1] = chunk
        total = float(np.add.accumulate(buffer[:chunk.size + 1])[-1])
    return total


def image_statistics(
    float_image: np.ndarray, roi: Roi | None = None, mask: np.ndarray | None = None
) -> ImageStatistics:
    """Compute the statistics the C program gathers while rendering.

    Parameters
    ----------
    float_image : numpy.ndarray, shape (slow, fast)
        Rendered pixel values in photons (any float dtype; rounded to float32 first).
    roi : tuple of (int, int, int, int) or None
        Region of interest, see the module notes.
    mask : numpy.ndarray, shape (slow, fast), optional
        ``-mask`` pixels; zero marks a pixel that is not rendered.

    Returns
    -------
    ImageStatistics
        ``max_I``, its pixel, ``mean``, ``rms`` and ``rmsd``, bit-identical to the C values.
    """
    pixels = _as_c_float(float_image)
    inside = roi_mask(pixels.shape, roi)
    rendered = inside if mask is None else inside & (np.asarray(mask) != 0)
    values = _selected(pixels, rendered)

    # Sums run in double in rendering order; C squares the float pixel in float precision.
    total = _sequential_sum(values)
    total_sqr = _sequential_sum(values * values)
    count = max(int(values.size), 1)
    mean = total / count
    count = max(count, 2)
    rms = math.sqrt(total_sqr / (count - 1))

    deviations = _selected(pixels, inside).astype(np.float64) - mean
    count_roi = max(int(deviations.size), 2)
    rmsd = math.sqrt(_sequential_sum(deviations * deviations) / (count_roi - 1))

    max_I, max_pixel = _first_maximum(values, rendered)
    return ImageStatistics(max_I=max_I, max_pixel=max_pixel, mean=mean, rms=rms, rmsd=rmsd)


def _selected(pixels: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Pixels where ``chosen`` is True, in raster order (no copy when all are)."""
    return pixels.reshape(-1) if chosen.all() else pixels[chosen]


def _first_maximum(
    values: np.ndarray, rendered: np.ndarray
) -> tuple[float, tuple[int, int] | None]:
    """Find the first strictly positive maximum in rendering order; NaN never wins."""
    if values.size == 0:
        return 0.0, None
    comparable = np.where(np.isnan(values), -np.inf, values)
    best = int(np.argmax(comparable))
    if not comparable[best] > 0.0:
        return 0.0, None
    slow, fast = divmod(int(np.flatnonzero(rendered)[best]), rendered.shape[1])
    return float(values[best]), (slow, fast)


def auto_intfile_scale(max_I: float) -> float:
    """Return the ``-intfile`` scale chosen when ``-scale`` is absent or not positive.

    Parameters
    ----------
    max_I : float
        Largest rendered pixel value, from :func:`image_statistics`.

    Returns
    -------
    float
        ``55000 / max_I`` when ``max_I > 0``, else 1.0.
    """
    return 55000.0 / max_I if max_I > 0.0 else 1.0


def auto_pgm_scale(rmsd: float, intfile_scale: float) -> float:
    """Return the ``-pgmfile`` scale chosen when ``-pgmscale`` is absent or not positive.

    Parameters
    ----------
    rmsd : float
        Pixel rms deviation, from :func:`image_statistics`.
    intfile_scale : float
        The scale the int image used (after its own auto-selection).

    Returns
    -------
    float
        ``250 / (5 rmsd)`` when ``rmsd > 0``, else ``intfile_scale``.
    """
    return 250.0 / (5.0 * rmsd) if rmsd > 0.0 else intfile_scale


def _c_cast_to_unsigned(values: np.ndarray, bits: int) -> np.ndarray:
    """Convert doubles to an unsigned type as x86-64 C code does.

    The conversion truncates toward zero into a 32-bit int (NaN and out-of-range values give
    INT_MIN), then keeps the low ``bits`` bits, so -1.5 becomes 255 for 8 bits.
    """
    dtype = np.uint8 if bits == 8 else np.uint16
    if np.all((values >= 0.0) & (values < 2.0**bits)):  # in range: plain truncation
        return values.astype(dtype)
    limit = 2.0**31
    valid = np.isfinite(values) & (values > -limit - 1.0) & (values < limit)
    whole = np.where(valid, np.trunc(np.where(valid, values, 0.0)), -limit).astype(np.int64)
    return (whole & ((1 << bits) - 1)).astype(dtype)


def int_image(
    float_image: np.ndarray,
    scale: float | None = None,
    adc_offset: float = 40.0,
    roi: Roi | None = None,
    max_I: float | None = None,
    mask: np.ndarray | None = None,
) -> IntImage:
    """Convert the rendered image to ``-intfile`` pixels as the C program does.

    Each pixel becomes ``v * scale + adc_offset``, clipped to [0, 65535], plus 0.5, rounded
    to float32 and floored (C's ``floorf``). Pixels outside ``roi`` are 0, not ``adc_offset``.

    Parameters
    ----------
    float_image : numpy.ndarray, shape (slow, fast)
        Rendered pixel values in photons (rounded to float32 first, as in the C program).
    scale : float, optional
        ``-scale``; None or a value <= 0 selects :func:`auto_intfile_scale`.
    adc_offset : float
        ``-adc`` offset in counts (C default 40).
    roi : tuple of (int, int, int, int) or None
        Region of interest, see the module notes.
    max_I : float, optional
        Maximum from :func:`image_statistics`, for the automatic scale; computed from
        ``float_image``, ``roi`` and ``mask`` when needed and not given.
    mask : numpy.ndarray, shape (slow, fast), optional
        ``-mask`` pixels; used only to compute ``max_I``.

    Returns
    -------
    IntImage
        ``pixels`` (uint16, shape (slow, fast)) and the ``scale`` used.
    """
    pixels = _as_c_float(float_image)
    if scale is None or not scale > 0.0:
        if max_I is None:
            max_I = image_statistics(pixels, roi, mask).max_I
        scale = auto_intfile_scale(max_I)
    counts = pixels.astype(np.float64) * scale + adc_offset
    counts = np.where(counts > 65535.0, 65535.0, counts)
    counts = np.where(counts < 0.0, 0.0, counts)
    rounded = np.floor((counts + 0.5).astype(np.float32)).astype(np.float64)
    result = _c_cast_to_unsigned(rounded, 16)
    result[~roi_mask(pixels.shape, roi)] = 0
    return IntImage(pixels=result, scale=float(scale))


def pgm_image(
    float_image: np.ndarray,
    pgm_scale: float | None = None,
    rmsd: float | None = None,
    intfile_scale: float = 1.0,
    roi: Roi | None = None,
) -> PGMImage:
    """Convert the rendered image to ``-pgmfile`` bytes as the C program does.

    Each pixel becomes ``v * pgm_scale``, clipped above at 255 (not below) and truncated to
    an unsigned byte; pixels outside ``roi`` are 0.

    Parameters
    ----------
    float_image : numpy.ndarray, shape (slow, fast)
        Rendered pixel values in photons (rounded to float32 first).
    pgm_scale : float, optional
        ``-pgmscale``; None or a value <= 0 selects :func:`auto_pgm_scale`.
    rmsd : float, optional
        From :func:`image_statistics`, for the automatic scale; computed when needed and not
        given (it does not depend on the mask).
    intfile_scale : float
        The int image's final scale, the automatic choice's fallback when ``rmsd`` is 0.
    roi : tuple of (int, int, int, int) or None
        Region of interest, see the module notes.

    Returns
    -------
    PGMImage
        ``pixels`` (uint8, shape (slow, fast)) and the ``scale`` used.
    """
    pixels = _as_c_float(float_image)
    if pgm_scale is None or not pgm_scale > 0.0:
        if rmsd is None:
            rmsd = image_statistics(pixels, roi).rmsd
        pgm_scale = auto_pgm_scale(rmsd, intfile_scale)
    levels = pixels.astype(np.float64) * pgm_scale
    levels = np.where(levels > 255.0, 255.0, levels)
    result = _c_cast_to_unsigned(levels, 8)
    result[~roi_mask(pixels.shape, roi)] = 0
    return PGMImage(pixels=result, scale=float(pgm_scale))


def write_atomic(path: str | os.PathLike, chunks: Iterable[bytes]) -> None:
    """Write a file so that readers never see it half-written.

    The data go to a new file in the same directory (created with the usual permissions,
    ``0o666`` less the umask), which then replaces ``path`` in one step.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file.
    chunks : iterable of bytes
        Content, written in order.
    """
    path = os.fspath(path)
    directory, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as err:  # report the path the user gave, not the temporary name
        raise OSError(err.errno, f"cannot write {path}: {err.strerror}", path) from None
    try:
        with os.fdopen(descriptor, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
        try:
            os.replace(temporary, path)
        except OSError as err:
            raise OSError(err.errno, f"cannot write {path}: {err.strerror}", path) from None
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def write_float_image(path: str | os.PathLike, float_image: np.ndarray) -> None:
    """Write ``-floatfile``: raw little-endian float32 pixels, fast index fastest, no header.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file, replaced atomically.
    float_image : numpy.ndarray, shape (slow, fast)
        Pixel values in photons; rounded to float32.
    """
    data = np.ascontiguousarray(_as_c_float(float_image), dtype="<f4")
    write_atomic(path, [data.tobytes()])
