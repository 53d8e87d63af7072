"""SMV (ADSC) images: writing ``-intfile``/``-noisefile`` and reading ``-img``/``-mask``.

An SMV file is a text header of ``HEADER_BYTES`` bytes, ``{`` then ``KEY=VALUE;`` lines then
``}``, padded with spaces, followed by unsigned 16-bit pixels, fast index fastest.

Geometry arguments use the C program's internal units: metres and radians. The header
prints ``value*1000`` (mm) or ``value*180/pi`` (degrees) computed exactly as the C code
computes them, so passing the renderer's own numbers reproduces the header byte for byte.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from torchbragg.io.errors import (
    InputFileError,
    c_atof,
    c_number_prefix,
    read_input_bytes,
    show_text,
)
from torchbragg.io.images import format_c_g, write_atomic

__all__ = [
    "SMVImage",
    "c_header_value",
    "parse_smv_header",
    "read_smv",
    "smv_header_geometry",
    "smv_header_text",
    "write_smv",
]

HEADER_BYTES = 512
# Degrees per radian as the C program computes it: 180.0*M_1_PI.
RTD = 180.0 * 0.318309886183790671537767526745028724
DEFAULT_PIXEL_SIZE_M = 0.1e-3


def smv_header_text(
    *,
    size_fast: int,
    size_slow: int,
    pixel_size_m: float,
    distance_m: float,
    wavelength_m: float,
    xbeam_m: float,
    ybeam_m: float,
    fbeam_m: float,
    sbeam_m: float,
    detsize_s_m: float,
    dials_origin_mm: Sequence[float],
    orgx_px: float,
    orgy_px: float,
    close_distance_m: float,
    phi0_rad: float,
    osc_rad: float,
    twotheta_rad: float,
    byte_order: str = "little_endian",
    noise_file: bool = False,
) -> str:
    r"""Build the SMV header text the C program writes, up to and including ``}\f``.

    Keys, in order: HEADER_BYTES, DIM, BYTE_ORDER, TYPE, SIZE1, SIZE2, PIXEL_SIZE, DISTANCE,
    WAVELENGTH, BEAM_CENTER_X/Y, ADXV_CENTER_X/Y, MOSFLM_CENTER_X/Y, DENZO_X/Y_BEAM,
    DIALS_ORIGIN (no ``;``), XDS_ORGX/Y, CLOSE_DISTANCE, PHI, OSC_START, OSC_RANGE, TWOTHETA,
    DETECTOR_SN, BEAMLINE. Numbers use ``%g``; an unset value (NaN) prints as ``nan``.

    Parameters
    ----------
    size_fast, size_slow : int
        Detector size in pixels along the fast (SIZE1) and slow (SIZE2) axes.
    pixel_size_m : float
        Pixel size in metres.
    distance_m : float
        Sample-to-detector distance along the beam, metres (C ``distance``).
    wavelength_m : float
        Nominal wavelength in metres (C ``lambda0``).
    xbeam_m, ybeam_m : float
        Beam centre in the selected convention, metres (C ``Xbeam``, ``Ybeam``).
    fbeam_m, sbeam_m : float
        Direct-beam position along the fast and slow axes, metres (C ``Fbeam``, ``Sbeam``).
    detsize_s_m : float
        Detector size along the slow axis, metres.
    dials_origin_mm : sequence of 3 float
        DIALS origin, mm, printed as is.
    orgx_px, orgy_px : float
        XDS ORGX/ORGY in pixels.
    close_distance_m : float
        Distance from sample to the detector plane, metres.
    phi0_rad, osc_rad : float
        Start spindle angle and oscillation range, radians.
    twotheta_rad : float
        Detector two-theta, radians.
    byte_order : str
        ``little_endian`` (what the C program writes on x86-64, and what :func:`write_smv`
        writes) or ``big_endian``.
    noise_file : bool
        The C program computes DENZO_X/Y_BEAM as ``S - 0*p`` for ``-intfile`` and ``S + 0*p``
        for ``-noisefile``; these differ only when the beam position is -0.0.

    Returns
    -------
    str
        Header text without the space padding, normally about 460 characters.
    """
    g = format_c_g
    zero_shift = 0.0 * pixel_size_m
    denzo_x = sbeam_m + zero_shift if noise_file else sbeam_m - zero_shift
    denzo_y = fbeam_m + zero_shift if noise_file else fbeam_m - zero_shift
    dials_x, dials_y, dials_z = (float(v) for v in dials_origin_mm)
    lines = [
        "{",
        f"HEADER_BYTES={HEADER_BYTES};",
        "DIM=2;",
        f"BYTE_ORDER={byte_order};",
        "TYPE=unsigned_short;",
        f"SIZE1={int(size_fast)};",
        f"SIZE2={int(size_slow)};",
        f"PIXEL_SIZE={g(pixel_size_m * 1000.0)};",
        f"DISTANCE={g(distance_m * 1000.0)};",
        f"WAVELENGTH={g(wavelength_m * 1e10)};",
        f"BEAM_CENTER_X={g(xbeam_m * 1000.0)};",
        f"BEAM_CENTER_Y={g(ybeam_m * 1000.0)};",
        f"ADXV_CENTER_X={g(fbeam_m * 1000.0)};",
        f"ADXV_CENTER_Y={g((detsize_s_m - sbeam_m) * 1000.0)};",
        f"MOSFLM_CENTER_X={g((sbeam_m - 0.5 * pixel_size_m) * 1000.0)};",
        f"MOSFLM_CENTER_Y={g((fbeam_m - 0.5 * pixel_size_m) * 1000.0)};",
        f"DENZO_X_BEAM={g(denzo_x * 1000.0)};",
        f"DENZO_Y_BEAM={g(denzo_y * 1000.0)};",
        f"DIALS_ORIGIN={g(dials_x)},{g(dials_y)},{g(dials_z)}",
        f"XDS_ORGX={g(orgx_px)};",
        f"XDS_ORGY={g(orgy_px)};",
        f"CLOSE_DISTANCE={g(close_distance_m * 1000.0)};",
        f"PHI={g(phi0_rad * RTD)};",
        f"OSC_START={g(phi0_rad * RTD)};",
        f"OSC_RANGE={g(osc_rad * RTD)};",
        f"TWOTHETA={g(twotheta_rad * RTD)};",
        "DETECTOR_SN=000;",
        "BEAMLINE=fake;",
    ]
    return "\n".join(lines) + "\n}\f"


def write_smv(path: str | os.PathLike, pixels: np.ndarray, header_text: str) -> None:
    """Write an SMV image as the C program does, atomically.

    The header is padded with spaces to 512 bytes. Like the C program, a header longer than
    512 bytes is written whole with no padding (the pixels then start after it).

    Parameters
    ----------
    path : str or os.PathLike
        Destination file, replaced atomically.
    pixels : numpy.ndarray, shape (slow, fast)
        Pixel values, written as little-endian unsigned 16-bit integers.
    header_text : str
        Header from :func:`smv_header_text` (ASCII).
    """
    pixels = np.asarray(pixels)
    if pixels.ndim != 2:
        raise ValueError(f"expected a 2-D image (slow, fast), got shape {pixels.shape}")
    header = header_text.encode("ascii")
    header += b" " * max(0, HEADER_BYTES - len(header))
    data = np.ascontiguousarray(pixels, dtype="<u2")
    write_atomic(path, [header, data.tobytes()])


@dataclass(frozen=True)
class SMVImage:
    """An SMV file as read by :func:`read_smv`.

    Attributes
    ----------
    header_text : str
        The ``HEADER_BYTES`` header bytes as text, cut at the first NUL byte.
    header : dict of str to str
        ``KEY=VALUE;`` entries (values stripped, without ``;``); a repeated key keeps its
        last value.
    pixels : numpy.ndarray of uint16, shape (slow, fast)
        Pixel values in native byte order.
    header_bytes : int
        Offset of the pixels in the file.
    """

    header_text: str
    header: dict[str, str]
    pixels: np.ndarray
    header_bytes: int


_ENTRY = re.compile(r"([A-Za-z0-9_]+)[ \t]*=([^;\n]*)")


def parse_smv_header(header_text: str) -> dict[str, str]:
    r"""Split SMV header text into its ``KEY=VALUE`` entries.

    Parameters
    ----------
    header_text : str
        Header text such as ``"{\nHEADER_BYTES=512;\nSIZE1=128;\n}"``.

    Returns
    -------
    dict of str to str
        Values stripped of spaces and the closing ``;``; later repeats win.
    """
    body = header_text.split("}", 1)[0]
    return {key: value.strip() for key, value in _ENTRY.findall(body)}


def c_header_value(header_text: str, keyword: str) -> float:
    """Read a number from header text exactly as the C program's ``ValueOf`` does.

    The C code finds the *last* place ``keyword`` occurs anywhere in the text, even inside a
    longer key, moves to the next ``=`` after it, and applies ``atof``. So in a header the C
    program wrote, ``DISTANCE`` finds ``CLOSE_DISTANCE=`` (written later) and ``ORGX`` finds
    ``XDS_ORGX=``.

    Parameters
    ----------
    header_text : str
        Header text, ending at its first NUL byte.
    keyword : str
        Text to look for, e.g. ``"PIXEL_SIZE"``.

    Returns
    -------
    float
        NaN when ``keyword`` does not occur (the C program then keeps its current value),
        0.0 when no ``=`` follows it, else the leading number after ``=`` (0.0 if none).
    """
    found = header_text.rfind(keyword)
    if found < 0:
        return float("nan")
    equals = header_text.find("=", found + len(keyword))
    if equals < 0:
        return 0.0
    return c_atof(header_text[equals + 1 :].encode("latin-1"))


def _checked_header_value(path: str | os.PathLike, header_text: str, keyword: str) -> float | None:
    """Read ``keyword`` as :func:`c_header_value` does, but refuse values the C program misreads.

    Parameters
    ----------
    path : str or os.PathLike
        The image file, for error messages.
    header_text : str
        Header text, ending at its first NUL byte.
    keyword : str
        Text to look for, e.g. ``"PIXEL_SIZE"``.

    Returns
    -------
    float or None
        None when ``keyword`` does not occur, else its finite value.

    Raises
    ------
    InputFileError
        Naming the header key, when the keyword has no ``=`` on its line, or its value does not
        start with a number (the C program reads 0), or is NaN or infinite.
    """
    found = header_text.rfind(keyword)
    if found < 0:
        return None
    equals = header_text.find("=", found + len(keyword))
    if equals < 0 or "\n" in header_text[found:equals]:
        raise InputFileError(
            path,
            f"header has {keyword} without '=' and a value on its line (nanoBragg would read "
            "0 or the next entry's value)",
        )
    name = _key_name(header_text, found, equals, keyword)
    rest = header_text[equals + 1 :]
    text = show_text(re.split(r"[;\n]", rest, maxsplit=1)[0])
    parsed = c_number_prefix(rest.encode("latin-1"))
    if parsed is None:
        raise InputFileError(path, f"header key {name} is {text}, not a number")
    if not math.isfinite(parsed[0]):
        raise InputFileError(path, f"header key {name} is {text}, not a finite number")
    return parsed[0]


def _key_name(header_text: str, found: int, equals: int, keyword: str) -> str:
    """The whole key holding ``keyword`` (at ``found``), saying so when it is a longer key."""
    start = max(header_text.rfind(mark, 0, found) for mark in "\n;{") + 1
    key = header_text[start:equals].strip()
    return keyword if key == keyword else f"{key} (read as {keyword})"


def read_smv(path: str | os.PathLike) -> SMVImage:
    """Read an SMV image of unsigned 16-bit pixels (``-img`` and ``-mask`` inputs).

    The header must start with ``{`` and give HEADER_BYTES; the image size comes from SIZE1
    (fast) and SIZE2 (slow), or DETECTOR_DIMENSIONS when SIZE1 is 0, as in the C program.
    Unlike the C program, which never swaps bytes, pixels are read in the header's
    BYTE_ORDER (``big_endian``, otherwise little-endian).

    Parameters
    ----------
    path : str or os.PathLike
        SMV file.

    Returns
    -------
    SMVImage
        Header text, header entries, pixels and header size.

    Raises
    ------
    InputFileError
        When the file cannot be read, is not SMV, has an unusable header (HEADER_BYTES, SIZE1,
        SIZE2 or DETECTOR_DIMENSIONS that is not a finite number, naming the key) or is
        truncated.
    """
    content = read_input_bytes(path)
    if len(content) < HEADER_BYTES:
        raise InputFileError(
            path, f"only {len(content)} bytes, shorter than a {HEADER_BYTES}-byte SMV header"
        )
    if not content.startswith(b"{"):
        raise InputFileError(path, "not an SMV image: the header does not start with '{'")
    header_bytes = _header_size(path, _header_text(content[:HEADER_BYTES]))
    if header_bytes > len(content):
        raise InputFileError(path, f"HEADER_BYTES={header_bytes} exceeds the file size")
    text = _header_text(content[:header_bytes])
    width, height = _image_size(path, text)
    dtype = _pixel_dtype(path, text)
    needed = header_bytes + 2 * width * height
    if len(content) < needed:
        raise InputFileError(
            path,
            f"truncated: {width}x{height} pixels need {needed} bytes, file has {len(content)}",
        )
    pixels = np.frombuffer(content, dtype=dtype, count=width * height, offset=header_bytes)
    pixels = pixels.reshape(height, width).astype(np.uint16)
    return SMVImage(
        header_text=text, header=parse_smv_header(text), pixels=pixels, header_bytes=header_bytes
    )


def _header_text(raw: bytes) -> str:
    """Decode header bytes, ending at the first NUL as C string functions do."""
    return raw.split(b"\0", 1)[0].decode("latin-1")


def _header_size(path: str | os.PathLike, text: str) -> int:
    """Read HEADER_BYTES the way the C program does, checking it is usable."""
    value = _checked_header_value(path, text, "HEADER_BYTES")
    if value is None:
        raise InputFileError(path, "not an SMV image: no HEADER_BYTES in the header")
    if not 1 <= value < 2**31:
        raise InputFileError(path, f"unusable HEADER_BYTES={format_c_g(value)}")
    return int(value)


def _image_size(path: str | os.PathLike, text: str) -> tuple[int, int]:
    """Return (fast, slow) pixel counts from SIZE1/SIZE2, or DETECTOR_DIMENSIONS."""
    width = _c_int(_checked_header_value(path, text, "SIZE1"))
    height = _c_int(_checked_header_value(path, text, "SIZE2"))
    if width == 0:
        width = height = _c_int(_checked_header_value(path, text, "DETECTOR_DIMENSIONS"))
    if width <= 0 or height <= 0:
        raise InputFileError(path, "header gives no usable image size (SIZE1, SIZE2)")
    return width, height


def _c_int(value: float | None) -> int:
    """Truncate toward zero like a C ``(int)`` cast; None (absent) and huge values give -1."""
    if value is None or abs(value) >= 2**31:
        return -1
    return int(value)


def _pixel_dtype(path: str | os.PathLike, text: str) -> np.dtype:
    """Pick the pixel dtype from TYPE and BYTE_ORDER."""
    header = parse_smv_header(text)
    pixel_type = header.get("TYPE", "unsigned_short")
    if pixel_type != "unsigned_short":
        raise InputFileError(path, f"unsupported pixel TYPE={pixel_type}, need unsigned_short")
    big = header.get("BYTE_ORDER", "little_endian").startswith("big_endian")
    return np.dtype(">u2" if big else "<u2")


def smv_header_geometry(
    header_text: str,
    role: Literal["img", "mask"],
    pixel_size_m: float = DEFAULT_PIXEL_SIZE_M,
    *,
    path: str | os.PathLike = "<header>",
) -> dict[str, float | int]:
    """Return the geometry the C program takes from an ``-img`` or ``-mask`` header.

    The C program reads the ``-mask`` header first, then the ``-img`` header, before any
    other option; every command-line option parsed afterwards overrides these values. So
    the precedence is: command line > ``-img`` header > ``-mask`` header > defaults
    (see :func:`torchbragg.precedence.apply_smv_headers`). Each value is read as
    :func:`c_header_value` reads it and applied only when its key occurs. A value that is not
    a number (the C program reads 0), ``nan`` (the C program keeps its current value) or
    infinite is an error naming the key. The values:

    - ``size_fast``, ``size_slow`` (SIZE1, SIZE2 or DETECTOR_DIMENSIONS): always set.
    - ``pixel_size_m`` = PIXEL_SIZE/1000.0 (else the ``pixel_size_m`` argument); then always
      ``detsize_f_m`` = ``pixel_size_m*size_fast``, ``detsize_s_m`` = ``pixel_size_m*size_slow``.
    - ``distance_m`` = DISTANCE/1000.0. Beware: the last ``DISTANCE`` in the text may be
      that of ``CLOSE_DISTANCE``, as in every header the C program writes.
    - ``close_distance_m`` = CLOSE_DISTANCE/1000.0; ``wavelength_m`` = WAVELENGTH/1e10.
    - ``xbeam_m`` = BEAM_CENTER_X/1000.0.
    - ``ybeam_m`` = BEAM_CENTER_Y/1000.0 for ``-img``, but ``detsize_s_m - BEAM_CENTER_Y/1000.0``
      for ``-mask``.
    - ``orgx_px``, ``orgy_px`` from ORGX, ORGY (so also XDS_ORGX, XDS_ORGY), in pixels.
    - ``phi0_rad`` = PHI/RTD and ``osc_rad`` = OSC_RANGE/RTD, with RTD = 180*M_1_PI.

    TWOTHETA is also read by the C program, but into a scratch variable that is overwritten
    before use, so it never moves the detector; it is left out here.

    Parameters
    ----------
    header_text : str
        Header text (:attr:`SMVImage.header_text`).
    role : {"img", "mask"}
        Which option named the file.
    pixel_size_m : float
        Pixel size in force before this header, metres (C default 0.1e-3).
    path : str or os.PathLike
        The image file, for error messages.

    Returns
    -------
    dict
        The keys above that the header sets; ``size_*``, ``pixel_size_m`` and ``detsize_*_m``
        are always present.

    Raises
    ------
    InputFileError
        When a value read is not a finite number, naming the file and the key.
    """
    if role not in ("img", "mask"):
        raise ValueError(f"role must be 'img' or 'mask', got {role!r}")

    def value(keyword: str) -> float | None:
        return _checked_header_value(path, header_text, keyword)

    size_fast, size_slow = _image_size(path, header_text)
    size = value("PIXEL_SIZE")
    if size is not None:
        pixel_size_m = size / 1000.0
    result: dict[str, float | int] = {
        "size_fast": size_fast,
        "size_slow": size_slow,
        "pixel_size_m": pixel_size_m,
        "detsize_f_m": pixel_size_m * size_fast,
        "detsize_s_m": pixel_size_m * size_slow,
    }
    scaled = [
        ("DISTANCE", "distance_m", 1000.0),
        ("CLOSE_DISTANCE", "close_distance_m", 1000.0),
        ("WAVELENGTH", "wavelength_m", 1e10),
        ("BEAM_CENTER_X", "xbeam_m", 1000.0),
        ("BEAM_CENTER_Y", "ybeam_m", 1000.0),
        ("ORGX", "orgx_px", None),
        ("ORGY", "orgy_px", None),
        ("PHI", "phi0_rad", RTD),
        ("OSC_RANGE", "osc_rad", RTD),
    ]
    for keyword, name, divisor in scaled:
        number = value(keyword)
        if number is not None:
            result[name] = number if divisor is None else number / divisor
    if role == "mask" and "ybeam_m" in result:
        result["ybeam_m"] = result["detsize_s_m"] - result["ybeam_m"]
    return result


