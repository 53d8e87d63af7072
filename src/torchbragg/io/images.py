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

import contextlib
import errno
import math
import os
import secrets
import signal
import stat
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ImageStatistics",
    "IntImage",
    "PGMImage",
    "Terminated",
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
    """Pixels for ``-intfile``, with the scale used (printed as ``"intfile_scale = %g"``).

    Attributes
    ----------
    pixels : numpy.ndarray of uint16, shape (slow, fast)
        The SMV pixels.
    scale : float
        The scale applied to the float pixels.
    clipped : int
        In-ROI pixels above 65535 after scaling, written as 65535.
    invalid : int
        In-ROI pixels that are NaN after scaling (a NaN pixel, or an inf one times a zero
        scale), written as 0.
    """

    pixels: np.ndarray
    scale: float
    clipped: int = 0
    invalid: int = 0

    def warnings(self, path: str | os.PathLike) -> list[str]:
        """Return one line per kind of pixel the conversion could not represent.

        Parameters
        ----------
        path : str or os.PathLike
            The file the pixels go to, named at the start of each line.

        Returns
        -------
        list of str
            Empty when every pixel fitted.
        """
        name = os.fspath(path)
        lines = []
        if self.clipped:
            lines.append(f"{name}: {self.clipped} pixels exceed 65535 after scaling and are "
                         "clipped, as nanoBragg does; lower -scale")
        if self.invalid:
            lines.append(f"{name}: {self.invalid} pixels are NaN after scaling (inf or NaN in "
                         "the float image) and are written as 0, as nanoBragg does")
        return lines


@dataclass(frozen=True)
class PGMImage:
    """Pixels for ``-pgmfile``, with the scale used (printed as ``"pgm_scale = %g"``).

    Attributes
    ----------
    pixels : numpy.ndarray of uint8, shape (slow, fast)
        The grey levels.
    scale : float
        The scale applied to the float pixels.
    clipped : int
        In-ROI pixels above 255 after scaling, written as 255. Not a warning: the automatic
        scale puts 5 rms deviations at 250, so bright spots saturate in ordinary images.
    wrapped : int
        In-ROI pixels at or below -1 after scaling; C's cast wraps them around to arbitrary
        grey levels.
    invalid : int
        In-ROI pixels that are NaN after scaling, written as 0.
    """

    pixels: np.ndarray
    scale: float
    clipped: int = 0
    wrapped: int = 0
    invalid: int = 0

    def warnings(self, path: str | os.PathLike) -> list[str]:
        """Return one line per kind of pixel that the grey levels misrepresent.

        Parameters
        ----------
        path : str or os.PathLike
            The file the pixels go to, named at the start of each line.

        Returns
        -------
        list of str
            Empty when no pixel wrapped or was NaN (saturation at 255 is not reported).
        """
        name = os.fspath(path)
        lines = []
        if self.wrapped:
            lines.append(f"{name}: {self.wrapped} pixels are negative after scaling and wrap "
                         "around to arbitrary grey levels, as nanoBragg does")
        if self.invalid:
            lines.append(f"{name}: {self.invalid} pixels are NaN after scaling and are written "
                         "as 0, as nanoBragg does")
        return lines


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
    """Round pixels to float32, as the C program stores them, checking they form a 2-D image.

    Values beyond the float32 range become inf silently, as C's conversion does.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D image (slow, fast), got shape {image.shape}")
    with np.errstate(over="ignore", invalid="ignore"):
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
    # inf and NaN pixels give inf and NaN statistics, silently, as in C
    with np.errstate(all="ignore"):
        return _statistics(pixels, values, inside, rendered)


def _statistics(
    pixels: np.ndarray, values: np.ndarray, inside: np.ndarray, rendered: np.ndarray
) -> ImageStatistics:
    """Compute :class:`ImageStatistics` from the rendered ``values`` and the ROI pixels."""
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
    to float32 and floored (C's ``floorf``); a NaN becomes 0, as C's cast gives on x86-64.
    Pixels outside ``roi`` are 0, not ``adc_offset``. The clipped (above 65535) and NaN pixels
    are counted; :meth:`IntImage.warnings` words them.

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
        ``pixels`` (uint16, shape (slow, fast)), the ``scale`` used, and the counts of
        ``clipped`` and ``invalid`` (NaN) pixels.
    """
    pixels = _as_c_float(float_image)
    if scale is None or not scale > 0.0:
        if max_I is None:
            max_I = image_statistics(pixels, roi, mask).max_I
        scale = auto_intfile_scale(max_I)
    inside = roi_mask(pixels.shape, roi)
    with np.errstate(all="ignore"):  # inf * 0 is NaN, which C casts to 0
        counts = pixels.astype(np.float64) * scale + adc_offset
        clipped = _count(counts > 65535.0, inside)
        invalid = _count(np.isnan(counts), inside)
        counts = np.where(counts > 65535.0, 65535.0, counts)
        counts = np.where(counts < 0.0, 0.0, counts)
        rounded = np.floor((counts + 0.5).astype(np.float32)).astype(np.float64)
        result = _c_cast_to_unsigned(rounded, 16)
    result[~inside] = 0
    return IntImage(pixels=result, scale=float(scale), clipped=clipped, invalid=invalid)


