"""Files of the ``noisify`` command line: the float input, ``-header``, and the SMV/PGM outputs.

The SMV header noisify writes is shorter than nanoBragg's (no ADXV/MOSFLM/DENZO/DIALS/XDS
keys); with ``-header FILE`` the outputs carry FILE's header bytes unchanged instead.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from torchbragg.io.errors import InputFileError, read_input_bytes
from torchbragg.io.images import format_c_g, write_atomic
from torchbragg.io.pgm import pgm_header_text
from torchbragg.io.smv import c_header_value

__all__ = [
    "HeaderFile",
    "ImageSize",
    "read_header_file",
    "resolve_image_size",
    "smv_header",
    "write_int_smv",
    "write_noisify_pgm",
]

HEADER_BYTES = 512
# What the C program checks the start of a -header file against (12 characters).
_ADSC_START = b"{\nHEADER_BYT"


@dataclass(frozen=True)
class HeaderFile:
    """A ``-header`` SMV file, read as the C ``GetFrame`` reads it.

    Attributes
    ----------
    raw : bytes
        The first ``HEADER_BYTES`` bytes, copied verbatim to the outputs.
    width, height : int
        SIZE1 and SIZE2 (or DETECTOR_DIMENSIONS when SIZE1 is 0), pixels.
    text : str
        The header as text, cut at its first NUL byte.
    """

    raw: bytes
    width: int
    height: int
    text: str

    def value(self, keyword: str) -> float:
        """The C ``ValueOf``: last occurrence of ``keyword``, number after ``=``; NaN if absent."""
        return c_header_value(self.text, keyword)


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("latin-1")


def read_header_file(path: str | os.PathLike) -> HeaderFile:
    """Read a ``-header`` file's header.

    Parameters
    ----------
    path : str or os.PathLike
        An SMV (ADSC) image.

    Returns
    -------
    HeaderFile
        The header bytes and the image size they give.

    Raises
    ------
    InputFileError
        When the file cannot be read, does not start like an ADSC header, or gives an
        unusable HEADER_BYTES or image size (the C program reads on with garbage).
    """
    content = read_input_bytes(path)
    if len(content) < HEADER_BYTES:
        raise InputFileError(path, f"only {len(content)} bytes, shorter than a "
                                   f"{HEADER_BYTES}-byte SMV header")
    if not content.startswith(_ADSC_START):
        raise InputFileError(path, "does not look like an ADSC (SMV) frame")
    size = c_header_value(_text(content[:HEADER_BYTES]), "HEADER_BYTES")
    if not (1 <= size <= len(content)):
        raise InputFileError(path, f"unusable HEADER_BYTES={format_c_g(size)} for a file of "
                                   f"{len(content)} bytes")
    raw = content[:int(size)]
    text = _text(raw)
    width, height = (_c_int(c_header_value(text, key)) for key in ("SIZE1", "SIZE2"))
    if width == 0:
        width = height = _c_int(c_header_value(text, "DETECTOR_DIMENSIONS"))
    if width <= 0 or height <= 0:
        raise InputFileError(path, "header gives no usable image size (SIZE1, SIZE2)")
    return HeaderFile(raw=raw, width=width, height=height, text=text)


def _c_int(value: float) -> int:
    """C ``(int)`` of a double: truncation; NaN and out-of-range give INT_MIN (x86-64)."""
    if not (-2.0**31 - 1 < value < 2.0**31):
        return -(2**31)
    return int(value)


@dataclass(frozen=True)
class ImageSize:
    """Image dimensions and detector size after the C program's defaults.

    Attributes
    ----------
    xpixels, ypixels : int
        Fast and slow pixel counts.
    detsize_x_m, detsize_y_m : float
        Detector size, metres.
    guessed : bool
        True when the size was guessed from the file length (the C program then warns).
    """

    xpixels: int
    ypixels: int
    detsize_x_m: float
    detsize_y_m: float
    guessed: bool = False


def resolve_image_size(values_in_file: int, xpixels: int, ypixels: int, pixel_m: float,
                       detsize_x_m: float, detsize_y_m: float) -> ImageSize:
    """Decide the image size as the C program does.

    With neither count given, the most nearly square factorisation of the number of values
    (``x <= sqrt(n)``, ``y = n / x``); with one count given, the other is ``n`` divided by
    it; a count still 0 comes from the detector size over the pixel size. The detector size
    is then ``pixel * count``.

    Parameters
    ----------
    values_in_file : int
        Number of float32 values in the input file.
    xpixels, ypixels : int
        Counts from the command line or a header (0: not given).
    pixel_m, detsize_x_m, detsize_y_m : float
        Pixel size and detector size, metres.

    Returns
    -------
    ImageSize
        Counts and detector size.
    """
    n = int(values_in_file)
    guessed = False
    if not xpixels and not ypixels:
        guessed = True
        xpixels = math.isqrt(n)
        while xpixels > 1 and n % xpixels:
            xpixels -= 1
        ypixels = n // xpixels if xpixels else 0
    if xpixels and not ypixels:
        ypixels = n // xpixels
    if not xpixels and ypixels:
        xpixels = n // ypixels
    if xpixels:
        detsize_x_m = pixel_m * xpixels
    else:
        xpixels = math.ceil(detsize_x_m / pixel_m - 0.5)
    if ypixels:
        detsize_y_m = pixel_m * ypixels
    else:
        ypixels = math.ceil(detsize_y_m / pixel_m - 0.5)
    return ImageSize(int(xpixels), int(ypixels), detsize_x_m, detsize_y_m, guessed)


def smv_header(bits: int, xpixels: int, ypixels: int, pixel_m: float, distance_m: float,
               wavelength_A: float, xbeam_m: float, ybeam_m: float, detsize_y_m: float,
               phi_deg: float, osc_deg: float) -> bytes:
    """The SMV header noisify writes, padded with spaces to 512 bytes.

    Parameters
    ----------
    bits : int
        16 (``TYPE=unsigned_short``) or 32 (``TYPE=long_integer``).
    xpixels, ypixels : int
        SIZE1 and SIZE2.
    pixel_m, distance_m : float
        Pixel size and distance, metres (written in mm).
    wavelength_A : float
        Written as is.
    xbeam_m, ybeam_m : float
        Beam centre, metres; BEAM_CENTER_Y is written as ``detsize_y - ybeam`` (mm).
    detsize_y_m : float
        Detector height, metres.
    phi_deg, osc_deg : float
        PHI (and OSC_START) and OSC_RANGE, degrees.

    Returns
    -------
    bytes
        ASCII header of at least 512 bytes.
    """
    g = format_c_g
    kind = "unsigned_short" if bits == 16 else "long_integer"
    text = (
        f"{{\nHEADER_BYTES=512;\nDIM=2;\nBYTE_ORDER=little_endian;\nTYPE={kind};\n"
        f"SIZE1={xpixels};\nSIZE2={ypixels};\nPIXEL_SIZE={g(pixel_m * 1000.0)};\n"
        f"DISTANCE={g(distance_m * 1000.0)};\n"
        f"WAVELENGTH={g(wavelength_A)};\nBEAM_CENTER_X={g(xbeam_m * 1000.0)};\n"
        f"BEAM_CENTER_Y={g((detsize_y_m - ybeam_m) * 1000)};\n"
        f"PHI={g(phi_deg)};\nOSC_START={g(phi_deg)};\nOSC_RANGE={g(osc_deg)};\n"
        "DETECTOR_SN=000;\nBEAMLINE=fake;\n}\f"
    ).encode("ascii")
    return header_padded(text)


def header_padded(text: bytes) -> bytes:
    """Pad a header with spaces to 512 bytes (a longer one is kept whole, as in C)."""
    return text + b" " * max(0, HEADER_BYTES - len(text))


def write_int_smv(path: str | os.PathLike, header: bytes, pixels: np.ndarray) -> None:
    """Write an SMV image atomically: ``header`` then the pixels, little-endian.

    Parameters
    ----------
    path : str or os.PathLike
        Destination (see :func:`torchbragg.io.images.write_atomic`).
    header : bytes
        Complete header (from :func:`smv_header` or a ``-header`` file).
    pixels : numpy.ndarray, uint16 or uint32, shape (slow, fast)
        Pixel values.
    """
    dtype = "<u2" if np.asarray(pixels).dtype.itemsize == 2 else "<u4"
    write_atomic(path, [header, np.ascontiguousarray(pixels, dtype=dtype).tobytes()])


def write_noisify_pgm(path: str | os.PathLike, pixels16: np.ndarray) -> None:
    """Write the PGM noisify writes: the 16-bit noiseless pixels clipped at 255.

    Parameters
    ----------
    path : str or os.PathLike
        Destination (see :func:`torchbragg.io.images.write_atomic`).
    pixels16 : numpy.ndarray, uint16, shape (slow, fast)
        The noiseless integer image.
    """
    levels = np.minimum(np.asarray(pixels16), 255).astype(np.uint8)
    ypixels, xpixels = levels.shape
    header = pgm_header_text(xpixels, ypixels, 1.0).encode("ascii")
    write_atomic(path, [header, np.ascontiguousarray(levels).tobytes()])
