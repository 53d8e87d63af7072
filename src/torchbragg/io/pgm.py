r"""PGM (binary greyscale, ``P5``) output for ``-pgmfile``, as the C program writes it.

The file is ``P5\n<fast> <slow>\n# pixels scaled by <scale %g>\n255\n`` followed by one
byte per pixel, fast index fastest. :func:`torchbragg.io.images.pgm_image` turns the float
image into those bytes and picks the scale.
"""

from __future__ import annotations

import os

import numpy as np

from torchbragg.io.images import format_c_g, write_atomic

__all__ = ["pgm_header_text", "write_pgm"]


def pgm_header_text(size_fast: int, size_slow: int, pgm_scale: float) -> str:
    """Build the PGM header the C program writes.

    Parameters
    ----------
    size_fast, size_slow : int
        Image width (fast axis) and height (slow axis) in pixels.
    pgm_scale : float
        Scale applied to the float pixels, recorded in the comment line with ``%g``.

    Returns
    -------
    str
        Header text ending with the newline after ``255``.
    """
    size_line = f"{int(size_fast)} {int(size_slow)}"
    return f"P5\n{size_line}\n# pixels scaled by {format_c_g(pgm_scale)}\n255\n"


def write_pgm(path: str | os.PathLike, pixels: np.ndarray, pgm_scale: float) -> None:
    """Write a PGM image as the C program does, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file, replaced atomically; see :func:`torchbragg.io.images.write_atomic`
        for links, devices, pipes and the errors raised.
    pixels : numpy.ndarray of uint8, shape (slow, fast)
        Grey levels, e.g. :attr:`torchbragg.io.images.PGMImage.pixels` (whose
        :meth:`~torchbragg.io.images.PGMImage.warnings` tell which pixels wrapped or were NaN).
    pgm_scale : float
        Scale to record in the header comment.
    """
    pixels = np.asarray(pixels)
    if pixels.ndim != 2:
        raise ValueError(f"expected a 2-D image (slow, fast), got shape {pixels.shape}")
    size_slow, size_fast = pixels.shape
    header = pgm_header_text(size_fast, size_slow, pgm_scale).encode("ascii")
    data = np.ascontiguousarray(pixels, dtype=np.uint8)
    write_atomic(path, [header, data.tobytes()])