def _count(condition: np.ndarray, inside: np.ndarray) -> int:
    """Number of pixels inside the ROI where ``condition`` holds."""
    return int(np.count_nonzero(condition & inside))


def pgm_image(
    float_image: np.ndarray,
    pgm_scale: float | None = None,
    rmsd: float | None = None,
    intfile_scale: float = 1.0,
    roi: Roi | None = None,
) -> PGMImage:
    """Convert the rendered image to ``-pgmfile`` bytes as the C program does.

    Each pixel becomes ``v * pgm_scale``, clipped above at 255 (not below) and truncated to
    an unsigned byte as C's cast does: values at or below -1 wrap around and NaN becomes 0.
    Pixels outside ``roi`` are 0. Such pixels are counted; :meth:`PGMImage.warnings` words
    them.

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
        ``pixels`` (uint8, shape (slow, fast)), the ``scale`` used, and the counts of
        ``clipped``, ``wrapped`` and ``invalid`` (NaN) pixels.
    """
    pixels = _as_c_float(float_image)
    if pgm_scale is None or not pgm_scale > 0.0:
        if rmsd is None:
            rmsd = image_statistics(pixels, roi).rmsd
        pgm_scale = auto_pgm_scale(rmsd, intfile_scale)
    inside = roi_mask(pixels.shape, roi)
    with np.errstate(all="ignore"):
        levels = pixels.astype(np.float64) * pgm_scale
        clipped = _count(levels > 255.0, inside)
        wrapped = _count(levels <= -1.0, inside)
        invalid = _count(np.isnan(levels), inside)
        levels = np.where(levels > 255.0, 255.0, levels)
        result = _c_cast_to_unsigned(levels, 8)
    result[~inside] = 0
    return PGMImage(pixels=result, scale=float(pgm_scale), clipped=clipped, wrapped=wrapped,
                    invalid=invalid)


class Terminated(BaseException):
    """SIGTERM arrived while :func:`write_atomic` was replacing a file.

    Raised from a SIGTERM handler that :func:`write_atomic` installs while it writes (in the
    main thread, and only when SIGTERM has its default action), so that the hidden temporary
    file is removed before the program ends. Like ``KeyboardInterrupt`` it is not an
    ``Exception``; callers that catch it should exit with status 143 (128 + SIGTERM).
    """


def write_atomic(path: str | os.PathLike, chunks: Iterable[bytes]) -> None:
    """Write a file so that readers never see it half-written.

    The data go to a new file in the destination's directory (created with the usual
    permissions, ``0o666`` less the umask, or those of the file it replaces), which then
    replaces the destination in one step. A symbolic link is written through: its final
    target is replaced and the link stays a link. An existing destination that is not a
    regular file (a device such as ``/dev/null``, a FIFO) is opened and written directly,
    as the C program does.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file.
    chunks : iterable of bytes
        Content, written in order.

    Raises
    ------
    OSError
        Any failure to write, with the message ``cannot write <path>: <reason>`` naming
        ``path`` as given (no temporary name); the subclass follows the errno, e.g.
        ``PermissionError``.
    Terminated
        SIGTERM arrived while writing; the temporary file has been removed.
    """
    path = os.fspath(path)
    try:
        if _is_special(path):  # opened through the links, as /dev/stdout to a pipe must be
            _write_directly(path, chunks)
        else:
            with _sigterm_raises(path):
                _write_replacing(os.path.realpath(path), chunks)
    except OSError as err:
        raise _cannot_write(path, err) from None


def _cannot_write(path: str, err: OSError) -> OSError:
    """Return an OSError of the same errno saying ``cannot write <path>: <reason>``."""
    reason = err.strerror or str(err) or type(err).__name__
    if err.errno is None:
        return OSError(f"cannot write {path}: {reason}")
    return OSError(err.errno, f"cannot write {path}: {reason}")


def _is_special(path: str) -> bool:
    """Whether ``path``, links followed, exists and is neither a regular file nor a directory.

    Raises ``IsADirectoryError`` for a directory; a missing file is a new regular file.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
    return not stat.S_ISREG(mode)


def _write_directly(path: str, chunks: Iterable[bytes]) -> None:
    """Open an existing device, FIFO or socket and write the chunks to it, as C's fopen does."""
    with os.fdopen(os.open(path, os.O_WRONLY), "wb") as handle:
        for chunk in chunks:
            handle.write(chunk)


def _write_replacing(target: str, chunks: Iterable[bytes]) -> None:
    """Write a hidden temporary file beside ``target``, then rename it onto ``target``."""
    directory, name = os.path.split(target)
    temporary = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(descriptor, "wb") as handle:
            _keep_mode(handle.fileno(), target)
            for chunk in chunks:
                handle.write(chunk)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):  # never hide the error that brought us here
            os.unlink(temporary)
        raise


def _keep_mode(descriptor: int, target: str) -> None:
    """Give the new file the permission bits of the file it replaces, if there is one."""
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return
    os.fchmod(descriptor, stat.S_IMODE(mode))


@contextlib.contextmanager
def _sigterm_raises(path: str) -> Iterator[None]:
    """Within the block, make SIGTERM raise :class:`Terminated` (once) instead of killing.

    Only in the main thread and only while SIGTERM has its default action; a handler or an
    ignore set by the program is left alone. The previous action is restored afterwards.
    """
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    raised = []

    def handler(signum: int, frame: object) -> None:
        if not raised:  # a second SIGTERM must not interrupt the cleanup
            raised.append(signum)
            raise Terminated(f"terminated by SIGTERM while writing {path}")

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def write_float_image(
    path: str | os.PathLike, float_image: np.ndarray, warnings: list[str] | None = None
) -> None:
    """Write ``-floatfile``: raw little-endian float32 pixels, fast index fastest, no header.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file, replaced atomically (see :func:`write_atomic`).
    float_image : numpy.ndarray, shape (slow, fast)
        Pixel values in photons; rounded to float32 (values beyond its range become inf,
        as in the C program).
    warnings : list of str, optional
        Receives one line when some pixels are inf or NaN (they are written as they are).
    """
    data = np.ascontiguousarray(_as_c_float(float_image), dtype="<f4")
    bad = int(data.size - np.count_nonzero(np.isfinite(data)))
    if bad and warnings is not None:
        warnings.append(f"{os.fspath(path)}: {bad} pixels are inf or NaN (float32 overflows "
                        "above 3.4e38) and are written as such, as nanoBragg does")
    write_atomic(path, [data.tobytes()])
